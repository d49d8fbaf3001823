//! Second order: the gradient graph is an ordinary graph, so differentiating
//! `<grad L, v>` again gives the Hessian-vector product H v. Each case checks
//! H v against central differences of the (first-order) gradient along v:
//! `(grad L(p + h v) - grad L(p - h v)) / 2h`, all in f64 with the reference
//! interpreter. h = 1e-5: truncation ~1e-10, rounding ~1e-11; tolerance
//! `1e-6 + 1e-5 |numeric|`.

#[path = "gradcheck/support.rs"]
mod support;

use std::collections::BTreeMap;

use kiln_interp::{run_graph, Precision};
use kiln_ir::{Activation, Conv2dAttrs, Graph, HostTensor, NodeId, Op, Pool2dAttrs, TensorType};
use kiln_passes::autodiff::grad;
use proptest::prelude::*;
use support::{input, stress, Inputs, Rng};

const H: f64 = 1e-5;

/// Checks H v for the loss `loss` of `g` w.r.t. the named inputs, with a
/// random direction v.
fn hvp_check(mut g: Graph, loss: NodeId, vals: &Inputs, wrt: &[&str], seed: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed ^ 0xABCD);
    let ids: Vec<NodeId> = wrt.iter().map(|n| g.find_input(n).unwrap()).collect();
    let grads = grad(&mut g, loss, &ids).map_err(|e| format!("first grad: {e}"))?;
    let mut first = g.clone();
    for (i, &gi) in grads.iter().enumerate() {
        first.set_output(&format!("g{i}"), gi).unwrap();
    }

    // s = sum_i <grad_i, v_i> with v_i constants; grad of s is H v.
    let mut dirs = Vec::new();
    let mut s: Option<NodeId> = None;
    for (&id, &gi) in ids.iter().zip(&grads) {
        let ty = g.ty(id).clone();
        let v = rng.vec(ty.numel(), -1.0, 1.0);
        let vc = g.constant(HostTensor::from_f64_values(&ty, &v)).unwrap();
        dirs.push(v);
        let p = g.mul(gi, vc).unwrap();
        let p = g.sum_all(p).unwrap();
        s = Some(match s {
            None => p,
            Some(acc) => g.add(acc, p).unwrap(),
        });
    }
    let hv = grad(&mut g, s.unwrap(), &ids).map_err(|e| format!("second grad: {e}"))?;
    for (i, &h) in hv.iter().enumerate() {
        g.set_output(&format!("hv{i}"), h).unwrap();
    }
    let got = run_graph(&g, &vals.0, Precision::F64).map_err(|e| format!("H v graph: {e}\n{}", kiln_ir::text::print(&g)))?;

    let at = |sign: f64| -> Result<BTreeMap<String, HostTensor>, String> {
        let mut vv = vals.0.clone();
        for (name, v) in wrt.iter().zip(&dirs) {
            let t = &vals.0[*name];
            let moved: Vec<f64> = t.to_f64_vec().iter().zip(v).map(|(x, d)| x + sign * H * d).collect();
            vv.insert(name.to_string(), HostTensor::from_f64(t.shape().clone(), moved).unwrap());
        }
        run_graph(&first, &vv, Precision::F64).map_err(|e| e.to_string())
    };
    let (plus, minus) = (at(1.0)?, at(-1.0)?);
    for (i, name) in wrt.iter().enumerate() {
        let key = format!("g{i}");
        let (p, m) = (plus[&key].to_f64_vec(), minus[&key].to_f64_vec());
        let a = got[&format!("hv{i}")].to_f64_vec();
        for k in 0..a.len() {
            let numeric = (p[k] - m[k]) / (2.0 * H);
            let close = (a[k] - numeric).abs() <= 1e-6 + 1e-5 * numeric.abs();
            if !close {
                return Err(format!("(H v)[{name}][{k}]: autodiff {:.9e}, finite differences {numeric:.9e}", a[k]));
            }
        }
    }
    Ok(())
}

fn cfg() -> ProptestConfig {
    ProptestConfig { cases: 10 * stress(), failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(cfg())]

    /// An MLP-like function of elementwise ops and batched matmuls.
    #[test]
    fn elementwise_and_matmul(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (b, m, k, n) = (1 + rng.below(2), 1 + rng.below(3), 1 + rng.below(3), 1 + rng.below(3));
        let tb = rng.below(2) == 1;
        let mut g = Graph::new();
        let mut vals = Inputs::new();
        let a = input(&mut g, &mut vals, &mut rng, "a", &[b, m, k], -1.0, 1.0);
        let w = input(&mut g, &mut vals, &mut rng, "w", &if tb { [n, k] } else { [k, n] }, -1.0, 1.0);
        let c = input(&mut g, &mut vals, &mut rng, "c", &[n], 0.5, 1.5);
        let z = g.matmul_t(a, w, false, tb).unwrap();
        let t = g.tanh(z).unwrap();
        let s = g.sigmoid(z).unwrap();
        let p = g.mul(t, s).unwrap();
        let q = g.div(p, c).unwrap();
        let e = g.exp(q).unwrap();
        let sq = g.mul(z, z).unwrap();
        let one = g.scalar_f32(1.0).unwrap();
        let l1 = g.add(sq, one).unwrap();
        let l = g.log(l1).unwrap();
        let r = g.add(e, l).unwrap();
        // A second matmul with the transposed activations (a Gram matrix).
        let gram = g.matmul_t(r, r, true, false).unwrap();
        let loss = g.sum_all(gram).unwrap();
        hvp_check(g, loss, &vals, &["a", "w", "c"], seed).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn fused_dense_and_softmax_cross_entropy(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (n, k, c) = (1 + rng.below(3), 1 + rng.below(3), 2 + rng.below(3));
        let act = Activation::ALL[rng.below(4)];
        let mut g = Graph::new();
        let mut vals = Inputs::new();
        let x = input(&mut g, &mut vals, &mut rng, "x", &[n, k], -1.0, 1.0);
        let w = input(&mut g, &mut vals, &mut rng, "w", &[k, c], -1.0, 1.0);
        let bias = input(&mut g, &mut vals, &mut rng, "b", &[c], -0.5, 0.5);
        let labels = g.input("labels", TensorType::i64([n])).unwrap();
        vals.i("labels", [n], (0..n).map(|_| rng.below(c) as i64).collect());
        let z = g.apply(Op::FusedDense { trans_b: false, bias: true, act }, &[x, w, bias]).unwrap();
        let xe = g.apply(Op::SoftmaxCrossEntropy, &[z, labels]).unwrap();
        let loss = g.mean_all(xe).unwrap();
        hvp_check(g, loss, &vals, &["x", "w", "b"], seed)
            .map_err(|e| TestCaseError::fail(format!("act {}: {e}", act.name())))?;
    }

    /// Second order through conv2d and both poolings (their gradient ops'
    /// VJPs), with stride, padding, dilation and groups.
    #[test]
    fn conv_and_pooling(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let groups = 1 + rng.below(2);
        let attrs = Conv2dAttrs { stride: [1 + rng.below(2), 1], padding: [rng.below(2), 1], dilation: [1, 1 + rng.below(2)], groups };
        let mut g = Graph::new();
        let mut vals = Inputs::new();
        let x = input(&mut g, &mut vals, &mut rng, "x", &[1, 2 * groups, 5, 5], -1.0, 1.0);
        let w = input(&mut g, &mut vals, &mut rng, "w", &[2 * groups, 2, 2, 2], -1.0, 1.0);
        let y = g.conv2d(x, w, attrs).unwrap();
        let t = g.tanh(y).unwrap();
        let p = Pool2dAttrs { kernel: [2, 2], stride: [1, 1], padding: [1, 0] };
        let mp = g.max_pool2d(t, p).unwrap();
        let ap = g.avg_pool2d(t, p, rng.below(2) == 1).unwrap();
        let prod = g.mul(mp, ap).unwrap();
        let sq = g.mul(prod, prod).unwrap();
        let loss = g.sum_all(sq).unwrap();
        hvp_check(g, loss, &vals, &["x", "w"], seed).map_err(|e| TestCaseError::fail(format!("{attrs:?}: {e}")))?;
    }
}

/// A Hessian with a known closed form: L = sum(a^3) / 3 + sum(a * b), so
/// H v = [2 a v_a + v_b ; v_a] elementwise.
#[test]
fn closed_form_hessian() {
    let mut g = Graph::new();
    let a = g.input("a", support::f32t(&[3])).unwrap();
    let b = g.input("b", support::f32t(&[3])).unwrap();
    let three = g.scalar_f32(3.0).unwrap();
    let cube = g.pow(a, three).unwrap();
    let c = g.sum_all(cube).unwrap();
    let c = g.mul_scalar(c, 1.0 / 3.0).unwrap();
    let ab = g.mul(a, b).unwrap();
    let ab = g.sum_all(ab).unwrap();
    let loss = g.add(c, ab).unwrap();
    let gr = grad(&mut g, loss, &[a, b]).unwrap();
    let (va, vb): ([f64; 3], [f64; 3]) = ([1.0, -2.0, 0.5], [0.25, 1.0, -1.0]);
    let ca = g.constant(HostTensor::from_f32([3], va.map(|v| v as f32).to_vec()).unwrap()).unwrap();
    let cb = g.constant(HostTensor::from_f32([3], vb.map(|v| v as f32).to_vec()).unwrap()).unwrap();
    let pa = g.mul(gr[0], ca).unwrap();
    let pb = g.mul(gr[1], cb).unwrap();
    let s = g.add(pa, pb).unwrap();
    let s = g.sum_all(s).unwrap();
    let hv = grad(&mut g, s, &[a, b]).unwrap();
    g.set_output("hva", hv[0]).unwrap();
    g.set_output("hvb", hv[1]).unwrap();
    let av: [f64; 3] = [1.5, -0.5, 2.0];
    let vals = BTreeMap::from([
        ("a".to_string(), HostTensor::from_f64([3], av.to_vec()).unwrap()),
        ("b".to_string(), HostTensor::from_f64([3], vec![0.3, 0.2, 0.1]).unwrap()),
    ]);
    let out = run_graph(&g, &vals, Precision::F64).unwrap();
    let (hva, hvb) = (out["hva"].to_f64_vec(), out["hvb"].to_f64_vec());
    for i in 0..3 {
        let want_a = 2.0 * av[i] * va[i] + vb[i];
        assert!((hva[i] - want_a).abs() < 1e-6, "hva[{i}] = {}, want {want_a}", hva[i]);
        assert!((hvb[i] - va[i]).abs() < 1e-12, "hvb[{i}] = {}, want {}", hvb[i], va[i]);
    }
}
