//! Finite-difference checks of the elementwise, select, cast and reduction
//! gradient rules (tolerance and method in `gradcheck/support.rs`).

#[path = "gradcheck/support.rs"]
mod support;

use kiln_ir::{BinaryOp, CompareOp, DType, Graph, ReduceOp, UnaryOp};
use proptest::prelude::*;
use support::{stress, check, input, Inputs, Rng};

fn cfg(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn random_shape(rng: &mut Rng, max_rank: usize) -> Vec<usize> {
    let r = rng.below(max_rank + 1);
    (0..r).map(|_| 1 + rng.below(3)).collect()
}

/// An operand shape that broadcasts to `out`: some leading axes dropped,
/// some axes set to 1.
fn broadcast_source(rng: &mut Rng, out: &[usize]) -> Vec<usize> {
    let drop = rng.below(out.len() + 1);
    out[drop..].iter().map(|&d| if rng.below(3) == 0 { 1 } else { d }).collect()
}

fn unary_domain(u: UnaryOp, rng: &mut Rng, n: usize) -> Vec<f64> {
    match u {
        UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt => rng.vec(n, 0.3, 2.0),
        // Away from the kink / pole at 0.
        UnaryOp::Recip | UnaryOp::Relu | UnaryOp::Abs | UnaryOp::Sign => rng.signed_away_from_zero(n, 0.05, 2.0),
        _ => rng.vec(n, -2.0, 2.0),
    }
}

proptest! {
    #![proptest_config(cfg(16 * stress()))]

    #[test]
    fn unary_ops(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        for u in UnaryOp::ALL {
            let shape = random_shape(&mut rng, 3);
            let mut g = Graph::new();
            let x = g.input("x", support::f32t(&shape)).unwrap();
            let mut vals = Inputs::new();
            let n = shape.iter().product();
            vals.f("x", shape.clone(), unary_domain(u, &mut rng, n));
            let y = g.unary(u, x).unwrap();
            check(g, y, &vals, &["x"], seed).map_err(|e| TestCaseError::fail(format!("{}: {e}", u.name())))?;
        }
    }

    #[test]
    fn binary_ops_with_broadcasting(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        for b in BinaryOp::ALL {
            let out = random_shape(&mut rng, 3);
            let (sa, sb) = (broadcast_source(&mut rng, &out), broadcast_source(&mut rng, &out));
            let mut g = Graph::new();
            let mut vals = Inputs::new();
            let (na, nb) = (sa.iter().product(), sb.iter().product());
            let (va, vb) = match b {
                BinaryOp::Div => (rng.vec(na, -2.0, 2.0), rng.signed_away_from_zero(nb, 0.5, 2.0)),
                BinaryOp::Pow => (rng.vec(na, 0.5, 2.0), rng.vec(nb, -2.0, 2.0)),
                _ => (rng.vec(na, -2.0, 2.0), rng.vec(nb, -2.0, 2.0)),
            };
            let a = g.input("a", support::f32t(&sa)).unwrap();
            let bb = g.input("b", support::f32t(&sb)).unwrap();
            vals.f("a", sa.clone(), va).f("b", sb.clone(), vb);
            let y = g.binary(b, a, bb).unwrap();
            check(g, y, &vals, &["a", "b"], seed)
                .map_err(|e| TestCaseError::fail(format!("{} {sa:?} {sb:?}: {e}", b.name())))?;
        }
    }

    /// The same input on both sides (x * x, x - x, ...) accumulates both slots.
    #[test]
    fn binary_ops_on_one_operand(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        for b in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Pow] {
            let shape = random_shape(&mut rng, 2);
            let mut g = Graph::new();
            let mut vals = Inputs::new();
            let x = input(&mut g, &mut vals, &mut rng, "x", &shape, 0.5, 2.0);
            let y = g.binary(b, x, x).unwrap();
            check(g, y, &vals, &["x"], seed).map_err(|e| TestCaseError::fail(format!("{}: {e}", b.name())))?;
        }
    }

    #[test]
    fn select_with_broadcast_mask_and_branches(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let out = random_shape(&mut rng, 3);
        let (sm, sa, sb) = (broadcast_source(&mut rng, &out), broadcast_source(&mut rng, &out), broadcast_source(&mut rng, &out));
        let mut g = Graph::new();
        let mut vals = Inputs::new();
        let c = input(&mut g, &mut vals, &mut rng, "c", &sm, -1.0, 1.0);
        let a = input(&mut g, &mut vals, &mut rng, "a", &sa, -2.0, 2.0);
        let b = input(&mut g, &mut vals, &mut rng, "b", &sb, -2.0, 2.0);
        let zero = g.scalar_f32(0.0).unwrap();
        let m = g.compare(CompareOp::Gt, c, zero).unwrap();
        let y = g.select(m, a, b).unwrap();
        // c only steers the mask: its gradient is zero, and so are the differences.
        check(g, y, &vals, &["a", "b", "c"], seed).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn reductions_over_several_axes(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        for r in ReduceOp::ALL {
            let rank = 1 + rng.below(4);
            let shape: Vec<usize> = (0..rank).map(|_| 1 + rng.below(3)).collect();
            let axes: Vec<usize> = (0..rank).filter(|_| rng.below(2) == 0).collect();
            let keepdims = rng.below(2) == 0;
            let mut g = Graph::new();
            let mut vals = Inputs::new();
            let x = input(&mut g, &mut vals, &mut rng, "x", &shape, -2.0, 2.0);
            let y = g.reduce(r, x, &axes, keepdims).unwrap();
            check(g, y, &vals, &["x"], seed)
                .map_err(|e| TestCaseError::fail(format!("{} {shape:?} axes {axes:?} keepdims {keepdims}: {e}", r.name())))?;
        }
    }

    /// Float casts pass the gradient through (converted back); casts to
    /// integers block it, and so do argmax and comparisons.
    #[test]
    fn casts(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let shape = random_shape(&mut rng, 2);
        let mut g = Graph::new();
        let mut vals = Inputs::new();
        let x = input(&mut g, &mut vals, &mut rng, "x", &shape, -3.0, 3.0);
        let wide = g.cast(x, DType::F64).unwrap();
        let sq = g.mul(wide, wide).unwrap();
        let back = g.cast(sq, DType::F32).unwrap();
        let trunc = g.cast(x, DType::I64).unwrap();
        let trunc = g.cast(trunc, DType::F32).unwrap();
        let y = g.add(back, trunc).unwrap();
        check(g, y, &vals, &["x"], seed).map_err(TestCaseError::fail)?;
    }
}
