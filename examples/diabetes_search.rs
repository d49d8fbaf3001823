//! Model selection as the notes teach it, on the diabetes table: 20% of the
//! rows are set aside as the test set; on the other 80%, a grid search over
//! learning rate, weight decay and batch size scores each setting by
//! stratified 5-fold cross-validation (a fresh model per fold, features
//! standardized on each fold's training rows), then a random search scores
//! log-uniform learning rates on one validation split. The best grid setting
//! is retrained on all 80% and the test rows are measured once.
//!
//! Compiled steps are reused across trials: the learning rate and the
//! weight decay (`tunable_weight_decay()`) are program state, so a new lr,
//! decay or fold only resets the program's weights and optimizer state in
//! place and sets the two; only a new batch size (a new shape) compiles
//! another step, once. (With the decay a constant of the update, each
//! decay value compiled a step of its own: 4 for this grid, now 2.)
//!
//! `cargo run --release --example diabetes_search [-- --epochs N]`

use std::sync::Arc;

use kiln::data::{stratified_split, DataLoader, LastBatch, Standardize, TensorDataset};
use kiln::nn::Module;
use kiln::optim::Rule;
use kiln::train::{cross_validate, search, Hyper, ProgramCache, Range, SearchSpace};
use kiln::{f32_shape, loss, optim, Builder, ParamStore, Program};
use kiln_examples::diabetes::{self, net};
use kiln_examples::{args, Args, OrDie};

const EVAL_BATCH: usize = 64;
const FOLDS: usize = 5;

/// The training step for one batch size, any lr and weight decay (same
/// initial weights every time: `ParamStore::new(0)`).
fn train_step(batch: usize, a: &Args) -> kiln::Result<Program> {
    let mut store = ParamStore::new(0);
    let model = net(&mut store)?;
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([batch, 8]))?;
    let y = b.input("y", f32_shape([batch, 1]))?;
    let p = model.forward(&mut b, x)?;
    let l = loss::bce(&mut b, p, y, loss::Reduction::Mean)?;
    kiln::compile(&kiln::train_step(&b, l, &store, optim::Adam::new(1e-2).tunable_weight_decay())?, a.compile_options())
}

fn eval_program(a: &Args) -> kiln::Result<Program> {
    let mut store = ParamStore::new(0);
    let model = net(&mut store)?;
    let mut e = Builder::eval();
    let x = e.input("x", f32_shape([EVAL_BATCH, 8]))?;
    let p = model.forward(&mut e, x)?;
    e.output("p", p)?;
    kiln::compile(&kiln::inference(&e, &store)?, a.compile_options())
}

/// Standardizes both parts with `train`'s statistics; targets become f32
/// `[n, 1]` for BCE.
fn prepare(train: &TensorDataset, val: &TensorDataset) -> kiln::Result<(Arc<TensorDataset>, Arc<TensorDataset>)> {
    let scale = Standardize::fit(train)?;
    let bce = |d: &TensorDataset| -> kiln::Result<Arc<TensorDataset>> {
        let y: Vec<f32> = d.labels().unwrap_or_default().iter().map(|&l| l as f32).collect();
        let mut t = TensorDataset::with_float_targets(d.inputs.clone(), y, d.item_shape.clone(), 1)?;
        scale.apply(&mut t)?;
        Ok(Arc::new(t))
    };
    Ok((bce(train)?, bce(val)?))
}

struct Trainer<'a> {
    steps: ProgramCache<usize>,
    eval: Program,
    epochs: usize,
    args: &'a Args,
}

impl Trainer<'_> {
    /// Trains a fresh model on `train` and returns its accuracy on `val`.
    fn score(&mut self, h: &Hyper, train: &TensorDataset, val: &TensorDataset) -> kiln::Result<f64> {
        let (train, val) = prepare(train, val)?;
        let (a, batch) = (self.args, h.batch_size);
        let step = self.steps.trial(batch, h, || train_step(batch, a))?;
        let loader = DataLoader::new(train, batch)?.shuffle(1);
        for epoch in 0..self.epochs {
            for b in loader.epoch(epoch as u64) {
                let b = b?;
                step.run(&[("x", &b.x), ("y", &b.y)])?;
            }
        }
        self.eval.load_from(step)?;
        let mut correct = 0;
        for b in DataLoader::new(val.clone(), EVAL_BATCH)?.last_batch(LastBatch::Pad).epoch(0) {
            let b = b?;
            let p = self.eval.run(&[("x", &b.x)])?["p"].to_f32_vec();
            let t = b.y.to_f32_vec();
            correct += p.iter().zip(&t).take(b.len).filter(|(p, t)| f32::from(**p > 0.5) == **t).count();
        }
        Ok(correct as f64 / val.len() as f64)
    }
}

fn main() {
    let a = args();
    let epochs = a.epochs.unwrap_or(40);
    let table = diabetes::table();
    let (dev, test) = stratified_split(&table, 0.2, 0).or_die("split");
    let (dev, test) = (table.subset(&dev), table.subset(&test));
    println!("diabetes: {} rows for model selection, {} test rows set aside; {epochs} epochs per trial, backend {}", dev.len(), test.len(), a.backend_name());
    let mut t = Trainer { steps: ProgramCache::new(), eval: eval_program(&a).or_die("compile"), epochs, args: &a };

    let space = SearchSpace { lr: Range::Values(vec![1e-3, 1e-2, 3e-2]), weight_decay: Range::Values(vec![0.0, 1e-3]), batch_size: vec![32, 64] };
    let grid = space.grid().or_die("grid");
    let report = search(&grid, |h| {
        let cv = cross_validate(&dev, FOLDS, 0, |_, tr, va| t.score(h, &tr, &va))?;
        println!("  lr {:<6} weight_decay {:<6} batch {:>2}: {FOLDS}-fold accuracy {cv}", h.lr, h.weight_decay, h.batch_size);
        Ok::<f64, kiln::Error>(cv.mean)
    })
    .or_die("grid search");
    let best = *report.best().unwrap_or_else(|| kiln_examples::die("no trial scored"));
    println!(
        "grid search: {} settings x {FOLDS} folds, {} training steps compiled; best lr {} weight_decay {} batch {} ({:.4})",
        grid.len(),
        t.steps.compiles(),
        best.hyper.lr,
        best.hyper.weight_decay,
        best.hyper.batch_size,
        best.score
    );

    // Random search: learning rates log-uniform, scored on one stratified
    // validation split of the selection rows.
    let random = SearchSpace { lr: Range::LogUniform(1e-3, 1e-1), ..space }.random(6, 7).or_die("random search");
    let (tr, va) = stratified_split(&dev, 0.2, 1).or_die("split");
    let (tr, va) = (dev.subset(&tr), dev.subset(&va));
    let before = t.steps.compiles();
    let rs = search(&random, |h| t.score(h, &tr, &va)).or_die("random search");
    for trial in &rs.trials {
        println!("  lr {:.5} weight_decay {:<6} batch {:>2}: validation accuracy {:.4}", trial.hyper.lr, trial.hyper.weight_decay, trial.hyper.batch_size, trial.score);
    }
    println!("random search: {} draws, {} new compiles", random.len(), t.steps.compiles() - before);

    // The chosen setting, retrained on every selection row; the test rows
    // are touched here and only here.
    let h = best.hyper;
    let acc = t.score(&h, &dev, &test).or_die("final model");
    println!("best grid setting retrained on all {} selection rows: test accuracy {acc:.4}", dev.len());
    println!("test_accuracy={acc:.4}");
}
