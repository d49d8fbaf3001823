//! The course notes' Inception network (`kiln::models::inception_net`:
//! conv 5x5 -> pool -> ReLU -> Inception block (four branches concatenated
//! to 88 channels) -> conv 5x5 -> pool -> ReLU -> Inception block -> fc)
//! on the shipped MNIST digits: SGD lr 0.01 momentum 0.9 (cosine decay),
//! batch 64, normalized inputs, random 2-pixel shifts. 10% of the training
//! digits (stratified) are held out for validation; the test digits are
//! measured once, at the end.
//!
//! `cargo run --release --example inception_mnist`

use kiln::nn::Module;
use kiln::{models, optim, ParamStore};
use kiln_examples::mnist::{self, compile_classifier, Programs};
use kiln_examples::{args, fit, test_once, Fit, OrDie};

const BATCH: usize = 64;
const EVAL_BATCH: usize = 500;
const TARGET: f64 = 0.98;
const LR: f64 = 0.03;

fn main() {
    let a = args();
    let epochs = a.epochs.unwrap_or(8);
    let (train_set, val_set, test_set) = mnist::splits(&a, None);

    let mut store = ParamStore::new(0);
    let net = models::inception_net(&mut store, 10, 1).or_die("model");
    let Programs { mut train, mut eval, compile_train_s: compile_s } =
        compile_classifier(&a, &store, optim::Sgd::new(LR).momentum(0.9), &[1, 28, 28], BATCH, EVAL_BATCH, |b, x, _| net.forward(b, x));
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
        transform: Some(mnist::random_shifts()),
        num_workers: a.workers.unwrap_or(1),
        early_stopping: None,
        lr_schedule: Some(&schedule),
        out: a.out.clone(),
    });
    test_once(&report, &mut eval, &test_set, EVAL_BATCH, TARGET);
}
