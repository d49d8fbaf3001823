//! Convolutions: conv2d (plain, fused with bias + activation, and conv1d as
//! a height-1 conv2d) and the two gradients, as direct loop nests.
//!
//! Each shader runs one invocation per element of its result and sums its
//! terms in a fixed order, so no two invocations write the same word and
//! the bits do not change run to run. Spatial indices are kept in padded
//! coordinates (`o * stride + k * dilation`, which never goes negative) and
//! compared against `[pad, pad + extent)`, so the shaders need no signed
//! arithmetic.
//!
//! The WGSL constants name tensors by their role in the forward conv:
//! `X0`/`X*` the image (or its gradient), `WT0` the weight (or its
//! gradient), `Y0`/`Y*` the output (or the incoming gradient).

use std::fmt::Write as _;

use kiln_ir::{Activation, Conv2dAttrs, DType, NodeId, Op};

use crate::lower::wgsl::{self, u32_word};
use crate::lower::{Cx, Shader};
use crate::WgpuError;

pub fn lower(cx: &Cx, n: NodeId) -> Result<Vec<Shader>, WgpuError> {
    let ops = cx.g.operands(n);
    let name = format!("n{}-{}", n.index(), cx.g.op(n).name());
    let operand = |i| ops_at(&ops, i, n);
    let shader = match cx.g.op(n) {
        Op::Conv2d(attrs) => {
            let c = Conv::new(cx, n, dims4(cx, operand(0)?)?, dims4(cx, operand(1)?)?, dims4(cx, n)?, *attrs)?;
            forward(cx, n, &c, &ops, name, None, Activation::None)?
        }
        Op::FusedConv2d { attrs, bias, act } => {
            let c = Conv::new(cx, n, dims4(cx, operand(0)?)?, dims4(cx, operand(1)?)?, dims4(cx, n)?, *attrs)?;
            let b = if *bias { Some(operand(2)?) } else { None };
            forward(cx, n, &c, &ops, name, b, *act)?
        }
        Op::Conv1d(attrs) => {
            let [x, w, y] = [operand(0)?, operand(1)?, n].map(|v| dims3(cx, v));
            let c = Conv::new(cx, n, x?, w?, y?, attrs.as_conv2d())?;
            forward(cx, n, &c, &ops, name, None, Activation::None)?
        }
        Op::Conv2dGradInput { attrs, .. } => {
            let (dy, w) = (operand(0)?, operand(1)?);
            let c = Conv::new(cx, n, dims4(cx, n)?, dims4(cx, w)?, dims4(cx, dy)?, *attrs)?;
            grad_input(cx, &c, [n, w, dy], name)?
        }
        Op::Conv2dGradWeight { attrs, .. } => {
            let (x, dy) = (operand(0)?, operand(1)?);
            let c = Conv::new(cx, n, dims4(cx, x)?, dims4(cx, n)?, dims4(cx, dy)?, *attrs)?;
            grad_weight(cx, &c, [x, n, dy], name)?
        }
        op => return Err(WgpuError::Internal(format!("{n}: {} is not a convolution", op.name()))),
    };
    Ok(vec![shader])
}

/// Sizes of one convolution x[N,C,H,W] * w[O,C/g,KH,KW] -> y[N,O,HO,WO].
struct Conv {
    x: [usize; 4],
    w: [usize; 4],
    y: [usize; 4],
    a: Conv2dAttrs,
}

impl Conv {
    /// Checks the shapes agree (a malformed graph is an error, not a wrong
    /// read) and that every padded coordinate fits a `u32`.
    fn new(cx: &Cx, n: NodeId, x: [usize; 4], w: [usize; 4], y: [usize; 4], a: Conv2dAttrs) -> Result<Conv, WgpuError> {
        let g = a.groups;
        let ok = g > 0
            && x[1].is_multiple_of(g)
            && w[0].is_multiple_of(g)
            && w[1].checked_mul(g) == Some(x[1])
            && y[0] == x[0]
            && y[1] == w[0]
            && a.out_dim(0, x[2], w[2]) == Some(y[2])
            && a.out_dim(1, x[3], w[3]) == Some(y[3]);
        if !ok {
            return Err(WgpuError::Internal(format!(
                "{n}: {}: shapes x{x:?} w{w:?} y{y:?} disagree with {a:?}",
                cx.g.op(n).name()
            )));
        }
        for ax in 0..2 {
            // The largest padded coordinate any shader forms.
            let span = a.padding[ax] * 2 + x[2 + ax] + a.stride[ax] + a.dilation[ax] * w[2 + ax];
            if span > u32::MAX as usize / 2 {
                return Err(WgpuError::Limit(format!("{n}: spatial extent {span} exceeds the device's u32 indices")));
            }
        }
        Ok(Conv { x, w, y, a })
    }

    /// The WGSL constants of the geometry.
    fn consts(&self, bases: &[(&str, u32)]) -> String {
        let (x, w, y, a) = (self.x, self.w, self.y, self.a);
        let vals = [
            ("XC", x[1]),
            ("XH", x[2]),
            ("XW", x[3]),
            ("YO", y[1]),
            ("YH", y[2]),
            ("YW", y[3]),
            ("KH", w[2]),
            ("KW", w[3]),
            ("CG", w[1]),
            ("OG", w[0] / a.groups),
            ("SH", a.stride[0]),
            ("SW", a.stride[1]),
            ("PH", a.padding[0]),
            ("PW", a.padding[1]),
            ("DH", a.dilation[0]),
            ("DW", a.dilation[1]),
        ];
        let mut s = String::new();
        for (k, v) in vals.iter().map(|&(k, v)| (k, v as u64)).chain(bases.iter().map(|&(k, v)| (k, v as u64))) {
            let _ = writeln!(s, "const {k}: u32 = {v}u;");
        }
        s
    }
}

fn forward(
    cx: &Cx,
    n: NodeId,
    c: &Conv,
    ops: &[NodeId],
    name: String,
    bias: Option<NodeId>,
    act: Activation,
) -> Result<Shader, WgpuError> {
    let mut bases = vec![("X0", base(cx, ops[0])?), ("WT0", base(cx, ops[1])?), ("Y0", base(cx, n)?)];
    let mut out = "acc".to_string();
    if let Some(b) = bias {
        if cx.g.ty(b).numel() != c.y[1] {
            return Err(WgpuError::Internal(format!("{n}: bias {b} is not [{}]", c.y[1])));
        }
        bases.push(("B0", base(cx, b)?));
        out = "acc + ld_f32(B0 + o)".into();
    }
    let body = format!(
        "    let ow = idx % YW;
    let oh = (idx / YW) % YH;
    let o = (idx / (YW * YH)) % YO;
    let n = idx / (YW * YH * YO);
    let c0 = o / OG * CG;
    var acc = 0.0f;
    for (var ci = 0u; ci < CG; ci++) {{
        let xp = X0 + (n * XC + c0 + ci) * XH * XW;
        let wp = WT0 + (o * CG + ci) * KH * KW;
        for (var ky = 0u; ky < KH; ky++) {{
            let ih = oh * SH + ky * DH;
            if (ih < PH || ih >= PH + XH) {{ continue; }}
            let xr = xp + (ih - PH) * XW;
            for (var kx = 0u; kx < KW; kx++) {{
                let iw = ow * SW + kx * DW;
                if (iw < PW || iw >= PW + XW) {{ continue; }}
                acc += ld_f32(xr + iw - PW) * ld_f32(wp + ky * KW + kx);
            }}
        }}
    }}
    st_f32(Y0 + idx, {});
",
        wgsl::activation(act, &out)
    );
    cx.shader(name, &c.consts(&bases), &body, numel(c.y))
}

/// dx[n,c,ih,iw]: over the taps (ky, kx) whose output position lands on a
/// whole stride step inside dy, then over the output channels of c's group.
fn grad_input(cx: &Cx, c: &Conv, [dx, w, dy]: [NodeId; 3], name: String) -> Result<Shader, WgpuError> {
    let bases = [("X0", base(cx, dx)?), ("WT0", base(cx, w)?), ("Y0", base(cx, dy)?)];
    let body = "    let iw = idx % XW;
    let ih = (idx / XW) % XH;
    let c = (idx / (XW * XH)) % XC;
    let n = idx / (XW * XH * XC);
    let o0 = c / CG * OG;
    let ci = c % CG;
    let qh = ih + PH;
    let qw = iw + PW;
    var acc = 0.0f;
    for (var ky = 0u; ky < KH; ky++) {
        let th = ky * DH;
        if (th > qh || (qh - th) % SH != 0u || (qh - th) / SH >= YH) { continue; }
        let oh = (qh - th) / SH;
        for (var kx = 0u; kx < KW; kx++) {
            let tw = kx * DW;
            if (tw > qw || (qw - tw) % SW != 0u || (qw - tw) / SW >= YW) { continue; }
            let ow = (qw - tw) / SW;
            for (var j = 0u; j < OG; j++) {
                let o = o0 + j;
                acc += ld_f32(Y0 + ((n * YO + o) * YH + oh) * YW + ow) * ld_f32(WT0 + ((o * CG + ci) * KH + ky) * KW + kx);
            }
        }
    }
    st_f32(X0 + idx, acc);
";
    cx.shader(name, &c.consts(&bases), body, numel(c.x))
}

/// dw[o,ci,ky,kx]: over the batch, then the output rows and columns whose
/// tap (ky, kx) reads inside the image (computed once, not tested per term).
fn grad_weight(cx: &Cx, c: &Conv, [x, dw, dy]: [NodeId; 3], name: String) -> Result<Shader, WgpuError> {
    let mut fns = c.consts(&[("X0", base(cx, x)?), ("WT0", base(cx, dw)?), ("Y0", base(cx, dy)?)]);
    let _ = writeln!(fns, "const XN: u32 = {}u;", c.x[0]);
    fns.push_str(
        "// The outputs o in [x, y) of `outs` whose tap at offset t reads inside
// the image: pad <= o * s + t < pad + ext.
fn inside(t: u32, pad: u32, ext: u32, s: u32, outs: u32) -> vec2<u32> {
    let lo = select(0u, (pad - t + s - 1u) / s, t < pad);
    let hi = select(0u, min((pad + ext - t + s - 1u) / s, outs), t < pad + ext);
    return vec2<u32>(lo, hi);
}
",
    );
    let body = "    let kx = idx % KW;
    let ky = (idx / KW) % KH;
    let ci = (idx / (KW * KH)) % CG;
    let o = idx / (KW * KH * CG);
    let c = o / OG * CG + ci;
    let rh = inside(ky * DH, PH, XH, SH, YH);
    let rw = inside(kx * DW, PW, XW, SW, YW);
    var acc = 0.0f;
    for (var n = 0u; n < XN; n++) {
        let xp = X0 + (n * XC + c) * XH * XW;
        let yp = Y0 + (n * YO + o) * YH * YW;
        for (var oh = rh.x; oh < rh.y; oh++) {
            var xi = xp + (oh * SH + ky * DH - PH) * XW + rw.x * SW + kx * DW - PW;
            let yr = yp + oh * YW;
            for (var ow = rw.x; ow < rw.y; ow++) {
                acc += ld_f32(xi) * ld_f32(yr + ow);
                xi += SW;
            }
        }
    }
    st_f32(WT0 + idx, acc);
";
    cx.shader(name, &fns, body, numel(c.w))
}

/// Word of element 0 of `v`, as a `u32`, after checking that `v` is f32 (the
/// shaders here read and write f32 only) and its last word is addressable.
pub(super) fn base(cx: &Cx, v: NodeId) -> Result<u32, WgpuError> {
    let ty = cx.g.ty(v);
    if ty.dtype != DType::F32 {
        wgsl::ty(ty.dtype)?;
        return Err(WgpuError::Unsupported(format!("{v}: {} {} on the GPU (f32 only)", cx.g.op(v).name(), ty)));
    }
    let w = cx.word(v)?;
    u32_word(w + ty.numel() as u64)?;
    u32_word(w)
}

/// The shape of `v`, which must be rank 4.
pub(super) fn dims4(cx: &Cx, v: NodeId) -> Result<[usize; 4], WgpuError> {
    let d = cx.g.ty(v).shape.dims();
    d.try_into().map_err(|_| WgpuError::Internal(format!("{v}: expected a rank-4 value, got {}", cx.g.ty(v))))
}

/// A rank-3 [N, C, L] value as the [N, C, 1, L] image conv1d reads.
fn dims3(cx: &Cx, v: NodeId) -> Result<[usize; 4], WgpuError> {
    match *cx.g.ty(v).shape.dims() {
        [a, b, l] => Ok([a, b, 1, l]),
        _ => Err(WgpuError::Internal(format!("{v}: expected a rank-3 value, got {}", cx.g.ty(v)))),
    }
}

/// Operand `i` of `n`.
pub(super) fn ops_at(ops: &[NodeId], i: usize, n: NodeId) -> Result<NodeId, WgpuError> {
    ops.get(i).copied().ok_or_else(|| WgpuError::Internal(format!("{n}: missing operand {i}")))
}

pub(super) fn numel(d: [usize; 4]) -> u64 {
    d.iter().map(|&e| e as u64).product()
}
