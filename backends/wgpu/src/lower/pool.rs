//! Max and average pooling over NCHW and their gradients (PyTorch
//! semantics, ceil_mode false), one invocation per result element.
//!
//! The gradients are gathers, not scatters: each dx element walks the
//! windows that contain it, in row-major window order, so no two
//! invocations write the same word and the sums have a fixed order. Max
//! pooling's gradient recomputes each such window's first maximum and takes
//! that window's dy only if it is this element. Rows and columns are kept in
//! padded coordinates (`o * stride` is the window's first), which never go
//! negative.

use std::fmt::Write as _;

use kiln_ir::{NodeId, Op, Pool2dAttrs};

use crate::lower::conv::{base, dims4, numel, ops_at};
use crate::lower::wgsl::f32_lit;
use crate::lower::{Cx, Shader};
use crate::WgpuError;

/// Functions every pooling shader has.
const POOL_FNS: &str = "// The in-image rows [x, y) (unpadded) of the window at output o.
fn window(o: u32, k: u32, s: u32, pad: u32, ext: u32) -> vec2<u32> {
    let a = max(o * s, pad);
    return vec2<u32>(a - pad, max(min(o * s + k, pad + ext), a) - pad);
}
// The outputs [x, y) of `outs` whose window covers padded coordinate q.
fn covering(q: u32, k: u32, s: u32, outs: u32) -> vec2<u32> {
    return vec2<u32>(select(0u, (q + s - k) / s, q + 1u > k), min(q / s + 1u, outs));
}
// Bit test: arithmetic NaN checks may be folded away by a driver.
fn is_nan(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }
";

/// The first maximum of a window as the interpreter picks it: a later
/// element wins only if strictly greater, or NaN while the best is not.
const FIRST_MAX: &str = "const NONE: u32 = 0xffffffffu;
// Word of the window's first maximum (NONE if the window is empty).
fn first_max(xp: u32, r: vec2<u32>, c: vec2<u32>) -> u32 {
    var bi = NONE;
    var b = 0.0f;
    for (var ih = r.x; ih < r.y; ih++) {
        for (var iw = c.x; iw < c.y; iw++) {
            let i = xp + ih * XW + iw;
            let v = ld_f32(i);
            if (bi == NONE || (!is_nan(b) && (v > b || is_nan(v)))) {
                b = v;
                bi = i;
            }
        }
    }
    return bi;
}
";

/// Index of the output element / its window, shared by the forward shaders.
const OUT_WINDOW: &str = "    let ow = idx % YW;
    let oh = (idx / YW) % YH;
    let pl = idx / (YW * YH);
    let r = window(oh, KH, SH, PH, XH);
    let c = window(ow, KW, SW, PW, XW);
    let xp = X0 + pl * XH * XW;
";

/// Index of the dx element and the windows covering it, shared by the
/// gradient shaders.
const IN_WINDOWS: &str = "    let iw = idx % XW;
    let ih = (idx / XW) % XH;
    let pl = idx / (XW * XH);
    let ro = covering(ih + PH, KH, SH, YH);
    let co = covering(iw + PW, KW, SW, YW);
    var acc = 0.0f;
    for (var oh = ro.x; oh < ro.y; oh++) {
        for (var ow = co.x; ow < co.y; ow++) {
            let dy = ld_f32(Y0 + (pl * YH + oh) * YW + ow);
";

pub fn lower(cx: &Cx, n: NodeId) -> Result<Vec<Shader>, WgpuError> {
    let ops = cx.g.operands(n);
    let name = format!("n{}-{}", n.index(), cx.g.op(n).name());
    let x0 = ops_at(&ops, 0, n)?;
    let shader = match cx.g.op(n) {
        Op::MaxPool2d(p) => {
            let fns = consts(cx, n, p, dims4(cx, x0)?, dims4(cx, n)?, &[("X0", x0), ("OUT", n)])? + FIRST_MAX;
            let body = format!(
                "{OUT_WINDOW}    let i = first_max(xp, r, c);
    var v = -k_inf();
    if (i != NONE) {{ v = ld_f32(i); }}
    st_f32(OUT + idx, v);
"
            );
            cx.shader(name, &fns, &body, numel(dims4(cx, n)?))?
        }
        Op::MaxPool2dGrad(p) => {
            let dy = ops_at(&ops, 1, n)?;
            let x = dims4(cx, x0)?;
            let fns = consts(cx, n, p, x, dims4(cx, dy)?, &[("X0", x0), ("Y0", dy), ("OUT", n)])? + FIRST_MAX;
            let body = format!(
                "    let me = X0 + idx;
{IN_WINDOWS}            let xp = X0 + pl * XH * XW;
            let r = window(oh, KH, SH, PH, XH);
            let c = window(ow, KW, SW, PW, XW);
            if (first_max(xp, r, c) == me) {{ acc += dy; }}
        }}
    }}
    st_f32(OUT + idx, acc);
"
            );
            if dims4(cx, n)? != x {
                return Err(WgpuError::Internal(format!("{n}: dx {} is not x's shape", cx.g.ty(n))));
            }
            cx.shader(name, &fns, &body, numel(x))?
        }
        Op::AvgPool2d { pool, count_include_pad } => {
            let fns = consts(cx, n, pool, dims4(cx, x0)?, dims4(cx, n)?, &[("X0", x0), ("OUT", n)])?;
            let body = format!(
                "{OUT_WINDOW}    var s = 0.0f;
    for (var ih = r.x; ih < r.y; ih++) {{
        for (var iw = c.x; iw < c.y; iw++) {{
            s += ld_f32(xp + ih * XW + iw);
        }}
    }}
    st_f32(OUT + idx, s / {});
",
                divisor(pool, *count_include_pad)
            );
            cx.shader(name, &fns, &body, numel(dims4(cx, n)?))?
        }
        Op::AvgPool2dGrad { pool, count_include_pad, .. } => {
            let x = dims4(cx, n)?;
            let fns = consts(cx, n, pool, x, dims4(cx, x0)?, &[("Y0", x0), ("OUT", n)])?;
            let body = format!(
                "{IN_WINDOWS}            let r = window(oh, KH, SH, PH, XH);
            let c = window(ow, KW, SW, PW, XW);
            acc += dy / {};
        }}
    }}
    st_f32(OUT + idx, acc);
",
                divisor(pool, *count_include_pad)
            );
            cx.shader(name, &fns, &body, numel(x))?
        }
        op => return Err(WgpuError::Internal(format!("{n}: {} is not a pooling op", op.name()))),
    };
    Ok(vec![shader])
}

/// The f32 divisor of the window `r` x `c`. With ceil_mode false a window
/// never leaves the padded input, so counting padding means the full
/// kernel.
fn divisor(p: &Pool2dAttrs, count_include_pad: bool) -> String {
    if count_include_pad {
        f32_lit((p.kernel[0] * p.kernel[1]) as f32)
    } else {
        "f32((r.y - r.x) * (c.y - c.x))".into()
    }
}

/// The geometry of x[N,C,H,W] pooled to y[N,C,HO,WO] and the named bases,
/// as WGSL constants, then [`POOL_FNS`]; checks the shapes agree.
fn consts(cx: &Cx, n: NodeId, p: &Pool2dAttrs, x: [usize; 4], y: [usize; 4], bases: &[(&str, NodeId)]) -> Result<String, WgpuError> {
    if x[..2] != y[..2] || p.out_dim(0, x[2]) != Some(y[2]) || p.out_dim(1, x[3]) != Some(y[3]) {
        return Err(WgpuError::Internal(format!("{n}: shapes x{x:?} y{y:?} disagree with {p:?}")));
    }
    for ax in 0..2 {
        let span = p.padding[ax] * 2 + x[2 + ax] + p.stride[ax] + p.kernel[ax];
        if span > u32::MAX as usize / 2 {
            return Err(WgpuError::Limit(format!("{n}: spatial extent {span} exceeds the device's u32 indices")));
        }
    }
    let vals = [
        ("XH", x[2]),
        ("XW", x[3]),
        ("YH", y[2]),
        ("YW", y[3]),
        ("KH", p.kernel[0]),
        ("KW", p.kernel[1]),
        ("SH", p.stride[0]),
        ("SW", p.stride[1]),
        ("PH", p.padding[0]),
        ("PW", p.padding[1]),
    ];
    let mut s = String::new();
    for (k, v) in vals {
        let _ = writeln!(s, "const {k}: u32 = {v}u;");
    }
    for &(k, v) in bases {
        let _ = writeln!(s, "const {k}: u32 = {}u;", base(cx, v)?);
    }
    s.push_str(POOL_FNS);
    Ok(s)
}
