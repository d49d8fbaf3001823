//! Graph -> `.kir` text. The printed form is canonical: every attribute is
//! written (defaults included), so `parse` then `print` reproduces it exactly.

use std::fmt::Write;

use crate::op::*;
use crate::{Graph, HostTensor, NodeId, TensorData};

use super::lexer::quote;

/// The whole graph: nodes in topological order (ties by smallest id) with
/// their real ids, then `output`, `update` and `grad` lines.
pub fn print(g: &Graph) -> String {
    let mut s = String::new();
    // A cyclic graph is invalid but still worth printing for debugging.
    let order = g.topo_order().unwrap_or_else(|_| g.node_ids());
    for id in order {
        s.push_str(&print_node(g, id));
        s.push('\n');
    }
    for (name, id) in g.outputs() {
        let _ = writeln!(s, "output {} = {id}", quote(name));
    }
    for (name, id) in g.updates() {
        let _ = writeln!(s, "update {} = {id}", quote(name));
    }
    for r in g.grad_requests() {
        let wrt: Vec<String> = r.wrt.iter().map(|w| w.to_string()).collect();
        let _ = writeln!(s, "grad {} wrt {}", r.loss, wrt.join(", "));
    }
    s
}

/// One node as its `.kir` line (no newline), e.g.
/// `%4 = matmul %0, %1 trans_a=false trans_b=false : f32[2,4]`.
/// A missing id prints as a comment so dumps of broken graphs still render.
pub fn print_node(g: &Graph, id: NodeId) -> String {
    let Ok(node) = g.node(id) else {
        return format!("# {id} does not exist");
    };
    let mut s = format!("{id} = {}", node.op.name());
    match &node.op {
        Op::Input { name, .. } => {
            s.push(' ');
            s.push_str(&quote(name));
        }
        Op::Constant(t) => {
            s.push(' ');
            s.push_str(&const_literal(t));
        }
        _ => {
            let ops: Vec<String> = g.operands(id).iter().map(|o| o.to_string()).collect();
            if !ops.is_empty() {
                s.push(' ');
                s.push_str(&ops.join(", "));
            }
            for (k, v) in attrs(&node.op) {
                let _ = write!(s, " {k}={v}");
            }
        }
    }
    let _ = write!(s, " : {}", node.ty);
    s
}

/// Shortest text that parses back to exactly these f32 bits (NaN payloads
/// aside): Rust's `Debug` is the shortest round-tripping repr.
pub(crate) fn f32_text(v: f32) -> String {
    // The f32's own Debug for finite values: widened to f64 it would print
    // the f32's binary expansion, not its shortest repr.
    if v.is_finite() { format!("{v:?}") } else { f64_text(v as f64) }
}

pub(crate) fn f64_text(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{v:?}")
    }
}

fn element_texts(t: &HostTensor) -> Vec<String> {
    match t.data() {
        TensorData::F32(v) => v.iter().map(|&x| f32_text(x)).collect(),
        TensorData::F64(v) => v.iter().map(|&x| f64_text(x)).collect(),
        TensorData::I64(v) => v.iter().map(|x| x.to_string()).collect(),
        TensorData::I32(v) => v.iter().map(|x| x.to_string()).collect(),
        TensorData::Bool(v) => v.iter().map(|&x| if x != 0 { "true" } else { "false" }.to_string()).collect(),
    }
}

/// A scalar (and a tensor whose elements are all equal, a "splat") prints as
/// one bare value; anything else as a flat row-major list `[a, b, ...]`.
fn const_literal(t: &HostTensor) -> String {
    let elems = element_texts(t);
    // Comparing the printed forms (not values) keeps -0.0 apart from 0.0 and
    // treats every NaN alike, exactly as the parser will read them back.
    let splat = elems.len() > 1 && elems.windows(2).all(|w| w[0] == w[1]);
    if t.shape().rank() == 0 || splat {
        return elems.into_iter().next().unwrap_or_default();
    }
    format!("[{}]", elems.join(", "))
}

/// `%1: f32[2], %2: f32[3]`, as in the builder's type errors.
pub(crate) fn print_type_list(ops: &[(u32, &crate::TensorType)]) -> String {
    ops.iter().map(|(id, t)| format!("%{id}: {t}")).collect::<Vec<_>>().join(", ")
}

fn list(v: &[usize]) -> String {
    let parts: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("[{}]", parts.join(","))
}

fn conv2d_attrs(a: &Conv2dAttrs, out: &mut Vec<(&'static str, String)>) {
    out.push(("stride", list(&a.stride)));
    out.push(("pad", list(&a.padding)));
    out.push(("dilation", list(&a.dilation)));
    out.push(("groups", a.groups.to_string()));
}

fn pool_attrs(p: &Pool2dAttrs, out: &mut Vec<(&'static str, String)>) {
    out.push(("kernel", list(&p.kernel)));
    out.push(("stride", list(&p.stride)));
    out.push(("pad", list(&p.padding)));
}

/// Every attribute of an op, in the canonical order the docs list them.
pub(crate) fn attrs(op: &Op) -> Vec<(&'static str, String)> {
    let mut a = Vec::new();
    match op {
        Op::Input { .. }
        | Op::Constant(_)
        | Op::Unary(_)
        | Op::Binary(_)
        | Op::Compare(_)
        | Op::Select
        | Op::StopGradient
        | Op::SoftmaxCrossEntropy => {}
        Op::Cast(d) => a.push(("to", d.name().to_string())),
        Op::Reduce { axes, keepdims, .. } => {
            a.push(("axes", list(axes)));
            a.push(("keepdims", keepdims.to_string()));
        }
        Op::ArgMax { axis, keepdims } => {
            a.push(("axis", axis.to_string()));
            a.push(("keepdims", keepdims.to_string()));
        }
        Op::Reshape(s) | Op::BroadcastTo(s) => a.push(("shape", list(&s.0))),
        Op::Permute(p) => a.push(("perm", list(p))),
        Op::Slice { start, end, step } => {
            a.push(("start", list(start)));
            a.push(("end", list(end)));
            a.push(("step", list(step)));
        }
        Op::Concat { axis } => a.push(("axis", axis.to_string())),
        Op::Pad { lo, hi, value } => {
            a.push(("lo", list(lo)));
            a.push(("hi", list(hi)));
            a.push(("value", f64_text(*value)));
        }
        Op::MatMul { trans_a, trans_b } => {
            a.push(("trans_a", trans_a.to_string()));
            a.push(("trans_b", trans_b.to_string()));
        }
        Op::Conv2d(c) => conv2d_attrs(c, &mut a),
        Op::Conv2dGradInput { attrs, input_hw } => {
            conv2d_attrs(attrs, &mut a);
            a.push(("input_hw", list(input_hw)));
        }
        Op::Conv2dGradWeight { attrs, kernel_hw } => {
            conv2d_attrs(attrs, &mut a);
            a.push(("kernel_hw", list(kernel_hw)));
        }
        Op::Conv1d(c) => {
            a.push(("stride", c.stride.to_string()));
            a.push(("pad", c.padding.to_string()));
            a.push(("dilation", c.dilation.to_string()));
            a.push(("groups", c.groups.to_string()));
        }
        Op::MaxPool2d(p) | Op::MaxPool2dGrad(p) => pool_attrs(p, &mut a),
        Op::AvgPool2d { pool, count_include_pad } => {
            pool_attrs(pool, &mut a);
            a.push(("count_include_pad", count_include_pad.to_string()));
        }
        Op::AvgPool2dGrad { pool, count_include_pad, input_hw } => {
            pool_attrs(pool, &mut a);
            a.push(("count_include_pad", count_include_pad.to_string()));
            a.push(("input_hw", list(input_hw)));
        }
        Op::Gather { axis } => a.push(("axis", axis.to_string())),
        Op::ScatterAdd { axis, size } => {
            a.push(("axis", axis.to_string()));
            a.push(("size", size.to_string()));
        }
        Op::OneHot { classes } => a.push(("classes", classes.to_string())),
        Op::RandomUniform { seed, low, high, shape } => {
            a.push(("seed", seed.to_string()));
            a.push(("low", f64_text(*low)));
            a.push(("high", f64_text(*high)));
            a.push(("shape", list(&shape.0)));
        }
        Op::FusedDense { trans_b, bias, act } => {
            a.push(("trans_b", trans_b.to_string()));
            a.push(("bias", bias.to_string()));
            a.push(("act", act.name().to_string()));
        }
        Op::FusedConv2d { attrs, bias, act } => {
            conv2d_attrs(attrs, &mut a);
            a.push(("bias", bias.to_string()));
            a.push(("act", act.name().to_string()));
        }
    }
    a
}
