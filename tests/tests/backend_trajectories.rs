//! Training trajectories, the CPU backend and the GPU backend (wgpu; on
//! Mesa's software Vulkan in CI, skipped with a printed reason on a
//! machine without Vulkan outside CI) against the interpreter (the oracle):
//! every example model of `examples/` (shrunk, see `common`) with every
//! optimizer of `kiln::optim` (SGD plain/momentum/nesterov/dampening+weight
//! decay, Adam with L2, AdamW, AMSGrad, NAdam and NAdamW, RMSprop plain and
//! centered with momentum, Adagrad with lr decay, Adadelta, and gradient
//! clipping by norm and by value) is compiled from the same spec for both
//! backends (same pass pipeline, same init) and run for 12 steps on the
//! same data, cycling through 3 batches; halfway through, the learning
//! rate is halved on both, as a schedule would.
//!
//! Asserted: every step's loss agrees within `LOSS_RTOL` relative
//! (+ `LOSS_ATOL`); training happens (the loss on the first batch, at its
//! last visit, is lower by far more than that tolerance, and every
//! parameter moved by several times its tolerance, so a skipped update
//! could not pass); and after the last step every entry of the state dict
//! (params, BatchNorm running stats, optimizer moments and buffers, the
//! step counter, the lr, the dropout `rng.step`) agrees: element `i` of a
//! tensor `w` within `STATE_RTOL * (|w_i| + rms(w))`, integers exactly
//! (on the GPU within `GPU_TOL_SCALE` times these, see there).
//!
//! Why these tolerances: the two backends evaluate the same graph with
//! the same f32 rounding of every op result, but the interpreter
//! accumulates each matmul/conv/reduction in f64 and rounds once, while
//! the CPU backend sums in f32 in blocked, vectorized, two-thread order,
//! with FMA contraction and fused elementwise chains. That is an error of
//! a few f32 ulps (~1e-7 relative) per accumulation that grows through
//! the layers and the 12 steps; adaptive optimizers divide by sqrt of the
//! second moment, so a gradient element near zero turns a tiny absolute
//! difference into a larger relative one of the update. 1e-4 relative
//! is ~1000 ulps: far above that drift, far below any real bug (a wrong
//! index, a missed bias-correction or a dropped term moves values by
//! percents). The tensor's rms in the bound keeps elements that pass
//! through zero (momentum buffers, biases) from demanding relative
//! precision that f32 cannot give them. Dropout masks come from Philox
//! keyed by `rng.step`, shared by both backends, so they match exactly.
//! Measured (run with `--nocapture` to see each case's figures): the worst
//! case uses under a tenth of the tolerance (centered RMSprop with
//! momentum on LeNet, whose sqrt(E[g^2] - E[g]^2) amplifies rounding), most
//! under a fiftieth; changing the lr of one backend by 0.2% for six steps
//! already fails most cases.

mod common;

use std::collections::BTreeMap;

use common::{Model, BATCHES};
use kiln::optim::{Adadelta, Adagrad, Adam, NAdam, Optimizer, RmsProp, Rule, Sgd};
use kiln::{CompileOptions, DType, HostTensor};

const STEPS: usize = 12;
const LOSS_RTOL: f64 = 1e-4;
const LOSS_ATOL: f64 = 1e-6;
const STATE_RTOL: f64 = 1e-4;
/// The GPU backend's tolerances are this many times the CPU's. Its shaders
/// accumulate every matmul, conv and reduction in one f32 running sum per
/// output (the CPU sums in short vectorized blocks), and Vulkan lets exp,
/// log and pow be a few ulps off where Rust's libm is correctly rounded;
/// Adam-style updates amplify both for gradient elements near zero.
/// Measured on lavapipe: the worst case (NAdam on the MLP and LeNet) uses
/// 1.5 of the CPU's tolerance, so half of this one.
const GPU_TOL_SCALE: f64 = 3.0;
/// Training must move the loss on a batch by at least this many times the
/// loss tolerance, so the comparison is not of twelve copies of the init.
const MIN_MOVE: f64 = 20.0;
/// And every parameter by this many times its state tolerance, so that a
/// backend that skipped or half-applied one parameter's update fails.
const PARAM_MOVE: f64 = 5.0;

/// Every optimizer configuration, fresh for each model (an optimizer is
/// consumed by `train_step`).
fn optimizers() -> Vec<(&'static str, Box<dyn Optimizer>)> {
    vec![
        ("sgd", Box::new(Sgd::new(0.1))),
        ("sgd_momentum", Box::new(Sgd::new(0.05).momentum(0.9))),
        ("sgd_nesterov", Box::new(Sgd::new(0.05).momentum(0.9).nesterov(true))),
        ("sgd_dampening_weight_decay", Box::new(Sgd::new(0.05).momentum(0.9).dampening(0.1).weight_decay(1e-2))),
        ("sgd_momentum_clip_norm", Box::new(Sgd::new(0.05).momentum(0.9).clip_grad_norm(0.5))),
        ("adam", Box::new(Adam::new(1e-2))),
        ("adam_l2", Box::new(Adam::new(1e-2).weight_decay(1e-2))),
        ("adamw", Box::new(Adam::adamw(1e-2).weight_decay(1e-2))),
        ("amsgrad", Box::new(Adam::new(1e-2).amsgrad(true))),
        ("adam_clip_value", Box::new(Adam::new(1e-2).clip_grad_value(0.05))),
        ("nadam", Box::new(NAdam::new(1e-2))),
        ("nadamw", Box::new(NAdam::new(1e-2).weight_decay(1e-2).decoupled(true))),
        // RMSprop's first steps move every element by ~10 lr (the average
        // of g^2 starts at (1 - alpha) g^2): a smaller lr keeps them sane.
        ("rmsprop", Box::new(RmsProp::new(2e-3))),
        ("rmsprop_centered_momentum", Box::new(RmsProp::new(2e-3).momentum(0.9).centered(true).weight_decay(1e-3))),
        ("adagrad", Box::new(Adagrad::new(0.1).lr_decay(1e-2).initial_accumulator_value(0.1).weight_decay(1e-3))),
        ("adadelta", Box::new(Adadelta::new(1.0).rho(0.9).weight_decay(1e-3))),
    ]
}

/// One model with one optimizer: `Err` describes the first disagreement;
/// `Ok` holds the largest ratio of a difference to its tolerance (losses,
/// state), the margin the tolerances leave.
fn trajectory(m: &Model, opt: Box<dyn Optimizer>) -> Result<Vec<(&'static str, f64, f64)>, String> {
    let base_lr = opt.base_lr();
    let spec = kiln::train_step(&m.builder, m.loss, &m.store, opt).map_err(|e| format!("train_step: {e}"))?;
    let mut candidates = Vec::new();
    for (name, opts, scale) in backends() {
        let p = kiln::compile(&spec, opts).map_err(|e| format!("compile ({name}): {e}"))?;
        candidates.push((name, p, 0.0f64, scale));
    }
    let mut oracle = kiln::compile(&spec, CompileOptions::interp()).map_err(|e| format!("compile (interp): {e}"))?;
    let init = oracle.state_dict();
    let mut losses = Vec::with_capacity(STEPS);
    for step in 0..STEPS {
        if step == STEPS / 2 {
            oracle.set_lr(base_lr / 2.0).map_err(|e| format!("set_lr: {e}"))?;
            for (_, p, _, _) in &mut candidates {
                p.set_lr(base_lr / 2.0).map_err(|e| format!("set_lr: {e}"))?;
            }
        }
        let inputs: Vec<(&str, &HostTensor)> = m.batches[step % BATCHES].iter().map(|(k, v)| (*k, v)).collect();
        let want = oracle.run(&inputs).map_err(|e| format!("step {step} (interp): {e}"))?["loss"].scalar().map_err(|e| e.to_string())?;
        for (name, p, worst_loss, scale) in &mut candidates {
            let got = p.run(&inputs).map_err(|e| format!("step {step} ({name}): {e}"))?["loss"].scalar().map_err(|e| e.to_string())?;
            let ratio = (got - want).abs() / (*scale * (LOSS_ATOL + LOSS_RTOL * want.abs()));
            if exceeds(ratio) {
                return Err(format!("step {step}: loss {name} {got} vs interpreter {want} (losses so far {losses:?})"));
            }
            *worst_loss = worst_loss.max(ratio);
        }
        losses.push(want);
    }
    // The same batch at step 0 and at its last visit: training must have
    // lowered the loss on it, and moved every parameter.
    let (first, last) = (losses[0], losses[(STEPS - 1) / BATCHES * BATCHES]);
    if first <= last || exceeds(MIN_MOVE * (LOSS_ATOL + LOSS_RTOL * first.abs()) / (first - last)) {
        return Err(format!("training did not lower the loss in {STEPS} steps: {losses:?}"));
    }
    let trained = oracle.state_dict();
    for p in m.store.param_names() {
        let moved = movement(&init[&p], &trained[&p]);
        if exceeds(PARAM_MOVE / moved) {
            return Err(format!("`{p}` moved only {moved:.1} times the tolerance in {STEPS} steps"));
        }
    }
    candidates
        .iter()
        .map(|(name, p, worst_loss, scale)| Ok((*name, *worst_loss, compare_state(name, *scale, &p.state_dict(), &trained)?)))
        .collect()
}

/// The backends compared with the interpreter: the CPU, and the GPU where
/// an adapter exists (in CI: must exist).
fn backends() -> Vec<(&'static str, CompileOptions, f64)> {
    static GPU: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let mut v = vec![("cpu", CompileOptions::cpu(), 1.0)];
    if *GPU.get_or_init(kiln_tests::wgpu_available) {
        v.push(("wgpu", CompileOptions::wgpu(), GPU_TOL_SCALE));
    }
    v
}

/// A difference/tolerance ratio over 1, or NaN (a NaN anywhere fails).
fn exceeds(ratio: f64) -> bool {
    ratio.is_nan() || ratio > 1.0
}

/// The largest change of an element from `before` to `after` in units of
/// the state tolerance.
fn movement(before: &HostTensor, after: &HostTensor) -> f64 {
    let (b, a) = (before.to_f64_vec(), after.to_f64_vec());
    let rms = (a.iter().map(|v| v * v).sum::<f64>() / a.len().max(1) as f64).sqrt();
    b.iter().zip(&a).map(|(x, y)| (x - y).abs() / (STATE_RTOL * (y.abs() + rms))).fold(0.0, f64::max)
}

/// `Ok` holds the largest difference/tolerance ratio over all elements.
fn compare_state(backend: &str, scale: f64, got: &BTreeMap<String, HostTensor>, want: &BTreeMap<String, HostTensor>) -> Result<f64, String> {
    let mut worst = 0.0f64;
    let (gk, wk): (Vec<_>, Vec<_>) = (got.keys().collect(), want.keys().collect());
    if gk != wk {
        return Err(format!("state names differ: {backend} {gk:?} vs interpreter {wk:?}"));
    }
    for (name, w) in want {
        let g = &got[name];
        if g.shape() != w.shape() || g.dtype() != w.dtype() {
            return Err(format!("`{name}`: {backend} {:?} {:?} vs interpreter {:?} {:?}", g.dtype(), g.shape(), w.dtype(), w.shape()));
        }
        let (gv, wv) = (g.to_f64_vec(), w.to_f64_vec());
        if !matches!(w.dtype(), DType::F32 | DType::F64) {
            if gv != wv {
                return Err(format!("`{name}`: {backend} {gv:?} vs interpreter {wv:?}"));
            }
            continue;
        }
        let rms = (wv.iter().map(|v| v * v).sum::<f64>() / wv.len().max(1) as f64).sqrt();
        for (i, (a, b)) in gv.iter().zip(&wv).enumerate() {
            let diff = (a - b).abs();
            if diff == 0.0 {
                continue;
            }
            let ratio = diff / (scale * STATE_RTOL * (b.abs() + rms));
            if exceeds(ratio) {
                return Err(format!("`{name}`[{i}]: {backend} {a} vs interpreter {b} (tensor rms {rms:.3e}, |diff| {diff:.3e})"));
            }
            worst = worst.max(ratio);
        }
    }
    Ok(worst)
}

/// Runs every optimizer on the model and reports all disagreements at
/// once, so one failure does not hide the others.
fn all_optimizers(build: fn() -> Model) {
    let mut failures = Vec::new();
    for (opt_name, opt) in optimizers() {
        let m = build();
        match trajectory(&m, opt) {
            // Shown with --nocapture: how much of each tolerance was used.
            Ok(rows) => {
                for (backend, loss, state) in rows {
                    println!("{} + {opt_name} on {backend}: worst diff/tolerance loss {loss:.3}, state {state:.3}", m.name);
                }
            }
            Err(e) => failures.push(format!("{} + {opt_name}: {e}", m.name)),
        }
    }
    assert!(failures.is_empty(), "{} trajectories left the interpreter's:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn linear_regression_mse() {
    all_optimizers(common::linear_regression);
}

#[test]
fn logistic_regression_bce() {
    all_optimizers(common::logistic_regression);
}

#[test]
fn mlp_with_dropout_cross_entropy() {
    all_optimizers(common::mlp_dropout);
}

#[test]
fn lenet5_conv_pool() {
    all_optimizers(common::lenet5);
}

#[test]
fn resnet_batchnorm_residual() {
    all_optimizers(common::resnet);
}

#[test]
fn lstm_classifier() {
    all_optimizers(common::lstm);
}

#[test]
fn gru_two_layers() {
    all_optimizers(common::gru);
}

#[test]
fn rnn_tanh_sequence_first() {
    all_optimizers(common::rnn_tanh);
}
