//! Passes by name, for `kiln opt --passes a,b,c`, golden tests and the
//! default pipeline.
//!
//! ADDING A PASS: add one arm to `pass_by_name`, its name to `PASS_NAMES`
//! (unknown-pass errors list them, and a test checks every listed name
//! resolves), and, if it belongs in the default pipeline, its name to
//! `DEFAULT_PIPELINE` at the right place. Nothing else needs to change.

use crate::{Pass, PassError};

/// Every registered pass name, in the order error messages list them.
pub const PASS_NAMES: &[&str] = &["dce", "cse", "const_fold", "autodiff", "egraph", "slab_concat", "row_stack"];

/// The optimization pipeline `compile()` runs, by name. Autodiff belongs
/// first (it consumes grad requests); the e-graph before the final `dce`.
/// `cse` runs before `const_fold` so duplicates fold once, and `dce` last
/// sweeps what the others orphaned. `slab_concat` then `row_stack` regroup
/// the sums autodiff builds (a slice's gradient pads, per-step weight
/// products) before the e-graph sees them: `row_stack` reuses the stacks
/// `slab_concat` makes, and `cse` first merges their operands' duplicates.
pub const DEFAULT_PIPELINE: &[&str] = &["cse", "const_fold", "slab_concat", "row_stack", "egraph", "dce"];

/// A fresh instance of the pass called `name`.
pub fn pass_by_name(name: &str) -> Option<Box<dyn Pass>> {
    Some(match name {
        "dce" => Box::new(crate::dce::Dce),
        "cse" => Box::new(crate::cse::Cse),
        "const_fold" => Box::new(crate::const_fold::ConstFold::default()),
        "autodiff" => Box::new(crate::autodiff::Autodiff),
        "egraph" => Box::new(crate::egraph::EGraphPass::default()),
        "slab_concat" => Box::new(crate::slab_concat::SlabConcat),
        "row_stack" => Box::new(crate::row_stack::RowStack),
        _ => return None,
    })
}

/// The default pipeline's passes, in order.
pub fn default_pipeline() -> Vec<Box<dyn Pass>> {
    DEFAULT_PIPELINE.iter().filter_map(|n| pass_by_name(n)).collect()
}

/// The error for a name `pass_by_name` does not know.
pub fn unknown_pass(name: &str) -> PassError {
    PassError::UnknownPass(name.to_string(), PASS_NAMES.join(", "))
}

/// Parses a comma-separated list (`"dce, cse"`) into passes.
pub fn passes_from_list(list: &str) -> Result<Vec<Box<dyn Pass>>, PassError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|n| pass_by_name(n).ok_or_else(|| unknown_pass(n)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_resolves_to_a_pass_of_that_name() {
        for n in PASS_NAMES.iter().chain(DEFAULT_PIPELINE) {
            let p = pass_by_name(n).unwrap_or_else(|| panic!("`{n}` is listed but not registered"));
            assert_eq!(p.name(), *n);
        }
        assert_eq!(default_pipeline().len(), DEFAULT_PIPELINE.len());
    }

    #[test]
    fn unknown_names_are_typed_errors_listing_the_known_ones() {
        assert!(pass_by_name("nope").is_none());
        let e = passes_from_list("dce, nope").err().expect("unknown pass");
        let msg = e.to_string();
        assert!(msg.contains("`nope`") && msg.contains("dce, cse, const_fold"), "{msg}");
        let names: Vec<String> =
            passes_from_list(" cse ,dce,").unwrap().iter().map(|p| p.name().to_string()).collect();
        assert_eq!(names, ["cse", "dce"]);
    }

    /// The exact passes (cse, const_fold, dce) must not change what a
    /// program computes: random graphs full of duplicates, constant
    /// subgraphs and dead nodes give bit-identical outputs and updates (NaNs
    /// compared as NaN) before and after, run by the reference interpreter.
    /// The full default pipeline adds the e-graph, whose reassociation and
    /// fusion change rounding, so it is held to a tolerance instead.
    mod equivalence {
        use std::collections::BTreeMap;

        use kiln_ir::{f32_shape, BinaryOp, Graph, HostTensor, NodeId, Op, TensorType, UnaryOp};
        use proptest::prelude::*;

        use crate::{ConstEvaluator, PassCx, PassManager};

        struct Interp;
        impl ConstEvaluator for Interp {
            fn eval(&self, op: &Op, ty: &TensorType, xs: &[&HostTensor]) -> Result<HostTensor, String> {
                kiln_interp::eval_op(op, ty, xs, kiln_interp::Precision::F32)
            }
        }

        const UNARY: [UnaryOp; 5] = [UnaryOp::Neg, UnaryOp::Exp, UnaryOp::Tanh, UnaryOp::Relu, UnaryOp::Sin];
        const BINARY: [BinaryOp; 4] = [BinaryOp::Add, BinaryOp::Mul, BinaryOp::Sub, BinaryOp::Max];
        const CONSTS: [f32; 4] = [0.5, -1.0, 2.0, 0.0];

        /// Builds a graph from a list of steps; each step picks an op and
        /// operands among the nodes so far (indices taken modulo the count).
        fn build(steps: &[(u8, u8, u8, u8)], outs: &[u8]) -> Graph {
            let mut g = Graph::new();
            let mut nodes: Vec<NodeId> = vec![
                g.input("x", f32_shape([3])).unwrap(),
                g.input("y", f32_shape([3])).unwrap(),
                g.param("w", f32_shape([3])).unwrap(),
            ];
            for &(kind, a, b, sub) in steps {
                let pick = |i: u8| nodes[i as usize % nodes.len()];
                let id = match kind % 5 {
                    0 => g.unary(UNARY[sub as usize % UNARY.len()], pick(a)).unwrap(),
                    1 => g.binary(BINARY[sub as usize % BINARY.len()], pick(a), pick(b)).unwrap(),
                    2 if sub % 2 == 0 => g.scalar_f32(CONSTS[a as usize % CONSTS.len()]).unwrap(),
                    2 => g.constant(HostTensor::from_f32([3], vec![CONSTS[a as usize % 4], 1.0, -3.0]).unwrap()).unwrap(),
                    // A copy of an existing node: something for cse to find.
                    3 => {
                        let src = pick(a);
                        let (op, ty) = (g.op(src).clone(), g.ty(src).clone());
                        if op.is_input() {
                            continue;
                        }
                        let operands = g.operands(src);
                        g.add_typed(op, ty, &operands)
                    }
                    _ => g.sum(pick(a), &[], false).unwrap_or_else(|_| pick(a)),
                };
                nodes.push(id);
            }
            for (i, &o) in outs.iter().enumerate() {
                let id = nodes[o as usize % nodes.len()];
                g.set_output(&format!("o{i}"), id).unwrap();
            }
            if let Some(&u) = nodes.iter().rev().find(|&&n| g.ty(n) == &f32_shape([3]) && !g.op(n).is_input()) {
                g.set_update("w", u).unwrap();
            }
            g
        }

        fn same(a: &HostTensor, b: &HostTensor) -> bool {
            a.ty() == b.ty()
                && a.to_f64_vec().iter().zip(b.to_f64_vec()).all(|(p, q)| p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan()))
        }

        fn close(a: &HostTensor, b: &HostTensor) -> bool {
            a.ty() == b.ty()
                && a.to_f64_vec().iter().zip(b.to_f64_vec()).all(|(p, q)| {
                    p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan()) || (p - q).abs() <= 1e-5 + 1e-4 * p.abs()
                })
        }

        fn run(g: &Graph, vals: &BTreeMap<String, HostTensor>) -> kiln_interp::GraphRun {
            kiln_interp::run_graph_full(g, vals, kiln_interp::Precision::F32).unwrap()
        }

        proptest! {
            #[test]
            fn default_pipeline_preserves_results(
                steps in proptest::collection::vec((0u8..5, any::<u8>(), any::<u8>(), any::<u8>()), 1..24),
                outs in proptest::collection::vec(any::<u8>(), 1..4),
                data in proptest::collection::vec(-2.0f32..2.0, 9),
            ) {
                let g0 = build(&steps, &outs);
                let mut g = g0.clone();
                let mut cx = PassCx::new().with_evaluator(Interp);
                let report = PassManager::from_names(&["cse", "const_fold", "dce"]).unwrap().run(&mut g, &mut cx).unwrap();
                prop_assert!(report.nodes_out() <= report.nodes_in);
                let mut g_full = g0.clone();
                let mut cx_full = PassCx::new().with_evaluator(Interp);
                PassManager::default_pipeline().run(&mut g_full, &mut cx_full).unwrap();
                let vals: BTreeMap<String, HostTensor> = ["x", "y", "w"]
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.to_string(), HostTensor::from_f32([3], data[3 * i..3 * i + 3].to_vec()).unwrap()))
                    .collect();
                let (before, after) = (run(&g0, &vals), run(&g, &vals));
                prop_assert_eq!(before.outputs.keys().collect::<Vec<_>>(), after.outputs.keys().collect::<Vec<_>>());
                prop_assert_eq!(before.updates.keys().collect::<Vec<_>>(), after.updates.keys().collect::<Vec<_>>());
                let full = run(&g_full, &vals);
                for (k, v) in before.outputs.iter().chain(before.updates.iter()) {
                    let w = after.outputs.get(k).or_else(|| after.updates.get(k)).unwrap();
                    prop_assert!(same(v, w), "`{}` differs: {:?} vs {:?}\n{}", k, v, w, kiln_ir::text::print(&g));
                    let f = full.outputs.get(k).or_else(|| full.updates.get(k)).unwrap();
                    prop_assert!(close(v, f), "`{}` differs after the default pipeline: {:?} vs {:?}\n{}", k, v, f, kiln_ir::text::print(&g_full));
                }
                // Only live nodes and inputs remain.
                let live = g.live_nodes();
                prop_assert!(g.node_ids().iter().all(|id| live.contains(id) || g.op(*id).is_input()));
            }
        }
    }
}
