//! A per-epoch progress bar with live loss and accuracy (indicatif, drawn on
//! stderr only when it is a terminal). Epoch summaries go to stdout either
//! way so logs of non-interactive runs still show progress.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::EpochRecord;

pub struct TrainProgress {
    bar: ProgressBar,
    epochs: usize,
    steps_per_epoch: usize,
    loss_sum: f64,
    correct: usize,
    seen: usize,
    steps: usize,
    quiet: bool,
}

impl TrainProgress {
    pub fn new(epochs: usize, steps_per_epoch: usize) -> TrainProgress {
        TrainProgress::with_target(epochs, steps_per_epoch, ProgressDrawTarget::stderr())
    }

    /// No bar and no summaries (tests, benchmarks).
    pub fn hidden(epochs: usize, steps_per_epoch: usize) -> TrainProgress {
        let mut p = TrainProgress::with_target(epochs, steps_per_epoch, ProgressDrawTarget::hidden());
        p.quiet = true;
        p
    }

    fn with_target(epochs: usize, steps_per_epoch: usize, target: ProgressDrawTarget) -> TrainProgress {
        let bar = ProgressBar::with_draw_target(Some(steps_per_epoch as u64), target);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({per_sec}, eta {eta})")
                .expect("the template is valid")
                .progress_chars("=> "),
        );
        let p = TrainProgress { bar, epochs, steps_per_epoch, loss_sum: 0.0, correct: 0, seen: 0, steps: 0, quiet: false };
        p.bar.set_prefix(format!("epoch 1/{epochs}"));
        p
    }

    /// Starts epoch `epoch` (0-based): resets the running figures.
    pub fn start_epoch(&mut self, epoch: usize) {
        self.bar.reset();
        self.bar.set_length(self.steps_per_epoch as u64);
        self.bar.set_prefix(format!("epoch {}/{}", epoch + 1, self.epochs));
        self.loss_sum = 0.0;
        self.correct = 0;
        self.seen = 0;
        self.steps = 0;
    }

    /// One step: its mean loss, and optionally (correct, rows) for accuracy.
    pub fn step(&mut self, loss: f64, correct_of: Option<(usize, usize)>) {
        self.steps += 1;
        self.loss_sum += loss;
        if let Some((c, n)) = correct_of {
            self.correct += c;
            self.seen += n;
        }
        self.bar.inc(1);
        // Formatting every step costs more than a small model's step.
        if self.steps % 8 == 0 || self.steps == self.steps_per_epoch {
            self.bar.set_message(self.summary());
        }
    }

    /// Running mean loss of this epoch.
    pub fn mean_loss(&self) -> f64 {
        if self.steps == 0 { f64::NAN } else { self.loss_sum / self.steps as f64 }
    }

    /// Running accuracy of this epoch, if steps reported it.
    pub fn accuracy(&self) -> Option<f64> {
        (self.seen > 0).then(|| self.correct as f64 / self.seen as f64)
    }

    fn summary(&self) -> String {
        match self.accuracy() {
            Some(a) => format!("loss {:.4} acc {:.4}", self.mean_loss(), a),
            None => format!("loss {:.4}", self.mean_loss()),
        }
    }

    /// Ends an epoch: prints one summary line with the record's figures.
    pub fn end_epoch(&mut self, r: &EpochRecord) {
        self.bar.finish_and_clear();
        if self.quiet {
            return;
        }
        let mut line = format!("epoch {:>3}/{}  train_loss {:.4}", r.epoch + 1, self.epochs, r.train_loss);
        if let Some(a) = r.train_accuracy {
            line += &format!("  train_acc {a:.4}");
        }
        if let Some(l) = r.val_loss {
            line += &format!("  val_loss {l:.4}");
        }
        if let Some(a) = r.val_accuracy {
            line += &format!("  val_acc {a:.4}");
        }
        line += &format!("  {:.1}s", r.elapsed_s);
        println!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_figures() {
        let mut p = TrainProgress::hidden(2, 3);
        p.start_epoch(0);
        p.step(1.0, Some((3, 4)));
        p.step(2.0, Some((1, 4)));
        assert_eq!(p.mean_loss(), 1.5);
        assert_eq!(p.accuracy(), Some(0.5));
        assert_eq!(p.summary(), "loss 1.5000 acc 0.5000");
        p.start_epoch(1);
        assert!(p.mean_loss().is_nan());
        assert_eq!(p.accuracy(), None);
    }
}
