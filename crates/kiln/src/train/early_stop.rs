//! Early stopping on a validation loss (lower is better).

/// What to do after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The loss beat the best so far by more than `min_delta`: save a
    /// checkpoint of this epoch if you keep the best model.
    Improved,
    /// No improvement yet, still within patience.
    Wait,
    /// `patience` epochs in a row without improvement: stop.
    Stop,
}

/// Stops after `patience` consecutive epochs whose validation loss does not
/// improve on the best by more than `min_delta`. A NaN loss never improves.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlyStopping {
    pub patience: usize,
    pub min_delta: f64,
    best: f64,
    best_epoch: Option<usize>,
    waited: usize,
    epoch: usize,
}

impl EarlyStopping {
    pub fn new(patience: usize, min_delta: f64) -> EarlyStopping {
        EarlyStopping { patience, min_delta, best: f64::INFINITY, best_epoch: None, waited: 0, epoch: 0 }
    }

    /// Records the next epoch's validation loss.
    pub fn update(&mut self, val_loss: f64) -> Verdict {
        let e = self.epoch;
        self.epoch += 1;
        if val_loss < self.best - self.min_delta {
            self.best = val_loss;
            self.best_epoch = Some(e);
            self.waited = 0;
            return Verdict::Improved;
        }
        self.waited += 1;
        if self.waited >= self.patience { Verdict::Stop } else { Verdict::Wait }
    }

    pub fn best(&self) -> Option<(usize, f64)> {
        self.best_epoch.map(|e| (e, self.best))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_after_patience_without_improvement() {
        let mut s = EarlyStopping::new(2, 0.01);
        assert_eq!(s.update(1.0), Verdict::Improved);
        assert_eq!(s.update(0.8), Verdict::Improved);
        assert_eq!(s.update(0.795), Verdict::Wait, "below min_delta");
        assert_eq!(s.update(0.7), Verdict::Improved, "improvement resets the count");
        assert_eq!(s.update(0.75), Verdict::Wait);
        assert_eq!(s.update(f64::NAN), Verdict::Stop);
        assert_eq!(s.best(), Some((3, 0.7)));
    }
}
