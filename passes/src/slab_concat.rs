//! The `slab_concat` pass: a sum of zero-padded slabs becomes one concat.
//!
//! The VJP of `slice` pads the gradient back to the sliced tensor's shape,
//! so a tensor read through many slices gets the sum of as many full-size
//! pads as its gradient. An unrolled LSTM reads its precomputed input
//! projection [T,B,4H] one time step at a time and its gate pre-activations
//! [B,4H] one gate at a time: for W5 that is 32 pads of 4 MiB and 31 adds
//! of them per step, where the gradient is just the 32 slabs side by side.
//!
//! Matched: a sum tree (see `sum_tree`) with at least two terms
//! `pad(x) value=0.0` of the sum's own type whose `lo`/`hi` are zero on
//! every axis but one, and whose slabs along that axis do not overlap.
//! Pads along different axes form separate groups; a group whose slabs
//! overlap is left alone. Each group becomes `concat` of its slabs in axis
//! order along that axis, with `broadcast_to` zeros filling the gaps
//! between and around them, placed where the group's first term was; the
//! other terms are added to it in their original order.
//!
//! Values: adding a +0.0 fill changes nothing but the sign of a zero
//! (-0.0 + 0.0 = +0.0), so when every term belongs to one group the result
//! equals the sum except that a slab's -0.0 stays -0.0. When other terms
//! remain, they are added to the slab values in a different order than the
//! original tree did (a reassociation, which can change rounding). The pass
//! is therefore not one of the exact passes (`cse`, `const_fold`, `dce`).

use std::collections::BTreeMap;

use kiln_ir::{Graph, HostTensor, IrError, NodeId, Op, Shape, TensorType};

use crate::sum_tree::{self, Uses};
use crate::{Changed, Pass, PassCx, PassError};

#[derive(Debug, Clone, Copy, Default)]
pub struct SlabConcat;

impl Pass for SlabConcat {
    fn name(&self) -> &str {
        "slab_concat"
    }

    fn run(&self, g: &mut Graph, _cx: &mut PassCx) -> Result<Changed, PassError> {
        let n = rewrite(g).map_err(|source| PassError::Ir { pass: "slab_concat".into(), source })?;
        Ok(Changed::from_bool(n > 0))
    }
}

/// One term `pad(x)` whose non-fill region is `[lo, lo + len)` along `axis`.
#[derive(Debug, Clone, Copy)]
struct Slab {
    term: usize,
    x: NodeId,
    lo: usize,
    len: usize,
}

/// Rewrites every matching sum; returns how many sums were rewritten.
pub fn rewrite(g: &mut Graph) -> Result<usize, IrError> {
    let uses = Uses::of(g);
    let mut rewritten = 0;
    for root in sum_tree::roots(g, &uses)? {
        let terms = sum_tree::terms(g, root, &uses);
        if let Some(new_terms) = regroup(g, &uses, root, &terms)? {
            let new = sum_tree::build_sum(g, &new_terms)?;
            g.replace_all_uses(root, new);
            rewritten += 1;
        }
    }
    Ok(rewritten)
}

/// The sum's terms with each group of disjoint slabs replaced by its
/// concat, or `None` when no group has two slabs.
fn regroup(g: &mut Graph, uses: &Uses, root: NodeId, terms: &[NodeId]) -> Result<Option<Vec<NodeId>>, IrError> {
    let ty = g.ty(root).clone();
    let mut by_axis: BTreeMap<usize, Vec<Slab>> = BTreeMap::new();
    for (term, &t) in terms.iter().enumerate() {
        if uses.pinned.contains(&t) {
            continue;
        }
        if let Some((axis, slab)) = slab_of(g, t, term, &ty) {
            by_axis.entry(axis).or_default().push(slab);
        }
    }
    let mut taken = vec![false; terms.len()];
    let mut placed: Vec<(usize, NodeId)> = Vec::new();
    for (axis, mut group) in by_axis {
        group.sort_by_key(|s| s.lo);
        if group.len() < 2 || group.windows(2).any(|w| w[0].lo + w[0].len > w[1].lo) {
            continue;
        }
        let mut parts = Vec::with_capacity(group.len() + 1);
        let mut zero = None;
        let mut at = 0;
        for s in &group {
            if s.lo > at {
                parts.push(zeros(g, &mut zero, &ty, axis, s.lo - at)?);
            }
            parts.push(s.x);
            at = s.lo + s.len;
        }
        if at < ty.shape.0[axis] {
            parts.push(zeros(g, &mut zero, &ty, axis, ty.shape.0[axis] - at)?);
        }
        let cat = g.apply(Op::Concat { axis }, &parts)?;
        for s in &group {
            taken[s.term] = true;
        }
        let first = group.iter().map(|s| s.term).min().unwrap_or(0);
        placed.push((first, cat));
    }
    if placed.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for (i, &t) in terms.iter().enumerate() {
        if let Some(&(_, cat)) = placed.iter().find(|(p, _)| *p == i) {
            out.push(cat);
        } else if !taken[i] {
            out.push(t);
        }
    }
    Ok(Some(out))
}

/// `t` as a slab: a +0.0 pad of type `ty` along exactly one axis, with a
/// non-empty operand.
fn slab_of(g: &Graph, t: NodeId, term: usize, ty: &TensorType) -> Option<(usize, Slab)> {
    let Op::Pad { lo, hi, value } = g.op(t) else { return None };
    // Only +0.0: a -0.0 fill would be exact too, but then the gaps would
    // have to be -0.0 sums; not worth a second case.
    if value.to_bits() != 0 || g.ty(t) != ty {
        return None;
    }
    let mut padded = (0..lo.len()).filter(|&i| lo[i] != 0 || hi[i] != 0);
    let axis = padded.next()?;
    if padded.next().is_some() {
        return None;
    }
    let x = g.operands(t)[0];
    let len = g.ty(x).shape.0[axis];
    (len > 0).then_some((axis, Slab { term, x, lo: lo[axis], len }))
}

/// Zeros of `ty` with `len` along `axis`, as a broadcast of the scalar
/// `zero` (made on first use).
fn zeros(g: &mut Graph, zero: &mut Option<NodeId>, ty: &TensorType, axis: usize, len: usize) -> Result<NodeId, IrError> {
    let z = match *zero {
        Some(z) => z,
        None => {
            let scalar = TensorType::new(ty.dtype, Shape::scalar());
            *zero.insert(g.apply(Op::Constant(HostTensor::from_f64_values(&scalar, &[0.0])), &[])?)
        }
    };
    let mut dims = ty.shape.0.clone();
    dims[axis] = len;
    g.apply(Op::BroadcastTo(Shape(dims)), &[z])
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::f32_shape;

    fn pad(g: &mut Graph, x: NodeId, lo: Vec<usize>, hi: Vec<usize>) -> NodeId {
        g.apply(Op::Pad { lo, hi, value: 0.0 }, &[x]).unwrap()
    }

    #[test]
    fn disjoint_slabs_with_gaps_become_one_concat() {
        let mut g = Graph::new();
        let a = g.input("a", f32_shape([2, 3])).unwrap();
        let b = g.input("b", f32_shape([1, 3])).unwrap();
        let pa = pad(&mut g, a, vec![1, 0], vec![4, 0]);
        let pb = pad(&mut g, b, vec![5, 0], vec![1, 0]);
        let s = g.add(pb, pa).unwrap();
        g.set_output("s", s).unwrap();
        assert_eq!(rewrite(&mut g).unwrap(), 1);
        let out = g.output("s").unwrap();
        assert_eq!(g.op(out), &Op::Concat { axis: 0 });
        let parts = g.operands(out);
        assert_eq!(parts.len(), 5, "zeros, a, zeros, b, zeros");
        assert_eq!((parts[1], parts[3]), (a, b));
        assert_eq!(g.ty(parts[2]).shape.0, [2, 3]);
    }

    #[test]
    fn overlapping_two_axis_and_non_zero_pads_stay() {
        let mut g = Graph::new();
        let a = g.input("a", f32_shape([2, 3])).unwrap();
        let p1 = pad(&mut g, a, vec![0, 0], vec![1, 0]);
        let p2 = pad(&mut g, a, vec![1, 0], vec![0, 0]);
        let two_axes = pad(&mut g, a, vec![1, 0], vec![0, 1]);
        let ones = g.apply(Op::Pad { lo: vec![0, 0], hi: vec![1, 0], value: 1.0 }, &[a]).unwrap();
        let s = g.add(p1, p2).unwrap();
        g.set_output("s", s).unwrap();
        let t = g.add(ones, p2).unwrap();
        g.set_output("t", t).unwrap();
        let u = g.add(two_axes, two_axes).unwrap();
        g.set_output("u", u).unwrap();
        assert_eq!(rewrite(&mut g).unwrap(), 0);
    }
}
