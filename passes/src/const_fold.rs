//! Constant folding: a node whose operands are all constants becomes a
//! constant, evaluated by `PassCx::evaluator` (the pass is a no-op without
//! one, so this crate needs no backend).
//!
//! Limits, so folding never bloats the graph or the compile time:
//! - the result has at most [`ConstFold::DEFAULT_MAX_ELEMENTS`] (4096)
//!   elements: a small constant is cheaper than a kernel, a large one would
//!   be stored in the program and read from memory instead of computed;
//! - every operand has at most [`ConstFold::DEFAULT_MAX_OPERAND_ELEMENTS`]
//!   elements, so a reduction over a huge constant is left to the backend.
//!
//! `random_uniform` is never folded (a random draw stays a visible op even
//! with a constant counter), and inputs and constants are sources. A
//! constant named as `wrt` in a pending grad request does not count as a
//! constant: folding through it would turn its gradient into zero. Folding
//! keeps the node's id and walks in topological order, so a whole constant
//! subgraph folds in one run; operands left unused are for `dce` to remove.
//! When the evaluator reports an error (e.g. an out-of-range gather index)
//! the node is left alone: the error belongs to run time, where the user
//! sees it with the inputs that caused it.


use kiln_ir::{Graph, HostTensor, NodeId, Op};
use rustc_hash::FxHashSet;

use crate::{Changed, Pass, PassCx, PassError};

#[derive(Debug, Clone, Copy)]
pub struct ConstFold {
    /// Largest result (in elements) that is folded.
    pub max_elements: usize,
    /// Largest operand (in elements) a folded node may read.
    pub max_operand_elements: usize,
}

impl ConstFold {
    pub const DEFAULT_MAX_ELEMENTS: usize = 4096;
    pub const DEFAULT_MAX_OPERAND_ELEMENTS: usize = 1 << 20;
}

impl Default for ConstFold {
    fn default() -> Self {
        ConstFold {
            max_elements: ConstFold::DEFAULT_MAX_ELEMENTS,
            max_operand_elements: ConstFold::DEFAULT_MAX_OPERAND_ELEMENTS,
        }
    }
}

impl Pass for ConstFold {
    fn name(&self) -> &str {
        "const_fold"
    }

    fn run(&self, g: &mut Graph, cx: &mut PassCx) -> Result<Changed, PassError> {
        let Some(eval) = cx.evaluator.as_deref() else { return Ok(Changed::No) };
        let order = g.topo_order().map_err(|source| PassError::Ir { pass: self.name().into(), source })?;
        let wrt = crate::pass::grad_wrt_nodes(g);
        let mut folded = 0usize;
        for id in order {
            if let Some(t) = self.try_fold(g, id, eval, &wrt)? {
                let ty = g.ty(id).clone();
                g.rewrite(id, Op::Constant(t), ty, &[]);
                folded += 1;
            }
        }
        Ok(Changed::from_bool(folded > 0))
    }
}

impl ConstFold {
    fn try_fold(
        &self,
        g: &Graph,
        id: NodeId,
        eval: &dyn crate::ConstEvaluator,
        wrt: &FxHashSet<NodeId>,
    ) -> Result<Option<HostTensor>, PassError> {
        let op = g.op(id);
        if op.is_source() || matches!(op, Op::RandomUniform { .. }) {
            return Ok(None);
        }
        let ty = g.ty(id);
        if ty.numel() > self.max_elements {
            return Ok(None);
        }
        let operands = g.operands(id);
        if operands.is_empty() {
            return Ok(None);
        }
        let mut values: Vec<&HostTensor> = Vec::with_capacity(operands.len());
        for o in &operands {
            match g.op(*o) {
                Op::Constant(t) if t.numel() <= self.max_operand_elements && !wrt.contains(o) => values.push(t),
                _ => return Ok(None),
            }
        }
        let Ok(t) = eval.eval(op, ty, &values) else { return Ok(None) };
        if &t.ty() != ty {
            return Err(PassError::Failed {
                pass: self.name().into(),
                message: format!("{id} = {}: the evaluator returned {} but the node is {ty}", op.name(), t.ty()),
            });
        }
        Ok(Some(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConstEvaluator;
    use kiln_ir::{f32_shape, i64_shape, TensorType, UnaryOp};

    /// Enough of an evaluator for these tests: neg and add on f32, and a
    /// deliberately wrong answer for exp.
    struct Tiny;
    impl ConstEvaluator for Tiny {
        fn eval(&self, op: &Op, ty: &TensorType, xs: &[&HostTensor]) -> Result<HostTensor, String> {
            let v: Vec<Vec<f32>> = xs.iter().map(|t| t.to_f32_vec()).collect();
            let out: Vec<f32> = match op {
                Op::Unary(UnaryOp::Neg) => v[0].iter().map(|x| -x).collect(),
                Op::Unary(UnaryOp::Exp) => return Ok(HostTensor::scalar_i64(1)),
                Op::Binary(kiln_ir::BinaryOp::Add) if v[0].len() == v[1].len() => {
                    v[0].iter().zip(&v[1]).map(|(a, b)| a + b).collect()
                }
                _ => return Err(format!("tiny cannot evaluate {}", op.name())),
            };
            HostTensor::from_f32(ty.shape.clone(), out).map_err(|e| e.to_string())
        }
    }

    fn cx() -> PassCx {
        PassCx::default().with_evaluator(Tiny)
    }

    #[test]
    fn folds_a_chain_in_one_run_and_keeps_ids() {
        let mut g = Graph::new();
        let a = g.constant(HostTensor::from_f32([2], vec![1.0, 2.0]).unwrap()).unwrap();
        let n = g.neg(a).unwrap();
        let s = g.add(n, a).unwrap();
        let x = g.input("x", f32_shape([2])).unwrap();
        let y = g.add(s, x).unwrap();
        g.set_output("y", y).unwrap();
        assert_eq!(ConstFold::default().run(&mut g, &mut cx()).unwrap(), Changed::Yes);
        match g.op(s) {
            Op::Constant(t) => assert_eq!(t.to_f32_vec(), vec![0.0, 0.0]),
            other => panic!("{s} not folded: {other:?}"),
        }
        assert!(matches!(g.op(y), Op::Binary(_)), "y reads an input");
        assert!(g.operands(s).is_empty());
    }

    #[test]
    fn skips_without_evaluator_random_large_and_failing_nodes() {
        let mut g = Graph::new();
        let a = g.constant(HostTensor::from_f32([8], vec![1.0; 8]).unwrap()).unwrap();
        let n = g.neg(a).unwrap();
        let b = g.mul(a, a).unwrap(); // Tiny cannot evaluate mul
        let step = g.constant(HostTensor::scalar_i64(3)).unwrap();
        let r = g.random_uniform(step, [2], 1, 0.0, 1.0).unwrap();
        let _ = g.input("i", i64_shape([])).unwrap();
        for (name, id) in [("n", n), ("b", b), ("r", r)] {
            g.set_output(name, id).unwrap();
        }
        let mut no_eval = PassCx::default();
        assert_eq!(ConstFold::default().run(&mut g, &mut no_eval).unwrap(), Changed::No);
        let small = ConstFold { max_elements: 4, ..ConstFold::default() };
        assert_eq!(small.run(&mut g, &mut cx()).unwrap(), Changed::No, "result of 8 > 4 elements");
        assert_eq!(ConstFold::default().run(&mut g, &mut cx()).unwrap(), Changed::Yes);
        assert!(matches!(g.op(n), Op::Constant(_)));
        assert!(matches!(g.op(b), Op::Binary(_)));
        assert!(matches!(g.op(r), Op::RandomUniform { .. }));
    }

    #[test]
    fn a_wrongly_typed_result_is_an_error_naming_the_node() {
        let mut g = Graph::new();
        let a = g.scalar_f32(1.0).unwrap();
        let e = g.exp(a).unwrap();
        g.set_output("e", e).unwrap();
        let err = ConstFold::default().run(&mut g, &mut cx()).unwrap_err().to_string();
        assert!(err.contains("%1 = exp") && err.contains("i64[]"), "{err}");
    }
}
