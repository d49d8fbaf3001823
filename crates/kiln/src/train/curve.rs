//! The loss/accuracy curves of a [`History`] as a PNG: two panels (loss,
//! accuracy), train in blue, validation in orange, light grid lines.
//!
//! plotters draws text through a font backend (system fonts via fontconfig,
//! or a registered TTF); neither can be assumed on a build machine, and its
//! no-font fallback panics when asked to draw text. So the chart is drawn
//! without plotters' text, and the few labels (panel titles, y range, epoch
//! count, legend) are drawn with the 5x7 pixel font below.

use std::path::Path;

use plotters::prelude::*;

use super::{History, TrainError};

const TRAIN: RGBColor = RGBColor(31, 119, 180);
const VAL: RGBColor = RGBColor(255, 127, 14);
const GRID: RGBColor = RGBColor(225, 225, 225);

/// Writes `history` to `path` as a 1000x420 PNG.
pub fn plot_history(history: &History, path: &Path) -> Result<(), TrainError> {
    let err = |m: String| TrainError::Plot { path: path.to_path_buf(), message: m };
    if history.epochs.is_empty() {
        return Err(err("the history has no epochs".into()));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    let root = BitMapBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let (left, right) = root.split_horizontally(500);
    let ep: Vec<f64> = history.epochs.iter().map(|r| (r.epoch + 1) as f64).collect();
    let pick = |f: &dyn Fn(&super::EpochRecord) -> Option<f64>| -> Vec<(f64, f64)> {
        history.epochs.iter().zip(&ep).filter_map(|(r, &x)| f(r).filter(|v| v.is_finite()).map(|y| (x, y))).collect()
    };
    let loss = [pick(&|r| Some(r.train_loss)), pick(&|r| r.val_loss)];
    let acc = [pick(&|r| r.train_accuracy), pick(&|r| r.val_accuracy)];
    panel(&left, "loss", &loss, ep.len()).map_err(&err)?;
    panel(&right, "accuracy", &acc, ep.len()).map_err(&err)?;
    root.present().map_err(|e| err(e.to_string()))
}

fn panel<DB: DrawingBackend>(area: &DrawingArea<DB, plotters::coord::Shift>, title: &str, series: &[Vec<(f64, f64)>; 2], epochs: usize) -> Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    let ys: Vec<f64> = series.iter().flatten().map(|p| p.1).collect();
    let (mut lo, mut hi) = ys.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| (a.min(y), b.max(y)));
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        hi = lo + 1.0;
    }
    let pad = (hi - lo) * 0.05;
    // Losses and accuracies are never negative, accuracies never above 1:
    // keep the padding inside those bounds.
    let lo = if lo >= 0.0 { (lo - pad).max(0.0) } else { lo - pad };
    let hi = if title == "accuracy" && hi <= 1.0 { (hi + pad).min(1.0) } else { hi + pad };
    let xmax = (epochs as f64).max(2.0);
    text(area, 14, 8, title, &BLACK).map_err(e)?;
    text(area, 300, 8, "train", &TRAIN).map_err(e)?;
    text(area, 400, 8, "val", &VAL).map_err(e)?;
    text(area, 4, 36, &fmt_num(hi), &BLACK).map_err(e)?;
    text(area, 4, 392, &fmt_num(lo), &BLACK).map_err(e)?;
    text(area, 380, 404, &format!("epoch {epochs}"), &BLACK).map_err(e)?;
    let plot = area.margin(50, 30, 60, 20);
    let mut chart = ChartBuilder::on(&plot).build_cartesian_2d(1.0..xmax, lo..hi).map_err(e)?;
    for i in 0..=4 {
        let y = lo + (hi - lo) * i as f64 / 4.0;
        chart.draw_series(LineSeries::new([(1.0, y), (xmax, y)], GRID)).map_err(e)?;
    }
    let xs = epochs.clamp(1, 10);
    for i in 0..=xs {
        let x = 1.0 + (xmax - 1.0) * i as f64 / xs as f64;
        chart.draw_series(LineSeries::new([(x, lo), (x, hi)], GRID)).map_err(e)?;
    }
    chart.draw_series(LineSeries::new([(1.0, lo), (xmax, lo), (xmax, hi), (1.0, hi), (1.0, lo)], BLACK)).map_err(e)?;
    for (pts, color) in series.iter().zip([TRAIN, VAL]) {
        chart.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2))).map_err(e)?;
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(e)?;
    }
    Ok(())
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 { format!("{v:.0}") } else { format!("{v:.3}") }
}

/// Draws `s` at pixel (x, y) with the 5x7 font at scale 2; unknown
/// characters are drawn as blanks.
fn text<DB: DrawingBackend>(area: &DrawingArea<DB, plotters::coord::Shift>, x: i32, y: i32, s: &str, color: &RGBColor) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    const S: i32 = 2;
    for (i, ch) in s.chars().enumerate() {
        let Some(rows) = glyph(ch) else { continue };
        let gx = x + i as i32 * 6 * S;
        for (r, row) in rows.iter().enumerate() {
            for c in 0..5 {
                if row & (0x10 >> c) != 0 {
                    let (px, py) = (gx + c * S, y + r as i32 * S);
                    area.draw(&Rectangle::new([(px, py), (px + S - 1, py + S - 1)], color.filled()))?;
                }
            }
        }
    }
    Ok(())
}

/// 5x7 glyphs, one byte per row, bit 4 = leftmost column.
fn glyph(c: char) -> Option<[u8; 7]> {
    Some(match c {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        'a' => [0, 0, 0x0E, 0x01, 0x0F, 0x11, 0x0F],
        'c' => [0, 0, 0x0E, 0x10, 0x10, 0x11, 0x0E],
        'e' => [0, 0, 0x0E, 0x11, 0x1F, 0x10, 0x0E],
        'h' => [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11],
        'i' => [0x04, 0, 0x0C, 0x04, 0x04, 0x04, 0x0E],
        'l' => [0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'n' => [0, 0, 0x16, 0x19, 0x11, 0x11, 0x11],
        'o' => [0, 0, 0x0E, 0x11, 0x11, 0x11, 0x0E],
        'p' => [0, 0, 0x1E, 0x11, 0x1E, 0x10, 0x10],
        'r' => [0, 0, 0x16, 0x19, 0x10, 0x10, 0x10],
        's' => [0, 0, 0x0E, 0x10, 0x0E, 0x01, 0x1E],
        't' => [0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06],
        'u' => [0, 0, 0x11, 0x11, 0x11, 0x13, 0x0D],
        'v' => [0, 0, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'y' => [0, 0, 0x11, 0x11, 0x0F, 0x01, 0x0E],
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::EpochRecord;

    #[test]
    fn writes_a_png_without_fonts() {
        let mut h = History::default();
        for e in 0..6 {
            let x = e as f64;
            h.push(EpochRecord { epoch: e, train_loss: 2.0 / (x + 1.0), train_accuracy: Some(0.5 + x * 0.08), val_loss: Some(2.2 / (x + 1.0)), val_accuracy: Some(0.45 + x * 0.08), elapsed_s: x });
        }
        let p = std::env::temp_dir().join(format!("kiln-curve-{}.png", std::process::id()));
        plot_history(&h, &p).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(bytes.len() > 2000, "{} bytes", bytes.len());
        let _ = std::fs::remove_file(&p);
        assert!(plot_history(&History::default(), &p).is_err());
    }

    #[test]
    fn every_label_character_has_a_glyph() {
        for c in "lossaccuracytrainvalepoch0123456789.-".chars() {
            assert!(glyph(c).is_some(), "{c}");
        }
    }
}
