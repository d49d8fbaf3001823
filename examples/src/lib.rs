//! Shared pieces of kiln's examples: command-line flags, backend choice,
//! and a classifier training loop built from kiln's data, metrics and
//! training helpers (progress bar, history, early stopping, curve PNG).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use kiln::data::transforms::Compose;
use kiln::data::{train_val_split, DataLoader, LastBatch, TensorDataset};
use kiln::metrics::{ConfusionMatrix, MeanLoss};
use kiln::train::{plot_history, EarlyStopping, EpochRecord, History, TrainProgress, Verdict};
use kiln::{BackendKind, CompileOptions, HostTensor, Program};

pub mod diabetes;
pub mod mnist;
pub mod zoo;

/// Flags every example accepts.
#[derive(Debug, Clone)]
pub struct Args {
    /// `--epochs N` (each example has its own default).
    pub epochs: Option<usize>,
    /// `--out DIR`: saved programs, curves (default `target/examples-out`).
    pub out: PathBuf,
    /// `--backend cpu|wgpu|interp` (default cpu; `KILN_BACKEND` also works).
    pub backend: BackendKind,
    /// `--train-limit N`: use only the first N training items (smoke runs).
    pub train_limit: Option<usize>,
    /// `--workers N`: data-loader threads (each example has its own default).
    pub workers: Option<usize>,
}

const HELP: &str = "flags: [--epochs N] [--out DIR] [--backend cpu|wgpu|interp] [--train-limit N] [--workers N]";

pub fn args() -> Args {
    args_with(&[]).0
}

/// [`args`] plus the example's own `--NAME VALUE` flags (`extra`, each
/// with a one-line help): their values by name (without the dashes).
pub fn args_with(extra: &[(&str, &str)]) -> (Args, std::collections::BTreeMap<String, String>) {
    let help = || {
        let mut h = HELP.to_string();
        for (name, what) in extra {
            h.push_str(&format!("\n  --{name} {what}"));
        }
        h
    };
    let mut own = std::collections::BTreeMap::new();
    let mut a = Args { epochs: None, out: PathBuf::from("target/examples-out"), backend: BackendKind::Cpu, train_limit: None, workers: None };
    if let Ok(b) = std::env::var("KILN_BACKEND") {
        a.backend = parse_backend(&b);
    }
    let mut it = std::env::args().skip(1);
    while let Some(f) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| die(&format!("{f} needs a value\n{}", help())));
        match f.as_str() {
            "--epochs" => a.epochs = Some(v().parse().unwrap_or_else(|e| die(&format!("--epochs: {e}")))),
            "--out" => a.out = PathBuf::from(v()),
            "--backend" => a.backend = parse_backend(&v()),
            "--train-limit" => a.train_limit = Some(v().parse().unwrap_or_else(|e| die(&format!("--train-limit: {e}")))),
            "--workers" => a.workers = Some(v().parse().unwrap_or_else(|e| die(&format!("--workers: {e}")))),
            "-h" | "--help" => {
                println!("{}", help());
                std::process::exit(0);
            }
            other => match other.strip_prefix("--").filter(|n| extra.iter().any(|(e, _)| e == n)) {
                Some(name) => {
                    own.insert(name.to_string(), v());
                }
                None => die(&format!("unknown flag `{other}`\n{}", help())),
            },
        }
    }
    (a, own)
}

fn parse_backend(s: &str) -> BackendKind {
    BackendKind::parse(s).unwrap_or_else(|| die(&format!("unknown backend `{s}` (cpu, wgpu, interp, interp-f64)")))
}

pub fn die(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2)
}

/// Unwraps or exits with the error's message (examples have no better
/// recovery than telling the user).
pub trait OrDie<T> {
    fn or_die(self, what: &str) -> T;
}

impl<T, E: std::fmt::Display> OrDie<T> for Result<T, E> {
    fn or_die(self, what: &str) -> T {
        self.unwrap_or_else(|e| die(&format!("{what}: {e}")))
    }
}

impl Args {
    pub fn compile_options(&self) -> CompileOptions {
        CompileOptions::default().backend(self.backend)
    }

    pub fn backend_name(&self) -> &'static str {
        kiln::format::backend_name(self.backend)
    }
}

/// What a classifier run needs. The train program takes `x`, `y` and
/// returns `loss` (and `logits` if it reports training accuracy); the eval
/// program takes `x`, `y` and returns `logits` and `loss`, with the same
/// param/buffer names (copied over after every epoch).
///
/// Everything the run decides (early stopping, which epoch's weights to
/// keep, the time to the target) is decided on `val_set`, which must be
/// held out of the training data ([`holdout`]); the test set is not seen
/// here at all: [`test_once`] measures it after the run.
pub struct Fit<'a> {
    pub name: &'a str,
    pub train: &'a mut Program,
    pub eval: &'a mut Program,
    pub train_set: Arc<TensorDataset>,
    /// Measured after every epoch; early stopping watches its loss.
    pub val_set: Arc<TensorDataset>,
    pub batch: usize,
    pub eval_batch: usize,
    pub epochs: usize,
    pub seed: u64,
    /// Report the time at which validation accuracy first reaches this.
    pub target: f64,
    /// Training-time augmentation, seeded per (epoch, sample).
    pub transform: Option<Compose>,
    /// Loader threads preparing the next batches while a step runs.
    pub num_workers: usize,
    /// `(patience, min_delta)`; the weights of the epoch with the best
    /// validation loss are the ones kept.
    pub early_stopping: Option<(usize, f64)>,
    /// The learning rate of each epoch (set on the compiled step, no
    /// recompilation); `None` keeps the optimizer's.
    pub lr_schedule: Option<&'a dyn Fn(usize) -> f64>,
    pub out: PathBuf,
}

pub struct FitReport {
    pub history: History,
    /// Validation accuracy of the weights kept (now in the eval program).
    pub val_accuracy: f64,
    /// The epoch (1-based) whose weights were kept.
    pub kept_epoch: usize,
    /// Seconds of training (evaluation excluded) and epoch when the
    /// validation accuracy first reached the target.
    pub time_to_target: Option<(usize, f64)>,
    /// Seconds of training up to the kept epoch / in all.
    pub kept_seconds: f64,
    pub train_seconds: f64,
}

/// The share of the training digits the MNIST examples hold out for
/// validation (800 of 8,000): enough that one digit is 0.125% of accuracy,
/// few enough that training keeps 7,200.
pub const VAL_FRACTION: f64 = 0.1;

/// Splits `val_fraction` of the training digits off as a validation set,
/// stratified by class and seeded: `(train, val)`.
pub fn holdout(train: TensorDataset, val_fraction: f64, seed: u64) -> (Arc<TensorDataset>, Arc<TensorDataset>) {
    let (t, v) = train_val_split(&train, val_fraction, seed).or_die("validation split");
    (Arc::new(t), Arc::new(v))
}

/// Evaluates `eval` on `data` (the tail batch padded and masked out).
pub fn evaluate(eval: &mut Program, data: &Arc<TensorDataset>, batch: usize) -> (f64, f64, ConfusionMatrix) {
    let loader = DataLoader::new(data.clone(), batch).or_die("loader").last_batch(LastBatch::Pad);
    let mut cm = ConfusionMatrix::new(data.num_classes().unwrap_or(0));
    let mut loss = MeanLoss::default();
    for b in loader.epoch(0) {
        let b = b.or_die("batch");
        let out = eval.run(&[("x", &b.x), ("y", &b.y)]).or_die("eval step");
        cm.add(&out["logits"], &b.y, Some(b.len)).or_die("metrics");
        // The program's loss is a mean over the padded batch; cross-entropy
        // per real row from the logits counts every example exactly once,
        // even when the whole set is smaller than one batch.
        let logits = out["logits"].to_f64_vec();
        let labels = b.y.as_i64().unwrap_or_else(|| die("evaluate: labels must be i64 class indices"));
        let classes = logits.len() / batch;
        for (row, &y) in logits.chunks(classes).zip(labels).take(b.len) {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            loss.add(lse - row[y as usize], 1);
        }
    }
    (loss.value(), cm.accuracy(), cm)
}

pub fn fit(f: Fit<'_>) -> FitReport {
    let mut loader = DataLoader::new(f.train_set.clone(), f.batch).or_die("loader").shuffle(f.seed).last_batch(LastBatch::Drop).num_workers(f.num_workers);
    if let Some(t) = f.transform {
        loader = loader.transform(t, f.seed ^ 0xA5A5).or_die("transform");
    }
    let mut bar = TrainProgress::new(f.epochs, loader.len());
    let mut history = History::default();
    let mut stop = f.early_stopping.map(|(p, d)| EarlyStopping::new(p, d));
    let mut train_s = 0.0;
    let mut wait_s = 0.0;
    let mut time_to_target = None;
    // The weights kept: the last epoch's, or with early stopping the best.
    let mut kept: Option<(usize, f64, f64, std::collections::BTreeMap<String, HostTensor>)> = None;
    for epoch in 0..f.epochs {
        if let Some(lr) = f.lr_schedule {
            f.train.set_lr(lr(epoch)).or_die("set learning rate");
        }
        bar.start_epoch(epoch);
        let t0 = Instant::now();
        let mut correct = (0usize, 0usize);
        let mut batches = loader.epoch(epoch as u64);
        loop {
            // Time the step spends waiting for its next batch: what loader
            // workers exist to hide.
            let tw = Instant::now();
            let Some(b) = batches.next() else { break };
            wait_s += tw.elapsed().as_secs_f64();
            let b = b.or_die("batch");
            let out = f.train.run(&[("x", &b.x), ("y", &b.y)]).or_die("train step");
            let loss = out["loss"].scalar().or_die("loss");
            if !loss.is_finite() {
                die(&format!("{}: loss became {loss} at epoch {}", f.name, epoch + 1));
            }
            history.push_step(loss);
            let acc = out.get("logits").map(|l| (kiln::metrics::correct(l, &b.y, Some(b.len)).or_die("metrics"), b.len));
            if let Some((c, n)) = acc {
                correct.0 += c;
                correct.1 += n;
            }
            bar.step(loss, acc);
        }
        train_s += t0.elapsed().as_secs_f64();
        f.eval.load_from(f.train).or_die("copy weights");
        let (val_loss, val_acc, _) = evaluate(f.eval, &f.val_set, f.eval_batch);
        let rec = EpochRecord {
            epoch,
            train_loss: bar.mean_loss(),
            train_accuracy: (correct.1 > 0).then(|| correct.0 as f64 / correct.1 as f64),
            val_loss: Some(val_loss),
            val_accuracy: Some(val_acc),
            elapsed_s: train_s,
        };
        bar.end_epoch(&rec);
        history.push(rec);
        if time_to_target.is_none() && val_acc >= f.target {
            time_to_target = Some((epoch + 1, train_s));
        }
        match &mut stop {
            None => kept = Some((epoch + 1, val_acc, train_s, Default::default())),
            Some(s) => {
                let verdict = s.update(val_loss);
                if verdict == Verdict::Improved {
                    kept = Some((epoch + 1, val_acc, train_s, f.eval.model_state_dict()));
                }
                if verdict == Verdict::Stop {
                    println!("early stopping after epoch {} (best validation loss {:?})", epoch + 1, s.best());
                    break;
                }
            }
        }
    }
    let (kept_epoch, val_accuracy, kept_seconds, weights) = kept.unwrap_or_else(|| die("no epoch was trained"));
    println!(
        "{:.1} s of training, {:.3} s of it waiting for batches ({} loader workers), {:.3} s per epoch",
        train_s,
        wait_s,
        f.num_workers,
        train_s / history.epochs.len() as f64
    );
    if !weights.is_empty() {
        f.eval.load_state_dict(&weights).or_die("restore the best epoch's weights");
        println!("kept the weights of epoch {kept_epoch} (best validation loss)");
    }
    let png = f.out.join(format!("{}-curve.png", f.name));
    match plot_history(&history, f.name, &png) {
        Ok(()) => println!("loss/accuracy curve: {}", png.display()),
        Err(e) => eprintln!("warning: no curve: {e}"),
    }
    let _ = std::fs::write(f.out.join(format!("{}-history.csv", f.name)), history.to_csv());
    FitReport { history, val_accuracy, kept_epoch, time_to_target, kept_seconds, train_seconds: train_s }
}

/// The plain epoch loop of the examples that are not classifiers (so have
/// no [`fit`]): each epoch sets the learning rate `schedule(epoch)`, runs
/// `train` on every full batch of `train_set` (shuffled with seed 1) — fed
/// `x`, and `y` too when `feed_y` (an autoencoder's target is its input) —
/// copies the weights into `eval`, and calls `after_epoch(epoch, mean
/// training loss, seconds of training so far, eval)`. Returns the seconds
/// of training (batches only, not `after_epoch`).
#[allow(clippy::too_many_arguments)]
pub fn train_epochs(
    train: &mut Program,
    eval: &mut Program,
    train_set: Arc<TensorDataset>,
    batch: usize,
    epochs: usize,
    schedule: impl Fn(usize) -> f64,
    feed_y: bool,
    mut after_epoch: impl FnMut(usize, f64, f64, &mut Program),
) -> f64 {
    let loader = DataLoader::new(train_set, batch).or_die("loader").shuffle(1).last_batch(LastBatch::Drop);
    let mut train_s = 0.0;
    for epoch in 0..epochs {
        train.set_lr(schedule(epoch)).or_die("learning rate");
        let t0 = Instant::now();
        let (mut sum, mut n) = (0.0, 0);
        for bt in loader.epoch(epoch as u64) {
            let bt = bt.or_die("batch");
            let out = if feed_y { train.run(&[("x", &bt.x), ("y", &bt.y)]) } else { train.run(&[("x", &bt.x)]) };
            sum += scalar(&out.or_die("train step")["loss"]);
            n += 1;
        }
        train_s += t0.elapsed().as_secs_f64();
        eval.load_from(train).or_die("copy weights");
        after_epoch(epoch, sum / n as f64, train_s, eval);
    }
    train_s
}

/// Cosine decay from `lr` to 0 over `epochs` epochs (epoch 0 at full `lr`).
pub fn cosine(lr: f64, epochs: usize) -> impl Fn(usize) -> f64 {
    move |e| lr * 0.5 * (1.0 + (std::f64::consts::PI * e as f64 / epochs.max(1) as f64).cos())
}

/// Measures the test set, once, with the weights the run kept; prints the
/// validation figures, the time to the validation target, and the test
/// accuracy as the last line. Returns the test accuracy and confusion matrix.
pub fn test_once(r: &FitReport, eval: &mut Program, test_set: &Arc<TensorDataset>, eval_batch: usize, target: f64) -> (f64, ConfusionMatrix) {
    match r.time_to_target {
        Some((e, s)) => println!("validation accuracy {target} first reached after {s:.1} s of training (epoch {e})"),
        None => println!("validation accuracy {target} not reached ({:.1} s of training)", r.train_seconds),
    }
    println!("kept epoch {}: validation accuracy {:.4} after {:.1} s of training", r.kept_epoch, r.val_accuracy, r.kept_seconds);
    let (_, acc, cm) = evaluate(eval, test_set, eval_batch);
    let verdict = if acc >= target { "reaches" } else { "misses" };
    println!("test set (measured once, now): accuracy {acc:.4} {verdict} the target {target}");
    println!("test_accuracy={acc:.4}");
    (acc, cm)
}

/// Limits a dataset for smoke runs.
pub fn limit(d: TensorDataset, n: Option<usize>) -> TensorDataset {
    match n {
        Some(n) => d.take(n),
        None => d,
    }
}

/// A one-element f32 tensor's value.
pub fn scalar(t: &HostTensor) -> f64 {
    t.scalar().or_die("scalar")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln::data::{Mnist, Normalize};
    use kiln::nn::{self, Module};
    use kiln::{f32_shape, i64_shape, loss, optim, Builder, ParamStore};

    /// The examples' training loop on a sliver of MNIST: one short epoch,
    /// a history row, a curve file, an accuracy above chance.
    #[test]
    fn fit_smoke() {
        let mut m = Mnist::shipped().unwrap();
        m.normalize(Normalize::MNIST);
        let (train, val) = holdout(m.train.take(712).reshaped(&[784]).unwrap(), 200.0 / 712.0, 0);
        assert_eq!((train.len(), val.len()), (512, 200));
        let test = Arc::new(m.test.take(100).reshaped(&[784]).unwrap());
        let mut store = ParamStore::new(0);
        let net = nn::Sequential::new().add(nn::Linear::new(&mut store, "fc1", 784, 32).unwrap()).add(nn::ReLU).add(nn::Linear::new(&mut store, "fc2", 32, 10).unwrap());
        let mut b = Builder::train();
        let x = b.input("x", f32_shape([32, 784])).unwrap();
        let y = b.input("y", i64_shape([32])).unwrap();
        let logits = net.forward(&mut b, x).unwrap();
        b.output("logits", logits).unwrap();
        let l = loss::cross_entropy_mean(&mut b, logits, y).unwrap();
        let step = kiln::train_step(&b, l, &store, optim::Adam::new(1e-2)).unwrap();
        let mut tr = kiln::compile(&step, CompileOptions::cpu()).unwrap();
        let mut e = Builder::eval();
        let x = e.input("x", f32_shape([64, 784])).unwrap();
        let y = e.input("y", i64_shape([64])).unwrap();
        let logits = net.forward(&mut e, x).unwrap();
        e.output("logits", logits).unwrap();
        let l = loss::cross_entropy_mean(&mut e, logits, y).unwrap();
        e.output("loss", l).unwrap();
        let mut ev = kiln::compile(&kiln::inference(&e, &store).unwrap(), CompileOptions::cpu()).unwrap();
        let out = std::env::temp_dir().join(format!("kiln-examples-smoke-{}", std::process::id()));
        let sched = cosine(1e-2, 2);
        let r = fit(Fit {
            name: "smoke",
            train: &mut tr,
            eval: &mut ev,
            train_set: train,
            val_set: val,
            batch: 32,
            eval_batch: 64,
            epochs: 2,
            seed: 3,
            target: 0.5,
            transform: None,
            num_workers: 1,
            early_stopping: Some((5, 0.0)),
            lr_schedule: Some(&sched),
            out: out.clone(),
        });
        assert_eq!(r.history.epochs.len(), 2);
        assert_eq!(r.history.steps.len(), 2 * 16);
        assert!(r.val_accuracy > 0.5, "accuracy {}", r.val_accuracy);
        assert_eq!(r.kept_epoch, 2, "the second epoch improves the validation loss");
        let (acc, cm) = test_once(&r, &mut ev, &test, 64, 0.5);
        assert_eq!(cm.total(), 100, "the padded tail batch counts only real rows");
        assert!(acc > 0.5, "test accuracy {acc}");
        assert!(r.history.epochs[1].train_loss < r.history.epochs[0].train_loss);
        assert!(out.join("smoke-curve.png").is_file());
        assert_eq!(tr.lr(), Some(sched(1) as f32 as f64));
        // A set smaller than one eval batch still has a loss (every real row
        // counted once), and on a set of exactly one batch it is the
        // program's own mean cross-entropy.
        let small = Arc::new(m.test.take(40).reshaped(&[784]).unwrap());
        let (loss40, _, cm40) = evaluate(&mut ev, &small, 64);
        assert!(loss40.is_finite() && loss40 > 0.0, "loss {loss40}");
        assert_eq!(cm40.total(), 40);
        let one = Arc::new(m.test.take(64).reshaped(&[784]).unwrap());
        let (loss64, _, _) = evaluate(&mut ev, &one, 64);
        let b = DataLoader::new(one.clone(), 64).unwrap().epoch(0).next().unwrap().unwrap();
        let direct = ev.run(&[("x", &b.x), ("y", &b.y)]).unwrap()["loss"].scalar().unwrap();
        assert!((loss64 - direct).abs() <= 1e-5 * direct.abs(), "host {loss64} vs program {direct}");
        let _ = std::fs::remove_dir_all(&out);
    }
}
