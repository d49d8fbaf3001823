//! An LSTM sequence classifier: each MNIST digit is read as a sequence of
//! its 28 rows (28 features per step), LSTM(28->64), the last hidden state
//! -> linear 64->10; Adam lr 3e-3 with cosine decay, batch 64. Validated on
//! 10% of the training digits; the test digits are measured once, at the end.
//!
//! `cargo run --release --example lstm_mnist`

use kiln::nn::{self, Module};
use kiln::{optim, Builder, ParamStore};
use kiln_examples::mnist::{self, compile_classifier, Programs};
use kiln_examples::{args, fit, test_once, Fit, OrDie};

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
    let (train_set, val_set, test_set) = mnist::splits(&a, Some(&[28, 28]));

    let mut store = ParamStore::new(0);
    let lstm = nn::Lstm::config(28, HIDDEN).batch_first(true).build(&mut store, "lstm").or_die("model");
    let fc = nn::Linear::new(&mut store, "fc", HIDDEN, 10).or_die("model");

    let Programs { mut train, mut eval, .. } =
        compile_classifier(&a, &store, optim::Adam::new(3e-3), &[28, 28], BATCH, EVAL_BATCH, |b, x, batch| forward(&lstm, &fc, b, x, batch));
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
