//! Image transforms in torchvision's names, composed in order and seeded per
//! (epoch, sample): the loader hands each item a generator derived from
//! `(seed, epoch, sample index)`, so an augmented epoch is reproducible on
//! its own and does not depend on which worker thread built it.
//!
//! Items are `[C, H, W]` (or `[H, W]`) f32 planes. Geometric transforms are
//! one inverse-affine warp with bilinear resampling ([`warp`]); colour
//! jitter expects [0, 1] pixels (it clamps to that range, as torchvision
//! does for float images), so it goes before [`Normalize`].
//!
//! ```
//! use kiln::data::transforms::*;
//! let t = Compose::new()
//!     .add(RandomResizedCrop::new(24).scale(0.5, 1.0))
//!     .add(RandomHorizontalFlip::new(0.5))
//!     .add(ColorJitter::new().brightness(0.2).contrast(0.2))
//!     .add(Normalize::new(vec![0.5], vec![0.25]));
//! assert_eq!(t.out_shape(&[1, 28, 28]).unwrap(), vec![1, 24, 24]);
//! ```

mod color;
mod geometric;
mod grid;
mod warp;

pub use color::{ColorJitter, Normalize};
pub use geometric::{RandomAffine, RandomCrop, RandomHorizontalFlip, RandomResizedCrop, RandomRotation, RandomVerticalFlip};
pub use grid::save_grid;
pub use warp::warp;

use super::{DataError, SplitMix64};

/// One step of a pipeline. `out_shape` is checked once when the loader is
/// built (a static batch shape needs it), `apply` per item.
pub trait Transform: Send + Sync {
    /// The item shape produced from `shape`, or why `shape` is not accepted.
    fn out_shape(&self, shape: &[usize]) -> Result<Vec<usize>, DataError>;

    /// Transforms one item of shape `shape` (already checked by `out_shape`).
    fn apply(&self, x: Vec<f32>, shape: &[usize], rng: &mut SplitMix64) -> Vec<f32>;
}

/// Transforms applied one after the other (torchvision's `Compose`).
#[derive(Default)]
pub struct Compose {
    steps: Vec<Box<dyn Transform>>,
}

impl Compose {
    pub fn new() -> Compose {
        Compose::default()
    }

    #[allow(clippy::should_implement_trait)] // a builder step, as nn::Sequential::add
    pub fn add(mut self, t: impl Transform + 'static) -> Compose {
        self.steps.push(Box::new(t));
        self
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

impl Transform for Compose {
    fn out_shape(&self, shape: &[usize]) -> Result<Vec<usize>, DataError> {
        self.steps.iter().try_fold(shape.to_vec(), |s, t| t.out_shape(&s))
    }

    fn apply(&self, mut x: Vec<f32>, shape: &[usize], rng: &mut SplitMix64) -> Vec<f32> {
        let mut shape = shape.to_vec();
        for t in &self.steps {
            let next = t.out_shape(&shape).expect("shapes checked when the loader was built");
            x = t.apply(x, &shape, rng);
            shape = next;
        }
        x
    }
}

/// `(planes, h, w)` of an image item, or an error naming the transform.
pub(crate) fn planes_hw(what: &str, shape: &[usize]) -> Result<(usize, usize, usize), DataError> {
    match shape {
        [h, w] if *h > 0 && *w > 0 => Ok((1, *h, *w)),
        [c, h, w] if *h > 0 && *w > 0 => Ok((*c, *h, *w)),
        _ => Err(DataError::Invalid(format!("{what} needs image items [C, H, W] or [H, W], got {shape:?}"))),
    }
}

/// `shape` with its last two extents replaced.
pub(crate) fn with_hw(shape: &[usize], h: usize, w: usize) -> Vec<usize> {
    let mut s = shape.to_vec();
    let n = s.len();
    s[n - 2] = h;
    s[n - 1] = w;
    s
}

/// A uniform draw in `[lo, hi)`.
pub(crate) fn uniform(rng: &mut SplitMix64, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.unit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_runs_in_order_and_chains_shapes() {
        let t = Compose::new().add(RandomCrop::new(2)).add(RandomHorizontalFlip::new(1.0)).add(Normalize::new(vec![1.0], vec![2.0]));
        assert_eq!(t.len(), 3);
        assert_eq!(t.out_shape(&[1, 3, 3]).unwrap(), vec![1, 2, 2]);
        assert!(t.out_shape(&[9]).is_err(), "a flat item is not an image");
        // Normalizing after the flip: ((x - 1) / 2) of the mirrored crop.
        let x: Vec<f32> = (0..9).map(|v| v as f32).collect();
        let y = t.apply(x, &[1, 3, 3], &mut SplitMix64::new(0));
        assert_eq!(y.len(), 4);
        for r in 0..2 {
            assert!(y[r * 2] - y[r * 2 + 1] == 0.5, "mirrored row, then scaled by 1/2: {y:?}");
        }
    }
}
