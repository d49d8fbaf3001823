//! K-fold cross-validation that trains: one fresh model per fold, scored on
//! the fold it did not see, summarized as mean and standard deviation.

use crate::data::{stratified_kfold, DataError, TensorDataset};

/// The per-fold scores and their summary.
#[derive(Debug, Clone, PartialEq)]
pub struct CvReport {
    pub scores: Vec<f64>,
    pub mean: f64,
    /// Population standard deviation (NumPy's `std()`, what scikit-learn's
    /// `cross_val_score(...).std()` prints).
    pub std: f64,
}

impl CvReport {
    pub fn from_scores(scores: Vec<f64>) -> CvReport {
        let n = scores.len().max(1) as f64;
        let mean = scores.iter().sum::<f64>() / n;
        let std = (scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n).sqrt();
        CvReport { scores, mean, std }
    }
}

impl std::fmt::Display for CvReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.4} +- {:.4} over {} folds [", self.mean, self.std, self.scores.len())?;
        for (i, s) in self.scores.iter().enumerate() {
            write!(f, "{}{s:.4}", if i > 0 { ", " } else { "" })?;
        }
        write!(f, "]")
    }
}

/// Splits `data` into `k` stratified folds (seeded) and calls
/// `train_fold(fold, train, val)` once per fold; the closure builds a fresh
/// model (a new `ParamStore`, or [`ProgramCache::fresh`](super::ProgramCache::fresh)
/// to reuse a compiled step), fits anything data-dependent (such as
/// [`Standardize`](crate::data::Standardize)) on `train` only, trains, and
/// returns its metric on `val`. The first error stops the run.
pub fn cross_validate<E: From<DataError>>(
    data: &TensorDataset,
    k: usize,
    seed: u64,
    mut train_fold: impl FnMut(usize, TensorDataset, TensorDataset) -> Result<f64, E>,
) -> Result<CvReport, E> {
    let folds = stratified_kfold(data, k, seed)?;
    let mut scores = Vec::with_capacity(k);
    for (i, f) in folds.iter().enumerate() {
        scores.push(train_fold(i, data.subset(&f.train), data.subset(&f.val))?);
    }
    Ok(CvReport::from_scores(scores))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fold_trains_on_the_rest_and_scores_are_summarized() {
        // Item i has value i; the "model" scores a fold by the mean value
        // of its validation items, so the folds' scores average to the
        // mean of everything.
        let d = TensorDataset::new((0..20).map(|i| i as f32).collect(), (0..20).map(|i| i % 2).collect(), vec![1], 2).unwrap();
        let mut seen = Vec::new();
        let r = cross_validate::<DataError>(&d, 4, 9, |i, train, val| {
            assert_eq!((train.len(), val.len()), (15, 5));
            assert!(val.inputs.iter().all(|v| !train.inputs.contains(v)));
            seen.extend(val.inputs.iter().map(|v| *v as i64));
            let _ = i;
            Ok(val.inputs.iter().map(|v| *v as f64).sum::<f64>() / val.len() as f64)
        })
        .unwrap();
        seen.sort();
        assert_eq!(seen, (0..20).collect::<Vec<_>>());
        assert_eq!(r.scores.len(), 4);
        assert!((r.mean - 9.5).abs() < 1e-12, "{r}");
        let by_hand = (r.scores.iter().map(|s| (s - 9.5).powi(2)).sum::<f64>() / 4.0).sqrt();
        assert!((r.std - by_hand).abs() < 1e-12 && r.std > 0.0);
        assert_eq!(CvReport::from_scores(vec![1.0, 3.0]).std, 1.0);
    }

    #[test]
    fn bad_k_and_fold_errors_stop_the_run() {
        let d = TensorDataset::new(vec![0.0; 4], vec![0, 1, 0, 1], vec![1], 2).unwrap();
        assert!(cross_validate::<DataError>(&d, 5, 0, |_, _, _| Ok(0.0)).is_err());
        let mut calls = 0;
        let e = cross_validate(&d, 2, 0, |_, _, _| {
            calls += 1;
            Err(DataError::Invalid("diverged".into()))
        });
        assert_eq!((e.unwrap_err(), calls), (DataError::Invalid("diverged".into()), 1));
    }
}
