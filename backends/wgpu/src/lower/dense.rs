//! Matrix products, argmax and softmax cross-entropy.
//!
//! A product runs one invocation per block of up to 4x4 output elements;
//! each element sums its dot product from k = 0 upwards in f32 (the
//! interpreter's order), so every run gives the same bits. Argmax and
//! cross-entropy run one invocation per row.

use std::fmt::Write as _;

use kiln_ir::{broadcast_strides, row_major_strides, Activation, DType, NodeId, Op};

use crate::lower::indexing::check_indices;
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

/// A product `[batch.., m, k] @ [batch.., k, n]` as WGSL: the operands'
/// addressing and the store of one finished element.
struct Product<'a> {
    batch: &'a [usize],
    m: usize,
    k: usize,
    n: usize,
    /// Word of A's element (row `i`, `p`) given `base_a`, the batch's A matrix.
    a_at: &'a dyn Fn(&str) -> String,
    /// Word of B's element (`p`, column `j`) given `base_b`.
    b_at: &'a dyn Fn(&str) -> String,
    /// `let base_a = ..; let base_b = ..; let base_o = ..;` from batch coords `c0..`.
    bases: String,
    /// The statement storing `v` at row `i`, column `j` (word `base_o + i * n + j`).
    store: &'a dyn Fn(&str, &str, &str) -> String,
}

/// Rows and columns of output one invocation computes: each A load feeds
/// `BC` products and each B load `BR`, a quarter of the naive loads. Every
/// element still sums its own products from p = 0 upwards, so the bits do
/// not depend on the blocking.
const BR: usize = 4;
const BC: usize = 4;

fn product(cx: &Cx, n: NodeId, pr: &Product) -> Result<Shader, WgpuError> {
    let (br, bc) = (BR.min(pr.m).max(1), BC.min(pr.n).max(1));
    let mut grid = pr.batch.to_vec();
    grid.push(pr.m.div_ceil(br));
    grid.push(pr.n.div_ceil(bc));
    let r = grid.len();
    let mut body = coords("c", "idx", &grid);
    body.push_str(&pr.bases);
    // Loads clamp to the last row/column; stores skip past the edge.
    for q in 0..br {
        let _ = writeln!(body, "    let r{q} = c{} * {br}u + {q}u;\n    let i{q} = min(r{q}, {}u);", r - 2, pr.m.saturating_sub(1));
    }
    for q in 0..bc {
        let _ = writeln!(body, "    let k{q} = c{} * {bc}u + {q}u;\n    let j{q} = min(k{q}, {}u);", r - 1, pr.n.saturating_sub(1));
    }
    for (y, x) in (0..br).flat_map(|y| (0..bc).map(move |x| (y, x))) {
        let _ = writeln!(body, "    var s{y}_{x} = 0.0f;");
    }
    let _ = writeln!(body, "    for (var p = 0u; p < {}u; p = p + 1u) {{", pr.k);
    for q in 0..br {
        let _ = writeln!(body, "        let a{q} = ld_f32({});", (pr.a_at)(&format!("i{q}")));
    }
    for q in 0..bc {
        let _ = writeln!(body, "        let b{q} = ld_f32({});", (pr.b_at)(&format!("j{q}")));
    }
    for (y, x) in (0..br).flat_map(|y| (0..bc).map(move |x| (y, x))) {
        let _ = writeln!(body, "        s{y}_{x} = s{y}_{x} + a{y} * b{x};");
    }
    let _ = writeln!(body, "    }}");
    for (y, x) in (0..br).flat_map(|y| (0..bc).map(move |x| (y, x))) {
        let st = (pr.store)(&format!("r{y}"), &format!("k{x}"), &format!("s{y}_{x}"));
        let _ = writeln!(body, "    if (r{y} < {}u && k{x} < {}u) {{ {st} }}", pr.m, pr.n);
    }
    cx.shader(shader_name(cx, n), "", &body, numel(&grid))
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
    // Broadcast batch axes: stride 0 where an operand has extent 1 or no axis.
    let mat = |d: &[usize], r: usize| -> Vec<usize> {
        broadcast_strides(&d[..r - 2], batch).iter().map(|s| s * d[r - 2] * d[r - 1]).collect()
    };
    let o_strides: Vec<usize> = row_major_strides(batch).iter().map(|s| s * m * nn).collect();
    let bases = format!(
        "    let base_a = {}u + {};\n    let base_b = {}u + {};\n    let base_o = {}u + {};\n",
        place(cx, a)?,
        linear("c", &mat(&ad, ra)),
        place(cx, b)?,
        linear("c", &mat(&bd, rb)),
        place(cx, n)?,
        linear("c", &o_strides)
    );
    // A is [m, k] (stored [k, m] when transposed), B is [k, n] (stored [n, k]).
    let a_at = |i: &str| if trans_a { format!("base_a + p * {m}u + {i}") } else { format!("base_a + {i} * {k}u + p") };
    let b_at = |j: &str| if trans_b { format!("base_b + {j} * {k}u + p") } else { format!("base_b + p * {nn}u + {j}") };
    let store = |i: &str, j: &str, v: &str| format!("st_f32(base_o + {i} * {nn}u + {j}, {v});");
    product(cx, n, &Product { batch, m, k, n: nn, a_at: &a_at, b_at: &b_at, bases, store: &store })
}

/// act(x @ w + bias) with x's leading axes flattened into rows, as the
/// interpreter does: the bias is added to the finished sum.
fn fused_dense(cx: &Cx, n: NodeId, x: NodeId, w: NodeId, bias: Option<NodeId>, trans_b: bool, act: Activation) -> Result<Shader, WgpuError> {
    float_only(cx, n)?;
    let (xd, wd, od) = (dims(cx, x), dims(cx, w), dims(cx, n));
    let (Some(&k), Some(&nn), 2) = (xd.last(), od.last(), wd.len()) else {
        return Err(WgpuError::Internal(format!("{n}: fused_dense of bad ranks")));
    };
    let rows = cx.g.ty(n).numel() / nn.max(1);
    let bases = format!("    let base_a = {}u;\n    let base_b = {}u;\n    let base_o = {}u;\n", place(cx, x)?, place(cx, w)?, place(cx, n)?);
    let a_at = |i: &str| format!("base_a + {i} * {k}u + p");
    let b_at = |j: &str| if trans_b { format!("base_b + {j} * {k}u + p") } else { format!("base_b + p * {nn}u + {j}") };
    let bias = match bias {
        Some(b) => Some(place(cx, b)?),
        None => None,
    };
    let store = |i: &str, j: &str, v: &str| {
        let sum = match bias {
            Some(b) => format!("{v} + ld_f32({b}u + {j})"),
            None => v.to_string(),
        };
        format!("st_f32(base_o + {i} * {nn}u + {j}, {});", activation(act, &sum))
    };
    product(cx, n, &Product { batch: &[], m: rows, k, n: nn, a_at: &a_at, b_at: &b_at, bases, store: &store })
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
