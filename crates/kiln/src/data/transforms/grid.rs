//! A PNG grid of image items, for a quick look at what augmentation does.

use std::path::Path;

use plotters::prelude::*;

use super::{planes_hw, DataError};

/// Writes `items` (each of shape `shape`, 1 or 3 channels) as a grid of
/// `cols` columns, each pixel drawn `zoom x zoom`, values mapped linearly
/// from `[lo, hi]` to black..white (so normalized items can be shown with
/// their own range).
pub fn save_grid(items: &[Vec<f32>], shape: &[usize], cols: usize, zoom: usize, (lo, hi): (f32, f32), path: &Path) -> Result<(), DataError> {
    let err = |m: String| DataError::Io { path: path.to_path_buf(), message: m };
    let (planes, h, w) = planes_hw("save_grid", shape)?;
    if items.is_empty() || cols == 0 || zoom == 0 || hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) || !(planes == 1 || planes == 3) {
        return Err(DataError::Invalid(format!("save_grid: {} items of {shape:?}, {cols} columns, zoom {zoom}, range [{lo}, {hi}] (need items, 1 or 3 channels, lo < hi)", items.len())));
    }
    if let Some(bad) = items.iter().position(|x| x.len() != planes * h * w) {
        return Err(DataError::Invalid(format!("save_grid: item {bad} has {} values, shape {shape:?} needs {}", items[bad].len(), planes * h * w)));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    let gap = 2;
    let rows = items.len().div_ceil(cols);
    let (cw, ch) = (w * zoom + gap, h * zoom + gap);
    let size = ((cols * cw + gap) as u32, (rows * ch + gap) as u32);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&RGBColor(128, 128, 128)).map_err(|e| err(e.to_string()))?;
    let level = |v: f32| (((v - lo) / (hi - lo)).clamp(0.0, 1.0) * 255.0).round() as u8;
    for (k, x) in items.iter().enumerate() {
        let (gx, gy) = (gap + (k % cols) * cw, gap + (k / cols) * ch);
        for y in 0..h {
            for xx in 0..w {
                let at = |p: usize| level(x[p * h * w + y * w + xx]);
                let c = if planes == 3 { RGBColor(at(0), at(1), at(2)) } else { RGBColor(at(0), at(0), at(0)) };
                // Pixel by pixel: a filled rectangle leaves its far edges
                // undrawn, which would rule the image with a grid.
                for (dy, dx) in (0..zoom).flat_map(|dy| (0..zoom).map(move |dx| (dy, dx))) {
                    root.draw_pixel(((gx + xx * zoom + dx) as i32, (gy + y * zoom + dy) as i32), &c).map_err(|e| err(e.to_string()))?;
                }
            }
        }
    }
    root.present().map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_png_and_rejects_bad_items() {
        let dir = std::env::temp_dir().join(format!("kiln-grid-{}", std::process::id()));
        let path = dir.join("g.png");
        let items = vec![vec![0.0, 1.0, 0.5, 0.25]; 3];
        save_grid(&items, &[1, 2, 2], 2, 3, (0.0, 1.0), &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(save_grid(&[vec![0.0; 3]], &[1, 2, 2], 2, 3, (0.0, 1.0), &path).is_err());
        assert!(save_grid(&items, &[1, 2, 2], 2, 3, (1.0, 1.0), &path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
