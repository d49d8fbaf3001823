//! Per-feature standardization, `x -> (x - mean) / std` for each input
//! position (sklearn's `StandardScaler`). Fit it on the training split only
//! and apply the same statistics to validation and test data, so nothing
//! about the held-out rows leaks into training.

use super::{DataError, TensorDataset};

#[derive(Debug, Clone, PartialEq)]
pub struct Standardize {
    pub mean: Vec<f32>,
    /// Population standard deviation; a constant feature gets 1 (it is only
    /// centred) rather than a division by zero.
    pub std: Vec<f32>,
}

impl Standardize {
    pub fn fit(d: &TensorDataset) -> Result<Standardize, DataError> {
        if d.is_empty() {
            return Err(DataError::Invalid("cannot fit standardization on an empty dataset".into()));
        }
        let (n, w) = (d.len() as f64, d.item_numel());
        let mut mean = vec![0f64; w];
        for i in 0..d.len() {
            for (m, &v) in mean.iter_mut().zip(d.item(i)) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0f64; w];
        for i in 0..d.len() {
            for ((s, &v), m) in var.iter_mut().zip(d.item(i)).zip(&mean) {
                *s += (v as f64 - m).powi(2);
            }
        }
        let std = var.iter().map(|s| (s / n).sqrt()).map(|s| if s > 1e-12 { s as f32 } else { 1.0 }).collect();
        Ok(Standardize { mean: mean.into_iter().map(|m| m as f32).collect(), std })
    }

    pub fn apply(&self, d: &mut TensorDataset) -> Result<(), DataError> {
        let w = d.item_numel();
        if w != self.mean.len() {
            return Err(DataError::Invalid(format!("standardization fitted on {} features, the dataset has {w}", self.mean.len())));
        }
        for item in d.inputs.chunks_exact_mut(w) {
            for ((v, m), s) in item.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitted_features_have_zero_mean_unit_std_and_others_reuse_them() {
        let mut train = TensorDataset::new(vec![1.0, 5.0, 3.0, 5.0], vec![0, 1], vec![2], 2).unwrap();
        let s = Standardize::fit(&train).unwrap();
        assert_eq!((s.mean.clone(), s.std.clone()), (vec![2.0, 5.0], vec![1.0, 1.0]));
        s.apply(&mut train).unwrap();
        assert_eq!(train.inputs, vec![-1.0, 0.0, 1.0, 0.0]);
        // Held-out rows use the training statistics, not their own.
        let mut val = TensorDataset::new(vec![4.0, 7.0], vec![0], vec![2], 2).unwrap();
        s.apply(&mut val).unwrap();
        assert_eq!(val.inputs, vec![2.0, 2.0]);
        let mut wrong = TensorDataset::new(vec![0.0; 3], vec![0], vec![3], 2).unwrap();
        assert!(s.apply(&mut wrong).is_err());
        assert!(Standardize::fit(&train.take(0)).is_err());
    }
}
