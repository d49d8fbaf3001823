//! Matrix products, argmax and softmax cross-entropy.
//!
//! A product runs one invocation per output element, summing its dot
//! product from k = 0 upwards in f32 (the interpreter's order), so every
//! run gives the same bits. Argmax and cross-entropy run one invocation per
//! row.

use std::fmt::Write as _;

use kiln_ir::{broadcast_strides, Activation, DType, NodeId, Op};

use crate::lower::movement::{coords, dims, linear, numel, place, shader_name};
use crate::lower::wgsl::{self, activation};
use crate::lower::{Cx, Shader};
use crate::WgpuError;

pub fn lower(cx: &Cx, n: NodeId) -> Result<Vec<Shader>, WgpuError> {
    let xs = cx.g.operands(n);
    let operand = |i: usize| {
        xs.get(i).copied().ok_or_else(|| WgpuError::Internal(format!("{n}: {} lacks operand {i}", cx.g.op(n).name())))
    };
    let shader = match cx.g.op(n) {
        Op::MatMul { trans_a, trans_b } => matmul(cx, n, operand(0)?, operand(1)?, *trans_a, *trans_b)?,
        Op::FusedDense { trans_b, bias, act } => {
            let b = if *bias { Some(operand(2)?) } else { None };
            fused_dense(cx, n, operand(0)?, operand(1)?, b, *trans_b, *act)?
        }
        Op::ArgMax { axis, .. } => argmax(cx, n, operand(0)?, *axis)?,
        Op::SoftmaxCrossEntropy => softmax_cross_entropy(cx, n, operand(0)?, operand(1)?)?,
        other => return Err(WgpuError::Internal(format!("{n}: {} is not a dense op", other.name()))),
    };
    Ok(vec![shader])
}

fn float_only(cx: &Cx, n: NodeId) -> Result<(), WgpuError> {
    match cx.g.ty(n).dtype {
        DType::F32 => Ok(()),
        d => Err(WgpuError::Unsupported(format!("{n}: {} of {d:?} values", cx.g.op(n).name()))),
    }
}

/// `var acc = 0; for p: acc += A[a(p)] * B[b(p)]` where `a_at`/`b_at` are
/// word expressions in `p`.
fn dot(body: &mut String, k: usize, a_at: &str, b_at: &str) {
    let _ = writeln!(body, "    var acc = 0.0f;");
    let _ = writeln!(body, "    for (var p = 0u; p < {k}u; p = p + 1u) {{");
    let _ = writeln!(body, "        acc = acc + ld_f32({a_at}) * ld_f32({b_at});");
    let _ = writeln!(body, "    }}");
}

fn matmul(cx: &Cx, n: NodeId, a: NodeId, b: NodeId, trans_a: bool, trans_b: bool) -> Result<Shader, WgpuError> {
    float_only(cx, n)?;
    let (ad, bd, od) = (dims(cx, a), dims(cx, b), dims(cx, n));
    let (ra, rb, ro) = (ad.len(), bd.len(), od.len());
    if ra < 2 || rb < 2 || ro < 2 {
        return Err(WgpuError::Internal(format!("{n}: matmul operands of rank < 2")));
    }
    let (m, nn) = (od[ro - 2], od[ro - 1]);
    let k = if trans_a { ad[ra - 2] } else { ad[ra - 1] };
    let batch = &od[..ro - 2];
    let a_mat = ad[ra - 2] * ad[ra - 1];
    let b_mat = bd[rb - 2] * bd[rb - 1];
    // Broadcast batch axes: stride 0 where an operand has extent 1 or no axis.
    let a_strides: Vec<usize> = broadcast_strides(&ad[..ra - 2], batch).iter().map(|s| s * a_mat).collect();
    let b_strides: Vec<usize> = broadcast_strides(&bd[..rb - 2], batch).iter().map(|s| s * b_mat).collect();
    let mut body = coords("c", "idx", &od);
    let (i, j) = (format!("c{}", ro - 2), format!("c{}", ro - 1));
    let _ = writeln!(body, "    let a0 = {}u + {};", place(cx, a)?, linear("c", &a_strides));
    let _ = writeln!(body, "    let b0 = {}u + {};", place(cx, b)?, linear("c", &b_strides));
    // A is [m, k] (stored [k, m] when transposed), B is [k, n] (stored [n, k]).
    let a_at = if trans_a { format!("a0 + p * {m}u + {i}") } else { format!("a0 + {i} * {k}u + p") };
    let b_at = if trans_b { format!("b0 + {j} * {k}u + p") } else { format!("b0 + p * {nn}u + {j}") };
    dot(&mut body, k, &a_at, &b_at);
    let _ = writeln!(body, "    st_f32({}u + idx, acc);", place(cx, n)?);
    cx.shader(shader_name(cx, n), "", &body, numel(&od))
}

/// act(x @ w + bias) with x's leading axes flattened into rows, as the
/// interpreter does: the bias is added to the finished sum.
fn fused_dense(cx: &Cx, n: NodeId, x: NodeId, w: NodeId, bias: Option<NodeId>, trans_b: bool, act: Activation) -> Result<Shader, WgpuError> {
    float_only(cx, n)?;
    let (xd, wd, od) = (dims(cx, x), dims(cx, w), dims(cx, n));
    let (Some(&k), Some(&nn), 2) = (xd.last(), od.last(), wd.len()) else {
        return Err(WgpuError::Internal(format!("{n}: fused_dense of bad ranks")));
    };
    let mut body = format!("    let i = idx / {}u;\n    let j = idx % {}u;\n", nn.max(1), nn.max(1));
    let x0 = place(cx, x)?;
    let w0 = place(cx, w)?;
    let b_at = if trans_b { format!("{w0}u + j * {k}u + p") } else { format!("{w0}u + p * {nn}u + j") };
    dot(&mut body, k, &format!("{x0}u + i * {k}u + p"), &b_at);
    let sum = match bias {
        Some(b) => format!("acc + ld_f32({}u + j)", place(cx, b)?),
        None => "acc".to_string(),
    };
    let _ = writeln!(body, "    st_f32({}u + idx, {});", place(cx, n)?, activation(act, &sum));
    cx.shader(shader_name(cx, n), "", &body, numel(&od))
}

/// The operand viewed as [outer, extent, inner] around `axis`.
fn split(d: &[usize], axis: usize) -> (usize, usize, usize) {
    (d[..axis].iter().product(), d[axis], d[axis + 1..].iter().product())
}

/// The first maximum along the axis; a NaN counts as the maximum and ends
/// the search (torch.argmax, as the interpreter).
fn argmax(cx: &Cx, n: NodeId, x: NodeId, axis: usize) -> Result<Shader, WgpuError> {
    let xd = dims(cx, x);
    if axis >= xd.len() {
        return Err(WgpuError::Internal(format!("{n}: argmax axis {axis} of a rank-{} value", xd.len())));
    }
    let (outer, extent, inner) = split(&xd, axis);
    if extent == 0 {
        return Err(WgpuError::Unsupported(format!("{n}: argmax over axis {axis} of extent 0")));
    }
    // Bools compare as their 0/1 words.
    let load = |at: &str| -> Result<String, WgpuError> {
        match cx.g.ty(x).dtype {
            DType::Bool => Ok(format!("mem[{at}]")),
            d => wgsl::load(d, at),
        }
    };
    let x0 = place(cx, x)?;
    let mut body = format!(
        "    let base = {x0}u + (idx / {inner}u) * {}u + idx % {inner}u;\n",
        extent * inner
    );
    let _ = writeln!(body, "    var best = 0u;\n    var bv = {};", load("base")?);
    let _ = writeln!(body, "    for (var e = 1u; e < {extent}u; e = e + 1u) {{");
    let _ = writeln!(body, "        if (nan(bv)) {{ break; }}");
    let _ = writeln!(body, "        let v = {};", load(&format!("base + e * {inner}u"))?);
    let _ = writeln!(body, "        if (nan(v) || v > bv) {{ best = e; bv = v; }}");
    let _ = writeln!(body, "    }}");
    let _ = writeln!(body, "    st_i32({}u + idx, i32(best));", place(cx, n)?);
    // By the bits: drivers may fold `v != v` to false.
    let nan = match cx.g.ty(x).dtype {
        DType::F32 => "fn nan(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }",
        DType::Bool => "fn nan(v: u32) -> bool { return false; }",
        _ => "fn nan(v: i32) -> bool { return false; }",
    };
    cx.shader(shader_name(cx, n), nan, &body, (outer * inner) as u64)
}

/// Per row: logsumexp(logits) - logits[label], the row maximum (NaNs
/// skipped, as f64::max does) subtracted before exp. Labels are checked
/// in row order by invocation 0, so the first bad one is the one reported.
fn softmax_cross_entropy(cx: &Cx, n: NodeId, logits: NodeId, labels: NodeId) -> Result<Shader, WgpuError> {
    float_only(cx, n)?;
    let ld = dims(cx, logits);
    let [rows, c] = ld[..] else {
        return Err(WgpuError::Internal(format!("{n}: softmax_cross_entropy logits of rank {}", ld.len())));
    };
    let (x0, l0) = (place(cx, logits)?, place(cx, labels)?);
    let mut body = check_indices(n, l0, rows, c, rows);
    let _ = writeln!(body, "    let label = ld_i32({l0}u + idx);");
    let _ = writeln!(body, "    let row = {x0}u + idx * {c}u;");
    let _ = writeln!(body, "    var m = -k_inf();");
    let _ = writeln!(body, "    for (var j = 0u; j < {c}u; j = j + 1u) {{ let v = ld_f32(row + j); if (v > m) {{ m = v; }} }}");
    let _ = writeln!(body, "    var s = 0.0f;");
    let _ = writeln!(body, "    for (var j = 0u; j < {c}u; j = j + 1u) {{ s = s + exp(ld_f32(row + j) - m); }}");
    let _ = writeln!(body, "    var picked = k_nan();");
    let _ = writeln!(body, "    if (label >= 0i && u32(label) < {c}u) {{ picked = ld_f32(row + u32(label)); }}");
    let _ = writeln!(body, "    st_f32({}u + idx, m + log(s) - picked);", place(cx, n)?);
    cx.shader(shader_name(cx, n), "", &body, rows.max(1) as u64)
}

/// The head of a shader that reads `count` integer indices at word `at`,
/// each to be in `0..bound`: invocation 0 walks them in order and reports
/// the first bad one (as the interpreter, which checks before computing),
/// then invocations past `work` (the real work items; the shader runs at
/// least one so the check runs even when there is no output) stop.
pub(crate) fn check_indices(n: NodeId, at: u32, count: usize, bound: usize, work: usize) -> String {
    let mut s = String::new();
    if count > 0 {
        let _ = writeln!(s, "    if (idx == 0u) {{");
        let _ = writeln!(s, "        for (var q = 0u; q < {count}u; q = q + 1u) {{");
        let _ = writeln!(s, "            let v = ld_i32({at}u + q);");
        let _ = writeln!(s, "            if (v < 0i || u32(v) >= {bound}u) {{ {} break; }}", wgsl::fail(n, "v"));
        let _ = writeln!(s, "        }}");
        let _ = writeln!(s, "    }}");
    }
    let _ = writeln!(s, "    if (idx >= {work}u) {{ return; }}");
    s
}
