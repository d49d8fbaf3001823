//! Binary logistic regression with binary cross-entropy: two Gaussian
//! clouds in the plane (centres (-1,-1) and (1,1), unit variance), one
//! `Linear(2, 1)` producing a logit, `bce_with_logits`, SGD with momentum.
//! The Bayes-optimal accuracy for this data is about 0.92. 160 of the 800
//! training points are held out for validation (monitored during training);
//! the 200 test points are measured once, at the end.
//!
//! `cargo run --release --example logistic_regression`

use std::time::Instant;

use kiln::data::SplitMix64;
use kiln::nn::{self, Module};
use kiln::{f32_shape, loss, optim, Builder, HostTensor, ParamStore};
use kiln_examples::{args, scalar, OrDie};

const TRAIN: usize = 640;
const VAL: usize = 160;
const TEST: usize = 200;

fn blobs(n: usize, seed: u64) -> (HostTensor, HostTensor) {
    let mut r = SplitMix64::new(seed);
    let mut gauss = || {
        let (u1, u2) = (r.unit().max(1e-12), r.unit());
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    };
    let mut x = Vec::with_capacity(2 * n);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let c = (i % 2) as f32;
        let m = 2.0 * c - 1.0;
        x.push(m + gauss());
        x.push(m + gauss());
        y.push(c);
    }
    (HostTensor::from_f32([n, 2], x).or_die("data"), HostTensor::from_f32([n, 1], y).or_die("data"))
}

fn main() {
    let a = args();
    let steps = a.epochs.unwrap_or(300);
    // Points alternate between the clouds, so the last 160 of the 800 are a
    // class-balanced validation set.
    let (xall, yall) = blobs(TRAIN + VAL, 1);
    let (x, y) = (xall.to_f32_vec(), yall.to_f32_vec());
    let xtr = HostTensor::from_f32([TRAIN, 2], x[..2 * TRAIN].to_vec()).or_die("data");
    let ytr = HostTensor::from_f32([TRAIN, 1], y[..TRAIN].to_vec()).or_die("data");
    let xva = HostTensor::from_f32([VAL, 2], x[2 * TRAIN..].to_vec()).or_die("data");
    let yva = HostTensor::from_f32([VAL, 1], y[TRAIN..].to_vec()).or_die("data");
    let (xte, yte) = blobs(TEST, 2);

    let mut store = ParamStore::new(0);
    let lin = nn::Linear::new(&mut store, "lin", 2, 1).or_die("model");
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([TRAIN, 2])).or_die("graph");
    let y = b.input("y", f32_shape([TRAIN, 1])).or_die("graph");
    let logit = lin.forward(&mut b, x).or_die("forward");
    let l = loss::bce_with_logits(&mut b, logit, y, None, loss::Reduction::Mean).or_die("loss");
    let step = kiln::train_step(&b, l, &store, optim::Sgd::new(0.1).momentum(0.9)).or_die("train step");
    let mut train = kiln::compile(&step, a.compile_options()).or_die("compile");

    let infer_for = |n: usize| {
        let mut e = Builder::eval();
        let x = e.input("x", f32_shape([n, 2])).or_die("graph");
        let logit = lin.forward(&mut e, x).or_die("forward");
        e.output("logit", logit).or_die("graph");
        kiln::compile(&kiln::inference(&e, &store).or_die("inference"), a.compile_options()).or_die("compile")
    };
    let (mut val_infer, mut infer) = (infer_for(VAL), infer_for(TEST));
    let accuracy = |p: &mut kiln::Program, x: &HostTensor, y: &HostTensor| {
        let logits = p.run(&[("x", x)]).or_die("inference")["logit"].to_f32_vec();
        let labels = y.to_f32_vec();
        logits.iter().zip(&labels).filter(|(z, t)| ((**z > 0.0) as u8 as f32) == **t).count() as f64 / labels.len() as f64
    };

    let t0 = Instant::now();
    for s in 0..steps {
        let bce = scalar(&train.run(&[("x", &xtr), ("y", &ytr)]).or_die("step")["loss"]);
        if s % 100 == 0 || s + 1 == steps {
            val_infer.load_from(&train).or_die("copy weights");
            println!("step {s:>4}  bce {bce:.5}  validation accuracy {:.4}", accuracy(&mut val_infer, &xva, &yva));
        }
    }
    println!("trained in {:.3} s on {}", t0.elapsed().as_secs_f64(), a.backend_name());
    infer.load_from(&train).or_die("copy weights");
    println!("test_accuracy={:.4}", accuracy(&mut infer, &xte, &yte));
}
