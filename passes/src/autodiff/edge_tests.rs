//! Autodiff on odd graphs: zero-size tensors through every differentiable
//! op family, a wrt node downstream of the loss, the loss itself or a
//! constant as wrt, gradients that only flow through integer paths. Each
//! gives well-typed gradient nodes that verify and run (or a typed error),
//! never a panic.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use kiln_interp::{run_graph, Precision};
use kiln_ir::*;

use super::grad;

type Build = fn(&mut Graph, NodeId) -> Result<NodeId, IrError>;

/// `loss = sum(f(x))` for an f32 param `x` of `shape`; returns the gradient
/// after checking it verifies, has `x`'s type and runs on the interpreter.
fn grad_of(what: &str, shape: &[usize], f: Build) -> Vec<f64> {
    let r = catch_unwind(AssertUnwindSafe(|| {
        let mut g = Graph::new();
        let x = g.param("x", f32_shape(shape.to_vec())).unwrap();
        let y = f(&mut g, x).unwrap_or_else(|e| panic!("{what}: building the forward graph: {e}"));
        let y = if g.ty(y).dtype.is_float() { y } else { g.cast(y, DType::F32).unwrap() };
        let loss = g.sum_all(y).unwrap();
        let gr = grad(&mut g, loss, &[x]).unwrap_or_else(|e| panic!("{what}: {e}"));
        verify(&g).unwrap_or_else(|e| panic!("{what}: gradient graph does not verify: {e}"));
        assert_eq!(g.ty(gr[0]), g.ty(x), "{what}");
        g.set_output("gx", gr[0]).unwrap();
        let n: usize = shape.iter().product();
        let vals = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
        let xv = HostTensor::from_f64(shape.to_vec(), vals).unwrap();
        let m = BTreeMap::from([("x".to_string(), xv)]);
        let out = run_graph(&g, &m, Precision::F64).unwrap_or_else(|e| panic!("{what}: run: {e}"));
        out["gx"].to_f64_vec()
    }));
    match r {
        Ok(v) => v,
        Err(p) => {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            panic!("{what} on {shape:?}: {}", msg.unwrap_or_default())
        }
    }
}

#[test]
fn zero_size_tensors_differentiate_through_every_op_family() {
    let cases: Vec<(&str, &[usize], Build)> = vec![
        ("tanh", &[0, 3], |g, x| g.tanh(x)),
        ("mul broadcast", &[0, 3], |g, x| {
            let c = g.constant(HostTensor::from_f32([3], vec![1.0, 2.0, 3.0]).unwrap())?;
            g.mul(x, c)
        }),
        ("sum over empty axis", &[0, 3], |g, x| g.sum(x, &[0], false)),
        ("mean over non-empty axis", &[0, 3], |g, x| g.mean(x, &[1], false)),
        ("reduce_max", &[0, 3], |g, x| g.reduce_max(x, &[1], true)),
        ("matmul", &[0, 3], |g, x| {
            let w = g.constant(HostTensor::from_f32([3, 2], vec![1.0; 6]).unwrap())?;
            g.matmul(x, w)
        }),
        ("matmul empty inner", &[2, 0], |g, x| {
            let w = g.constant(HostTensor::from_f32([0, 4], vec![]).unwrap())?;
            g.matmul(x, w)
        }),
        ("conv2d batch 0", &[0, 2, 4, 4], |g, x| {
            let w = g.constant(HostTensor::from_f32([3, 2, 3, 3], vec![0.5; 54]).unwrap())?;
            g.conv2d(x, w, Conv2dAttrs { padding: [1, 1], ..Default::default() })
        }),
        ("max_pool2d", &[0, 1, 4, 4], |g, x| g.max_pool2d(x, Pool2dAttrs { kernel: [2, 2], stride: [2, 2], padding: [0, 0] })),
        ("avg_pool2d", &[1, 0, 4, 4], |g, x| {
            g.avg_pool2d(x, Pool2dAttrs { kernel: [3, 3], stride: [1, 1], padding: [1, 1] }, false)
        }),
        ("slice to empty", &[2, 3], |g, x| g.slice(x, &[1, 0], &[1, 3], &[1, 1])),
        ("pad empty", &[0, 2], |g, x| g.pad(x, &[1, 0], &[0, 1], 2.0)),
        ("concat with empty", &[0, 2], |g, x| {
            let c = g.constant(HostTensor::from_f32([1, 2], vec![1.0, 2.0]).unwrap())?;
            g.concat(&[x, c, x], 0)
        }),
        ("gather no indices", &[4, 2], |g, x| {
            let i = g.constant(HostTensor::from_i64([0], vec![]).unwrap())?;
            g.gather(x, i, 0)
        }),
        ("softmax_cross_entropy N=0", &[0, 5], |g, x| {
            let l = g.constant(HostTensor::from_i64([0], vec![]).unwrap())?;
            g.apply(Op::SoftmaxCrossEntropy, &[x, l])
        }),
        ("reshape", &[0, 6], |g, x| g.reshape(x, [3, 0, 2])),
        ("broadcast_to", &[1, 0], |g, x| g.broadcast_to(x, [4, 0])),
        ("permute", &[0, 2, 3], |g, x| g.permute(x, &[2, 0, 1])),
    ];
    for (what, shape, f) in cases {
        let gx = grad_of(what, shape, f);
        assert_eq!(gx.len(), shape.iter().product::<usize>(), "{what}");
        if what == "slice to empty" || what == "gather no indices" {
            // Nothing of x reaches the loss.
            assert!(gx.iter().all(|&v| v == 0.0), "{what}: {gx:?}");
        }
    }
}

#[test]
fn gradients_through_integer_paths_only_are_zero() {
    // argmax and a cast to int carry no gradient: the loss is piecewise
    // constant in x.
    let gx = grad_of("argmax", &[2, 3], |g, x| {
        let a = g.argmax(x, 1, false)?;
        g.cast(a, DType::F32)
    });
    assert_eq!(gx, vec![0.0; 6]);
    let gx = grad_of("cast to i64 and back", &[3], |g, x| {
        let i = g.cast(x, DType::I64)?;
        g.cast(i, DType::F32)
    });
    assert_eq!(gx, vec![0.0; 3]);
}

#[test]
fn odd_wrt_choices() {
    let mut g = Graph::new();
    let x = g.param("x", f32_shape([3])).unwrap();
    let e = g.exp(x).unwrap();
    let loss = g.sum_all(e).unwrap();
    // Downstream of the loss: the loss does not depend on it.
    let after = g.mul_scalar(loss, 3.0).unwrap();
    let c = g.constant(HostTensor::from_f32([2], vec![1.0, -1.0]).unwrap()).unwrap();
    let gr = grad(&mut g, loss, &[loss, after, c, x]).unwrap();
    verify(&g).unwrap();
    for (name, id) in ["dloss", "dafter", "dc", "dx"].iter().zip(&gr) {
        g.set_output(name, *id).unwrap();
    }
    let xv = HostTensor::from_f32([3], vec![0.0, 1.0, -1.0]).unwrap();
    let out = run_graph(&g, &BTreeMap::from([("x".to_string(), xv.clone())]), Precision::F64).unwrap();
    assert_eq!(out["dloss"].to_f64_vec(), vec![1.0], "d loss / d loss");
    assert_eq!(out["dafter"].to_f64_vec(), vec![0.0]);
    assert_eq!(out["dc"].to_f64_vec(), vec![0.0, 0.0]);
    let want: Vec<f64> = xv.to_f64_vec().iter().map(|v| v.exp()).collect();
    assert_eq!(out["dx"].to_f64_vec(), want);
    // A constant loss: every gradient is zero.
    let k = g.scalar_f32(4.0).unwrap();
    let gr = grad(&mut g, k, &[x]).unwrap();
    g.set_output("dk", gr[0]).unwrap();
    let out = run_graph(&g, &BTreeMap::from([("x".to_string(), xv)]), Precision::F64).unwrap();
    assert_eq!(out["dk"].to_f64_vec(), vec![0.0; 3]);
}
