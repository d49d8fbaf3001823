//! A small vision transformer on the shipped MNIST digits
//! (`kiln::models::TinyVitConfig`): 7x7 patches embedded by a strided conv
//! (16 tokens + a class token, learned position embeddings), a pre-norm
//! GELU `TransformerEncoder` of width 48, 3 layers of 4 heads, feed-forward
//! 96, then LayerNorm and a linear head on the class token. AdamW 2e-3
//! (weight decay 0.05) with cosine decay, batch 64, random 2-pixel shifts.
//! 10% of the training digits (stratified) are held out for validation;
//! the test digits are measured once, at the end.
//!
//! `cargo run --release --example vit_mnist`

use kiln::models::TinyVitConfig;
use kiln::nn::Module;
use kiln::{optim, ParamStore};
use kiln_examples::mnist::{self, compile_classifier, Programs};
use kiln_examples::{args, fit, test_once, Fit, OrDie};

const BATCH: usize = 64;
const EVAL_BATCH: usize = 500;
const TARGET: f64 = 0.95;
const LR: f64 = 2e-3;

fn main() {
    let a = args();
    let epochs = a.epochs.unwrap_or(24);
    let (train_set, val_set, test_set) = mnist::splits(&a, None);

    let mut store = ParamStore::new(0);
    let net = TinyVitConfig::default().shape(48, 3, 4, 96).build(&mut store, "").or_die("model");
    let Programs { mut train, mut eval, compile_train_s: compile_s } =
        compile_classifier(&a, &store, optim::Adam::adamw(LR).weight_decay(0.05), &[1, 28, 28], BATCH, EVAL_BATCH, |b, x, _| net.forward(b, x));
    println!(
        "ViT ({} parameters, {} tokens) on MNIST-10k ({} train / {} validation / {} test), backend {}, training step compiled in {:.1} ms",
        store.num_params(),
        net.cfg.tokens(),
        train_set.len(),
        val_set.len(),
        test_set.len(),
        a.backend_name(),
        compile_s * 1e3
    );

    let schedule = kiln_examples::cosine(LR, epochs);
    let report = fit(Fit {
        name: "vit_mnist",
        train: &mut train,
        eval: &mut eval,
        train_set,
        val_set,
        batch: BATCH,
        eval_batch: EVAL_BATCH,
        epochs,
        seed: 1,
        target: TARGET,
        // Without the shifts this ViT overfits 7,200 digits (training accuracy
        // 0.99, validation 0.94 by epoch 11).
        transform: Some(mnist::random_shifts()),
        num_workers: a.workers.unwrap_or(1),
        early_stopping: None,
        lr_schedule: Some(&schedule),
        out: a.out.clone(),
    });
    test_once(&report, &mut eval, &test_set, EVAL_BATCH, TARGET);
}
