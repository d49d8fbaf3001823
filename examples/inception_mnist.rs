//! The course notes' Inception network (`kiln::models::inception_net`:
//! conv 5x5 -> pool -> ReLU -> Inception block (four branches concatenated
//! to 88 channels) -> conv 5x5 -> pool -> ReLU -> Inception block -> fc)
//! on the shipped MNIST digits: SGD lr 0.01 momentum 0.9 (cosine decay),
//! batch 64, normalized inputs, random 2-pixel shifts. 10% of the training
//! digits (stratified) are held out for validation; the test digits are
//! measured once, at the end.
//!
//! `cargo run --release --example inception_mnist`

use std::sync::Arc;
use std::time::Instant;

use kiln::data::transforms::{Compose, RandomCrop};
use kiln::data::{Mnist, Normalize};
use kiln::nn::Module;
use kiln::{f32_shape, i64_shape, loss, models, optim, Builder, ParamStore};
use kiln_examples::{args, fit, holdout, limit, test_once, Fit, OrDie, VAL_FRACTION};

const BATCH: usize = 64;
const EVAL_BATCH: usize = 500;
const TARGET: f64 = 0.98;
const LR: f64 = 0.03;

fn main() {
    let a = args();
    let epochs = a.epochs.unwrap_or(8);
    let mut mnist = Mnist::shipped().or_die("MNIST");
    mnist.normalize(Normalize::MNIST);
    let (train_set, val_set) = holdout(limit(mnist.train, a.train_limit), VAL_FRACTION, 0);
    let test_set = Arc::new(mnist.test);

    let mut store = ParamStore::new(0);
    let net = models::inception_net(&mut store, 10, 1).or_die("model");
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([BATCH, 1, 28, 28])).or_die("graph");
    let y = b.input("y", i64_shape([BATCH])).or_die("graph");
    let logits = net.forward(&mut b, x).or_die("forward");
    b.output("logits", logits).or_die("graph");
    let l = loss::cross_entropy_mean(&mut b, logits, y).or_die("loss");
    let step = kiln::train_step(&b, l, &store, optim::Sgd::new(LR).momentum(0.9)).or_die("train step");
    let t0 = Instant::now();
    let mut train = kiln::compile(&step, a.compile_options()).or_die("compile");
    let compile_s = t0.elapsed().as_secs_f64();

    let mut e = Builder::eval();
    let x = e.input("x", f32_shape([EVAL_BATCH, 1, 28, 28])).or_die("graph");
    let y = e.input("y", i64_shape([EVAL_BATCH])).or_die("graph");
    let logits = net.forward(&mut e, x).or_die("forward");
    e.output("logits", logits).or_die("graph");
    let l = loss::cross_entropy_mean(&mut e, logits, y).or_die("loss");
    e.output("loss", l).or_die("graph");
    let mut eval = kiln::compile(&kiln::inference(&e, &store).or_die("inference"), a.compile_options()).or_die("compile");
    println!(
        "Inception net ({} parameters) on MNIST-10k ({} train / {} validation / {} test), backend {}, training step compiled in {:.1} ms",
        store.num_params(),
        train_set.len(),
        val_set.len(),
        test_set.len(),
        a.backend_name(),
        compile_s * 1e3
    );

    let schedule = kiln_examples::cosine(LR, epochs);
    let report = fit(Fit {
        name: "inception_mnist",
        train: &mut train,
        eval: &mut eval,
        train_set,
        val_set,
        batch: BATCH,
        eval_batch: EVAL_BATCH,
        epochs,
        seed: 1,
        target: TARGET,
        transform: Some(Compose::new().add(RandomCrop::new(28).padding(2, -Normalize::MNIST.mean / Normalize::MNIST.std))),
        num_workers: a.workers.unwrap_or(1),
        early_stopping: None,
        lr_schedule: Some(&schedule),
        out: a.out.clone(),
    });
    test_once(&report, &mut eval, &test_set, EVAL_BATCH, TARGET);
}
