//! Finite-difference checks of the data-movement ops: reshape, permute,
//! broadcast_to, slice (strided), pad, concat, gather, scatter_add.

#[path = "gradcheck/support.rs"]
mod support;

use kiln_ir::{Graph, TensorType};
use proptest::prelude::*;
use support::{stress, check, input, Inputs, Rng};

fn cfg(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn shape(rng: &mut Rng, min_rank: usize, max_rank: usize, max_dim: usize) -> Vec<usize> {
    let r = min_rank + rng.below(max_rank - min_rank + 1);
    (0..r).map(|_| 1 + rng.below(max_dim)).collect()
}

fn fail(what: String) -> impl FnOnce(String) -> TestCaseError {
    move |e| TestCaseError::fail(format!("{what}: {e}"))
}

proptest! {
    #![proptest_config(cfg(16 * stress()))]

    #[test]
    fn reshape_permute_broadcast(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let s = shape(&mut rng, 1, 4, 3);
        let mut g = Graph::new();
        let mut vals = Inputs::new();
        let x = input(&mut g, &mut vals, &mut rng, "x", &s, -2.0, 2.0);
        // Permute by a random permutation.
        let mut perm: Vec<usize> = (0..s.len()).collect();
        for i in (1..perm.len()).rev() {
            perm.swap(i, rng.below(i + 1));
        }
        let p = g.permute(x, &perm).unwrap();
        // Reshape to a flat then split shape.
        let n: usize = s.iter().product();
        let r = g.reshape(p, vec![n]).unwrap();
        let r = g.reshape(r, vec![1, n, 1]).unwrap();
        // Broadcast along new leading and size-1 axes.
        let b = g.broadcast_to(r, vec![2, 2, n, 3]).unwrap();
        let e = g.exp(b).unwrap();
        check(g, e, &vals, &["x"], seed).map_err(fail(format!("{s:?} perm {perm:?}")))?;
    }

    #[test]
    fn strided_slice(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let s = shape(&mut rng, 1, 3, 6);
        let (mut start, mut end, mut step) = (vec![], vec![], vec![]);
        for &d in &s {
            let a = rng.below(d);
            let b = a + 1 + rng.below(d - a);
            start.push(a);
            end.push(b);
            step.push(1 + rng.below(3));
        }
        let mut g = Graph::new();
        let mut vals = Inputs::new();
        let x = input(&mut g, &mut vals, &mut rng, "x", &s, -2.0, 2.0);
        let y = g.slice(x, &start, &end, &step).unwrap();
        let y = g.unary(kiln_ir::UnaryOp::Sin, y).unwrap();
        check(g, y, &vals, &["x"], seed).map_err(fail(format!("{s:?} {start:?}:{end:?}:{step:?}")))?;
    }

    #[test]
    fn pad_with_value(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let s = shape(&mut rng, 1, 3, 3);
        let lo: Vec<usize> = s.iter().map(|_| rng.below(3)).collect();
        let hi: Vec<usize> = s.iter().map(|_| rng.below(3)).collect();
        let mut g = Graph::new();
        let mut vals = Inputs::new();
        let x = input(&mut g, &mut vals, &mut rng, "x", &s, -2.0, 2.0);
        let y = g.pad(x, &lo, &hi, 1.5).unwrap();
        let y = g.tanh(y).unwrap();
        check(g, y, &vals, &["x"], seed).map_err(fail(format!("{s:?} lo {lo:?} hi {hi:?}")))?;
    }

    #[test]
    fn concat_of_several(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let s = shape(&mut rng, 1, 3, 3);
        let axis = rng.below(s.len());
        let k = 1 + rng.below(3);
        let mut g = Graph::new();
        let mut vals = Inputs::new();
        let mut xs = Vec::new();
        let mut names = Vec::new();
        for i in 0..k {
            let mut si = s.clone();
            si[axis] = 1 + rng.below(3);
            names.push(format!("x{i}"));
            xs.push(input(&mut g, &mut vals, &mut rng, &format!("x{i}"), &si, -2.0, 2.0));
        }
        // One operand twice: its gradient accumulates both slices.
        xs.push(xs[0]);
        let y = g.concat(&xs, axis).unwrap();
        let wrt: Vec<&str> = names.iter().map(String::as_str).collect();
        check(g, y, &vals, &wrt, seed).map_err(fail(format!("{s:?} axis {axis}")))?;
    }

    /// Gather with repeated indices (the scatter must add, not overwrite).
    #[test]
    fn gather_any_axis(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let s = shape(&mut rng, 1, 3, 4);
        let axis = rng.below(s.len());
        let is = shape(&mut rng, 0, 2, 4);
        let ni: usize = is.iter().product();
        let idx: Vec<i64> = (0..ni).map(|_| rng.below(s[axis]) as i64).collect();
        let mut g = Graph::new();
        let mut vals = Inputs::new();
        let x = input(&mut g, &mut vals, &mut rng, "x", &s, -2.0, 2.0);
        let i = g.input("i", TensorType::i64(is.clone())).unwrap();
        vals.i("i", is.clone(), idx.clone());
        let y = g.gather(x, i, axis).unwrap();
        check(g, y, &vals, &["x"], seed).map_err(fail(format!("{s:?} axis {axis} idx {is:?} {idx:?}")))?;
    }

    #[test]
    fn scatter_add_any_axis(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let is = shape(&mut rng, 0, 2, 3);
        let before = shape(&mut rng, 0, 2, 2);
        let after = shape(&mut rng, 0, 1, 3);
        let axis = before.len();
        let size = 1 + rng.below(4);
        let ni: usize = is.iter().product();
        let idx: Vec<i64> = (0..ni).map(|_| rng.below(size) as i64).collect();
        let us: Vec<usize> = before.iter().chain(&is).chain(&after).copied().collect();
        let mut g = Graph::new();
        let mut vals = Inputs::new();
        let u = input(&mut g, &mut vals, &mut rng, "u", &us, -2.0, 2.0);
        let i = g.input("i", TensorType::i64(is.clone())).unwrap();
        vals.i("i", is.clone(), idx);
        let y = g.scatter_add(i, u, axis, size).unwrap();
        let y = g.mul(y, y).unwrap();
        check(g, y, &vals, &["u"], seed).map_err(fail(format!("updates {us:?} axis {axis} size {size}")))?;
    }
}
