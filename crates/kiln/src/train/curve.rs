//! The loss/accuracy curves of a [`History`] as a PNG: a title, two panels
//! (loss, accuracy) with ticks and axis labels, train in blue, validation in
//! orange, the per-step loss faint with its exponential moving average.
//!
//! plotters draws text through a font backend (system fonts via fontconfig,
//! or a registered TTF); neither can be assumed on a build machine, and its
//! no-font fallback panics when asked to draw text. So the chart is drawn
//! without plotters' text, and the labels (title, panel titles, tick
//! values, legend) are drawn with the 5x7 pixel font below.

use std::path::Path;

use plotters::prelude::*;

use super::{History, TrainError};

const TRAIN: RGBColor = RGBColor(31, 119, 180);
const VAL: RGBColor = RGBColor(255, 127, 14);
const STEP: RGBColor = RGBColor(190, 210, 232);
const EMA: RGBColor = RGBColor(20, 60, 110);
const GRID: RGBColor = RGBColor(225, 225, 225);
/// The smoothing of the per-step loss: an average over roughly the last
/// 1 / (1 - 0.9) = 10 steps, as the notes' exponential average.
pub const EMA_BETA: f64 = 0.9;
const W: u32 = 1000;
const H: u32 = 460;

/// Writes `history` to `path` as a 1000x460 PNG: `title` on top, a loss
/// panel (per-epoch train/validation points, and when the history has
/// per-step losses those too, faint, with their exponential moving average)
/// and an accuracy panel, each with ticks and labelled axes.
pub fn plot_history(history: &History, title: &str, path: &Path) -> Result<(), TrainError> {
    let err = |m: String| TrainError::Plot { path: path.to_path_buf(), message: m };
    if history.epochs.is_empty() {
        return Err(err("the history has no epochs".into()));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    let root = BitMapBackend::new(path, (W, H)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let tw = title.chars().count() as i32 * 12;
    text(&root, (W as i32 - tw).max(0) / 2, 8, title, &BLACK).map_err(|e| err(e.to_string()))?;
    let (_, body) = root.split_vertically(30);
    let (left, right) = body.split_horizontally(W / 2);
    let ep: Vec<f64> = history.epochs.iter().map(|r| (r.epoch + 1) as f64).collect();
    let pick = |f: &dyn Fn(&super::EpochRecord) -> Option<f64>| -> Vec<(f64, f64)> {
        history.epochs.iter().zip(&ep).filter_map(|(r, &x)| f(r).filter(|v| v.is_finite()).map(|y| (x, y))).collect()
    };
    // Step s of n per epoch ends at x = (s + 1) / n epochs, so the last
    // step of epoch e sits under that epoch's point.
    let per_epoch = (history.steps.len() / history.epochs.len()).max(1) as f64;
    let at_steps = |v: Vec<f64>| -> Vec<(f64, f64)> { v.into_iter().enumerate().map(|(s, y)| ((s + 1) as f64 / per_epoch, y)).filter(|p| p.1.is_finite()).collect() };
    let steps = [at_steps(history.steps.clone()), at_steps(history.smoothed_steps(EMA_BETA))];
    let loss = [pick(&|r| Some(r.train_loss)), pick(&|r| r.val_loss)];
    let acc = [pick(&|r| r.train_accuracy), pick(&|r| r.val_accuracy)];
    let xmax = ep.last().copied().unwrap_or(1.0).max(1.0);
    panel(&left, "loss", &loss, &steps, xmax).map_err(&err)?;
    panel(&right, "accuracy", &acc, &[Vec::new(), Vec::new()], xmax).map_err(&err)?;
    root.present().map_err(|e| err(e.to_string()))
}

/// About `n` round tick values covering `[lo, hi]` (steps of 1, 2 or 5
/// times a power of ten).
pub(crate) fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) || n == 0 {
        return vec![lo];
    }
    let raw = (hi - lo) / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

fn panel<DB: DrawingBackend>(area: &DrawingArea<DB, plotters::coord::Shift>, title: &str, series: &[Vec<(f64, f64)>; 2], steps: &[Vec<(f64, f64)>; 2], xmax: f64) -> Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    let ys: Vec<f64> = series.iter().chain(steps).flatten().map(|p| p.1).collect();
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
    let (w, h) = area.dim_in_pixel();
    text(area, 80, 6, title, &BLACK).map_err(e)?;
    let mut legend = vec![("train", TRAIN), ("val", VAL)];
    if !steps[0].is_empty() {
        legend.extend([("step", STEP), ("ema", EMA)]);
    }
    let mut lx = w as i32 - 20 - legend.iter().map(|(s, _)| s.len() as i32 * 12 + 40).sum::<i32>();
    for (name, color) in legend {
        area.draw(&Rectangle::new([(lx, 10), (lx + 20, 14)], color.filled())).map_err(e)?;
        text(area, lx + 26, 6, name, &color).map_err(e)?;
        lx += name.len() as i32 * 12 + 40;
    }
    let (top, bottom, left, right) = (34u32, 56u32, 76u32, 20u32);
    let plot = area.margin(top, bottom, left, right);
    let mut chart = ChartBuilder::on(&plot).build_cartesian_2d(0.0..xmax, lo..hi).map_err(e)?;
    // Pixel position of a value, relative to this panel.
    let base = area.get_base_pixel();
    let px = |x: f64, y: f64| {
        let (a, b) = chart.backend_coord(&(x, y));
        (a - base.0, b - base.1)
    };
    let yt = ticks(lo, hi, 5);
    let xt = ticks(0.0, xmax, 10.min(xmax.ceil() as usize).max(1)).into_iter().filter(|x| x.fract() == 0.0).collect::<Vec<_>>();
    let ylab: Vec<(i32, i32, String)> = yt.iter().map(|&y| (px(0.0, y).1, 0, fmt_num(y))).collect();
    let xlab: Vec<(i32, i32, String)> = xt.iter().map(|&x| (px(x, lo).0, 0, format!("{x:.0}"))).collect();
    for &y in &yt {
        chart.draw_series(LineSeries::new([(0.0, y), (xmax, y)], GRID)).map_err(e)?;
    }
    for &x in &xt {
        chart.draw_series(LineSeries::new([(x, lo), (x, hi)], GRID)).map_err(e)?;
    }
    chart.draw_series(LineSeries::new([(0.0, lo), (xmax, lo), (xmax, hi), (0.0, hi), (0.0, lo)], BLACK)).map_err(e)?;
    if !steps[0].is_empty() {
        chart.draw_series(LineSeries::new(steps[0].iter().copied(), STEP)).map_err(e)?;
        chart.draw_series(LineSeries::new(steps[1].iter().copied(), EMA.stroke_width(2))).map_err(e)?;
    }
    for (pts, color) in series.iter().zip([TRAIN, VAL]) {
        chart.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2))).map_err(e)?;
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(e)?;
    }
    // Ticks and their labels: values right-aligned left of the y axis,
    // epochs centred under the x axis.
    let axis_x = left as i32;
    let axis_y = h as i32 - bottom as i32;
    for (py, _, s) in &ylab {
        area.draw(&PathElement::new(vec![(axis_x - 6, *py), (axis_x, *py)], BLACK)).map_err(e)?;
        text(area, axis_x - 10 - s.len() as i32 * 12, py - 7, s, &BLACK).map_err(e)?;
    }
    for (px, _, s) in &xlab {
        area.draw(&PathElement::new(vec![(*px, axis_y), (*px, axis_y + 6)], BLACK)).map_err(e)?;
        text(area, px - s.len() as i32 * 6, axis_y + 10, s, &BLACK).map_err(e)?;
    }
    text(area, (w as i32 - 60) / 2, h as i32 - 20, "epoch", &BLACK).map_err(e)?;
    Ok(())
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        // Enough decimals for tick steps down to 0.001, trailing zeros cut.
        let s = format!("{v:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s.is_empty() || s == "-" { "0".into() } else { s.into() }
    }
}

/// Draws `s` at pixel (x, y) with the 5x7 font at scale 2; capitals are
/// drawn as lower case, unknown characters as blanks.
fn text<DB: DrawingBackend>(area: &DrawingArea<DB, plotters::coord::Shift>, x: i32, y: i32, s: &str, color: &RGBColor) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    const S: i32 = 2;
    for (i, ch) in s.chars().enumerate() {
        let Some(rows) = glyph(ch.to_ascii_lowercase()) else { continue };
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
        '_' => [0, 0, 0, 0, 0, 0, 0x1F],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        ':' => [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        '/' => [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
        '=' => [0, 0, 0x1F, 0, 0x1F, 0, 0],
        '+' => [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0],
        ',' => [0, 0, 0, 0, 0x0C, 0x04, 0x08],
        'a' => [0, 0, 0x0E, 0x01, 0x0F, 0x11, 0x0F],
        'b' => [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E],
        'd' => [0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F],
        'f' => [0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08],
        'g' => [0, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E],
        'j' => [0x02, 0, 0x06, 0x02, 0x02, 0x12, 0x0C],
        'k' => [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12],
        'm' => [0, 0, 0x1A, 0x15, 0x15, 0x11, 0x11],
        'q' => [0, 0, 0x0D, 0x13, 0x0F, 0x01, 0x01],
        'w' => [0, 0, 0x11, 0x11, 0x15, 0x15, 0x0A],
        'x' => [0, 0, 0x11, 0x0A, 0x04, 0x0A, 0x11],
        'z' => [0, 0, 0x1F, 0x02, 0x04, 0x08, 0x1F],
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
        plot_history(&h, "mnist_lenet", &p).unwrap();
        let plain = std::fs::read(&p).unwrap();
        assert_eq!(&plain[..8], b"\x89PNG\r\n\x1a\n");
        assert!(plain.len() > 2000, "{} bytes", plain.len());
        // With per-step losses the loss panel draws them and their average.
        for s in 0..60 {
            h.push_step(2.0 / (1.0 + s as f64 / 10.0) + if s % 2 == 0 { 0.2 } else { -0.2 });
        }
        plot_history(&h, "mnist_lenet", &p).unwrap();
        assert_ne!(std::fs::read(&p).unwrap(), plain);
        let _ = std::fs::remove_file(&p);
        assert!(plot_history(&History::default(), "t", &p).is_err());
    }

    #[test]
    fn ticks_are_round_and_inside_the_range() {
        let t = ticks(0.0, 1.0, 5);
        assert_eq!(t.len(), 6);
        assert!(t.iter().enumerate().all(|(k, v)| (v - k as f64 * 0.2).abs() < 1e-12), "{t:?}");
        assert_eq!(ticks(0.0, 20.0, 10), (0..=10).map(|k| k as f64 * 2.0).collect::<Vec<_>>());
        let t = ticks(0.93, 0.995, 5);
        assert!(t.iter().all(|v| (0.93..=0.995).contains(v)) && t.len() >= 3, "{t:?}");
        assert_eq!(fmt_num(0.5), "0.5");
        assert_eq!(fmt_num(2.0), "2");
        assert_eq!(fmt_num(0.0), "0");
    }

    #[test]
    fn every_label_character_has_a_glyph() {
        for c in "lossaccuracytrainvalepochstepema0123456789.-_abcdefghijklmnopqrstuvwxyz".chars() {
            assert!(glyph(c).is_some(), "{c}");
        }
    }
}
