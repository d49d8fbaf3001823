//! The e-graph pass on a LeNet-5 training step (forward, cross-entropy,
//! autodiff backward, SGD updates): fusions happen where they pay, the
//! optimized step computes the same loss and updates, and the pass's time
//! is printed (`--nocapture`), never asserted.

mod common;

use std::collections::BTreeMap;

use kiln_ir::{f32_shape, i64_shape, Conv2dAttrs, Graph, HostTensor, NodeId, Op, Pool2dAttrs};
use kiln_passes::egraph::{optimize, EGraphConfig};
use kiln_passes::{PassCx, PassManager};

fn conv(g: &mut Graph, x: NodeId, w: NodeId, b: NodeId, pad: usize) -> NodeId {
    let attrs = Conv2dAttrs { padding: [pad, pad], ..Default::default() };
    let y = g.conv2d(x, w, attrs).unwrap();
    let o = g.ty(b).shape.0[0];
    let b4 = g.reshape(b, [1, o, 1, 1]).unwrap();
    g.add(y, b4).unwrap()
}

fn linear(g: &mut Graph, x: NodeId, w: NodeId, b: NodeId) -> NodeId {
    let y = g.matmul(x, w).unwrap();
    g.add(y, b).unwrap()
}

/// LeNet-5 on `[n,1,28,28]`, the loss written as log-softmax + one-hot NLL
/// the way a facade might emit it, differentiated and updated with SGD.
fn lenet_train_step(n: usize) -> Graph {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([n, 1, 28, 28])).unwrap();
    let labels = g.input("y", i64_shape([n])).unwrap();
    let shapes: [(&str, Vec<usize>); 10] = [
        ("c1.w", vec![6, 1, 5, 5]),
        ("c1.b", vec![6]),
        ("c2.w", vec![16, 6, 5, 5]),
        ("c2.b", vec![16]),
        ("f1.w", vec![400, 120]),
        ("f1.b", vec![120]),
        ("f2.w", vec![120, 84]),
        ("f2.b", vec![84]),
        ("f3.w", vec![84, 10]),
        ("f3.b", vec![10]),
    ];
    let p: Vec<NodeId> = shapes.iter().map(|(name, s)| g.param(name, f32_shape(s.clone())).unwrap()).collect();
    let pool = Pool2dAttrs { kernel: [2, 2], stride: [2, 2], padding: [0, 0] };
    let h = conv(&mut g, x, p[0], p[1], 2);
    let h = g.relu(h).unwrap();
    let h = g.max_pool2d(h, pool).unwrap();
    let h = conv(&mut g, h, p[2], p[3], 0);
    let h = g.relu(h).unwrap();
    let h = g.max_pool2d(h, pool).unwrap();
    let h = g.reshape(h, [n, 400]).unwrap();
    let h = linear(&mut g, h, p[4], p[5]);
    let h = g.relu(h).unwrap();
    let h = linear(&mut g, h, p[6], p[7]);
    let h = g.relu(h).unwrap();
    let logits = linear(&mut g, h, p[8], p[9]);
    // Cross-entropy as log-softmax + NLL.
    let m = g.reduce_max(logits, &[1], true).unwrap();
    let m = g.stop_gradient(m).unwrap();
    let s = g.sub(logits, m).unwrap();
    let e = g.exp(s).unwrap();
    let se = g.sum(e, &[1], true).unwrap();
    let lse = g.log(se).unwrap();
    let lsm = g.sub(s, lse).unwrap();
    let oh = g.one_hot(labels, 10).unwrap();
    let picked = g.mul(lsm, oh).unwrap();
    let picked = g.sum(picked, &[1], false).unwrap();
    let nll = g.neg(picked).unwrap();
    let loss = g.mean_all(nll).unwrap();
    g.set_output("loss", loss).unwrap();
    g.add_grad_request(loss, p.clone()).unwrap();
    PassManager::from_names(&["autodiff"]).unwrap().run(&mut g, &mut PassCx::new()).unwrap();
    for (name, _) in &shapes {
        let grad = g.output(&format!("grad.{name}")).unwrap();
        g.remove_output(&format!("grad.{name}"));
        let w = g.find_input(name).unwrap();
        let step = g.mul_scalar(grad, 0.01).unwrap();
        let new = g.sub(w, step).unwrap();
        g.set_update(name, new).unwrap();
    }
    g
}

fn count(g: &Graph, f: impl Fn(&Op) -> bool) -> usize {
    let live = g.live_nodes();
    live.iter().filter(|&&id| f(g.op(id))).count()
}

#[test]
fn lenet_training_step_fuses_and_keeps_its_numbers() {
    let g0 = lenet_train_step(2);
    let mut g = g0.clone();
    let mut cx = PassCx::new().with_evaluator(common::InterpEvaluator);
    PassManager::from_names(&["egraph", "dce"]).unwrap().run(&mut g, &mut cx).unwrap();
    // Every conv and every hidden linear layer fuses its bias and ReLU: the
    // backward masks read the activations (relu-mask-from-output).
    let fused_relu = count(&g, |op| matches!(op, Op::FusedConv2d { act: kiln_ir::Activation::Relu, bias: true, .. }));
    let dense_relu = count(&g, |op| matches!(op, Op::FusedDense { act: kiln_ir::Activation::Relu, bias: true, .. }));
    assert_eq!((fused_relu, dense_relu), (2, 2), "{}", kiln_ir::text::print(&g));
    assert_eq!(count(&g, |op| matches!(op, Op::Conv2d(_))), 0);

    // Same loss and same updated parameters on random data.
    let mut rng = 12345u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut vals = BTreeMap::new();
    for (id, name, _) in g0.inputs() {
        let ty = g0.ty(id).clone();
        let v: Vec<f64> = if name == "y" {
            (0..ty.numel()).map(|_| (next() * 10.0).floor().min(9.0)).collect()
        } else {
            (0..ty.numel()).map(|_| next() * 0.6 - 0.3).collect()
        };
        vals.insert(name.to_string(), HostTensor::from_f64_values(&ty, &v));
    }
    let p = kiln_interp::Precision::F32;
    let r0 = kiln_interp::run_graph_full(&g0, &vals, p).unwrap();
    let r1 = kiln_interp::run_graph_full(&g, &vals, p).unwrap();
    for (k, v) in r0.outputs.iter().chain(&r0.updates) {
        let w = r1.outputs.get(k).or_else(|| r1.updates.get(k)).unwrap();
        for (a, b) in v.to_f64_vec().iter().zip(w.to_f64_vec()) {
            assert!((a - b).abs() <= 1e-4 * a.abs().max(b.abs()) + 1e-5, "`{k}`: {a} vs {b}");
        }
    }
}

#[test]
fn lenet_batch64_timing_and_report() {
    let mut g = lenet_train_step(64);
    let start = std::time::Instant::now();
    let r = optimize(&mut g, &EGraphConfig::default(), None).unwrap();
    let t = start.elapsed();
    println!("{r}");
    println!("egraph pass on the LeNet-5 batch-64 training step: {:.1} ms", t.as_secs_f64() * 1e3);
    assert!(r.changed);
    assert!(r.cost_after < r.cost_before);
    kiln_ir::verify(&g).unwrap();
}

/// An LSTM unrolled over 16 steps (hidden 32), differentiated: a graph of a
/// few thousand nodes. Prints the pass's time and checks the result is
/// valid and not more expensive.
#[test]
fn unrolled_lstm_training_step_timing() {
    let (t_len, n, d, h) = (16usize, 8usize, 16usize, 32usize);
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([t_len, n, d])).unwrap();
    let wx = g.param("wx", f32_shape([4 * h, d])).unwrap();
    let wh = g.param("wh", f32_shape([4 * h, h])).unwrap();
    let b = g.param("b", f32_shape([4 * h])).unwrap();
    let mut hs = g.constant(HostTensor::from_f32([n, h], vec![0.0; n * h]).unwrap()).unwrap();
    let mut cs = hs;
    for t in 0..t_len {
        let xt = g.slice_axis(x, 0, t, t + 1).unwrap();
        let xt = g.reshape(xt, [n, d]).unwrap();
        let a = g.matmul_t(xt, wx, false, true).unwrap();
        let r = g.matmul_t(hs, wh, false, true).unwrap();
        let z = g.add(a, r).unwrap();
        let z = g.add(z, b).unwrap();
        let gate = |g: &mut Graph, k: usize| g.slice_axis(z, 1, k * h, (k + 1) * h).unwrap();
        let (i, f, c_in, o) = (gate(&mut g, 0), gate(&mut g, 1), gate(&mut g, 2), gate(&mut g, 3));
        let i = g.sigmoid(i).unwrap();
        let f = g.sigmoid(f).unwrap();
        let c_in = g.tanh(c_in).unwrap();
        let o = g.sigmoid(o).unwrap();
        let fc = g.mul(f, cs).unwrap();
        let ic = g.mul(i, c_in).unwrap();
        cs = g.add(fc, ic).unwrap();
        let tc = g.tanh(cs).unwrap();
        hs = g.mul(o, tc).unwrap();
    }
    let sq = g.mul(hs, hs).unwrap();
    let loss = g.mean_all(sq).unwrap();
    g.set_output("loss", loss).unwrap();
    g.add_grad_request(loss, vec![wx, wh, b]).unwrap();
    PassManager::from_names(&["autodiff"]).unwrap().run(&mut g, &mut PassCx::new()).unwrap();
    let before = g.clone();
    let nodes = g.live_nodes().len();
    let start = std::time::Instant::now();
    let r = optimize(&mut g, &EGraphConfig::default(), None).unwrap();
    let t = start.elapsed();
    println!("{r}");
    println!("egraph pass on an unrolled LSTM training step ({nodes} live nodes): {:.1} ms", t.as_secs_f64() * 1e3);
    kiln_ir::verify(&g).unwrap();
    assert!(r.cost_after <= r.cost_before);

    let mut vals = BTreeMap::new();
    for (id, name, _) in before.inputs() {
        let ty = before.ty(id).clone();
        let v: Vec<f64> = (0..ty.numel()).map(|k| ((k * 7919 + name.len()) % 97) as f64 / 97.0 - 0.5).collect();
        vals.insert(name.to_string(), HostTensor::from_f64_values(&ty, &v));
    }
    let p = kiln_interp::Precision::F32;
    let r0 = kiln_interp::run_graph_full(&before, &vals, p).unwrap();
    let r1 = kiln_interp::run_graph_full(&g, &vals, p).unwrap();
    for (k, v) in &r0.outputs {
        for (a, b) in v.to_f64_vec().iter().zip(r1.outputs[k].to_f64_vec()) {
            assert!((a - b).abs() <= 1e-4 * a.abs().max(b.abs()) + 1e-6, "`{k}`: {a} vs {b}");
        }
    }
}
