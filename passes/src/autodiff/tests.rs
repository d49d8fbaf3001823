//! Structural tests of the sweep and the pass; numerical correctness of the
//! rules is checked by the gradcheck/hessian integration tests.

use std::collections::BTreeMap;

use kiln_interp::{run_graph, Precision};
use kiln_ir::{f32_shape, i64_shape, DType, Graph, HostTensor, Op, TensorType};

use super::{grad, grad_output_name, Autodiff};
use crate::{Changed, Pass, PassCx, PassError};

fn run(g: &Graph, vals: &[(&str, HostTensor)]) -> BTreeMap<String, HostTensor> {
    let m: BTreeMap<String, HostTensor> = vals.iter().map(|(n, t)| (n.to_string(), t.clone())).collect();
    run_graph(g, &m, Precision::F64).unwrap()
}

#[test]
fn loss_must_be_a_float_scalar() {
    let mut g = Graph::new();
    let x = g.param("x", f32_shape([3])).unwrap();
    let y = g.exp(x).unwrap();
    let e = grad(&mut g, y, &[x]).unwrap_err();
    assert!(matches!(e, PassError::Autodiff(_)));
    assert_eq!(e.to_string(), "autodiff: the loss %1 must be a float scalar, got f32[3]");
    let i = g.input("i", i64_shape([])).unwrap();
    assert!(grad(&mut g, i, &[x]).unwrap_err().to_string().contains("%2 must be a float scalar, got i64[]"));
}

#[test]
fn integer_wrt_and_unknown_nodes_are_typed_errors() {
    let mut g = Graph::new();
    let x = g.param("x", f32_shape([3])).unwrap();
    let i = g.input("i", i64_shape([3])).unwrap();
    let s = g.sum_all(x).unwrap();
    let e = grad(&mut g, s, &[i]).unwrap_err().to_string();
    assert!(e.contains("with respect to %1") && e.contains("i64[3]"), "{e}");
    let e = grad(&mut g, s, &[kiln_ir::NodeId(99)]).unwrap_err().to_string();
    assert!(e.contains("%99"), "{e}");
}

#[test]
fn unrelated_wrt_gets_zeros_of_its_type_and_nothing_else_is_built() {
    let mut g = Graph::new();
    let x = g.param("x", f32_shape([2])).unwrap();
    let w = g.param("w", TensorType::new(DType::F64, [2, 3])).unwrap();
    let s = g.sum_all(x).unwrap();
    let before = g.node_count();
    let gr = grad(&mut g, s, &[w]).unwrap();
    assert_eq!(g.ty(gr[0]), g.ty(w));
    // Just the zero scalar and its broadcast: no sweep for an unrelated node.
    assert_eq!(g.node_count(), before + 2);
    g.set_output("gw", gr[0]).unwrap();
    let out = run(&g, &[("x", HostTensor::from_f64([2], vec![1.0, 2.0]).unwrap()), ("w", HostTensor::zeros(g.ty(w)))]);
    assert_eq!(out["gw"].to_f64_vec(), vec![0.0; 6]);
}

#[test]
fn stop_gradient_blocks_and_fan_out_accumulates() {
    // L = sum(x * stop(x) + x): dL/dx = stop(x) + 1 = x + 1 (not 2x + 1).
    let mut g = Graph::new();
    let x = g.param("x", f32_shape([3])).unwrap();
    let c = g.stop_gradient(x).unwrap();
    let p = g.mul(x, c).unwrap();
    let q = g.add(p, x).unwrap();
    let l = g.sum_all(q).unwrap();
    let gr = grad(&mut g, l, &[x, l]).unwrap();
    g.set_output("gx", gr[0]).unwrap();
    g.set_output("gl", gr[1]).unwrap();
    let out = run(&g, &[("x", HostTensor::from_f64([3], vec![1.0, -2.0, 0.5]).unwrap())]);
    assert_eq!(out["gx"].to_f64_vec(), vec![2.0, -1.0, 1.5]);
    assert_eq!(out["gl"].to_f64_vec(), vec![1.0], "d loss / d loss");
}

#[test]
fn f64_graphs_get_f64_gradients_through_one_hot() {
    let mut g = Graph::new();
    let l = g.param("logits", TensorType::new(DType::F64, [2, 3])).unwrap();
    let t = g.input("labels", i64_shape([2])).unwrap();
    let xe = g.apply(Op::SoftmaxCrossEntropy, &[l, t]).unwrap();
    let loss = g.sum_all(xe).unwrap();
    let gr = grad(&mut g, loss, &[l]).unwrap();
    assert_eq!(g.ty(gr[0]).dtype, DType::F64);
    g.set_output("g", gr[0]).unwrap();
    let out = run(&g, &[
        ("logits", HostTensor::from_f64([2, 3], vec![0.0; 6]).unwrap()),
        ("labels", HostTensor::from_i64([2], vec![2, 0]).unwrap()),
    ]);
    let third = 1.0 / 3.0;
    let want = [third, third, third - 1.0, third - 1.0, third, third];
    for (a, b) in out["g"].to_f64_vec().iter().zip(want) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
}

#[test]
fn pass_names_outputs_and_consumes_requests() {
    let mut g = Graph::new();
    let w = g.param("w", f32_shape([2])).unwrap();
    let h = g.tanh(w).unwrap();
    let l = g.sum_all(h).unwrap();
    g.add_grad_request(l, vec![w, h]).unwrap();
    assert_eq!(grad_output_name(&g, w), "grad.w");
    assert_eq!(grad_output_name(&g, h), "grad.%1");
    let mut cx = PassCx::default();
    assert_eq!(Autodiff.name(), "autodiff");
    assert_eq!(Autodiff.run(&mut g, &mut cx).unwrap(), Changed::Yes);
    assert!(g.grad_requests().is_empty());
    assert!(g.output("grad.w").is_some() && g.output("grad.%1").is_some());
    kiln_ir::verify(&g).unwrap();
    assert_eq!(Autodiff.run(&mut g, &mut cx).unwrap(), Changed::No, "nothing left to do");
}

#[test]
fn two_requests_for_the_same_name_are_an_error() {
    let mut g = Graph::new();
    let w = g.param("w", f32_shape([2])).unwrap();
    let a = g.sum_all(w).unwrap();
    let b = g.mean_all(w).unwrap();
    g.add_grad_request(a, vec![w]).unwrap();
    g.add_grad_request(b, vec![w]).unwrap();
    let e = Autodiff.run(&mut g, &mut PassCx::default()).unwrap_err().to_string();
    assert!(e.contains("grad.w"), "{e}");
}

#[test]
fn a_node_listed_twice_gets_one_output() {
    let mut g = Graph::new();
    let w = g.param("w", f32_shape([2])).unwrap();
    let l = g.sum_all(w).unwrap();
    g.add_grad_request(l, vec![w, w]).unwrap();
    Autodiff.run(&mut g, &mut PassCx::default()).unwrap();
    assert_eq!(g.outputs().len(), 1);
}

/// The documented conventions where the derivative is not unique.
#[test]
fn tie_conventions() {
    let mut g = Graph::new();
    let x = g.param("x", f32_shape([1, 1, 2, 2])).unwrap();
    // reduce_max: split evenly among the tied maxima.
    let m = g.reduce_max(x, &[2, 3], false).unwrap();
    let lm = g.sum_all(m).unwrap();
    // elementwise maximum(x, x): half to each side, so d/dx = 1.
    let mx = g.maximum(x, x).unwrap();
    let lx = g.sum_all(mx).unwrap();
    // max_pool2d: the first maximum of the window (row-major) takes it all.
    let pool = kiln_ir::Pool2dAttrs { kernel: [2, 2], stride: [1, 1], padding: [0, 0] };
    let p = g.max_pool2d(x, pool).unwrap();
    let lp = g.sum_all(p).unwrap();
    // relu'(0) = 0 and abs'(0) = 0.
    let r = g.relu(x).unwrap();
    let a = g.abs(x).unwrap();
    let ra = g.add(r, a).unwrap();
    let lr = g.sum_all(ra).unwrap();
    for (name, l) in [("m", lm), ("x", lx), ("p", lp), ("r", lr)] {
        let gr = grad(&mut g, l, &[x]).unwrap();
        g.set_output(name, gr[0]).unwrap();
    }
    let out = run(&g, &[("x", HostTensor::from_f64([1, 1, 2, 2], vec![0.0, 3.0, 1.0, 3.0]).unwrap())]);
    assert_eq!(out["m"].to_f64_vec(), vec![0.0, 0.5, 0.0, 0.5]);
    assert_eq!(out["x"].to_f64_vec(), vec![1.0; 4]);
    assert_eq!(out["p"].to_f64_vec(), vec![0.0, 1.0, 0.0, 0.0]);
    assert_eq!(out["r"].to_f64_vec(), vec![0.0, 2.0, 2.0, 2.0]);
}
