//! Flips, crops, rotation and affine transforms (torchvision's names and
//! defaults).

use super::{planes_hw, uniform, warp, with_hw, DataError, SplitMix64, Transform};

/// Mirrors left-right with probability `p` (default 0.5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomHorizontalFlip {
    pub p: f64,
}

/// Mirrors top-bottom with probability `p` (default 0.5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomVerticalFlip {
    pub p: f64,
}

impl RandomHorizontalFlip {
    pub fn new(p: f64) -> Self {
        RandomHorizontalFlip { p }
    }
}

impl RandomVerticalFlip {
    pub fn new(p: f64) -> Self {
        RandomVerticalFlip { p }
    }
}

impl Default for RandomHorizontalFlip {
    fn default() -> Self {
        Self::new(0.5)
    }
}

impl Default for RandomVerticalFlip {
    fn default() -> Self {
        Self::new(0.5)
    }
}

fn flip(mut x: Vec<f32>, shape: &[usize], horizontal: bool) -> Vec<f32> {
    let (planes, h, w) = planes_hw("flip", shape).expect("checked by out_shape");
    for plane in x.chunks_exact_mut(h * w).take(planes) {
        if horizontal {
            plane.chunks_exact_mut(w).for_each(<[f32]>::reverse);
        } else {
            for r in 0..h / 2 {
                let (top, bottom) = plane.split_at_mut((h - 1 - r) * w);
                top[r * w..(r + 1) * w].swap_with_slice(&mut bottom[..w]);
            }
        }
    }
    x
}

impl Transform for RandomHorizontalFlip {
    fn out_shape(&self, shape: &[usize]) -> Result<Vec<usize>, DataError> {
        planes_hw("RandomHorizontalFlip", shape).map(|_| shape.to_vec())
    }

    fn apply(&self, x: Vec<f32>, shape: &[usize], rng: &mut SplitMix64) -> Vec<f32> {
        if rng.unit() < self.p {
            flip(x, shape, true)
        } else {
            x
        }
    }
}

impl Transform for RandomVerticalFlip {
    fn out_shape(&self, shape: &[usize]) -> Result<Vec<usize>, DataError> {
        planes_hw("RandomVerticalFlip", shape).map(|_| shape.to_vec())
    }

    fn apply(&self, x: Vec<f32>, shape: &[usize], rng: &mut SplitMix64) -> Vec<f32> {
        if rng.unit() < self.p {
            flip(x, shape, false)
        } else {
            x
        }
    }
}

/// Pads every side by `padding` pixels of `fill`, then crops `size x size`
/// at a uniformly random offset: random shifts when `size` is the image's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomCrop {
    pub size: usize,
    pub padding: usize,
    pub fill: f32,
}

impl RandomCrop {
    pub fn new(size: usize) -> Self {
        RandomCrop { size, padding: 0, fill: 0.0 }
    }

    /// `fill` is the padded pixels' value: 0 for raw images, `-mean / std`
    /// for background after normalization.
    pub fn padding(mut self, padding: usize, fill: f32) -> Self {
        self.padding = padding;
        self.fill = fill;
        self
    }
}

impl Transform for RandomCrop {
    fn out_shape(&self, shape: &[usize]) -> Result<Vec<usize>, DataError> {
        let (_, h, w) = planes_hw("RandomCrop", shape)?;
        if self.size == 0 || self.size > h + 2 * self.padding || self.size > w + 2 * self.padding {
            return Err(DataError::Invalid(format!("RandomCrop({}) with padding {} does not fit items {shape:?}", self.size, self.padding)));
        }
        Ok(with_hw(shape, self.size, self.size))
    }

    fn apply(&self, x: Vec<f32>, shape: &[usize], rng: &mut SplitMix64) -> Vec<f32> {
        let (planes, h, w) = planes_hw("RandomCrop", shape).expect("checked by out_shape");
        let p = self.padding as isize;
        let top = rng.below(h + 2 * self.padding - self.size + 1) as isize - p;
        let left = rng.below(w + 2 * self.padding - self.size + 1) as isize - p;
        // Whole-pixel offsets need no resampling: copy each output row's
        // run that lies inside the image (this runs per item per epoch, so
        // it is worth the few lines over the general warp).
        let n = self.size;
        let mut out = vec![self.fill; planes * n * n];
        let (x0, x1) = (left.max(0), (left + n as isize).min(w as isize));
        for c in 0..planes {
            for oy in 0..n {
                let sy = top + oy as isize;
                if sy < 0 || sy >= h as isize || x0 >= x1 {
                    continue;
                }
                let src = c * h * w + sy as usize * w;
                let dst = c * n * n + oy * n + (x0 - left) as usize;
                out[dst..dst + (x1 - x0) as usize].copy_from_slice(&x[src + x0 as usize..src + x1 as usize]);
            }
        }
        out
    }
}

/// Crops a random region (area a `scale` fraction of the image, aspect
/// ratio in `ratio`, log-uniform) and resizes it to `size x size` with
/// bilinear resampling; torchvision's algorithm: ten tries, then a centre
/// crop. Defaults: scale (0.08, 1), ratio (3/4, 4/3).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomResizedCrop {
    pub size: usize,
    pub scale: (f64, f64),
    pub ratio: (f64, f64),
}

impl RandomResizedCrop {
    pub fn new(size: usize) -> Self {
        RandomResizedCrop { size, scale: (0.08, 1.0), ratio: (3.0 / 4.0, 4.0 / 3.0) }
    }

    pub fn scale(mut self, lo: f64, hi: f64) -> Self {
        self.scale = (lo, hi);
        self
    }

    pub fn ratio(mut self, lo: f64, hi: f64) -> Self {
        self.ratio = (lo, hi);
        self
    }

    /// `(top, left, height, width)` of the crop in an `h x w` image.
    pub fn region(&self, h: usize, w: usize, rng: &mut SplitMix64) -> (usize, usize, usize, usize) {
        let area = (h * w) as f64;
        let (lr0, lr1) = (self.ratio.0.ln(), self.ratio.1.ln());
        for _ in 0..10 {
            let target = area * uniform(rng, self.scale.0, self.scale.1);
            let aspect = uniform(rng, lr0, lr1).exp();
            let cw = (target * aspect).sqrt().round() as usize;
            let ch = (target / aspect).sqrt().round() as usize;
            if cw > 0 && cw <= w && ch > 0 && ch <= h {
                return (rng.below(h - ch + 1), rng.below(w - cw + 1), ch, cw);
            }
        }
        // Fallback: the largest centred crop with the ratio clamped to range.
        let r = w as f64 / h as f64;
        let (ch, cw) = if r < self.ratio.0 {
            (((w as f64 / self.ratio.0).round() as usize).clamp(1, h), w)
        } else if r > self.ratio.1 {
            (h, ((h as f64 * self.ratio.1).round() as usize).clamp(1, w))
        } else {
            (h, w)
        };
        ((h - ch) / 2, (w - cw) / 2, ch, cw)
    }
}

impl Transform for RandomResizedCrop {
    fn out_shape(&self, shape: &[usize]) -> Result<Vec<usize>, DataError> {
        planes_hw("RandomResizedCrop", shape)?;
        let (s, r) = (self.scale, self.ratio);
        if self.size == 0 || !(0.0 < s.0 && s.0 <= s.1 && s.1 <= 1.0) || !(0.0 < r.0 && r.0 <= r.1) {
            return Err(DataError::Invalid(format!("RandomResizedCrop: size {} scale {s:?} ratio {r:?} (need size > 0, 0 < scale <= 1, 0 < ratio)", self.size)));
        }
        Ok(with_hw(shape, self.size, self.size))
    }

    fn apply(&self, x: Vec<f32>, shape: &[usize], rng: &mut SplitMix64) -> Vec<f32> {
        let (planes, h, w) = planes_hw("RandomResizedCrop", shape).expect("checked by out_shape");
        let (top, left, ch, cw) = self.region(h, w, rng);
        let (sy, sx) = (ch as f64 / self.size as f64, cw as f64 / self.size as f64);
        warp(&x, planes, h, w, self.size, self.size, |ox, oy| (left as f64 + ox * sx, top as f64 + oy * sy), 0.0, true)
    }
}

/// Rotation by an angle uniform in `[-degrees, degrees]` about the centre,
/// counter-clockwise for positive angles; uncovered corners read `fill`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomRotation {
    pub degrees: f64,
    pub fill: f32,
}

impl RandomRotation {
    pub fn new(degrees: f64) -> Self {
        RandomRotation { degrees, fill: 0.0 }
    }

    pub fn fill(mut self, fill: f32) -> Self {
        self.fill = fill;
        self
    }
}

impl Transform for RandomRotation {
    fn out_shape(&self, shape: &[usize]) -> Result<Vec<usize>, DataError> {
        planes_hw("RandomRotation", shape).map(|_| shape.to_vec())
    }

    fn apply(&self, x: Vec<f32>, shape: &[usize], rng: &mut SplitMix64) -> Vec<f32> {
        let angle = uniform(rng, -self.degrees, self.degrees);
        RandomAffine::new(0.0).fill(self.fill).warp_with(x, shape, angle, 1.0, (0.0, 0.0))
    }
}

/// Rotation (`degrees` range, as [`RandomRotation`]), scaling by a factor
/// uniform in `scale`, and translation by up to `translate.0 * W` and
/// `translate.1 * H` pixels, about the centre (torchvision's `RandomAffine`
/// without shear).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomAffine {
    pub degrees: f64,
    pub translate: (f64, f64),
    pub scale: (f64, f64),
    pub fill: f32,
}

impl RandomAffine {
    pub fn new(degrees: f64) -> Self {
        RandomAffine { degrees, translate: (0.0, 0.0), scale: (1.0, 1.0), fill: 0.0 }
    }

    pub fn translate(mut self, fx: f64, fy: f64) -> Self {
        self.translate = (fx, fy);
        self
    }

    pub fn scale(mut self, lo: f64, hi: f64) -> Self {
        self.scale = (lo, hi);
        self
    }

    pub fn fill(mut self, fill: f32) -> Self {
        self.fill = fill;
        self
    }

    /// Applies one fixed affine map: rotate by `angle` degrees, scale by `s`,
    /// then shift by `(tx, ty)` pixels.
    pub fn warp_with(&self, x: Vec<f32>, shape: &[usize], angle: f64, s: f64, (tx, ty): (f64, f64)) -> Vec<f32> {
        let (planes, h, w) = planes_hw("RandomAffine", shape).expect("checked by out_shape");
        let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
        let (sin, cos) = angle.to_radians().sin_cos();
        // The inverse map: undo the shift, rotate back (y points down, so a
        // counter-clockwise turn on screen is this sign pattern), unscale.
        warp(
            &x,
            planes,
            h,
            w,
            h,
            w,
            |ox, oy| {
                let (dx, dy) = (ox - cx - tx, oy - cy - ty);
                (cx + (cos * dx - sin * dy) / s, cy + (sin * dx + cos * dy) / s)
            },
            self.fill,
            false,
        )
    }
}

impl Transform for RandomAffine {
    fn out_shape(&self, shape: &[usize]) -> Result<Vec<usize>, DataError> {
        planes_hw("RandomAffine", shape)?;
        if !(self.scale.0 > 0.0 && self.scale.0 <= self.scale.1) || self.translate.0 < 0.0 || self.translate.1 < 0.0 {
            return Err(DataError::Invalid(format!("RandomAffine: scale {:?} must be a positive range, translate {:?} non-negative", self.scale, self.translate)));
        }
        Ok(shape.to_vec())
    }

    fn apply(&self, x: Vec<f32>, shape: &[usize], rng: &mut SplitMix64) -> Vec<f32> {
        let (_, h, w) = planes_hw("RandomAffine", shape).expect("checked by out_shape");
        let angle = uniform(rng, -self.degrees, self.degrees);
        let s = uniform(rng, self.scale.0, self.scale.1);
        let mx = self.translate.0 * w as f64;
        let my = self.translate.1 * h as f64;
        let t = (uniform(rng, -mx, mx).round(), uniform(rng, -my, my).round());
        self.warp_with(x, shape, angle, s, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng() -> SplitMix64 {
        SplitMix64::new(1)
    }

    #[test]
    fn flips_mirror_rows_and_columns() {
        let x: Vec<f32> = (0..6).map(|v| v as f32).collect();
        assert_eq!(RandomHorizontalFlip::new(1.0).apply(x.clone(), &[1, 2, 3], &mut rng()), vec![2.0, 1.0, 0.0, 5.0, 4.0, 3.0]);
        assert_eq!(RandomVerticalFlip::new(1.0).apply(x.clone(), &[2, 3], &mut rng()), vec![3.0, 4.0, 5.0, 0.0, 1.0, 2.0]);
        assert_eq!(RandomVerticalFlip::new(0.0).apply(x.clone(), &[2, 3], &mut rng()), x);
        // Two channels flip independently of each other's data.
        let two: Vec<f32> = (0..8).map(|v| v as f32).collect();
        assert_eq!(RandomVerticalFlip::new(1.0).apply(two, &[2, 2, 2], &mut rng()), vec![2.0, 3.0, 0.0, 1.0, 6.0, 7.0, 4.0, 5.0]);
    }

    #[test]
    fn random_crop_shifts_whole_pixels_and_fills_the_border() {
        let t = RandomCrop::new(3).padding(1, -1.0);
        let orig: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let mut moved = 0;
        for s in 0..40 {
            let y = t.apply(orig.clone(), &[3, 3], &mut SplitMix64::new(s));
            assert!(y.iter().all(|v| *v == -1.0 || orig.contains(v)), "{y:?}");
            assert!(y.contains(&5.0));
            moved += usize::from(y != orig);
        }
        assert!(moved > 25, "8 of 9 offsets move the image: {moved}");
        // The row copy agrees with the general bilinear warp at whole-pixel
        // offsets, for crops smaller than the image and several channels.
        let t = RandomCrop::new(3).padding(2, -1.0);
        let img: Vec<f32> = (0..2 * 4 * 5).map(|v| v as f32).collect();
        for s in 0..30 {
            let mut g = SplitMix64::new(s);
            let y = t.apply(img.clone(), &[2, 4, 5], &mut g);
            let mut g = SplitMix64::new(s);
            let top = g.below(4 + 4 - 3 + 1) as f64 - 2.0;
            let left = g.below(5 + 4 - 3 + 1) as f64 - 2.0;
            assert_eq!(y, warp(&img, 2, 4, 5, 3, 3, |ox, oy| (ox + left, oy + top), -1.0, false), "seed {s}");
        }
        assert!(RandomCrop::new(6).padding(1, 0.0).out_shape(&[3, 3]).is_err());
    }

    #[test]
    fn resized_crop_region_respects_scale_and_ratio() {
        let t = RandomResizedCrop::new(8).scale(0.25, 0.5).ratio(0.5, 2.0);
        for s in 0..50 {
            let (top, left, h, w) = t.region(32, 32, &mut SplitMix64::new(s));
            assert!(top + h <= 32 && left + w <= 32);
            let frac = (h * w) as f64 / 1024.0;
            assert!((0.2..=0.56).contains(&frac), "area fraction {frac} (rounding widens 0.25..0.5 a little)");
            assert!((0.45..=2.2).contains(&(w as f64 / h as f64)));
        }
        // A constant image stays constant through bilinear resampling.
        let y = t.apply(vec![0.7; 2 * 32 * 32], &[2, 32, 32], &mut rng());
        assert_eq!(y.len(), 2 * 64);
        assert!(y.iter().all(|v| (v - 0.7).abs() < 1e-6));
        assert_eq!(t.out_shape(&[3, 32, 32]).unwrap(), vec![3, 8, 8]);
        assert!(RandomResizedCrop::new(8).scale(0.5, 2.0).out_shape(&[1, 4, 4]).is_err());
    }

    #[test]
    fn rotation_by_90_degrees_turns_counter_clockwise() {
        let a = RandomAffine::new(0.0);
        // 2x2: [[0, 1], [2, 3]] turned counter-clockwise is [[1, 3], [0, 2]].
        let y = a.warp_with(vec![0.0, 1.0, 2.0, 3.0], &[2, 2], 90.0, 1.0, (0.0, 0.0));
        let r: Vec<f32> = y.iter().map(|v| v.round()).collect();
        assert_eq!(r, vec![1.0, 3.0, 0.0, 2.0]);
        // A 0-degree rotation is the identity; a shift by one pixel moves content.
        let x: Vec<f32> = (0..9).map(|v| v as f32).collect();
        assert_eq!(RandomRotation::new(0.0).apply(x.clone(), &[3, 3], &mut rng()), x);
        let shifted = a.warp_with(x, &[3, 3], 0.0, 1.0, (1.0, 0.0));
        assert_eq!(shifted, vec![0.0, 0.0, 1.0, 0.0, 3.0, 4.0, 0.0, 6.0, 7.0]);
        // Scaling by 2 about the centre magnifies: the centre pixel spreads.
        let mut dot = vec![0.0; 25];
        dot[12] = 1.0;
        let big = a.warp_with(dot, &[5, 5], 0.0, 2.0, (0.0, 0.0));
        assert!(big.iter().filter(|v| **v > 0.2).count() > 1, "{big:?}");
        assert!(RandomAffine::new(10.0).scale(0.0, 1.0).out_shape(&[3, 3]).is_err());
    }
}
