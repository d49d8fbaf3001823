//! The `row_stack` pass: a sum of row contractions becomes one contraction
//! over row-stacked operands.
//!
//! An unrolled recurrent layer's weight gradient is one small product per
//! time step, summed: `sum_t h_t^T g_t` with `h_t` [B,H] and `g_t` [B,4H]
//! (`matmul trans_a=true`), and its bias gradient `sum_t reduce_sum(g_t,
//! axes=[0])`. Both contract over rows, so stacking the operands' rows
//! gives the same value in one op:
//! `sum_t A_t^T B_t = concat_rows(A_t)^T concat_rows(B_t)` and
//! `sum_t colsum(X_t) = colsum(concat_rows(X_t))`. One [T*B, ..] product
//! keeps the GEMM kernel busy where 32 [B, ..] ones did not, and the T-1
//! full-size adds go away.
//!
//! Matched: a sum tree (see `sum_tree`) with at least two terms of one kind
//! and operand shapes: `matmul trans_a=true trans_b=false` of two rank-2
//! float operands, or `reduce_sum axes=[0] keepdims=false` of a rank-2
//! float operand. Stacks are reused: when a live `concat axis=0` of exactly
//! the terms' operands exists (directly, or each reshaped to `[1, m, n]`,
//! which is what `slab_concat` makes of a sliced sequence's gradient), the
//! terms are taken in its order and it becomes the stacked operand, so the
//! LSTM's gate gradients are stacked once for the input projection's
//! gradient and read again here. A group is rewritten only when it pays:
//! the elements its new concats copy are at most the elements the T-1
//! removed adds read and write (3 (T-1) times the result's size).
//!
//! Values: a reassociation of the sum (the one product accumulates in the
//! GEMM's order instead of term by term), so results can differ by
//! rounding; not one of the exact passes.

use std::collections::BTreeMap;

use kiln_ir::{Graph, IrError, NodeId, Op, ReduceOp, Shape};

use crate::sum_tree::{self, apply_shared, Uses};
use crate::{Changed, Pass, PassCx, PassError};

#[derive(Debug, Clone, Copy, Default)]
pub struct RowStack;

impl Pass for RowStack {
    fn name(&self) -> &str {
        "row_stack"
    }

    fn run(&self, g: &mut Graph, _cx: &mut PassCx) -> Result<Changed, PassError> {
        let n = rewrite(g).map_err(|source| PassError::Ir { pass: "row_stack".into(), source })?;
        Ok(Changed::from_bool(n > 0))
    }
}

/// The kind of row contraction a term is, with its operand shapes (the
/// grouping key).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// `matmul(a[m,k], b[m,n]) trans_a=true`.
    MatMulTa(Vec<usize>, Vec<usize>),
    /// `reduce_sum(x[m,n]) axes=[0]`.
    ColSum(Vec<usize>),
}

/// Rewrites every matching sum; returns how many groups were rewritten.
pub fn rewrite(g: &mut Graph) -> Result<usize, IrError> {
    let mut uses = Uses::of(g);
    let mut rewritten = 0;
    for root in sum_tree::roots(g, &uses)? {
        let terms = sum_tree::terms(g, root, &uses);
        let mut groups: BTreeMap<Kind, Vec<usize>> = BTreeMap::new();
        for (i, &t) in terms.iter().enumerate() {
            if let Some(k) = kind_of(g, t, &uses) {
                groups.entry(k).or_default().push(i);
            }
        }
        let mut replaced: Vec<Option<NodeId>> = vec![None; terms.len()];
        let mut dropped = vec![false; terms.len()];
        let mut any = false;
        for (kind, idx) in groups {
            if idx.len() < 2 {
                continue;
            }
            let members: Vec<NodeId> = idx.iter().map(|&i| terms[i]).collect();
            let Some(new) = stack_group(g, &mut uses, &kind, &members)? else { continue };
            replaced[idx[0]] = Some(new);
            for &i in &idx[1..] {
                dropped[i] = true;
            }
            any = true;
            rewritten += 1;
        }
        if !any {
            continue;
        }
        let new_terms: Vec<NodeId> = (0..terms.len())
            .filter(|&i| !dropped[i])
            .map(|i| replaced[i].unwrap_or(terms[i]))
            .collect();
        let new = sum_tree::build_sum(g, &new_terms)?;
        g.replace_all_uses(root, new);
    }
    Ok(rewritten)
}

fn kind_of(g: &Graph, t: NodeId, uses: &Uses) -> Option<Kind> {
    if uses.pinned.contains(&t) || !g.ty(t).dtype.is_float() {
        return None;
    }
    let ops = g.operands(t);
    let shape = |i: usize| g.ty(ops[i]).shape.0.clone();
    match g.op(t) {
        Op::MatMul { trans_a: true, trans_b: false } if shape(0).len() == 2 && shape(1).len() == 2 => {
            Some(Kind::MatMulTa(shape(0), shape(1)))
        }
        Op::Reduce { op: ReduceOp::Sum, axes, keepdims: false } if axes == &[0] && shape(0).len() == 2 => {
            Some(Kind::ColSum(shape(0)))
        }
        _ => None,
    }
}

/// The one contraction that replaces `members`, or `None` when it does not pay.
fn stack_group(g: &mut Graph, uses: &mut Uses, kind: &Kind, members: &[NodeId]) -> Result<Option<NodeId>, IrError> {
    let t = members.len();
    let out_elems = g.ty(members[0]).numel();
    let budget = 3 * (t - 1) * out_elems;
    let side = |g: &Graph, k: usize| -> Vec<NodeId> { members.iter().map(|&m| g.operands(m)[k]).collect() };
    match kind {
        Kind::MatMulTa(sa, sb) => {
            let (a, b) = (side(g, 0), side(g, 1));
            let found_a = find_stack(g, uses, &a, None);
            let found_b = if found_a.is_none() { find_stack(g, uses, &b, None) } else { None };
            let order: Vec<usize> = match (&found_a, &found_b) {
                (Some(s), _) | (None, Some(s)) => s.order.clone(),
                (None, None) => (0..t).collect(),
            };
            // With the a's stack found, the b's may be stacked in its order too.
            let existing_b = if found_a.is_some() { find_stack(g, uses, &b, Some(&order)) } else { found_b };
            let existing_a = found_a;
            let copies = existing_a.as_ref().map_or(t * numel(sa), |_| 0) + existing_b.as_ref().map_or(t * numel(sb), |_| 0);
            if copies > budget {
                return Ok(None);
            }
            let a2 = stacked(g, uses, existing_a, &a, &order, sa)?;
            let b2 = stacked(g, uses, existing_b, &b, &order, sb)?;
            Ok(Some(apply_shared(g, uses, Op::MatMul { trans_a: true, trans_b: false }, &[a2, b2])?))
        }
        Kind::ColSum(sx) => {
            let x = side(g, 0);
            let found = find_stack(g, uses, &x, None);
            if found.is_none() && t * numel(sx) > budget {
                return Ok(None);
            }
            // A [T, m, n] stack sums over its first two axes directly, which
            // is the same node as the sequence's own bias gradient when the
            // stack came from `slab_concat`.
            if let Some(Stack { node, rank3: true, .. }) = found {
                let op = Op::Reduce { op: ReduceOp::Sum, axes: vec![0, 1], keepdims: false };
                return Ok(Some(apply_shared(g, uses, op, &[node])?));
            }
            let order: Vec<usize> = (0..t).collect();
            let x2 = stacked(g, uses, found, &x, &order, sx)?;
            let op = Op::Reduce { op: ReduceOp::Sum, axes: vec![0], keepdims: false };
            Ok(Some(apply_shared(g, uses, op, &[x2])?))
        }
    }
}

fn numel(s: &[usize]) -> usize {
    s.iter().product()
}

/// An existing `concat axis=0` of a list of [m, n] tensors: `order[j]` is
/// the list index of its j-th operand; `rank3` when the operands are
/// `reshape(x, [1, m, n])` (result [T, m, n]) rather than the tensors
/// themselves (result [T*m, n]).
struct Stack {
    node: NodeId,
    order: Vec<usize>,
    rank3: bool,
}

/// A live concat stacking exactly `xs` (each once), in the order `want`
/// when given.
fn find_stack(g: &Graph, uses: &Uses, xs: &[NodeId], want: Option<&[usize]>) -> Option<Stack> {
    let first = *xs.first()?;
    let dims = g.ty(first).shape.0.clone();
    let one: Vec<usize> = std::iter::once(1).chain(dims.iter().copied()).collect();
    let mut candidates: Vec<(NodeId, bool)> = Vec::new();
    for u in g.users(first) {
        if !uses.live.contains(&u) {
            continue;
        }
        match g.op(u) {
            Op::Concat { axis: 0 } => candidates.push((u, false)),
            Op::Reshape(s) if s.0 == one => {
                candidates.extend(
                    g.users(u)
                        .into_iter()
                        .filter(|&c| uses.live.contains(&c) && g.op(c) == &Op::Concat { axis: 0 })
                        .map(|c| (c, true)),
                );
            }
            _ => {}
        }
    }
    candidates.into_iter().find_map(|(node, rank3)| {
        let order = match_operands(g, node, xs, rank3, &one)?;
        if want.is_some_and(|w| w != order.as_slice()) {
            return None;
        }
        Some(Stack { node, order, rank3 })
    })
}

/// For each operand of `concat`, the index in `xs` it stacks (a bijection).
fn match_operands(g: &Graph, concat: NodeId, xs: &[NodeId], rank3: bool, one: &[usize]) -> Option<Vec<usize>> {
    let ops = g.operands(concat);
    if ops.len() != xs.len() {
        return None;
    }
    let mut used = vec![false; xs.len()];
    let mut order = Vec::with_capacity(ops.len());
    for o in ops {
        let src = if rank3 {
            match g.op(o) {
                Op::Reshape(s) if s.0 == one => g.operands(o)[0],
                _ => return None,
            }
        } else {
            o
        };
        let i = (0..xs.len()).find(|&i| !used[i] && xs[i] == src)?;
        used[i] = true;
        order.push(i);
    }
    Some(order)
}

/// `concat_rows(xs[order[0]], xs[order[1]], ...)` as a [T*m, n] tensor:
/// the existing stack (reshaped when it is [T, m, n]) or a new concat.
fn stacked(g: &mut Graph, uses: &mut Uses, existing: Option<Stack>, xs: &[NodeId], order: &[usize], s: &[usize]) -> Result<NodeId, IrError> {
    let rows = Shape(vec![xs.len() * s[0], s[1]]);
    match existing {
        Some(Stack { node, rank3: true, .. }) => apply_shared(g, uses, Op::Reshape(rows), &[node]),
        Some(Stack { node, .. }) => Ok(node),
        None => {
            let parts: Vec<NodeId> = order.iter().map(|&i| xs[i]).collect();
            apply_shared(g, uses, Op::Concat { axis: 0 }, &parts)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::f32_shape;

    #[test]
    fn matmuls_reuse_an_existing_stack_in_its_order() {
        let mut g = Graph::new();
        let a: Vec<NodeId> = (0..3).map(|i| g.input(&format!("a{i}"), f32_shape([2, 4])).unwrap()).collect();
        let b: Vec<NodeId> = (0..3).map(|i| g.input(&format!("b{i}"), f32_shape([2, 5])).unwrap()).collect();
        // The stack of the a's, in reverse order, used elsewhere.
        let r: Vec<NodeId> = a.iter().rev().map(|&x| g.reshape(x, [1, 2, 4]).unwrap()).collect();
        let cat = g.concat(&r, 0).unwrap();
        g.set_output("cat", cat).unwrap();
        let m: Vec<NodeId> = (0..3).map(|i| g.apply(Op::MatMul { trans_a: true, trans_b: false }, &[a[i], b[i]]).unwrap()).collect();
        let s = g.add(m[0], m[1]).unwrap();
        let s = g.add(s, m[2]).unwrap();
        g.set_output("s", s).unwrap();
        assert_eq!(rewrite(&mut g).unwrap(), 1);
        let out = g.output("s").unwrap();
        assert_eq!(g.op(out), &Op::MatMul { trans_a: true, trans_b: false });
        let [sa, sb] = g.operands(out)[..] else { panic!() };
        assert_eq!(g.op(sa), &Op::Reshape(Shape(vec![6, 4])));
        assert_eq!(g.operands(sa), [cat]);
        assert_eq!(g.operands(sb), [b[2], b[1], b[0]], "b stacked in the order of the reused a stack");
    }

    #[test]
    fn a_single_term_or_a_copy_that_does_not_pay_stays() {
        let mut g = Graph::new();
        let x = g.input("x", f32_shape([1000, 2])).unwrap();
        let y = g.input("y", f32_shape([1000, 2])).unwrap();
        let sx = g.sum(x, &[0], false).unwrap();
        let sy = g.sum(y, &[0], false).unwrap();
        let s = g.add(sx, sy).unwrap();
        g.set_output("s", s).unwrap();
        let m = g.apply(Op::MatMul { trans_a: true, trans_b: false }, &[x, y]).unwrap();
        let t = g.add(m, m).unwrap();
        g.set_output("t", t).unwrap();
        assert_eq!(rewrite(&mut g).unwrap(), 0);
    }
}
