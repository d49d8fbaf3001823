//! matmul, fused_dense, argmax and softmax cross-entropy: every shader
//! validates with naga over the attribute combinations, and (where an
//! adapter exists) the device matches the interpreter, forward and
//! backward. Sizes are small (lavapipe) but not multiples of 64.

mod common;
mod lower_common;

use std::collections::BTreeMap;

use kiln_ir::*;
use lower_common::*;

const TOL: f64 = 1e-5;

fn f32s(d: &[usize]) -> TensorType {
    TensorType::new(DType::F32, Shape(d.to_vec()))
}

/// `[.., r, c]` stored transposed when `t`.
fn operand(batch: &[usize], r: usize, c: usize, t: bool) -> TensorType {
    let mut d = batch.to_vec();
    d.extend(if t { [c, r] } else { [r, c] });
    f32s(&d)
}

#[test]
fn matmul_transposes_and_broadcast_batches() {
    // (a batch, b batch), (m, k, n)
    let cases = [
        ((vec![], vec![]), (3, 5, 4)),
        ((vec![2], vec![2]), (1, 7, 3)),
        ((vec![2, 1], vec![3]), (4, 2, 5)),
        ((vec![1], vec![2, 3]), (2, 3, 1)),
        ((vec![], vec![]), (67, 9, 70)),
    ];
    for (i, ((ba, bb), (m, k, n))) in cases.into_iter().enumerate() {
        let mut g = Graph::new();
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = g.input(&format!("a{}{}", ta as u8, tb as u8), operand(&ba, m, k, ta)).unwrap();
            let b = g.input(&format!("b{}{}", ta as u8, tb as u8), operand(&bb, k, n, tb)).unwrap();
            let y = g.matmul_t(a, b, ta, tb).unwrap();
            g.set_output(&format!("y{}{}", ta as u8, tb as u8), y).unwrap();
        }
        lower_expect(&g, "matmul");
        parity(&g, &inputs(&g, i as u64, 1), TOL);
    }
}

#[test]
fn fused_dense_bias_and_activations() {
    for (i, (xd, k, n)) in [(vec![5usize], 7usize, 3usize), (vec![2, 3], 4, 65), (vec![1], 1, 1)].into_iter().enumerate() {
        let mut g = Graph::new();
        let mut xs = xd.clone();
        xs.push(k);
        let x = g.input("x", f32s(&xs)).unwrap();
        let w = g.param("w", f32s(&[k, n])).unwrap();
        let wt = g.param("wt", f32s(&[n, k])).unwrap();
        let b = g.param("b", f32s(&[n])).unwrap();
        for (j, act) in Activation::ALL.into_iter().enumerate() {
            for trans_b in [false, true] {
                let bias = (j + trans_b as usize).is_multiple_of(2);
                let mut ops = vec![x, if trans_b { wt } else { w }];
                if bias {
                    ops.push(b);
                }
                let y = g.apply(Op::FusedDense { trans_b, bias, act }, &ops).unwrap();
                g.set_output(&format!("{}_{}_{}", act.name(), trans_b, bias), y).unwrap();
            }
        }
        lower_expect(&g, "fused_dense");
        parity(&g, &inputs(&g, 10 + i as u64, 1), TOL);
    }
}

#[test]
fn argmax_axes_keepdims_ties_and_nan() {
    let mut g = Graph::new();
    let raw = g.input("x", f32s(&[3, 1, 5, 67])).unwrap();
    // Inputs must be finite: NaNs come from square roots of negatives.
    let x = g.sqrt(raw).unwrap();
    let i = g.input("i", TensorType::new(DType::I64, Shape(vec![4, 6]))).unwrap();
    for axis in 0..4 {
        for keep in [false, true] {
            let y = g.argmax(x, axis, keep).unwrap();
            g.set_output(&format!("x{axis}{keep}"), y).unwrap();
        }
    }
    let y = g.argmax(i, 1, false).unwrap();
    g.set_output("int", y).unwrap();
    let half = g.scalar_f32(0.5).unwrap();
    let mask = g.compare(CompareOp::Gt, raw, half).unwrap();
    let y = g.argmax(mask, 3, true).unwrap();
    g.set_output("bool", y).unwrap();
    lower_expect(&g, "argmax");
    let mut vals = inputs(&g, 4, 3);
    // Ties (a first maximum to find) and NaNs (which win and stop the search).
    let mut v = vals["x"].to_f64_vec();
    for (j, e) in v.iter_mut().enumerate() {
        *e = if matches!(j % 97, 3 | 40) { -1.0 } else { (*e * 4.0).round().abs() };
    }
    vals.insert("x".into(), HostTensor::from_f64_values(&f32s(&[3, 1, 5, 67]), &v));
    parity(&g, &vals, 0.0);
}

/// Logits through a dense layer into the loss, with the gradients of the
/// weight and the input: the backward pass runs matmuls with transposed
/// operands and the softmax-CE gradient.
#[test]
fn softmax_cross_entropy_forward_and_backward() {
    for (i, (rows, classes)) in [(5usize, 3usize), (66, 10), (1, 1)].into_iter().enumerate() {
        let mut g = Graph::new();
        let x = g.input("x", f32s(&[rows, 4])).unwrap();
        let y = g.input("y", TensorType::new(DType::I64, Shape(vec![rows]))).unwrap();
        let w = g.param("w", f32s(&[4, classes])).unwrap();
        let logits = g.matmul(x, w).unwrap();
        let l = g.apply(Op::SoftmaxCrossEntropy, &[logits, y]).unwrap();
        let loss = g.mean_all(l).unwrap();
        let grads = kiln_passes::autodiff::grad(&mut g, loss, &[w, x]).unwrap();
        g.set_output("per_row", l).unwrap();
        g.set_output("loss", loss).unwrap();
        g.set_output("dw", grads[0]).unwrap();
        g.set_output("dx", grads[1]).unwrap();
        lower_expect(&g, "softmax_cross_entropy");
        let mut vals = inputs(&g, 20 + i as u64, classes as u64);
        // Large logits: the row maximum keeps exp finite.
        let xs: Vec<f64> = vals["x"].to_f64_vec().iter().map(|v| v * 40.0).collect();
        vals.insert("x".into(), HostTensor::from_f64_values(&f32s(&[rows, 4]), &xs));
        parity(&g, &vals, TOL);
    }
}

/// A NaN logit (a square root of a negative input) makes its row's loss
/// NaN; rows of -inf and +inf logits too, as in the interpreter.
#[test]
fn softmax_cross_entropy_nan_and_infinite_logits() {
    let mut g = Graph::new();
    let x = g.input("x", f32s(&[4, 3])).unwrap();
    let y = g.input("y", TensorType::new(DType::I64, Shape(vec![4]))).unwrap();
    let r = g.sqrt(x).unwrap();
    let l = g.apply(Op::SoftmaxCrossEntropy, &[r, y]).unwrap();
    g.set_output("l", l).unwrap();
    let big = g.mul_scalar(x, 1e30).unwrap();
    let inf = g.mul(big, big).unwrap();
    let li = g.apply(Op::SoftmaxCrossEntropy, &[inf, y]).unwrap();
    g.set_output("inf", li).unwrap();
    let mut vals = BTreeMap::new();
    vals.insert("x".to_string(), HostTensor::from_f32([4, 3], vec![1.0, 4.0, 9.0, 1.0, -1.0, 2.0, 0.0, 0.0, 0.0, 2.0, 3.0, 5.0]).unwrap());
    vals.insert("y".to_string(), HostTensor::from_i64([4], vec![2, 0, 1, 1]).unwrap());
    parity(&g, &vals, TOL);
}

#[test]
fn bad_labels_fail_like_the_interpreter() {
    let mut g = Graph::new();
    let x = g.input("x", f32s(&[4, 3])).unwrap();
    let y = g.input("y", TensorType::new(DType::I32, Shape(vec![4]))).unwrap();
    let l = g.apply(Op::SoftmaxCrossEntropy, &[x, y]).unwrap();
    g.set_output("l", l).unwrap();
    let runs: Vec<_> = [vec![0.0, 3.0, -1.0, 2.0], vec![1.0, 2.0, 0.0, -5.0]]
        .into_iter()
        .map(|labels| {
            let mut vals = BTreeMap::new();
            vals.insert("x".to_string(), HostTensor::from_f32([4, 3], vec![0.5; 12]).unwrap());
            vals.insert("y".to_string(), HostTensor::from_f64_values(g.ty(y), &labels));
            vals
        })
        .collect();
    same_errors(&g, &runs);
}

/// Gradients of a batched product whose weight broadcasts over the batch
/// (the backward pass sums the per-batch products) and of fused dense
/// layers with bias and each activation.
#[test]
fn matmul_and_fused_dense_backward() {
    let mut g = Graph::new();
    let x = g.input("x", f32s(&[2, 3, 4])).unwrap();
    let w = g.param("w", f32s(&[4, 5])).unwrap();
    let b = g.param("b", f32s(&[6])).unwrap();
    let h = g.matmul(x, w).unwrap();
    let mut wrt = vec![x, w, b];
    let mut loss = None;
    for act in [Activation::Tanh, Activation::Sigmoid, Activation::Relu] {
        let v = g.param(&format!("v_{}", act.name()), f32s(&[6, 5])).unwrap();
        wrt.push(v);
        let y = g.apply(Op::FusedDense { trans_b: true, bias: true, act }, &[h, v, b]).unwrap();
        let s = g.sum_all(y).unwrap();
        g.set_output(&format!("y_{}", act.name()), s).unwrap();
        loss = Some(match loss {
            Some(l) => g.add(l, s).unwrap(),
            None => s,
        });
    }
    let grads = kiln_passes::autodiff::grad(&mut g, loss.unwrap(), &wrt).unwrap();
    for (i, d) in grads.into_iter().enumerate() {
        g.set_output(&format!("d{i}"), d).unwrap();
    }
    lower_expect(&g, "matmul");
    parity(&g, &inputs(&g, 31, 1), TOL);
}
