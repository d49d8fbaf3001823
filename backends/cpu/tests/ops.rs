//! CPU vs interpreter for every op over random shapes (sizes that are not
//! multiples of 4, size-1 dims, broadcasting, every conv/pool attribute).
//! Each property runs the CPU program twice over: JIT (2 threads) and the
//! portable evaluator (1 thread).
//!
//! Tolerances: exact-ish ops (data movement, max, compare) must agree to
//! 1e-6; arithmetic chains 1e-5 relative; GEMM/conv accumulate in f32 in a
//! different order than the interpreter's f64 sums, so they use
//! rtol 1e-4 + atol 1e-4 * sqrt(K) on values of magnitude ~1.

mod common;

use std::collections::BTreeMap;

use common::*;
use kiln_ir::*;
use proptest::prelude::*;

fn cfg() -> ProptestConfig {
    ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() }
}

fn out(g: &mut Graph, name: &str, n: NodeId) {
    g.set_output(name, n).unwrap();
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn unary_ops(seed in any::<u64>()) {
        let mut r = Rng(seed);
        let s = r.shape(4, 9);
        let mut g = Graph::new();
        let x = g.input("x", f32_shape(s.clone())).unwrap();
        let ax = g.abs(x).unwrap();
        let pos = g.add_scalar(ax, 0.25).unwrap();
        for u in UnaryOp::ALL {
            let src = if matches!(u, UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt) { pos } else { x };
            let y = g.unary(u, src).unwrap();
            out(&mut g, u.name(), y);
        }
        check(&g, &random_inputs(&g, seed), 2e-6, 1e-6);
    }

    #[test]
    fn binary_compare_select_broadcasting(seed in any::<u64>()) {
        let mut r = Rng(seed);
        let s = r.shape(4, 9);
        let sb = r.broadcastable(&s);
        let (sa, sb) = if r.bit() { (s, sb) } else { (sb, s) };
        let mut g = Graph::new();
        let a = g.input("a", f32_shape(sa.clone())).unwrap();
        let b = g.input("b", f32_shape(sb.clone())).unwrap();
        for op in BinaryOp::ALL {
            let y = if op == BinaryOp::Pow {
                let aa = g.abs(a).unwrap();
                g.pow(aa, b).unwrap()
            } else {
                g.binary(op, a, b).unwrap()
            };
            out(&mut g, op.name(), y);
        }
        for c in CompareOp::ALL {
            let m = g.compare(c, a, b).unwrap();
            let sel = g.select(m, a, b).unwrap();
            out(&mut g, &format!("sel_{}", c.name()), sel);
            let f = g.cast(m, DType::F32).unwrap();
            out(&mut g, &format!("cast_{}", c.name()), f);
        }
        let m = g.compare(CompareOp::Gt, a, b).unwrap();
        out(&mut g, "mask", m);
        check(&g, &random_inputs(&g, seed), 1e-5, 1e-6);
    }

    #[test]
    fn integer_and_cast_ops(seed in any::<u64>()) {
        let mut r = Rng(seed);
        let s = r.shape(3, 7);
        let mut g = Graph::new();
        let x = g.input("x", f32_shape(s.clone())).unwrap();
        let i = g.cast(x, DType::I64).unwrap();
        let i2 = g.add(i, i).unwrap();
        let n = g.neg(i2).unwrap();
        let mx = g.maximum(n, i).unwrap();
        let back = g.cast(mx, DType::F32).unwrap();
        let i32v = g.cast(x, DType::I32).unwrap();
        let b = g.cast(x, DType::Bool).unwrap();
        let fb = g.cast(b, DType::F32).unwrap();
        let d = g.cast(x, DType::F64).unwrap();
        let d2 = g.mul(d, d).unwrap();
        out(&mut g, "i", mx);
        out(&mut g, "back", back);
        out(&mut g, "i32", i32v);
        out(&mut g, "b", b);
        out(&mut g, "fb", fb);
        out(&mut g, "d2", d2);
        check(&g, &random_inputs(&g, seed), 1e-6, 1e-6);
    }

    #[test]
    fn reductions_and_argmax(seed in any::<u64>()) {
        let mut r = Rng(seed);
        let mut s = r.shape(4, 9);
        if s.is_empty() { s.push(5); }
        let axes: Vec<usize> = (0..s.len()).filter(|_| r.bit()).collect();
        let keep = r.bit();
        let mut g = Graph::new();
        let x = g.input("x", f32_shape(s.clone())).unwrap();
        let e = g.exp(x).unwrap();
        for op in ReduceOp::ALL {
            let y = g.reduce(op, x, &axes, keep).unwrap();
            out(&mut g, op.name(), y);
            let z = g.reduce(op, e, &axes, keep).unwrap();
            out(&mut g, &format!("{}_exp", op.name()), z);
        }
        let ax = r.range(0, s.len() - 1);
        let am = g.argmax(x, ax, keep).unwrap();
        out(&mut g, "argmax", am);
        let xi = g.cast(x, DType::I64).unwrap();
        let si = g.sum(xi, &axes, keep).unwrap();
        out(&mut g, "isum", si);
        check(&g, &random_inputs(&g, seed), 2e-5, 1e-5);
    }

    #[test]
    fn data_movement(seed in any::<u64>()) {
        let mut r = Rng(seed);
        let mut s = r.shape(4, 6);
        if s.is_empty() { s.push(3); }
        let rank = s.len();
        let mut g = Graph::new();
        let x = g.input("x", f32_shape(s.clone())).unwrap();
        let n: usize = s.iter().product();
        let rs = g.reshape(x, [n]).unwrap();
        let rsr = g.relu(rs).unwrap();
        out(&mut g, "reshape_relu", rsr);
        let mut perm: Vec<usize> = (0..rank).collect();
        for i in (1..rank).rev() { let j = r.range(0, i); perm.swap(i, j); }
        let p = g.permute(x, &perm).unwrap();
        out(&mut g, "permute", p);
        let mut big = vec![r.range(1, 3)];
        big.extend(s.iter().map(|&d| if d == 1 { r.range(1, 4) } else { d }));
        let bt = g.broadcast_to(x, big.clone()).unwrap();
        out(&mut g, "broadcast", bt);
        let bt2 = g.broadcast_to(x, big).unwrap();
        let bn = g.neg(bt2).unwrap();
        out(&mut g, "broadcast_neg", bn);
        let start: Vec<usize> = s.iter().map(|&d| r.range(0, d - 1)).collect();
        let end: Vec<usize> = s.iter().zip(&start).map(|(&d, &st)| r.range(st + 1, d)).collect();
        let step: Vec<usize> = s.iter().map(|_| r.range(1, 3)).collect();
        let sl = g.slice(x, &start, &end, &step).unwrap();
        out(&mut g, "slice", sl);
        let axis = r.range(0, rank - 1);
        let mut s2 = s.clone();
        s2[axis] = r.range(1, 4);
        let y = g.input("y", f32_shape(s2)).unwrap();
        let c = g.concat(&[x, y, x], axis).unwrap();
        out(&mut g, "concat", c);
        let lo: Vec<usize> = s.iter().map(|_| r.range(0, 2)).collect();
        let hi: Vec<usize> = s.iter().map(|_| r.range(0, 2)).collect();
        let pd = g.pad(x, &lo, &hi, -1.5).unwrap();
        out(&mut g, "pad", pd);
        let sg = g.stop_gradient(x).unwrap();
        let sgn = g.mul(sg, x).unwrap();
        out(&mut g, "stop_gradient", sgn);
        check(&g, &random_inputs(&g, seed), 1e-6, 1e-6);
    }

    #[test]
    fn matmul_and_dense(seed in any::<u64>()) {
        let mut r = Rng(seed);
        let (m, k, n) = (r.range(1, 13), r.range(1, 17), r.range(1, 11));
        let (ta, tb) = (r.bit(), r.bit());
        let batch = r.shape(2, 3);
        let bb = r.broadcastable(&batch);
        let mut sa = batch.clone();
        sa.extend(if ta { [k, m] } else { [m, k] });
        let mut sb = bb.clone();
        sb.extend(if tb { [n, k] } else { [k, n] });
        let mut g = Graph::new();
        let a = g.input("a", f32_shape(sa)).unwrap();
        let b = g.input("b", f32_shape(sb)).unwrap();
        let y = g.matmul_t(a, b, ta, tb).unwrap();
        out(&mut g, "matmul", y);
        // A dense layer with epilogue: x @ w + bias -> relu (fused by the partition).
        let x = g.input("x", f32_shape([m, k])).unwrap();
        let w = g.input("w", f32_shape([k, n])).unwrap();
        let bias = g.input("bias", f32_shape([n])).unwrap();
        let xw = g.matmul(x, w).unwrap();
        let xb = g.add(xw, bias).unwrap();
        let act = g.relu(xb).unwrap();
        out(&mut g, "dense_relu", act);
        for act in Activation::ALL {
            let tb = r.bit();
            let wt = g.input(&format!("w_{}", act.name()), f32_shape(if tb { [n, k] } else { [k, n] })).unwrap();
            let use_bias = r.bit();
            let mut ops = vec![x, wt];
            if use_bias { ops.push(bias); }
            let d = g.apply(Op::FusedDense { trans_b: tb, bias: use_bias, act }, &ops).unwrap();
            out(&mut g, &format!("fused_dense_{}", act.name()), d);
        }
        let atol = 1e-4 * (k as f64).sqrt();
        check(&g, &random_inputs(&g, seed), 1e-4, atol);
    }

    #[test]
    fn convolutions(seed in any::<u64>()) {
        let mut r = Rng(seed);
        let groups = r.range(1, 2);
        let c = groups * r.range(1, 3);
        let o = groups * r.range(1, 3);
        let (kh, kw) = (r.range(1, 3), r.range(1, 3));
        let attrs = Conv2dAttrs {
            stride: [r.range(1, 2), r.range(1, 2)],
            padding: [r.range(0, 2), r.range(0, 2)],
            dilation: [r.range(1, 2), r.range(1, 2)],
            groups,
        };
        let (h, w) = (r.range(kh * 2, 9), r.range(kw * 2, 9));
        let n = r.range(1, 3);
        let mut g = Graph::new();
        let x = g.input("x", f32_shape([n, c, h, w])).unwrap();
        let wt = g.input("w", f32_shape([o, c / groups, kh, kw])).unwrap();
        let bias = g.input("bias", f32_shape([o])).unwrap();
        let y = g.conv2d(x, wt, attrs).unwrap();
        out(&mut g, "conv", y);
        let yt = g.ty(y).clone();
        let dy = g.input("dy", yt.clone()).unwrap();
        let dx = g.apply(Op::Conv2dGradInput { attrs, input_hw: [h, w] }, &[dy, wt]).unwrap();
        out(&mut g, "grad_input", dx);
        let dw = g.apply(Op::Conv2dGradWeight { attrs, kernel_hw: [kh, kw] }, &[x, dy]).unwrap();
        out(&mut g, "grad_weight", dw);
        for act in Activation::ALL {
            let fc = g.apply(Op::FusedConv2d { attrs, bias: true, act }, &[x, wt, bias]).unwrap();
            out(&mut g, &format!("fused_conv_{}", act.name()), fc);
        }
        let a1 = Conv1dAttrs { stride: attrs.stride[1], padding: attrs.padding[1], dilation: attrs.dilation[1], groups };
        let x1 = g.input("x1", f32_shape([n, c, w])).unwrap();
        let w1 = g.input("w1", f32_shape([o, c / groups, kw])).unwrap();
        let y1 = g.conv1d(x1, w1, a1).unwrap();
        out(&mut g, "conv1d", y1);
        let atol = 2e-4 * ((c * kh * kw * 9) as f64).sqrt();
        check(&g, &random_inputs(&g, seed), 1e-4, atol);
    }

    #[test]
    fn pooling(seed in any::<u64>()) {
        let mut r = Rng(seed);
        let kernel = [r.range(1, 3), r.range(1, 3)];
        let pool = Pool2dAttrs {
            kernel,
            stride: [r.range(1, 3), r.range(1, 3)],
            padding: [r.range(0, kernel[0] / 2), r.range(0, kernel[1] / 2)],
        };
        let (n, c, h, w) = (r.range(1, 2), r.range(1, 3), r.range(kernel[0], 9), r.range(kernel[1], 9));
        let mut g = Graph::new();
        let x = g.input("x", f32_shape([n, c, h, w])).unwrap();
        let mp = g.max_pool2d(x, pool).unwrap();
        out(&mut g, "max", mp);
        let dy = g.input("dy", g.ty(mp).clone()).unwrap();
        let mg = g.apply(Op::MaxPool2dGrad(pool), &[x, dy]).unwrap();
        out(&mut g, "max_grad", mg);
        for incl in [false, true] {
            let ap = g.avg_pool2d(x, pool, incl).unwrap();
            out(&mut g, &format!("avg_{incl}"), ap);
            let ag = g.apply(Op::AvgPool2dGrad { pool, count_include_pad: incl, input_hw: [h, w] }, &[dy]).unwrap();
            out(&mut g, &format!("avg_grad_{incl}"), ag);
        }
        check(&g, &random_inputs(&g, seed), 1e-5, 1e-6);
    }

    #[test]
    fn indexing_random_and_loss(seed in any::<u64>()) {
        let mut r = Rng(seed);
        let (rows, classes) = (r.range(1, 9), r.range(1, 11));
        let axis = r.range(0, 1);
        let mut g = Graph::new();
        let data = g.input("data", f32_shape([rows, classes])).unwrap();
        let ni = r.range(1, 6);
        let bound = if axis == 0 { rows } else { classes };
        let idx = g.input("idx", i64_shape([ni])).unwrap();
        let ga = g.gather(data, idx, axis).unwrap();
        out(&mut g, "gather", ga);
        let upd_shape = if axis == 0 { vec![ni, classes] } else { vec![rows, ni] };
        let upd = g.input("upd", f32_shape(upd_shape)).unwrap();
        let sc = g.scatter_add(idx, upd, axis, bound).unwrap();
        out(&mut g, "scatter", sc);
        let labels = g.input("labels", i64_shape([rows])).unwrap();
        let oh = g.one_hot(labels, classes).unwrap();
        out(&mut g, "one_hot", oh);
        let ce = g.apply(Op::SoftmaxCrossEntropy, &[data, labels]).unwrap();
        out(&mut g, "ce", ce);
        let counter = g.input("counter", i64_shape([])).unwrap();
        let ru = g.random_uniform(counter, [rows, 3], seed % 1000, -1.0, 2.0).unwrap();
        out(&mut g, "random", ru);
        let mut vals = random_inputs(&g, seed);
        vals.insert("idx".into(), HostTensor::from_i64([ni], (0..ni).map(|_| r.range(0, bound - 1) as i64).collect()).unwrap());
        vals.insert("labels".into(), HostTensor::from_i64([rows], (0..rows).map(|_| r.range(0, classes - 1) as i64).collect()).unwrap());
        vals.insert("counter".into(), HostTensor::scalar_i64((seed % 17) as i64));
        check(&g, &vals, 1e-5, 1e-6);
    }
}

#[test]
fn out_of_range_indices_are_errors_naming_the_node() {
    let mut g = Graph::new();
    let data = g.input("data", f32_shape([3, 2])).unwrap();
    let idx = g.input("idx", i64_shape([2])).unwrap();
    let y = g.gather(data, idx, 0).unwrap();
    g.set_output("y", y).unwrap();
    let mut exe = kiln_cpu::CpuBackend::new().compile(&g).unwrap();
    let mut ins = BTreeMap::new();
    ins.insert("data".to_string(), HostTensor::from_f32([3, 2], vec![0.0; 6]).unwrap());
    ins.insert("idx".to_string(), HostTensor::from_i64([2], vec![0, 3]).unwrap());
    let e = exe.run(&ins).unwrap_err();
    assert_eq!(e, RunError::IndexOutOfRange { node: y.to_string(), index: 3, bound: 3 });
}
