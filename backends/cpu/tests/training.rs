//! Training trajectories: the CPU backend and the interpreter run the same
//! training-step graph (MLP with SGD momentum and with Adam, a small LeNet
//! with SGD) for 12 steps from the same init; losses and final params must
//! stay within the stated tolerances (f32 GEMMs sum in a different order
//! than the interpreter's f64 accumulations, so differences grow slowly).

mod common;
#[path = "common/models.rs"]
mod models;

use kiln_cpu::CpuBackend;
use kiln_interp::{Interpreter, Precision};
use kiln_ir::Backend;
use models::*;

fn trajectory(g: &kiln_ir::Graph, classes: usize, steps: usize, rtol: f64, atol: f64) {
    let state = init_state(g, 3);
    let data = batch(g, classes, 5);
    let mut cpu = CpuBackend::new().compile(g).unwrap();
    let mut reference = Interpreter::new(Precision::F32).compile(g).unwrap();
    for exe in [&mut cpu, &mut reference] {
        for (k, v) in &state {
            exe.set_state(k, v.clone()).unwrap();
        }
    }
    let mut first = None;
    let mut last = 0.0;
    for step in 0..steps {
        let a = cpu.run(&data).unwrap();
        let b = reference.run(&data).unwrap();
        let (la, lb) = (a["loss"].scalar().unwrap(), b["loss"].scalar().unwrap());
        assert!((la - lb).abs() <= atol + rtol * lb.abs(), "step {step}: loss cpu {la} vs interpreter {lb}");
        first.get_or_insert(lb);
        last = lb;
    }
    assert!(last < first.unwrap(), "training reduces the loss: {first:?} -> {last}");
    for (name, want) in reference.state_dict() {
        let got = cpu.state(&name).unwrap();
        common::assert_close(&name, &got, &want, 1e-3, 1e-4);
    }
}

#[test]
fn mlp_sgd_momentum_matches_interpreter() {
    let g = mlp_train(16, &[20, 17, 13, 5], Optim::Sgd { lr: 0.05, momentum: 0.9 });
    trajectory(&g, 5, 12, 1e-4, 1e-5);
}

#[test]
fn mlp_adam_matches_interpreter() {
    let g = mlp_train(16, &[20, 17, 13, 5], Optim::Adam { lr: 1e-2, b1: 0.9, b2: 0.999, eps: 1e-8 });
    trajectory(&g, 5, 12, 1e-4, 1e-5);
}

#[test]
fn lenet_sgd_matches_interpreter() {
    let g = lenet_train(4, Optim::Sgd { lr: 0.01, momentum: 0.9 });
    trajectory(&g, 10, 10, 1e-4, 1e-5);
}

#[test]
fn training_step_updates_params_in_place() {
    let g = mlp_train(8, &[6, 5, 3], Optim::Sgd { lr: 0.1, momentum: 0.9 });
    let exe = CpuBackend::new().compile_cpu(&g).unwrap();
    let plan = exe.memory_plan_text();
    // Every param and momentum buffer is written by its update kernel directly.
    assert_eq!(plan.matches("in place").count(), 8, "{plan}");
    assert!(!plan.contains("copied after the run"), "{plan}");
}

/// Weight gradients tall enough (96x70) for the blocked GEMM + in-place
/// optimizer epilogue path.
#[test]
fn blocked_gemm_epilogue_updates_match_interpreter() {
    let g = mlp_train(8, &[96, 70, 10], Optim::Sgd { lr: 0.05, momentum: 0.9 });
    trajectory(&g, 10, 10, 1e-4, 1e-5);
}

/// Same graph, same state, same inputs: bit-identical results on every run,
/// whatever the thread scheduling (blocks of images that go to whichever
/// thread claims them are reduced in a fixed order).
#[test]
fn training_is_bitwise_deterministic() {
    let g = lenet_train(19, Optim::Sgd { lr: 0.01, momentum: 0.9 });
    let state = init_state(&g, 3);
    let data = batch(&g, 10, 5);
    let mut results = Vec::new();
    for _ in 0..3 {
        let mut exe = CpuBackend::new().compile(&g).unwrap();
        for (k, v) in &state {
            exe.set_state(k, v.clone()).unwrap();
        }
        let mut losses = Vec::new();
        for _ in 0..3 {
            losses.push(exe.run(&data).unwrap()["loss"].scalar().unwrap().to_bits());
        }
        results.push((losses, exe.state_dict()));
    }
    assert!(results.windows(2).all(|w| w[0] == w[1]), "runs differ");
}
