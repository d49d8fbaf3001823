//! Common-subexpression elimination.
//!
//! Two nodes are the same value when they have the same op (attributes
//! included), the same operands in the same slots, and the same type. Every
//! op is pure, random draws included: `random_uniform` is a function of
//! (seed, counter, element index), so two draws with the same seed and the
//! same counter node are one value, and draws with different seeds differ
//! through the attribute. Constants compare by dtype, shape and the exact
//! bits of every element (so `0.0` and `-0.0` stay apart, and NaNs merge
//! only with the identical NaN). Named inputs are never merged.
//!
//! `add` and `mul` are commutative (broadcasting is symmetric and IEEE add
//! and mul commute exactly), so `a + b` and `b + a` merge. Other ops keep
//! their operand order; `max`/`min` are not treated as commutative because
//! backends may differ on which NaN operand wins.
//!
//! Nodes named as `wrt` in a pending grad request are never merged, in
//! either direction: the gradient with respect to a node counts only the
//! paths through that node's own uses, so folding a twin into it (or it into
//! a twin) would change the requested gradient.
//!
//! One walk in topological order is enough: when a node is visited its
//! operands have already been replaced by their representatives.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use kiln_ir::{BinaryOp, DType, Graph, HostTensor, NodeId, Op, TensorData, TensorType};

use crate::{Changed, Pass, PassCx, PassError};

#[derive(Debug, Clone, Copy, Default)]
pub struct Cse;

impl Pass for Cse {
    fn name(&self) -> &str {
        "cse"
    }

    fn run(&self, g: &mut Graph, _cx: &mut PassCx) -> Result<Changed, PassError> {
        let merged = merge_common(g).map_err(|source| PassError::Ir { pass: "cse".into(), source })?;
        Ok(Changed::from_bool(merged > 0))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
enum OpKey {
    /// A constant: a hash of its bits; candidates are compared exactly.
    Const(DType, u64),
    /// Any other op: its Debug form, which spells every attribute (floats
    /// with their sign, so `pad` values 0.0 and -0.0 differ).
    Other(String),
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Key {
    op: OpKey,
    operands: Vec<NodeId>,
    ty: TensorType,
}

fn hash_bits(t: &HostTensor) -> u64 {
    let mut h = DefaultHasher::new();
    match t.data() {
        TensorData::F32(v) => v.iter().for_each(|x| x.to_bits().hash(&mut h)),
        TensorData::F64(v) => v.iter().for_each(|x| x.to_bits().hash(&mut h)),
        TensorData::I64(v) => v.hash(&mut h),
        TensorData::I32(v) => v.hash(&mut h),
        TensorData::Bool(v) => v.hash(&mut h),
    }
    h.finish()
}

/// Bitwise equality of two tensors' elements (shape is part of the key).
pub fn same_bits(a: &HostTensor, b: &HostTensor) -> bool {
    match (a.data(), b.data()) {
        (TensorData::F32(x), TensorData::F32(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
        }
        (TensorData::F64(x), TensorData::F64(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
        }
        (TensorData::I64(x), TensorData::I64(y)) => x == y,
        (TensorData::I32(x), TensorData::I32(y)) => x == y,
        (TensorData::Bool(x), TensorData::Bool(y)) => x == y,
        _ => false,
    }
}

fn key_of(g: &Graph, id: NodeId) -> Key {
    let op = g.op(id);
    let mut operands = g.operands(id);
    if matches!(op, Op::Binary(BinaryOp::Add | BinaryOp::Mul)) {
        operands.sort();
    }
    let op = match op {
        Op::Constant(t) => OpKey::Const(t.dtype(), hash_bits(t)),
        other => OpKey::Other(format!("{other:?}")),
    };
    Key { op, operands, ty: g.ty(id).clone() }
}

/// Merges every node into the first equal node in topological order;
/// returns how many nodes were removed.
pub fn merge_common(g: &mut Graph) -> Result<usize, kiln_ir::IrError> {
    let order = g.topo_order()?;
    let wrt = crate::pass::grad_wrt_nodes(g);
    let mut seen: HashMap<Key, Vec<NodeId>> = HashMap::new();
    let mut merged = 0;
    for id in order {
        if g.op(id).is_input() || wrt.contains(&id) {
            continue;
        }
        let key = key_of(g, id);
        let candidates = seen.entry(key).or_default();
        let rep = match g.op(id) {
            Op::Constant(t) => candidates.iter().copied().find(|&c| match g.op(c) {
                Op::Constant(u) => same_bits(t, u),
                _ => false,
            }),
            _ => candidates.first().copied(),
        };
        match rep {
            Some(rep) => {
                g.replace_all_uses(id, rep);
                g.remove_node(id);
                merged += 1;
            }
            None => candidates.push(id),
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::{f32_shape, i64_shape};

    fn run(g: &mut Graph) -> Changed {
        Cse.run(g, &mut PassCx::default()).unwrap()
    }

    #[test]
    fn merges_duplicates_and_their_users_transitively() {
        let mut g = Graph::new();
        let x = g.input("x", f32_shape([3])).unwrap();
        let a1 = g.exp(x).unwrap();
        let a2 = g.exp(x).unwrap();
        let b1 = g.neg(a1).unwrap();
        let b2 = g.neg(a2).unwrap();
        let s = g.add(b1, b2).unwrap();
        g.set_output("s", s).unwrap();
        g.set_output("b2", b2).unwrap();
        assert_eq!(run(&mut g), Changed::Yes);
        assert_eq!(g.node_count(), 4);
        assert_eq!(g.operands(s), vec![b1, b1]);
        assert_eq!(g.output("b2"), Some(b1));
        assert_eq!(run(&mut g), Changed::No);
    }

    #[test]
    fn commutative_add_merges_but_sub_does_not() {
        let mut g = Graph::new();
        let x = g.input("x", f32_shape([3])).unwrap();
        let y = g.input("y", f32_shape([3])).unwrap();
        let a = g.add(x, y).unwrap();
        let b = g.add(y, x).unwrap();
        let c = g.sub(x, y).unwrap();
        let d = g.sub(y, x).unwrap();
        for (n, id) in [("a", a), ("b", b), ("c", c), ("d", d)] {
            g.set_output(n, id).unwrap();
        }
        run(&mut g);
        assert_eq!(g.output("b"), Some(a));
        assert_ne!(g.output("c"), g.output("d"));
    }

    #[test]
    fn constants_compare_by_bits_and_inputs_never_merge() {
        let mut g = Graph::new();
        let x = g.input("x", f32_shape([])).unwrap();
        let x2 = g.input("x2", f32_shape([])).unwrap();
        let z = g.scalar_f32(0.0).unwrap();
        let nz = g.scalar_f32(-0.0).unwrap();
        let z2 = g.scalar_f32(0.0).unwrap();
        let zi = g.scalar(0.0, DType::F64).unwrap();
        for (n, id) in [("x", x), ("x2", x2), ("z", z), ("nz", nz), ("z2", z2), ("zi", zi)] {
            g.set_output(n, id).unwrap();
        }
        run(&mut g);
        assert_eq!(g.output("z2"), Some(z));
        assert_eq!(g.output("nz"), Some(nz));
        assert_eq!(g.output("zi"), Some(zi));
        assert_eq!(g.output("x2"), Some(x2));
        assert_eq!(g.node_count(), 5);
    }

    #[test]
    fn random_draws_merge_only_with_same_seed_and_counter() {
        let mut g = Graph::new();
        let step = g.input("step", i64_shape([])).unwrap();
        let r1 = g.random_uniform(step, [4], 7, 0.0, 1.0).unwrap();
        let r2 = g.random_uniform(step, [4], 7, 0.0, 1.0).unwrap();
        let r3 = g.random_uniform(step, [4], 8, 0.0, 1.0).unwrap();
        for (n, id) in [("r1", r1), ("r2", r2), ("r3", r3)] {
            g.set_output(n, id).unwrap();
        }
        run(&mut g);
        assert_eq!(g.output("r2"), Some(r1));
        assert_eq!(g.output("r3"), Some(r3));
    }
}
