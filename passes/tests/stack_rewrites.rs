//! Differential tests of the sum-regrouping passes (`slab_concat`,
//! `row_stack`): unrolled recurrent cells of random sizes, differentiated,
//! give the same gradients with and without the passes on the reference
//! interpreter. `slab_concat` alone is exact (values compare equal; only
//! the sign of a zero may differ) when every term of a rewritten sum is a
//! slab; `row_stack` reassociates, so it is held to a tolerance. The golden
//! cases of both passes are checked the same way.

mod common;

use std::collections::BTreeMap;

use kiln_ir::{f32_shape, Graph, HostTensor, NodeId, Op};
use common::Rng;
use kiln_passes::{PassCx, PassManager};
use proptest::prelude::*;

fn random_inputs(g: &Graph, seed: u64) -> BTreeMap<String, HostTensor> {
    let mut rng = Rng(seed | 1);
    g.inputs()
        .into_iter()
        .map(|(id, name, _)| {
            let ty = g.ty(id).clone();
            let v: Vec<f64> = (0..ty.numel()).map(|_| 2.0 * rng.next() - 1.0).collect();
            (name.to_string(), HostTensor::from_f64_values(&ty, &v))
        })
        .collect()
}

/// How one random recurrent cell is shaped and read.
#[derive(Debug, Clone)]
struct Cell {
    t: usize,
    b: usize,
    i: usize,
    h: usize,
    gates: usize,
    /// Time steps in the order the cell reads them: any subset, so the
    /// input projection's gradient may have gaps.
    steps: Vec<usize>,
    /// Whether the loss also reads the whole input projection, so its
    /// gradient sum has a term that is not a slab.
    read_all: bool,
}

fn cell() -> impl Strategy<Value = Cell> {
    (1usize..6, 1usize..4, 1usize..4, 1usize..4, 1usize..5, any::<u64>(), any::<bool>(), any::<bool>()).prop_map(
        |(t, b, i, h, gates, pick, reverse, read_all)| {
            let mut steps: Vec<usize> = (0..t).filter(|s| pick >> s & 1 == 1 || *s == 0).collect();
            if reverse {
                steps.reverse();
            }
            Cell { t, b, i, h, gates, steps, read_all }
        },
    )
}

const WRT: [&str; 5] = ["x", "h0", "w_ih", "w_hh", "b"];

/// The cell's graph with a grad request for every input.
fn build(c: &Cell) -> Graph {
    let gh = c.gates * c.h;
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([c.t, c.b, c.i])).unwrap();
    let mut h = g.input("h0", f32_shape([c.b, c.h])).unwrap();
    let w_ih = g.param("w_ih", f32_shape([gh, c.i])).unwrap();
    let w_hh = g.param("w_hh", f32_shape([gh, c.h])).unwrap();
    let bias = g.param("b", f32_shape([gh])).unwrap();
    let xw = g.matmul_t(x, w_ih, false, true).unwrap();
    let xw = g.add(xw, bias).unwrap();
    for &s in &c.steps {
        let xt = g.slice_axis(xw, 0, s, s + 1).unwrap();
        let xt = g.reshape(xt, [c.b, gh]).unwrap();
        let hw = g.matmul_t(h, w_hh, false, true).unwrap();
        let hw = g.add(hw, bias).unwrap();
        let a = g.add(xt, hw).unwrap();
        let mut next: Option<NodeId> = None;
        for k in 0..c.gates {
            let z = g.slice_axis(a, 1, k * c.h, (k + 1) * c.h).unwrap();
            let act = if k % 2 == 0 { g.tanh(z).unwrap() } else { g.sigmoid(z).unwrap() };
            next = Some(match next {
                None => act,
                Some(p) => g.mul(p, act).unwrap(),
            });
        }
        h = next.unwrap();
    }
    let mut loss = g.sum_all(h).unwrap();
    if c.read_all {
        let all = g.sum_all(xw).unwrap();
        let all = g.mul_scalar(all, 0.5).unwrap();
        loss = g.add(loss, all).unwrap();
    }
    let wrt: Vec<NodeId> = WRT.iter().map(|n| g.find_input(n).unwrap()).collect();
    g.add_grad_request(loss, wrt).unwrap();
    g
}

fn run_passes(g: &Graph, passes: &[&str]) -> Graph {
    let mut g = g.clone();
    PassManager::from_names(passes).unwrap().run(&mut g, &mut PassCx::new()).unwrap();
    g
}

fn live_count(g: &Graph, f: impl Fn(&Op) -> bool) -> usize {
    g.live_nodes().into_iter().filter(|&id| f(g.op(id))).count()
}

/// Every output of `after` matches `before`: exactly (as numbers) when
/// `tol` is zero, else within `tol` relative plus `tol` absolute.
fn compare(before: &Graph, after: &Graph, tol: f64) -> Result<(), String> {
    for seed in [3u64, 77] {
        let vals = random_inputs(before, seed);
        let p = kiln_interp::Precision::F32;
        let r0 = kiln_interp::run_graph_full(before, &vals, p).map_err(|e| format!("before: {e}"))?;
        let r1 = kiln_interp::run_graph_full(after, &vals, p).map_err(|e| format!("after: {e}"))?;
        if r0.outputs.keys().ne(r1.outputs.keys()) {
            return Err("the outputs differ by name".into());
        }
        for (k, v) in &r0.outputs {
            let w = &r1.outputs[k];
            if v.ty() != w.ty() {
                return Err(format!("`{k}`: {} vs {}", v.ty(), w.ty()));
            }
            for (i, (p, q)) in v.to_f64_vec().iter().zip(w.to_f64_vec()).enumerate() {
                if !(*p == q || (p - q).abs() <= tol * (1.0 + p.abs())) {
                    return Err(format!("`{k}` element {i}: {p} vs {q}\n{}", kiln_ir::text::print(after)));
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn slab_concat_is_exact_when_every_term_is_a_slab(c in cell()) {
        let c = Cell { read_all: false, ..c };
        let g = build(&c);
        let before = run_passes(&g, &["autodiff", "dce"]);
        let after = run_passes(&g, &["autodiff", "slab_concat", "dce"]);
        compare(&before, &after, 0.0).map_err(|e| TestCaseError::fail(format!("{c:?}: {e}")))?;
        // Every sum of several slabs (the gates of a step, the steps of
        // the sequence) is one concat; only a lone step's pad is left.
        let lone = c.steps.len() == 1 && c.t > 1;
        prop_assert_eq!(live_count(&after, |op| matches!(op, Op::Pad { .. })), usize::from(lone), "{:?}", c);
        let sums = c.steps.len() * usize::from(c.gates > 1) + usize::from(c.steps.len() > 1);
        prop_assert_eq!(live_count(&after, |op| matches!(op, Op::Concat { .. })), sums, "{:?}", c);
    }

    #[test]
    fn stacked_sums_match_the_original_within_tolerance(c in cell()) {
        let g = build(&c);
        let before = run_passes(&g, &["autodiff", "dce"]);
        let after = run_passes(&g, &["autodiff", "cse", "slab_concat", "row_stack", "dce"]);
        compare(&before, &after, 1e-5).map_err(|e| TestCaseError::fail(format!("{c:?}: {e}")))?;
        // Several steps: the recurrent weight's gradient is one product
        // when that pays (its new concats copy at most 3 (T-1) times the
        // weight's size). Without gaps the gate gradients' stack is the
        // input projection's and only the hidden states are copied.
        let (t, gh) = (c.steps.len(), c.gates * c.h);
        let copies = t * c.b * c.h + if t == c.t { 0 } else { t * c.b * gh };
        let pays = t > 1 && copies <= 3 * (t - 1) * gh * c.h;
        let gw = after.output("grad.w_hh").unwrap();
        // (One step: one product to begin with.)
        prop_assert_eq!(after.op(gw) == &(Op::MatMul { trans_a: true, trans_b: false }), pays || t == 1, "{:?}", c);
        if pays {
            prop_assert_eq!(after.ty(after.operands(gw)[0]).shape.0[0], t * c.b);
        }
    }
}

/// The golden cases of both passes keep their values with the passes and
/// without them (the other passes of the header run in both).
#[test]
fn every_golden_case_keeps_its_values() {
    let mine = ["slab_concat", "row_stack"];
    let mut n = 0;
    for dir in mine {
        for f in common::golden::case_files(dir) {
            let text = std::fs::read_to_string(&f).unwrap();
            let case = common::GoldenCase::parse(&f, &text).unwrap();
            let g0 = kiln_ir::text::parse(&case.input, &f.display().to_string()).unwrap();
            let without: Vec<&str> = case.passes.iter().map(String::as_str).filter(|p| !mine.contains(p)).collect();
            let with: Vec<&str> = case.passes.iter().map(String::as_str).collect();
            let before = run_passes(&g0, &without);
            let after = run_passes(&g0, &with);
            compare(&before, &after, 1e-5).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            n += 1;
        }
    }
    assert!(n >= 5, "expected the golden cases of both passes, found {n}");
}
