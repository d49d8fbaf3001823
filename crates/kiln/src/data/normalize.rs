//! Whole-dataset normalization with one mean and std, `x -> (x - mean) / std`
//! applied once in memory (per-channel normalization per item is
//! [`transforms::Normalize`](super::transforms::Normalize)).

use super::TensorDataset;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalize {
    pub mean: f32,
    pub std: f32,
}

impl Normalize {
    /// The customary MNIST statistics (of the full 60k training set, on
    /// [0, 1]-scaled pixels).
    pub const MNIST: Normalize = Normalize { mean: 0.1307, std: 0.3081 };

    /// The statistics of a dataset (compute them on the training split only).
    pub fn fit(d: &TensorDataset) -> Normalize {
        let (mean, std) = d.mean_std();
        Normalize { mean, std: if std > 0.0 { std } else { 1.0 } }
    }

    pub fn apply(&self, d: &mut TensorDataset) {
        let inv = 1.0 / self.std;
        for v in &mut d.inputs {
            *v = (*v - self.mean) * inv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_fit_gives_zero_mean_unit_std() {
        let mut d = TensorDataset::new(vec![1.0, 2.0, 3.0, 4.0], vec![0, 0], vec![2], 1).unwrap();
        let n = Normalize::fit(&d);
        n.apply(&mut d);
        let (m, s) = d.mean_std();
        assert!(m.abs() < 1e-6 && (s - 1.0).abs() < 1e-6, "{m} {s}");
        let mut e = TensorDataset::new(vec![0.1307], vec![0], vec![1], 1).unwrap();
        Normalize::MNIST.apply(&mut e);
        assert_eq!(e.inputs[0], 0.0);
    }
}
