//! Sums written as trees of `add`, shared by the passes that regroup the
//! terms of a sum (`slab_concat`, `row_stack`).
//!
//! Autodiff adds up every contribution to a value with a left-leaning chain
//! of `add`s (one per use of the value), so a sum of 32 per-time-step terms
//! is a tree of 31 adds. A tree's inner nodes are the adds that only exist to
//! build the sum: same type as the root (no broadcasting), used exactly once
//! (by their parent), not a program result and not a pending `grad` target.
//! Replacing the root then frees every inner node.

use kiln_ir::{BinaryOp, Graph, IrError, NodeId, Op};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::grad_wrt_nodes;

/// Live nodes, how often each is used, and the nodes no rewrite may bypass.
pub(crate) struct Uses {
    pub live: FxHashSet<NodeId>,
    /// A node's only live user, when it has exactly one use (operand slots
    /// of live nodes, outputs and updates all count).
    only_user: FxHashMap<NodeId, NodeId>,
    /// Nodes a pending grad request differentiates with respect to: the
    /// gradient counts paths through the node's own uses, so a rewrite that
    /// routes around one would change the requested gradient.
    pub pinned: FxHashSet<NodeId>,
}

impl Uses {
    pub fn of(g: &Graph) -> Uses {
        let live = g.live_nodes();
        let mut count: FxHashMap<NodeId, usize> = FxHashMap::default();
        let mut only_user = FxHashMap::default();
        for &id in &live {
            for o in g.operands(id) {
                *count.entry(o).or_default() += 1;
                only_user.insert(o, id);
            }
        }
        for (_, id) in g.outputs().iter().chain(g.updates()) {
            *count.entry(*id).or_default() += 1;
            // A result is used by the caller, never only by a node.
            only_user.remove(id);
        }
        only_user.retain(|id, _| count.get(id) == Some(&1));
        Uses { live, only_user, pinned: grad_wrt_nodes(g) }
    }

    /// Whether `id` is an inner node of a sum tree whose root has `root`'s type.
    fn is_inner(&self, g: &Graph, id: NodeId, parent: NodeId) -> bool {
        matches!(g.op(id), Op::Binary(BinaryOp::Add))
            && g.ty(id) == g.ty(parent)
            && self.only_user.get(&id) == Some(&parent)
            && !self.pinned.contains(&id)
    }

    /// Whether `id` is an add that is not an inner node of a larger sum.
    fn is_root(&self, g: &Graph, id: NodeId) -> bool {
        if !matches!(g.op(id), Op::Binary(BinaryOp::Add)) || self.pinned.contains(&id) {
            return false;
        }
        match self.only_user.get(&id) {
            Some(&p) => !self.is_inner(g, id, p),
            None => true,
        }
    }
}

/// The roots of every live sum tree, in topological order (operands first).
pub(crate) fn roots(g: &Graph, uses: &Uses) -> Result<Vec<NodeId>, IrError> {
    Ok(g.topo_order()?.into_iter().filter(|&id| uses.live.contains(&id) && uses.is_root(g, id)).collect())
}

/// The terms of the sum rooted at `root`, left to right (the order the
/// original adds combine them in). Only the root's own type flows through
/// inner nodes, so every term has the root's type unless it is an operand
/// that the root or an inner add broadcasts.
pub(crate) fn terms(g: &Graph, root: NodeId, uses: &Uses) -> Vec<NodeId> {
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        let inner = id == root || uses.is_inner(g, id, parent_of(uses, id));
        if inner && matches!(g.op(id), Op::Binary(BinaryOp::Add)) {
            let ops = g.operands(id);
            // Right operand pushed first so the left one is visited first.
            stack.push(ops[1]);
            stack.push(ops[0]);
        } else {
            out.push(id);
        }
    }
    out
}

fn parent_of(uses: &Uses, id: NodeId) -> NodeId {
    uses.only_user.get(&id).copied().unwrap_or(id)
}

/// `terms[0] + terms[1] + ...` as a left-leaning chain of adds (the order
/// autodiff uses). One term is returned as is.
pub(crate) fn build_sum(g: &mut Graph, terms: &[NodeId]) -> Result<NodeId, IrError> {
    let mut acc = terms[0];
    for &t in &terms[1..] {
        acc = g.apply(Op::Binary(BinaryOp::Add), &[acc, t])?;
    }
    Ok(acc)
}

/// `op(operands)`, reusing an existing live node with the same op and
/// operands (so two rewrites that need the same stacked operand share it).
pub(crate) fn apply_shared(g: &mut Graph, uses: &mut Uses, op: Op, operands: &[NodeId]) -> Result<NodeId, IrError> {
    if let Some(&first) = operands.first() {
        for u in g.users(first) {
            if uses.live.contains(&u) && g.op(u) == &op && g.operands(u) == operands {
                return Ok(u);
            }
        }
    }
    let id = g.apply(op, operands)?;
    uses.live.insert(id);
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::f32_shape;

    #[test]
    fn terms_stop_at_shared_broadcasting_and_result_nodes() {
        let mut g = Graph::new();
        let a = g.input("a", f32_shape([3])).unwrap();
        let b = g.input("b", f32_shape([3])).unwrap();
        let s = g.input("s", f32_shape([])).unwrap();
        let ab = g.add(a, b).unwrap(); // shared: a term, and a root of its own
        let abs = g.add(ab, s).unwrap(); // inner
        let x = g.add(abs, ab).unwrap(); // inner
        let y = g.add(x, b).unwrap(); // root
        g.set_output("y", y).unwrap();
        g.set_output("ab", ab).unwrap();
        let u = Uses::of(&g);
        assert_eq!(terms(&g, y, &u), vec![ab, s, ab, b]);
        assert_eq!(roots(&g, &u).unwrap(), vec![ab, y]);
    }
}
