//! An LSTM sequence classifier: each MNIST digit is read as a sequence of
//! its 28 rows (28 features per step), LSTM(28->64), the last hidden state
//! -> linear 64->10; Adam lr 3e-3 with cosine decay, batch 64. Validated on
//! 10% of the training digits; the test digits are measured once, at the end.
//!
//! `cargo run --release --example lstm_mnist`

use std::sync::Arc;

use kiln::data::{Mnist, Normalize};
use kiln::nn::{self, Module};
use kiln::{f32_shape, i64_shape, loss, optim, Builder, ParamStore};
use kiln_examples::{args, fit, holdout, limit, test_once, Fit, OrDie, VAL_FRACTION};

const BATCH: usize = 64;
const EVAL_BATCH: usize = 500;
const HIDDEN: usize = 64;
const TARGET: f64 = 0.95;

fn forward(lstm: &nn::Rnn, fc: &nn::Linear, b: &mut Builder, x: kiln::NodeId, batch: usize) -> kiln::Result<kiln::NodeId> {
    let out = lstm.forward_seq(b, x, None, None)?;
    let h = b.reshape(out.h_n, [batch, HIDDEN])?;
    fc.forward(b, h)
}

fn main() {
    let a = args();
    let epochs = a.epochs.unwrap_or(8);
    let mut mnist = Mnist::shipped().or_die("MNIST");
    mnist.normalize(Normalize::MNIST);
    let (train_set, val_set) = holdout(limit(mnist.train, a.train_limit).reshaped(&[28, 28]).or_die("reshape"), VAL_FRACTION, 0);
    let test_set = Arc::new(mnist.test.reshaped(&[28, 28]).or_die("reshape"));

    let mut store = ParamStore::new(0);
    let lstm = nn::Lstm::config(28, HIDDEN).batch_first(true).build(&mut store, "lstm").or_die("model");
    let fc = nn::Linear::new(&mut store, "fc", HIDDEN, 10).or_die("model");

    let mut b = Builder::train();
    let x = b.input("x", f32_shape([BATCH, 28, 28])).or_die("graph");
    let y = b.input("y", i64_shape([BATCH])).or_die("graph");
    let logits = forward(&lstm, &fc, &mut b, x, BATCH).or_die("forward");
    b.output("logits", logits).or_die("graph");
    let l = loss::cross_entropy_mean(&mut b, logits, y).or_die("loss");
    let step = kiln::train_step(&b, l, &store, optim::Adam::new(3e-3)).or_die("train step");
    let mut train = kiln::compile(&step, a.compile_options()).or_die("compile");

    let mut e = Builder::eval();
    let x = e.input("x", f32_shape([EVAL_BATCH, 28, 28])).or_die("graph");
    let y = e.input("y", i64_shape([EVAL_BATCH])).or_die("graph");
    let logits = forward(&lstm, &fc, &mut e, x, EVAL_BATCH).or_die("forward");
    e.output("logits", logits).or_die("graph");
    let l = loss::cross_entropy_mean(&mut e, logits, y).or_die("loss");
    e.output("loss", l).or_die("graph");
    let mut eval = kiln::compile(&kiln::inference(&e, &store).or_die("inference"), a.compile_options()).or_die("compile");
    println!("LSTM(28->{HIDDEN}) over 28 rows, {} train / {} validation / {} test, backend {}", train_set.len(), val_set.len(), test_set.len(), a.backend_name());

    // Adam 3e-3 annealed to 0 (cosine) so the last epochs settle.
    let schedule = kiln_examples::cosine(3e-3, epochs);
    let report = fit(Fit {
        name: "lstm_mnist",
        train: &mut train,
        eval: &mut eval,
        train_set: train_set.clone(),
        val_set: val_set.clone(),
        batch: BATCH,
        eval_batch: EVAL_BATCH,
        epochs,
        seed: 1,
        target: TARGET,
        transform: None,
        num_workers: a.workers.unwrap_or(0),
        early_stopping: None,
        lr_schedule: Some(&schedule),
        out: a.out.clone(),
    });
    test_once(&report, &mut eval, &test_set, EVAL_BATCH, TARGET);
}
