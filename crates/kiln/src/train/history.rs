//! The per-epoch record of a run.

use std::fmt::Write;

/// One epoch's figures; validation ones are `None` when not measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: Option<f64>,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    /// Seconds since the start of training at the end of this epoch.
    pub elapsed_s: f64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub epochs: Vec<EpochRecord>,
    /// The training loss of every step, in order (drawn smoothed beside
    /// the per-epoch means).
    pub steps: Vec<f64>,
}

impl History {
    pub fn push(&mut self, r: EpochRecord) {
        self.epochs.push(r);
    }

    pub fn push_step(&mut self, loss: f64) {
        self.steps.push(loss);
    }

    /// The per-step losses smoothed by an exponential moving average with
    /// weight `beta` on the past (`s = beta * s + (1 - beta) * loss`),
    /// bias-corrected as in Adam so the first values are not pulled to 0.
    pub fn smoothed_steps(&self, beta: f64) -> Vec<f64> {
        let mut s = 0.0;
        let mut w = 1.0;
        self.steps
            .iter()
            .map(|&l| {
                s = beta * s + (1.0 - beta) * l;
                w *= beta;
                s / (1.0 - w)
            })
            .collect()
    }

    /// The first epoch whose validation accuracy reaches `target`, with its
    /// elapsed time: "time to accuracy".
    pub fn time_to_accuracy(&self, target: f64) -> Option<&EpochRecord> {
        self.epochs.iter().find(|r| r.val_accuracy.is_some_and(|a| a >= target))
    }

    /// CSV with a header row; empty cells for missing values.
    pub fn to_csv(&self) -> String {
        let mut s = String::from("epoch,train_loss,train_accuracy,val_loss,val_accuracy,elapsed_s\n");
        let o = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
        for r in &self.epochs {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{}",
                r.epoch,
                r.train_loss,
                o(r.train_accuracy),
                o(r.val_loss),
                o(r.val_accuracy),
                r.elapsed_s
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_to_accuracy_and_csv() {
        let mut h = History::default();
        for (e, a) in [0.9, 0.97, 0.99].into_iter().enumerate() {
            h.push(EpochRecord { epoch: e, train_loss: 1.0 / (e + 1) as f64, train_accuracy: None, val_loss: None, val_accuracy: Some(a), elapsed_s: e as f64 });
        }
        assert_eq!(h.time_to_accuracy(0.95).unwrap().epoch, 1);
        assert!(h.time_to_accuracy(0.995).is_none());
        let csv = h.to_csv();
        assert_eq!(csv.lines().count(), 4);
        assert_eq!(csv.lines().nth(2).unwrap(), "1,0.5,,,0.97,1");
    }

    #[test]
    fn smoothed_steps_start_at_the_first_loss_and_follow_a_step() {
        let mut h = History::default();
        for l in [2.0, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0] {
            h.push_step(l);
        }
        let s = h.smoothed_steps(0.5);
        assert_eq!(s[..3], [2.0, 2.0, 2.0], "bias correction: a constant stays constant");
        assert!(s.windows(2).skip(2).all(|w| w[1] < w[0]) && s[7] < 0.06, "{s:?}");
    }
}
