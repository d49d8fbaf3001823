//! Pixel-value transforms: brightness/contrast jitter and per-channel
//! normalization.

use super::{planes_hw, uniform, DataError, SplitMix64, Transform};

/// Random brightness and contrast (torchvision's `ColorJitter` without
/// saturation and hue): a brightness factor uniform in `[max(0, 1 - b),
/// 1 + b]` scales the pixels, a contrast factor in the same kind of range
/// blends them with their mean grey level. For [0, 1] pixels; the result is
/// clamped to [0, 1]. Brightness is applied first (torchvision shuffles the
/// order; a fixed one keeps the draw simple to reason about).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ColorJitter {
    pub brightness: f64,
    pub contrast: f64,
}

impl ColorJitter {
    pub fn new() -> Self {
        ColorJitter::default()
    }

    pub fn brightness(mut self, b: f64) -> Self {
        self.brightness = b;
        self
    }

    pub fn contrast(mut self, c: f64) -> Self {
        self.contrast = c;
        self
    }

    fn factor(amount: f64, rng: &mut SplitMix64) -> f32 {
        if amount > 0.0 {
            uniform(rng, (1.0 - amount).max(0.0), 1.0 + amount) as f32
        } else {
            1.0
        }
    }
}

impl Transform for ColorJitter {
    fn out_shape(&self, shape: &[usize]) -> Result<Vec<usize>, DataError> {
        planes_hw("ColorJitter", shape)?;
        if self.brightness < 0.0 || self.contrast < 0.0 {
            return Err(DataError::Invalid(format!("ColorJitter: brightness {} and contrast {} must be >= 0", self.brightness, self.contrast)));
        }
        Ok(shape.to_vec())
    }

    fn apply(&self, mut x: Vec<f32>, shape: &[usize], rng: &mut SplitMix64) -> Vec<f32> {
        let b = Self::factor(self.brightness, rng);
        let c = Self::factor(self.contrast, rng);
        for v in &mut x {
            *v = (*v * b).clamp(0.0, 1.0);
        }
        if c != 1.0 {
            let (planes, h, w) = planes_hw("ColorJitter", shape).expect("checked by out_shape");
            let n = h * w;
            // The grey level of RGB is the luma (ITU-R 601), as torchvision.
            let mean = if planes == 3 {
                let l = [0.299f32, 0.587, 0.114];
                (0..n).map(|i| (0..3).map(|p| l[p] * x[p * n + i]).sum::<f32>()).sum::<f32>() / n as f32
            } else {
                x.iter().sum::<f32>() / x.len() as f32
            };
            for v in &mut x {
                *v = (c * *v + (1.0 - c) * mean).clamp(0.0, 1.0);
            }
        }
        x
    }
}

/// `(x - mean[c]) / std[c]` per channel (one value applies to all channels).
#[derive(Debug, Clone, PartialEq)]
pub struct Normalize {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalize {
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Self {
        Normalize { mean, std }
    }
}

impl Transform for Normalize {
    fn out_shape(&self, shape: &[usize]) -> Result<Vec<usize>, DataError> {
        let (planes, _, _) = planes_hw("Normalize", shape)?;
        let fits = |n: usize| n == 1 || n == planes;
        if self.mean.is_empty() || self.mean.len() != self.std.len() || !fits(self.mean.len()) || self.std.iter().any(|s| *s <= 0.0 || !s.is_finite()) {
            return Err(DataError::Invalid(format!(
                "Normalize: mean {:?} / std {:?} need 1 or {planes} values each, std > 0 (items {shape:?})",
                self.mean, self.std
            )));
        }
        Ok(shape.to_vec())
    }

    fn apply(&self, mut x: Vec<f32>, shape: &[usize], _: &mut SplitMix64) -> Vec<f32> {
        let (_, h, w) = planes_hw("Normalize", shape).expect("checked by out_shape");
        for (c, plane) in x.chunks_exact_mut(h * w).enumerate() {
            let k = if self.mean.len() == 1 { 0 } else { c };
            let (m, inv) = (self.mean[k], 1.0 / self.std[k]);
            plane.iter_mut().for_each(|v| *v = (*v - m) * inv);
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_is_per_channel_and_checks_counts() {
        let n = Normalize::new(vec![1.0, 2.0], vec![1.0, 0.5]);
        assert_eq!(n.apply(vec![1.0, 2.0, 2.0, 3.0], &[2, 1, 2], &mut SplitMix64::new(0)), vec![0.0, 1.0, 0.0, 2.0]);
        assert!(n.out_shape(&[3, 1, 2]).is_err());
        assert!(Normalize::new(vec![0.0], vec![0.0]).out_shape(&[1, 2, 2]).is_err());
        assert!(Normalize::new(vec![0.5], vec![0.5]).out_shape(&[3, 2, 2]).is_ok());
    }

    #[test]
    fn jitter_stays_in_range_and_keeps_order() {
        let j = ColorJitter::new().brightness(0.5).contrast(0.5);
        let x: Vec<f32> = (0..16).map(|v| v as f32 / 15.0).collect();
        let mut changed = 0;
        for s in 0..20 {
            let y = j.apply(x.clone(), &[1, 4, 4], &mut SplitMix64::new(s));
            assert!(y.iter().all(|v| (0.0..=1.0).contains(v)));
            // Both factors are positive, so pixel order is kept (ties at clamps).
            assert!(y.windows(2).all(|p| p[0] <= p[1]), "{y:?}");
            changed += usize::from(y != x);
        }
        assert!(changed >= 19);
        // Contrast 0 of the range [1, 1] leaves the image alone.
        assert_eq!(ColorJitter::new().apply(x.clone(), &[4, 4], &mut SplitMix64::new(0)), x);
        assert!(ColorJitter::new().brightness(-1.0).out_shape(&[4, 4]).is_err());
    }
}
