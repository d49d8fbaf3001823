//! Data movement: slice, permute, concat, pad, one invocation per output
//! element. Every dtype is one 32-bit word on the device, so moving an
//! element is copying its word (`mem[dst] = mem[src]`) whatever it holds.
//!
//! Also the index helpers the dense and indexing families share.

use std::fmt::Write as _;

use kiln_ir::{row_major_strides, NodeId, Op};

use crate::lower::wgsl::{self, u32_word};
use crate::lower::{Cx, Shader};
use crate::WgpuError;

pub fn lower(cx: &Cx, n: NodeId) -> Result<Vec<Shader>, WgpuError> {
    let op = cx.g.op(n);
    let xs = cx.g.operands(n);
    let out = dims(cx, n);
    // Rejects f64 before anything is copied word by word.
    wgsl::ty(cx.g.ty(n).dtype)?;
    let dst = place(cx, n)?;
    let name = shader_name(cx, n);
    let x0 = *xs.first().ok_or_else(|| WgpuError::Internal(format!("{n}: {} without operands", op.name())))?;
    match op {
        Op::Slice { start, step, .. } => {
            let s = row_major_strides(&dims(cx, x0));
            let offset: usize = start.iter().zip(&s).map(|(a, b)| a * b).sum();
            let strides: Vec<usize> = s.iter().zip(step).map(|(a, b)| a * b).collect();
            let src = add(place(cx, x0)? as u64 + offset as u64, &linear("c", &strides))?;
            let mut body = coords("c", "idx", &out);
            let _ = writeln!(body, "    mem[{dst}u + idx] = mem[{src}];");
            Ok(vec![cx.shader(name, "", &body, numel(&out))?])
        }
        Op::Permute(perm) => {
            let s = row_major_strides(&dims(cx, x0));
            if perm.len() != out.len() || perm.iter().any(|&p| p >= s.len()) {
                return Err(WgpuError::Internal(format!("{n}: permutation {perm:?} of a rank-{} value", s.len())));
            }
            let strides: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
            let src = add(place(cx, x0)? as u64, &linear("c", &strides))?;
            let mut body = coords("c", "idx", &out);
            let _ = writeln!(body, "    mem[{dst}u + idx] = mem[{src}];");
            Ok(vec![cx.shader(name, "", &body, numel(&out))?])
        }
        Op::Concat { axis } => concat(cx, n, &xs, *axis, &out, dst),
        Op::Pad { lo, value, .. } => {
            let xd = dims(cx, x0);
            let src = add(place(cx, x0)? as u64, &linear("j", &row_major_strides(&xd)))?;
            let mut body = coords("c", "idx", &out);
            // `c - lo` wraps to a huge u32 below the interior, so one
            // unsigned compare per axis tests both of its edges.
            let mut inside = vec!["true".to_string()];
            for (d, (&l, &e)) in lo.iter().zip(&xd).enumerate() {
                let _ = writeln!(body, "    let j{d} = c{d} - {l}u;");
                inside.push(format!("j{d} < {e}u"));
            }
            let fill = wgsl::store(cx.g.ty(n).dtype, &format!("{dst}u + idx"), &wgsl::lit(cx.g.ty(n).dtype, *value)?)?;
            let _ = writeln!(body, "    if ({}) {{ mem[{dst}u + idx] = mem[{src}]; }} else {{ {fill} }}", inside.join(" && "));
            Ok(vec![cx.shader(name, "", &body, numel(&out))?])
        }
        other => Err(WgpuError::Internal(format!("{n}: {} is not a movement op", other.name()))),
    }
}

/// One shader per operand copying it into its run of every outer row.
/// An operand the memory plan already computed in place (its word is its
/// run of the output) has nothing to copy.
fn concat(cx: &Cx, n: NodeId, xs: &[NodeId], axis: usize, out: &[usize], dst: u32) -> Result<Vec<Shader>, WgpuError> {
    if axis >= out.len() || xs.iter().any(|&x| dims(cx, x).len() != out.len()) {
        return Err(WgpuError::Internal(format!("{n}: concat along axis {axis} of mismatched ranks")));
    }
    let outer: usize = out[..axis].iter().product();
    let inner: usize = out[axis + 1..].iter().product();
    let row = out[axis] * inner;
    let mut shaders = Vec::new();
    let mut at = 0usize;
    for (k, &x) in xs.iter().enumerate() {
        let run = dims(cx, x)[axis] * inner;
        let src = place(cx, x)?;
        let in_place = outer <= 1 && src as u64 == dst as u64 + at as u64;
        if run > 0 && outer > 0 && !in_place {
            let body = format!(
                "    let o = idx / {run}u;\n    let r = idx % {run}u;\n    mem[{dst}u + o * {row}u + {at}u + r] = mem[{src}u + idx];\n"
            );
            shaders.push(cx.shader(format!("{}-{k}", shader_name(cx, n)), "", &body, (outer * run) as u64)?);
        }
        at += run;
    }
    Ok(shaders)
}

/// `n{index}-{op}`: the name of a node's (first) shader.
pub(crate) fn shader_name(cx: &Cx, n: NodeId) -> String {
    format!("n{}-{}", n.index(), cx.g.op(n).name())
}

pub(crate) fn dims(cx: &Cx, n: NodeId) -> Vec<usize> {
    cx.g.ty(n).shape.dims().to_vec()
}

pub(crate) fn numel(dims: &[usize]) -> u64 {
    dims.iter().map(|&d| d as u64).product()
}

/// The word of `n`'s element 0, checked so that every element's word is
/// a u32 (shaders index `mem` with u32 arithmetic).
pub(crate) fn place(cx: &Cx, n: NodeId) -> Result<u32, WgpuError> {
    let w = cx.word(n)?;
    u32_word(w + cx.g.ty(n).numel() as u64)?;
    u32_word(w)
}

/// `let {p}{d} = ...;` for each axis of `dims`, row-major, from the
/// linear index `var_`.
pub(crate) fn coords(p: &str, var_: &str, dims: &[usize]) -> String {
    let mut out = String::new();
    let s = row_major_strides(dims);
    for (d, (&e, &st)) in dims.iter().zip(&s).enumerate() {
        let e = if d == 0 { String::new() } else { format!(" % {e}u") };
        let _ = match (st, e.is_empty()) {
            (1, true) => writeln!(out, "    let {p}{d} = {var_};"),
            (1, false) => writeln!(out, "    let {p}{d} = {var_}{e};"),
            _ => writeln!(out, "    let {p}{d} = ({var_} / {st}u){e};"),
        };
    }
    out
}

/// `{p}0 * s0 + {p}1 * s1 + ...` over the axes with a non-zero stride,
/// or `0u`.
pub(crate) fn linear(p: &str, strides: &[usize]) -> String {
    let terms: Vec<String> = strides
        .iter()
        .enumerate()
        .filter(|(_, s)| **s != 0)
        .map(|(d, &s)| if s == 1 { format!("{p}{d}") } else { format!("{p}{d} * {s}u") })
        .collect();
    if terms.is_empty() { "0u".into() } else { terms.join(" + ") }
}

/// `base + expr`, with `base` as a u32 literal.
pub(crate) fn add(base: u64, expr: &str) -> Result<String, WgpuError> {
    Ok(format!("{}u + {expr}", u32_word(base)?))
}
