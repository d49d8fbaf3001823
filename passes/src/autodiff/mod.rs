//! Reverse-mode automatic differentiation as a graph transform.
//!
//! [`grad`] appends the gradient computation for a scalar loss to the same
//! graph and returns one gradient node per requested node. The [`Autodiff`]
//! pass resolves every `grad` request recorded in the graph the same way and
//! names the results as outputs.
//!
//! How the sweep works:
//! - Only nodes that both depend on some `wrt` node (through float values,
//!   not through `stop_gradient`) and feed the loss get gradients; nothing
//!   is built for the rest (e.g. data inputs, label paths).
//! - Nodes are visited in reverse topological order; a node's incoming
//!   contributions (one per use, fan-out) are summed with `add` in a fixed
//!   order, then its VJP rule (`rules.rs`, one exhaustive match over `Op`)
//!   produces contributions for its operands, already reduced to each
//!   operand's shape (broadcasting is undone by summing).
//! - Integer and bool values carry no gradient; `stop_gradient`, `sign`,
//!   comparisons, argmax, one_hot, random_uniform and casts to integers block it.
//! - A `wrt` node the loss does not depend on gets zeros (a broadcast scalar).
//!
//! Conventions where the derivative is not unique: `relu'(0) = 0`;
//! `abs'(0) = 0`; elementwise `max`/`min` ties split the gradient evenly
//! between the operands; `reduce_max`/`reduce_min` split it evenly among all
//! tied elements; `max_pool2d` sends it to the first maximum of each window
//! (the routing of `max_pool2d_grad`); `pow`'s exponent gets no gradient
//! where the base is <= 0.
//!
//! Gradients are ordinary kiln-ir nodes, so a gradient graph can be
//! differentiated again (Hessian-vector products). That includes the
//! gradient ops themselves: `conv2d_grad_input`, `conv2d_grad_weight`,
//! `avg_pool2d_grad` and `max_pool2d_grad` are linear in their
//! gradient operand, and their VJPs are the forward ops again.

mod emit;
mod linear;
mod pass;
mod rules;


use kiln_ir::{Graph, NodeId, Op};
use rustc_hash::{FxHashMap, FxHashSet};

pub use pass::{Autodiff, grad_output_name};

use crate::PassError;
use emit::{Emit, ir};

/// Appends to `g` the gradient of the scalar float `loss` with respect to
/// each node of `wrt` and returns the gradient nodes, in `wrt` order (each
/// with its node's type).
///
/// Errors: `loss` is not a float scalar, a `wrt` node is not a float tensor,
/// an unknown node id, or (a bug) a rule that builds an ill-typed node; each
/// names the node as `%N`.
pub fn grad(g: &mut Graph, loss: NodeId, wrt: &[NodeId]) -> Result<Vec<NodeId>, PassError> {
    let lt = g.node(loss).map_err(ir)?.ty.clone();
    if !lt.dtype.is_float() || lt.shape.rank() != 0 {
        return Err(PassError::Autodiff(format!("the loss {loss} must be a float scalar, got {lt}")));
    }
    for &w in wrt {
        let t = &g.node(w).map_err(ir)?.ty;
        if !t.dtype.is_float() {
            return Err(PassError::Autodiff(format!(
                "cannot differentiate with respect to {w}: it is {t}; only float tensors have gradients"
            )));
        }
    }

    let order = g.topo_order().map_err(ir)?;
    let active = active_nodes(g, &order, loss, wrt);

    let mut e = Emit::new(g);
    let mut pending: FxHashMap<NodeId, Vec<NodeId>> = FxHashMap::default();
    let mut total: FxHashMap<NodeId, NodeId> = FxHashMap::default();
    if active.contains(&loss) {
        let one = e.scalar(1.0, loss)?;
        pending.insert(loss, vec![one]);
    }
    for &id in order.iter().rev() {
        if !active.contains(&id) {
            continue;
        }
        let Some(parts) = pending.remove(&id) else { continue };
        let gy = e.sum_all(&parts)?;
        total.insert(id, gy);
        let xs = e.g.operands(id);
        let need: Vec<bool> = xs.iter().map(|x| active.contains(x)).collect();
        if !need.iter().any(|&b| b) {
            continue;
        }
        let op = e.g.op(id).clone();
        let contribs = rules::vjp(&mut e, id, &op, &xs, id, gy, &need)?;
        for ((&x, c), &nd) in xs.iter().zip(contribs).zip(&need) {
            let Some(c) = c else { continue };
            if !nd {
                continue;
            }
            if e.g.ty(c) != e.g.ty(x) {
                return Err(PassError::Autodiff(format!(
                    "internal: the {} rule of {id} gave operand {x} ({}) a gradient {c} of type {}",
                    op.name(),
                    e.g.ty(x),
                    e.g.ty(c)
                )));
            }
            pending.entry(x).or_default().push(c);
        }
    }

    wrt.iter()
        .map(|&w| match total.get(&w) {
            Some(&t) => Ok(t),
            None => e.zeros_like(w),
        })
        .collect()
}

/// Nodes on a float, non-blocked path from some `wrt` node to `loss`.
fn active_nodes(g: &Graph, order: &[NodeId], loss: NodeId, wrt: &[NodeId]) -> FxHashSet<NodeId> {
    let wrt: FxHashSet<NodeId> = wrt.iter().copied().collect();
    let mut depends: FxHashSet<NodeId> = FxHashSet::default();
    for &id in order {
        let carries = g.ty(id).dtype.is_float() && !matches!(g.op(id), Op::StopGradient);
        if wrt.contains(&id) || (carries && g.operands(id).iter().any(|o| depends.contains(o))) {
            depends.insert(id);
        }
    }
    let mut active = FxHashSet::default();
    let mut stack = vec![loss];
    while let Some(id) = stack.pop() {
        if depends.contains(&id) && active.insert(id) {
            stack.extend(g.operands(id));
        }
    }
    active
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod edge_tests;
