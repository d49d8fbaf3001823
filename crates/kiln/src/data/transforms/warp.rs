//! The one resampler behind every geometric transform: each output pixel
//! centre is mapped back into the source image and read bilinearly.

/// Resamples `planes` planes of `h x w` into `oh x ow`. `map` takes an
/// output pixel centre `(x, y)` (pixel units, centres at `i + 0.5`) and
/// returns the source point. Source points outside the image read `fill`
/// (rotations, translations) or, with `clamp`, the nearest edge pixel
/// (resizing a crop, where every point is inside up to rounding).
#[allow(clippy::too_many_arguments)]
pub fn warp(src: &[f32], planes: usize, h: usize, w: usize, oh: usize, ow: usize, map: impl Fn(f64, f64) -> (f64, f64), fill: f32, clamp: bool) -> Vec<f32> {
    let mut out = vec![0f32; planes * oh * ow];
    for oy in 0..oh {
        for ox in 0..ow {
            let (sx, sy) = map(ox as f64 + 0.5, oy as f64 + 0.5);
            // To index space, where pixel (i, j) sits at integer coordinates.
            let (fx, fy) = (sx - 0.5, sy - 0.5);
            let (x0, y0) = (fx.floor(), fy.floor());
            let (ax, ay) = ((fx - x0) as f32, (fy - y0) as f32);
            let (x0, y0) = (x0 as isize, y0 as isize);
            let at = |p: &[f32], y: isize, x: isize| -> f32 {
                if clamp {
                    p[y.clamp(0, h as isize - 1) as usize * w + x.clamp(0, w as isize - 1) as usize]
                } else if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
                    fill
                } else {
                    p[y as usize * w + x as usize]
                }
            };
            for c in 0..planes {
                let p = &src[c * h * w..(c + 1) * h * w];
                let top = at(p, y0, x0) * (1.0 - ax) + at(p, y0, x0 + 1) * ax;
                let bot = at(p, y0 + 1, x0) * (1.0 - ax) + at(p, y0 + 1, x0 + 1) * ax;
                out[c * oh * ow + oy * ow + ox] = top * (1.0 - ay) + bot * ay;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_map_copies_and_half_pixel_shift_averages() {
        let src: Vec<f32> = (0..6).map(|v| v as f32).collect();
        assert_eq!(warp(&src, 1, 2, 3, 2, 3, |x, y| (x, y), 0.0, false), src);
        let shifted = warp(&src, 1, 2, 3, 2, 3, |x, y| (x + 0.5, y), -1.0, false);
        assert_eq!(shifted, vec![0.5, 1.5, 0.5, 3.5, 4.5, 2.0], "the last column mixes in the fill");
        let clamped = warp(&src, 1, 2, 3, 2, 3, |x, y| (x + 0.5, y), -1.0, true);
        assert_eq!(clamped[2], 2.0);
        // 2x upscaling of a 1x2 row with clamped edges: 0, 0.25, 0.75, 1.
        let up = warp(&[0.0, 1.0], 1, 1, 2, 1, 4, |x, y| (x / 2.0, y), 0.0, true);
        assert_eq!(up, vec![0.0, 0.25, 0.75, 1.0]);
    }
}
