//! `tunable_weight_decay()` must compute what the constant decay computes,
//! for every rule with a decay, on the interpreter and the CPU backend, and
//! `set_weight_decay` must behave like compiling again with the new value.

use std::collections::BTreeMap;

use super::*;
use crate::nn::{self, Module};
use crate::{f32_shape, loss, Builder, CompileOptions, ParamStore, Program};

const STEPS: usize = 4;
/// Scaled by max(1, |value|). Same-value cases come out bitwise equal
/// (a state holding f32(wd) multiplies exactly as the constant f32(wd)
/// does); the slack is for group ratios, where f32(wd) * f32(ratio) may
/// round differently from f32(group wd).
const TOL: f32 = 1e-6;

type Make = Box<dyn Fn(f64, bool) -> Box<dyn Optimizer>>;
/// The losses of a run and the state after it.
type Trace = (Vec<f32>, BTreeMap<String, HostTensor>);
type Backend = (&'static str, fn() -> CompileOptions);

/// An optimizer family as a function of the default group's decay.
fn case<R: Rule + 'static>(make: impl Fn(f64) -> Optim<R> + 'static) -> Make {
    Box::new(move |wd, tunable| {
        let o = make(wd);
        Box::new(if tunable { o.tunable_weight_decay() } else { o })
    })
}

/// Every rule with a weight decay, coupled and decoupled, plus a parameter
/// group with its own decay (scaled from the tunable default).
fn cases() -> Vec<(&'static str, bool, Make)> {
    vec![
        ("sgd", false, case(|wd| Optim::new(Sgd::new(0.1).weight_decay(wd)))),
        ("sgd_nesterov", false, case(|wd| Optim::new(Sgd::new(0.05).momentum(0.9).nesterov(true).weight_decay(wd)))),
        ("sgd_maximize", false, case(|wd| Optim::new(Sgd::new(0.05).momentum(0.9).dampening(0.1).maximize(true).weight_decay(wd)))),
        ("adam_l2", false, case(|wd| Optim::new(Adam::new(1e-2).weight_decay(wd)))),
        ("adamw", false, case(|wd| Optim::new(Adam::adamw(1e-2).weight_decay(wd)))),
        ("adamw_amsgrad", false, case(|wd| Optim::new(Adam::adamw(1e-2).amsgrad(true).weight_decay(wd)))),
        ("nadam", false, case(|wd| Optim::new(NAdam::new(1e-2).weight_decay(wd)))),
        ("nadamw", false, case(|wd| Optim::new(NAdam::new(1e-2).weight_decay(wd).decoupled(true)))),
        ("rmsprop", false, case(|wd| Optim::new(RmsProp::new(2e-3).momentum(0.9).centered(true).weight_decay(wd)))),
        ("adagrad", false, case(|wd| Optim::new(Adagrad::new(0.1).lr_decay(1e-2).weight_decay(wd)))),
        ("adadelta", false, case(|wd| Optim::new(Adadelta::new(1.0).weight_decay(wd)))),
        (
            "sgd_group",
            true,
            case(|wd| Optim::new(Sgd::new(0.1).momentum(0.9).weight_decay(wd)).group(&["l1.bias", "l2.bias"], Sgd::new(0.05).momentum(0.9).weight_decay(3.0 * wd))),
        ),
        ("adamw_group", true, case(|wd| Optim::new(Adam::adamw(1e-2).weight_decay(wd)).group(&["l2.weight"], Adam::adamw(1e-2).weight_decay(0.5 * wd)))),
    ]
}

fn compile(opt: Box<dyn Optimizer>, options: CompileOptions) -> Result<Program> {
    let mut store = ParamStore::new(3);
    let l1 = nn::Linear::new(&mut store, "l1", 3, 5)?;
    let l2 = nn::Linear::new(&mut store, "l2", 5, 2)?;
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([4, 3]))?;
    let y = b.input("y", f32_shape([4, 2]))?;
    let h = l1.forward(&mut b, x)?;
    let h = nn::Sigmoid.forward(&mut b, h)?;
    let p = l2.forward(&mut b, h)?;
    let l = loss::mse(&mut b, p, y, loss::Reduction::Mean)?;
    crate::compile(&crate::train_step(&b, l, &store, opt)?, options)
}

/// Losses of a few steps on changing batches, then every state value.
fn run(p: &mut Program) -> Trace {
    let losses = (0..STEPS)
        .map(|s| {
            let x = HostTensor::from_f32([4, 3], (0..12).map(|i| ((i * 7 + s * 5) % 11) as f32 / 5.0 - 1.0).collect()).unwrap();
            let y = HostTensor::from_f32([4, 2], (0..8).map(|i| ((i * 3 + s) % 5) as f32 / 2.0 - 1.0).collect()).unwrap();
            p.run(&[("x", &x), ("y", &y)]).unwrap()["loss"].to_f32_vec()[0]
        })
        .collect();
    (losses, p.state_dict())
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= TOL * a.abs().max(1.0)
}

/// Every loss and every state of `want` (the constant-decay program) in
/// `got`; `Err` names the first difference.
fn same(want: &Trace, got: &Trace) -> std::result::Result<(), String> {
    if let Some(i) = (0..STEPS).find(|&i| !close(want.0[i], got.0[i])) {
        return Err(format!("loss at step {i}: {} vs {}", want.0[i], got.0[i]));
    }
    for (k, w) in &want.1 {
        let g = got.1.get(k).ok_or_else(|| format!("no state {k}"))?;
        let (w, g) = (w.to_f32_vec(), g.to_f32_vec());
        if let Some(i) = (0..w.len()).find(|&i| !close(w[i], g[i])) {
            return Err(format!("{k}[{i}]: {} vs {}", w[i], g[i]));
        }
    }
    Ok(())
}

fn backends() -> [Backend; 2] {
    [("interp", CompileOptions::interp), ("cpu", CompileOptions::cpu)]
}

#[test]
fn tunable_decay_computes_what_the_constant_computes() {
    let mut moved = 0;
    for (name, _, make) in cases() {
        for (backend, options) in backends() {
            let wd = 5e-2;
            let want = run(&mut compile(make(wd, false), options()).unwrap());
            let mut p = compile(make(wd, true), options()).unwrap();
            assert_eq!(p.weight_decay(), Some(wd as f32 as f64), "{name}: the state starts at the configured decay");
            let got = run(&mut p);
            same(&want, &got).unwrap_or_else(|e| panic!("{name} on {backend}: {e}"));
            // The comparison is of something: the decay changed the result.
            let none = run(&mut compile(make(0.0, false), options()).unwrap());
            moved += usize::from(same(&none, &want).is_err());
        }
    }
    assert_eq!(moved, 2 * cases().len(), "every case's decay must change its trajectory");
}

#[test]
fn set_weight_decay_matches_compiling_again() {
    for (name, groups, make) in cases() {
        for (backend, options) in backends() {
            // From 0 (a search's first value) a group has no ratio to the
            // default and keeps its constant, so group cases start nonzero.
            for start in [0.0, 1e-3] {
                if groups && start == 0.0 {
                    continue;
                }
                let mut p = compile(make(start, true), options()).unwrap();
                let init = p.state_dict();
                for wd in [3e-2, 0.0, 1e-3] {
                    p.load_state_dict(&init).unwrap();
                    p.set_weight_decay(wd).unwrap();
                    assert_eq!(p.weight_decay(), Some(wd as f32 as f64));
                    let got = run(&mut p);
                    let want = run(&mut compile(make(wd, false), options()).unwrap());
                    same(&want, &got).unwrap_or_else(|e| panic!("{name} on {backend}, compiled at {start}, set to {wd}: {e}"));
                }
            }
        }
    }
}

#[test]
fn a_group_keeps_its_constant_when_the_default_decay_is_zero() {
    let make = |wd: f64| Optim::new(Sgd::new(0.1).weight_decay(wd)).group(&["l1.weight"], Sgd::new(0.1).weight_decay(2e-2));
    let mut p = compile(Box::new(make(0.0).tunable_weight_decay()), CompileOptions::interp()).unwrap();
    p.set_weight_decay(1e-2).unwrap();
    let got = run(&mut p);
    let want = run(&mut compile(Box::new(make(1e-2)), CompileOptions::interp()).unwrap());
    same(&want, &got).unwrap();
}

#[test]
fn the_constant_decay_adds_no_state_and_rejects_set_weight_decay() {
    let mut p = compile(Box::new(Adam::adamw(1e-2)), CompileOptions::interp()).unwrap();
    assert!(!p.has_state(WEIGHT_DECAY));
    assert_eq!(p.weight_decay(), None);
    let e = p.set_weight_decay(1e-3).unwrap_err().to_string();
    assert!(e.contains("tunable_weight_decay"), "{e}");
    let mut t = compile(Box::new(Adam::adamw(1e-2).tunable_weight_decay()), CompileOptions::interp()).unwrap();
    for bad in [-1e-3, f64::NAN, f64::INFINITY] {
        let e = t.set_weight_decay(bad).unwrap_err().to_string();
        assert!(e.contains("weight_decay"), "{e}");
    }
    assert_eq!(t.weight_decay(), Some(1e-2f32 as f64), "a rejected value leaves the state alone");
}
