//! Convolution and pooling on the device against the f32 interpreter, on
//! random inputs, for every attribute: forward and gradient ops in one
//! graph per geometry (one compile each: lavapipe is slow). Max pooling
//! also on ties, all-negative inputs under padding (padding is -inf, not
//! 0) and NaN.

mod common;
#[path = "shared/conv_pool_graphs.rs"]
mod conv_pool_graphs;

use std::collections::BTreeMap;

use conv_pool_graphs::{attrs, conv_family, pool_family};
use kiln_ir::*;

const TOL: f64 = 1e-5;

fn rand(ty: &TensorType, seed: u64) -> HostTensor {
    HostTensor::from_f32(ty.shape.clone(), common::values(ty.numel(), seed)).unwrap()
}

/// Random values for every input and param of `g`, split as the runner
/// wants them.
fn random_io(g: &Graph, seed: u64) -> (BTreeMap<String, HostTensor>, BTreeMap<String, HostTensor>) {
    let (mut inputs, mut state) = (BTreeMap::new(), BTreeMap::new());
    for (i, (id, name, role)) in g.inputs().into_iter().enumerate() {
        let t = rand(g.ty(id), seed * 31 + i as u64);
        if role.is_persistent() { state.insert(name.to_string(), t) } else { inputs.insert(name.to_string(), t) };
    }
    (inputs, state)
}

/// [`conv_family`] on random values against the interpreter.
fn conv_case(x: [usize; 4], o: usize, k: [usize; 2], a: Conv2dAttrs, seed: u64) {
    let (g, _) = conv_family(x, o, k, a);
    let (inputs, state) = random_io(&g, seed);
    common::assert_matches_interp(&g, &inputs, &state, TOL);
}

#[test]
fn conv2d_matches_the_interpreter() {
    if !common::gpu() {
        return;
    }
    conv_case([2, 3, 7, 6], 4, [3, 3], Conv2dAttrs::default(), 1);
    conv_case([2, 3, 11, 9], 5, [3, 2], attrs([2, 3], [1, 2], [2, 1], 1), 2);
    conv_case([1, 2, 8, 13], 3, [1, 4], attrs([3, 1], [0, 3], [1, 3], 1), 3);
}

#[test]
fn grouped_and_depthwise_conv2d_match_the_interpreter() {
    if !common::gpu() {
        return;
    }
    conv_case([2, 4, 6, 7], 6, [3, 3], attrs([1, 2], [1, 1], [1, 1], 2), 4);
    conv_case([1, 5, 9, 8], 5, [3, 3], attrs([2, 2], [1, 1], [1, 1], 5), 5);
    conv_case([2, 3, 5, 5], 6, [2, 3], attrs([1, 1], [1, 0], [2, 1], 3), 6);
}

#[test]
fn size_one_conv2d_matches_the_interpreter() {
    if !common::gpu() {
        return;
    }
    conv_case([1, 1, 1, 9], 1, [1, 3], Conv2dAttrs::default(), 7);
    conv_case([1, 1, 4, 4], 2, [1, 1], attrs([2, 1], [0, 0], [1, 1], 1), 8);
    conv_case([3, 2, 5, 5], 1, [5, 5], Conv2dAttrs::default(), 9);
}

#[test]
fn conv1d_matches_the_interpreter() {
    if !common::gpu() {
        return;
    }
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([2, 4, 17])).unwrap();
    for (i, (a, k)) in [
        (Conv1dAttrs::default(), 3),
        (Conv1dAttrs { stride: 2, padding: 2, dilation: 3, groups: 1 }, 3),
        (Conv1dAttrs { stride: 1, padding: 1, dilation: 1, groups: 4 }, 2),
        (Conv1dAttrs { stride: 3, padding: 0, dilation: 1, groups: 2 }, 4),
    ]
    .into_iter()
    .enumerate()
    {
        let w = g.param(&format!("w{i}"), f32_shape([8, 4 / a.groups, k])).unwrap();
        let y = g.conv1d(x, w, a).unwrap();
        g.set_output(&format!("y{i}"), y).unwrap();
    }
    let (inputs, state) = random_io(&g, 10);
    common::assert_matches_interp(&g, &inputs, &state, TOL);
}

/// [`pool_family`] on `x` (or random values) against the interpreter.
fn pool_case(x: [usize; 4], p: Pool2dAttrs, seed: u64, xv: Option<Vec<f32>>) {
    let (g, _) = pool_family(x, p);
    let (mut inputs, state) = random_io(&g, seed);
    if let Some(v) = xv {
        inputs.insert("x".into(), HostTensor::from_f32(x, v).unwrap());
    }
    common::assert_matches_interp(&g, &inputs, &state, TOL);
}

fn pool(kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> Pool2dAttrs {
    Pool2dAttrs { kernel, stride, padding }
}

#[test]
fn pooling_matches_the_interpreter() {
    if !common::gpu() {
        return;
    }
    pool_case([2, 3, 8, 8], pool([2, 2], [2, 2], [0, 0]), 11, None);
    pool_case([2, 3, 9, 7], pool([3, 2], [2, 1], [1, 1]), 12, None);
    pool_case([1, 2, 10, 11], pool([5, 3], [3, 2], [2, 0]), 13, None);
    pool_case([1, 1, 6, 6], pool([3, 3], [1, 1], [1, 1]), 14, None);
}

#[test]
fn size_one_pooling_matches_the_interpreter() {
    if !common::gpu() {
        return;
    }
    pool_case([1, 1, 1, 5], pool([1, 2], [1, 1], [0, 1]), 15, None);
    pool_case([1, 1, 3, 3], pool([1, 1], [1, 1], [0, 0]), 16, None);
    pool_case([2, 1, 4, 4], pool([4, 4], [1, 1], [0, 0]), 17, None);
}

#[test]
fn max_pooling_ties_and_padding() {
    if !common::gpu() {
        return;
    }
    // Values on a coarse grid: most windows hold ties, and the gradient
    // must go to the first maximum only.
    let x = [2, 2, 7, 9];
    let n: usize = x.iter().product();
    let ties: Vec<f32> = common::values(n, 18).iter().map(|v| (v * 2.0).round() / 2.0).collect();
    pool_case(x, pool([3, 3], [1, 2], [1, 1]), 18, Some(ties));
    pool_case(x, pool([2, 3], [2, 1], [1, 0]), 19, Some(vec![1.0; n]));
    // All negative under padding: a padded 0 must never win.
    let neg: Vec<f32> = common::values(n, 20).iter().map(|v| -1.0 - v.abs()).collect();
    pool_case(x, pool([3, 3], [2, 2], [1, 1]), 20, Some(neg));
}

#[test]
fn max_pooling_propagates_nan() {
    if !common::gpu() {
        return;
    }
    // NaN enters through a constant (data inputs are checked for NaN): the
    // first NaN of a window is its maximum and takes the gradient.
    let shape = [1, 2, 6, 6];
    let p = pool([3, 2], [1, 2], [1, 1]);
    let mut g = Graph::new();
    let xi = g.input("x", f32_shape(shape)).unwrap();
    let mut c = vec![0.0f32; 72];
    for i in [0, 7, 8, 20, 33, 41, 50, 71] {
        c[i] = f32::NAN;
    }
    let ci = g.constant(HostTensor::from_f32(shape, c).unwrap()).unwrap();
    let xn = g.add(xi, ci).unwrap();
    let mp = g.max_pool2d(xn, p).unwrap();
    g.set_output("max", mp).unwrap();
    let dy = g.input("dy", g.ty(mp).clone()).unwrap();
    let mg = g.apply(Op::MaxPool2dGrad(p), &[xn, dy]).unwrap();
    g.set_output("max_grad", mg).unwrap();
    let (inputs, state) = random_io(&g, 21);
    common::assert_matches_interp(&g, &inputs, &state, TOL);
}

#[test]
fn conv_net_gradients_match_the_interpreter() {
    if !common::gpu() {
        return;
    }
    // conv2d + bias + relu -> max pool -> conv1d over the flattened rows
    // -> avg pool, differentiated by the autodiff pass: the gradient ops
    // as autodiff emits them, between loops, reshapes and broadcasts.
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([2, 3, 9, 10])).unwrap();
    let w1 = g.param("w1", f32_shape([4, 3, 3, 3])).unwrap();
    let b1 = g.param("b1", f32_shape([4, 1, 1])).unwrap();
    let w2 = g.param("w2", f32_shape([4, 2, 3])).unwrap();
    let c1 = g.conv2d(x, w1, attrs([1, 1], [1, 1], [1, 1], 1)).unwrap();
    let c1 = g.add(c1, b1).unwrap();
    let r1 = g.relu(c1).unwrap();
    let p1 = g.max_pool2d(r1, pool([2, 2], [2, 2], [0, 0])).unwrap(); // [2,4,4,5]
    let f = g.reshape(p1, [2, 4, 20]).unwrap();
    let c2 = g.conv1d(f, w2, Conv1dAttrs { stride: 2, padding: 1, dilation: 1, groups: 2 }).unwrap(); // [2,4,10]
    let c2 = g.reshape(c2, [2, 4, 2, 5]).unwrap();
    let p2 = g.avg_pool2d(c2, pool([2, 3], [1, 2], [1, 1]), false).unwrap();
    let sq = g.mul(p2, p2).unwrap();
    let loss = g.sum(sq, &[0, 1, 2, 3], false).unwrap();
    g.set_output("loss", loss).unwrap();
    let grads = kiln_passes::autodiff::grad(&mut g, loss, &[x, w1, b1, w2]).unwrap();
    for (name, d) in ["dx", "dw1", "db1", "dw2"].into_iter().zip(grads) {
        g.set_output(name, d).unwrap();
    }
    let (inputs, state) = random_io(&g, 22);
    common::assert_matches_interp(&g, &inputs, &state, TOL);
}
