//! The course-notes worked example, differentiated by the autodiff pass and
//! checked against values derived by hand (below) and against PyTorch
//! (`tests/golden/autodiff/model_worked_example_2_2_1.safetensors`, a copy of
//! `../shared/golden/` case `model_worked_example_2_2_1`).
//!
//! Network (PyTorch layout, batch of one): x = [0.5, 0.6];
//! h = ReLU(W1 x + b1) with W1 = [[0.1, 0.2], [0.3, 0.4]] ([out, in]),
//! b1 = [0.1, 0.2]; y = W2 h + b2 with W2 = [[0.5, 0.6]], b2 = [0.3];
//! L = 0.5 (y - t)^2 with t = 1.0 (the golden case's `input.target`).
//!
//! Forward, by hand:
//!   z1_0 = 0.1*0.5 + 0.2*0.6 + 0.1 = 0.05 + 0.12 + 0.1 = 0.27
//!   z1_1 = 0.3*0.5 + 0.4*0.6 + 0.2 = 0.15 + 0.24 + 0.2 = 0.59
//!   h = ReLU(z1) = [0.27, 0.59]           (both positive: ReLU passes them)
//!   y = 0.5*0.27 + 0.6*0.59 + 0.3 = 0.135 + 0.354 + 0.3 = 0.789
//!   L = 0.5 * (0.789 - 1)^2 = 0.5 * 0.044521 = 0.0222605
//!
//! Backward, by hand:
//!   dL/dy  = y - t = -0.211
//!   dL/db2 = dL/dy = -0.211
//!   dL/dW2 = dL/dy * h = [-0.211*0.27, -0.211*0.59] = [-0.05697, -0.12449]
//!   dL/dh  = dL/dy * W2 = [-0.211*0.5, -0.211*0.6] = [-0.1055, -0.1266]
//!   dL/dz1 = dL/dh * ReLU'(z1) = dL/dh * [1, 1] = [-0.1055, -0.1266]
//!   dL/db1 = dL/dz1 = [-0.1055, -0.1266]
//!   dL/dW1 = dL/dz1 (outer) x = [[-0.1055*0.5, -0.1055*0.6],
//!                                [-0.1266*0.5, -0.1266*0.6]]
//!                             = [[-0.05275, -0.0633], [-0.0633, -0.07596]]
//!   dL/dx  = W1^T dL/dz1 = [0.1*-0.1055 + 0.3*-0.1266, 0.2*-0.1055 + 0.4*-0.1266]
//!                        = [-0.01055 - 0.03798, -0.0211 - 0.05064]
//!                        = [-0.04853, -0.07174]

use std::collections::BTreeMap;
use std::path::Path;

use kiln_interp::{run_graph, Precision};
use kiln_ir::{f32_shape, Activation, Graph, HostTensor, NodeId, Op};
use kiln_passes::autodiff::Autodiff;
use kiln_passes::{Pass, PassCx};

const X: [f64; 2] = [0.5, 0.6];
const W1: [f64; 4] = [0.1, 0.2, 0.3, 0.4];
const B1: [f64; 2] = [0.1, 0.2];
const W2: [f64; 2] = [0.5, 0.6];
const B2: [f64; 1] = [0.3];
const T: f64 = 1.0;

/// (name, shape, hand-derived value) of every checked result.
fn expected() -> Vec<(&'static str, Vec<usize>, Vec<f64>)> {
    vec![
        ("h", vec![1, 2], vec![0.27, 0.59]),
        ("y", vec![1, 1], vec![0.789]),
        ("loss", vec![], vec![0.0222605]),
        ("grad.fc2.bias", vec![1], vec![-0.211]),
        ("grad.fc2.weight", vec![1, 2], vec![-0.05697, -0.12449]),
        ("grad.fc1.bias", vec![2], vec![-0.1055, -0.1266]),
        ("grad.fc1.weight", vec![2, 2], vec![-0.05275, -0.0633, -0.0633, -0.07596]),
        ("grad.x", vec![1, 2], vec![-0.04853, -0.07174]),
    ]
}

/// Builds the network; `fused` uses fused_dense nodes (what the e-graph
/// pass produces) instead of matmul + add + relu. Returns the graph with a
/// grad request for the loss w.r.t. x and every parameter.
fn network(fused: bool) -> Graph {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([1, 2])).unwrap();
    let t = g.input("target", f32_shape([1, 1])).unwrap();
    let w1 = g.param("fc1.weight", f32_shape([2, 2])).unwrap();
    let b1 = g.param("fc1.bias", f32_shape([2])).unwrap();
    let w2 = g.param("fc2.weight", f32_shape([1, 2])).unwrap();
    let b2 = g.param("fc2.bias", f32_shape([1])).unwrap();
    let dense = |g: &mut Graph, x: NodeId, w: NodeId, b: NodeId, act: Activation| -> NodeId {
        if fused {
            return g.apply(Op::FusedDense { trans_b: true, bias: true, act }, &[x, w, b]).unwrap();
        }
        let z = g.matmul_t(x, w, false, true).unwrap();
        let z = g.add(z, b).unwrap();
        match act {
            Activation::Relu => g.relu(z).unwrap(),
            _ => z,
        }
    };
    let h = dense(&mut g, x, w1, b1, Activation::Relu);
    let y = dense(&mut g, h, w2, b2, Activation::None);
    let d = g.sub(y, t).unwrap();
    let sq = g.mul(d, d).unwrap();
    let s = g.sum_all(sq).unwrap();
    let loss = g.mul_scalar(s, 0.5).unwrap();
    g.set_output("h", h).unwrap();
    g.set_output("y", y).unwrap();
    g.set_output("loss", loss).unwrap();
    g.add_grad_request(loss, vec![w1, b1, w2, b2, x]).unwrap();
    g
}

fn values() -> BTreeMap<String, HostTensor> {
    let f = |s: &[usize], v: &[f64]| HostTensor::from_f64(s.to_vec(), v.to_vec()).unwrap();
    BTreeMap::from([
        ("x".to_string(), f(&[1, 2], &X)),
        ("target".to_string(), f(&[1, 1], &[T])),
        ("fc1.weight".to_string(), f(&[2, 2], &W1)),
        ("fc1.bias".to_string(), f(&[2], &B1)),
        ("fc2.weight".to_string(), f(&[1, 2], &W2)),
        ("fc2.bias".to_string(), f(&[1], &B2)),
    ])
}

fn run(fused: bool) -> BTreeMap<String, HostTensor> {
    let mut g = network(fused);
    let changed = Autodiff.run(&mut g, &mut PassCx::default()).unwrap();
    assert!(changed.changed());
    assert!(g.grad_requests().is_empty(), "the pass consumes the requests");
    kiln_ir::verify(&g).unwrap();
    run_graph(&g, &values(), Precision::F64).unwrap()
}

#[test]
fn hand_derived_forward_and_gradients() {
    for fused in [false, true] {
        let out = run(fused);
        for (name, shape, want) in expected() {
            let got = &out[name];
            assert_eq!(got.shape().0, shape, "{name} shape (fused={fused})");
            for (i, (g, w)) in got.to_f64_vec().iter().zip(&want).enumerate() {
                assert!((g - w).abs() < 1e-12, "{name}[{i}] (fused={fused}): got {g}, by hand {w}");
            }
        }
    }
}

/// PyTorch's float32 numbers for the same network, with the case's own
/// tolerance (rtol 1e-4, atol 1e-5); the parameter values are read from the
/// file too, so this also checks the layout.
#[test]
fn matches_pytorch_golden() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/autodiff/model_worked_example_2_2_1.safetensors");
    let golden = kiln_ir::read_safetensors(&path).unwrap();
    let mut vals = BTreeMap::new();
    for (ours, theirs) in [
        ("x", "input.x"),
        ("target", "input.target"),
        ("fc1.weight", "param.fc1.weight"),
        ("fc1.bias", "param.fc1.bias"),
        ("fc2.weight", "param.fc2.weight"),
        ("fc2.bias", "param.fc2.bias"),
    ] {
        vals.insert(ours.to_string(), golden[theirs].clone());
    }
    let mut g = network(false);
    Autodiff.run(&mut g, &mut PassCx::default()).unwrap();
    let out = run_graph(&g, &vals, Precision::F32).unwrap();
    let pairs = [
        ("h", "output.h"),
        ("y", "output.y"),
        ("loss", "output.loss"),
        ("grad.x", "grad.input.x"),
        ("grad.fc1.weight", "grad.param.fc1.weight"),
        ("grad.fc1.bias", "grad.param.fc1.bias"),
        ("grad.fc2.weight", "grad.param.fc2.weight"),
        ("grad.fc2.bias", "grad.param.fc2.bias"),
    ];
    for (ours, theirs) in pairs {
        let (got, want) = (&out[ours], &golden[theirs]);
        assert_eq!(got.shape(), want.shape(), "{ours} vs {theirs}");
        for (g, w) in got.to_f64_vec().iter().zip(want.to_f64_vec()) {
            assert!((g - w).abs() <= 1e-5 + 1e-4 * w.abs(), "{ours}: got {g}, PyTorch {w}");
        }
    }
}
