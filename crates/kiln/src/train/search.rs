//! Grid and random search over the hyper-parameters the notes tune:
//! learning rate, weight decay and batch size. Each candidate is scored by
//! a closure (train on the training split, return the validation metric,
//! or a K-fold mean via [`cross_validate`](super::cross_validate)); higher
//! is better. Only the batch size changes a shape: with the optimizer's
//! weight decay made state (`tunable_weight_decay()`), a
//! [`ProgramCache`](super::ProgramCache) keyed by batch size runs every
//! candidate through [`ProgramCache::trial`](super::ProgramCache::trial)
//! and compiles once per batch size.

use crate::data::{DataError, SplitMix64};

/// A range of one hyper-parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Range {
    /// These values (grid search takes each; random search picks one).
    Values(Vec<f64>),
    /// Log-uniform in `[lo, hi]` (random search only): learning rates and
    /// decays matter by order of magnitude.
    LogUniform(f64, f64),
}

/// One candidate setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hyper {
    pub lr: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchSpace {
    pub lr: Range,
    pub weight_decay: Range,
    pub batch_size: Vec<usize>,
}

fn check(name: &str, r: &Range) -> Result<(), DataError> {
    let ok = match r {
        Range::Values(v) => !v.is_empty() && v.iter().all(|x| x.is_finite() && *x >= 0.0),
        Range::LogUniform(lo, hi) => *lo > 0.0 && lo <= hi && hi.is_finite(),
    };
    if ok {
        Ok(())
    } else {
        Err(DataError::Invalid(format!("search space: {name} {r:?} (need non-empty values >= 0, or 0 < lo <= hi)")))
    }
}

impl SearchSpace {
    fn checked(&self) -> Result<(), DataError> {
        check("lr", &self.lr)?;
        check("weight_decay", &self.weight_decay)?;
        if self.batch_size.is_empty() || self.batch_size.contains(&0) {
            return Err(DataError::Invalid(format!("search space: batch sizes {:?} (need at least one, none 0)", self.batch_size)));
        }
        Ok(())
    }

    /// Every combination, batch size outermost (so candidates sharing a
    /// compiled step, one per batch size, follow each other), then weight
    /// decay, then lr.
    pub fn grid(&self) -> Result<Vec<Hyper>, DataError> {
        self.checked()?;
        let values = |name: &str, r: &Range| match r {
            Range::Values(v) => Ok(v.clone()),
            Range::LogUniform(..) => Err(DataError::Invalid(format!("grid search needs listed values for {name}, not a log-uniform range"))),
        };
        let (lrs, wds) = (values("lr", &self.lr)?, values("weight_decay", &self.weight_decay)?);
        let mut out = Vec::with_capacity(self.batch_size.len() * wds.len() * lrs.len());
        for &batch_size in &self.batch_size {
            for &weight_decay in &wds {
                for &lr in &lrs {
                    out.push(Hyper { lr, weight_decay, batch_size });
                }
            }
        }
        Ok(out)
    }

    /// `n` independent draws, seeded.
    pub fn random(&self, n: usize, seed: u64) -> Result<Vec<Hyper>, DataError> {
        self.checked()?;
        let draw = |r: &Range, g: &mut SplitMix64| match r {
            Range::Values(v) => v[g.below(v.len())],
            Range::LogUniform(lo, hi) => (lo.ln() + (hi.ln() - lo.ln()) * g.unit()).exp(),
        };
        Ok((0..n)
            .map(|i| {
                let mut g = SplitMix64::derive(seed, i as u64, 0x5EA2C4);
                Hyper { lr: draw(&self.lr, &mut g), weight_decay: draw(&self.weight_decay, &mut g), batch_size: self.batch_size[g.below(self.batch_size.len())] }
            })
            .collect())
    }
}

/// One scored candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trial {
    pub hyper: Hyper,
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchReport {
    pub trials: Vec<Trial>,
}

impl SearchReport {
    /// The highest-scoring trial (NaN scores never win; the first of equals).
    pub fn best(&self) -> Option<&Trial> {
        self.trials.iter().filter(|t| !t.score.is_nan()).fold(None, |b: Option<&Trial>, t| match b {
            Some(b) if b.score >= t.score => Some(b),
            _ => Some(t),
        })
    }
}

/// Scores every candidate in order; the first error stops the search.
pub fn search<E>(candidates: &[Hyper], mut score: impl FnMut(&Hyper) -> Result<f64, E>) -> Result<SearchReport, E> {
    let mut r = SearchReport::default();
    for h in candidates {
        r.trials.push(Trial { hyper: *h, score: score(h)? });
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> SearchSpace {
        SearchSpace { lr: Range::Values(vec![1e-3, 1e-2]), weight_decay: Range::Values(vec![0.0, 1e-4]), batch_size: vec![32, 64] }
    }

    #[test]
    fn grid_covers_every_combination_batch_size_outermost() {
        let g = space().grid().unwrap();
        assert_eq!(g.len(), 8);
        assert!(g[..4].iter().all(|h| h.batch_size == 32));
        assert_eq!(g[1], Hyper { lr: 1e-2, weight_decay: 0.0, batch_size: 32 });
        let mut log = space();
        log.lr = Range::LogUniform(1e-4, 1e-1);
        assert!(log.grid().is_err());
        assert!(SearchSpace { batch_size: vec![], ..space() }.grid().is_err());
        assert!(SearchSpace { lr: Range::Values(vec![]), ..space() }.random(3, 0).is_err());
    }

    #[test]
    fn random_draws_stay_in_range_and_are_seeded() {
        let s = SearchSpace { lr: Range::LogUniform(1e-4, 1e-1), ..space() };
        let a = s.random(200, 5).unwrap();
        assert_eq!(a, s.random(200, 5).unwrap());
        assert_ne!(a, s.random(200, 6).unwrap());
        assert!(a.iter().all(|h| (1e-4..=1e-1).contains(&h.lr) && [0.0, 1e-4].contains(&h.weight_decay) && [32, 64].contains(&h.batch_size)));
        // Log-uniform: about a third of the draws in each decade.
        let low = a.iter().filter(|h| h.lr < 1e-3).count();
        assert!((40..=95).contains(&low), "{low} of 200 below 1e-3");
    }

    #[test]
    fn search_scores_in_order_and_picks_the_best() {
        let g = space().grid().unwrap();
        // A made-up score that peaks at lr 1e-2, wd 0, batch 64.
        let r = search::<DataError>(&g, |h| Ok(h.lr * 100.0 - h.weight_decay * 1e3 + h.batch_size as f64 / 64.0)).unwrap();
        assert_eq!(r.trials.len(), 8);
        assert_eq!(r.best().unwrap().hyper, Hyper { lr: 1e-2, weight_decay: 0.0, batch_size: 64 });
        let nan = SearchReport { trials: vec![Trial { hyper: g[0], score: f64::NAN }, Trial { hyper: g[1], score: 0.1 }] };
        assert_eq!(nan.best().unwrap().hyper, g[1]);
        let e = search(&g, |h| if h.batch_size == 64 { Err("boom") } else { Ok(0.0) });
        assert_eq!(e.unwrap_err(), "boom");
    }
}
