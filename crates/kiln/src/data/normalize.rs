//! Normalization and seeded image augmentation (random horizontal flip,
//! random crop after zero padding), applied per item by the loader.

use super::{Dataset, SplitMix64};

/// `x -> (x - mean) / std` on every input value.
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
    pub fn fit(d: &Dataset) -> Normalize {
        let (mean, std) = d.mean_std();
        Normalize { mean, std: if std > 0.0 { std } else { 1.0 } }
    }

    pub fn apply(&self, d: &mut Dataset) {
        let inv = 1.0 / self.std;
        for v in &mut d.inputs {
            *v = (*v - self.mean) * inv;
        }
    }
}

/// Seeded augmentation for image items `[C, H, W]` (or `[H, W]`).
/// Each (epoch, sample) pair draws its own flip and crop offsets, so an
/// epoch is reproducible on its own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augment {
    /// Probability of mirroring left-right (0 = off). Not for digits.
    pub hflip: f64,
    /// Pad every side by this many pixels, then crop back to `H x W` at a
    /// random offset (0 = off).
    pub crop_pad: usize,
    /// The value of padded pixels: 0 for raw images, `-mean/std` after
    /// normalization to pad with "black".
    pub fill: f32,
    pub seed: u64,
}

impl Augment {
    pub fn new(seed: u64) -> Augment {
        Augment { hflip: 0.0, crop_pad: 0, fill: 0.0, seed }
    }

    pub fn hflip(mut self, p: f64) -> Augment {
        self.hflip = p;
        self
    }

    pub fn random_crop(mut self, pad: usize, fill: f32) -> Augment {
        self.crop_pad = pad;
        self.fill = fill;
        self
    }

    /// Augments one item in place (`scratch` avoids an allocation per item).
    pub fn apply(&self, item: &mut [f32], shape: &[usize], epoch: u64, sample: u64, scratch: &mut Vec<f32>) {
        if shape.len() < 2 || (self.hflip <= 0.0 && self.crop_pad == 0) {
            return;
        }
        let (h, w) = (shape[shape.len() - 2], shape[shape.len() - 1]);
        let planes = item.len() / (h * w);
        let mut rng = SplitMix64::derive(self.seed, epoch, sample);
        let flip = self.hflip > 0.0 && rng.unit() < self.hflip;
        let p = self.crop_pad as isize;
        let (dy, dx) = if p > 0 {
            (rng.below(2 * self.crop_pad + 1) as isize - p, rng.below(2 * self.crop_pad + 1) as isize - p)
        } else {
            (0, 0)
        };
        if !flip && dy == 0 && dx == 0 {
            return;
        }
        scratch.clear();
        scratch.extend_from_slice(item);
        for c in 0..planes {
            let src = &scratch[c * h * w..(c + 1) * h * w];
            let dst = &mut item[c * h * w..(c + 1) * h * w];
            for y in 0..h as isize {
                for x in 0..w as isize {
                    // Output (y, x) reads the padded image at (y+dy+p, x+dx+p),
                    // i.e. the original at (y+dy, x+dx); flipping mirrors x first.
                    let xs = if flip { w as isize - 1 - x } else { x };
                    let (sy, sx) = (y + dy, xs + dx);
                    dst[(y * w as isize + x) as usize] = if sy >= 0 && sy < h as isize && sx >= 0 && sx < w as isize {
                        src[(sy * w as isize + sx) as usize]
                    } else {
                        self.fill
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_fit_gives_zero_mean_unit_std() {
        let mut d = Dataset::new(vec![1.0, 2.0, 3.0, 4.0], vec![0, 0], vec![2], 1).unwrap();
        let n = Normalize::fit(&d);
        n.apply(&mut d);
        let (m, s) = d.mean_std();
        assert!(m.abs() < 1e-6 && (s - 1.0).abs() < 1e-6, "{m} {s}");
        let mut e = Dataset::new(vec![0.1307], vec![0], vec![1], 1).unwrap();
        Normalize::MNIST.apply(&mut e);
        assert_eq!(e.inputs[0], 0.0);
    }

    #[test]
    fn flip_always_mirrors_rows() {
        let a = Augment::new(1).hflip(1.0);
        let mut item: Vec<f32> = (0..6).map(|v| v as f32).collect();
        a.apply(&mut item, &[1, 2, 3], 0, 0, &mut Vec::new());
        assert_eq!(item, vec![2.0, 1.0, 0.0, 5.0, 4.0, 3.0]);
    }

    #[test]
    fn crop_shifts_content_and_fills_border() {
        let a = Augment::new(5).random_crop(1, -1.0);
        let orig: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let mut shifted = 0;
        for s in 0..50 {
            let mut item = orig.clone();
            a.apply(&mut item, &[3, 3], 0, s, &mut Vec::new());
            // Every value is either from the original or the fill, and the
            // original values keep their relative order in each row.
            assert!(item.iter().all(|v| *v == -1.0 || orig.contains(v)));
            assert!(item.contains(&5.0), "a 1-pixel shift keeps the centre: {item:?}");
            if item != orig {
                shifted += 1;
            }
            let mut again = orig.clone();
            a.apply(&mut again, &[3, 3], 0, s, &mut Vec::new());
            assert_eq!(item, again, "seeded per (epoch, sample)");
        }
        assert!(shifted > 30, "8 of 9 offsets move the image: {shifted}");
    }
}
