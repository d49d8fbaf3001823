//! A 784-32-10 MLP trained on the shipped MNIST digits with every optimizer
//! (interpreter backend, batch 32, a modest number of steps): the loss must
//! fall clearly for each.

use kiln::data::Mnist;
use kiln::nn::{self, Module};
use kiln::optim::{Adadelta, Adagrad, Adam, NAdam, Optimizer, RmsProp, Rule, Sgd};
use kiln::{loss, Builder, CompileOptions, HostTensor, ParamStore, f32_shape, i64_shape};

const BATCH: usize = 32;
const STEPS: usize = 60;

struct Batches {
    xs: Vec<HostTensor>,
    ys: Vec<HostTensor>,
}

fn batches() -> Batches {
    let m = Mnist::shipped().expect("the shipped MNIST subset");
    let d = &m.train;
    assert_eq!(d.item_numel(), 784);
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for k in 0..STEPS {
        let idx: Vec<usize> = (k * BATCH..(k + 1) * BATCH).collect();
        let sub = d.subset(&idx);
        xs.push(HostTensor::from_f32([BATCH, 784], sub.inputs.clone()).unwrap());
        ys.push(HostTensor::from_i64([BATCH], sub.labels().unwrap().to_vec()).unwrap());
    }
    Batches { xs, ys }
}

/// Mean loss over the first and last 10 steps.
fn train(name: &str, opt: impl Optimizer, data: &Batches) -> (f64, f64) {
    let mut s = ParamStore::new(2024);
    let net = nn::Sequential::new()
        .add(nn::Linear::new(&mut s, "fc1", 784, 32).unwrap())
        .add(nn::ReLU)
        .add(nn::Linear::new(&mut s, "fc2", 32, 10).unwrap());
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([BATCH, 784])).unwrap();
    let y = b.input("y", i64_shape([BATCH])).unwrap();
    let logits = net.forward(&mut b, x).unwrap();
    let l = loss::cross_entropy_mean(&mut b, logits, y).unwrap();
    let mut p = kiln::compile(&kiln::train_step(&b, l, &s, opt).unwrap(), CompileOptions::interp()).unwrap();
    let losses: Vec<f64> = (0..STEPS)
        .map(|k| p.run(&[("x", &data.xs[k]), ("y", &data.ys[k])]).unwrap()["loss"].scalar().unwrap())
        .collect();
    assert!(losses.iter().all(|l| l.is_finite()), "{name}: {losses:?}");
    let first = losses[..10].iter().sum::<f64>() / 10.0;
    let last = losses[STEPS - 10..].iter().sum::<f64>() / 10.0;
    eprintln!("{name:>10}: mean loss first 10 steps {first:.3}, last 10 steps {last:.3}");
    (first, last)
}

#[test]
fn every_optimizer_reduces_the_mnist_loss() {
    let data = batches();
    let runs: Vec<(&str, Box<dyn Optimizer>, f64)> = vec![
        ("sgd", Box::new(Sgd::new(0.1)), 0.6),
        ("momentum", Box::new(Sgd::new(0.05).momentum(0.9).nesterov(true)), 0.6),
        ("adam", Box::new(Adam::new(3e-3)), 0.6),
        ("adamw", Box::new(Adam::adamw(3e-3).amsgrad(true)), 0.6),
        ("nadam", Box::new(NAdam::new(3e-3)), 0.6),
        ("rmsprop", Box::new(RmsProp::new(1e-3).centered(true)), 0.6),
        ("adagrad", Box::new(Adagrad::new(0.05)), 0.6),
        ("adadelta", Box::new(Adadelta::new(10.0)), 0.6),
        ("groups+clip", Box::new(Sgd::new(0.1).momentum(0.9).group(&["fc1.bias", "fc2.bias"], Sgd::new(0.1).momentum(0.9)).clip_grad_norm(1.0)), 0.6),
    ];
    let mut bad = Vec::new();
    for (name, opt, ratio) in runs {
        let (first, last) = train(name, opt, &data);
        if last >= ratio * first || !last.is_finite() {
            bad.push(format!("{name}: {first:.3} -> {last:.3} (wanted below {:.3})", ratio * first));
        }
    }
    assert!(bad.is_empty(), "loss did not fall clearly:\n{}", bad.join("\n"));
}
