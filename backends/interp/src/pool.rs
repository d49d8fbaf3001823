//! Max and average pooling over NCHW and their gradients (PyTorch semantics,
//! ceil_mode false).

use kiln_ir::Pool2dAttrs;

/// Sizes of one pooling: x[n,c,h,w] -> y[n,c,ho,wo].
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolGeom {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub ho: usize,
    pub wo: usize,
    pub p: Pool2dAttrs,
}

impl PoolGeom {
    pub fn new(x: &[usize], y: &[usize], p: Pool2dAttrs) -> PoolGeom {
        PoolGeom { planes: x[0] * x[1], h: x[2], w: x[3], ho: y[2], wo: y[3], p }
    }

    /// The in-bounds rows (or columns) of the window at output position `o`.
    fn range(&self, axis: usize, o: usize) -> std::ops::Range<usize> {
        let start = (o * self.p.stride[axis]) as isize - self.p.padding[axis] as isize;
        let end = start + self.p.kernel[axis] as isize;
        let bound = if axis == 0 { self.h } else { self.w } as isize;
        (start.max(0) as usize)..(end.min(bound).max(0) as usize)
    }

    /// Calls `f(plane, out_index, rows, cols)` for every output element.
    fn for_each_window(&self, mut f: impl FnMut(usize, usize, std::ops::Range<usize>, std::ops::Range<usize>)) {
        for pl in 0..self.planes {
            for oh in 0..self.ho {
                for ow in 0..self.wo {
                    f(pl, (pl * self.ho + oh) * self.wo + ow, self.range(0, oh), self.range(1, ow));
                }
            }
        }
    }

    /// Flat index of the window's first maximum in row-major window order;
    /// padding never wins (it acts as -inf) and a NaN wins like in PyTorch.
    fn argmax(&self, x: &[f64], pl: usize, rows: std::ops::Range<usize>, cols: std::ops::Range<usize>) -> usize {
        let mut best: Option<(usize, f64)> = None;
        for ih in rows {
            for iw in cols.clone() {
                let i = (pl * self.h + ih) * self.w + iw;
                let v = x[i];
                match best {
                    None => best = Some((i, v)),
                    Some((_, b)) if !b.is_nan() && (v > b || v.is_nan()) => best = Some((i, v)),
                    _ => {}
                }
            }
        }
        best.expect("padding <= kernel/2 keeps every window non-empty").0
    }

    fn divisor(&self, rows: &std::ops::Range<usize>, cols: &std::ops::Range<usize>, count_include_pad: bool) -> f64 {
        if count_include_pad {
            // With ceil_mode false a window never leaves the padded input, so
            // it always covers the full kernel.
            (self.p.kernel[0] * self.p.kernel[1]) as f64
        } else {
            (rows.len() * cols.len()) as f64
        }
    }
}

pub(crate) fn max_pool(x: &[f64], g: &PoolGeom) -> Vec<f64> {
    let mut y = vec![0.0; g.planes * g.ho * g.wo];
    g.for_each_window(|pl, o, rows, cols| y[o] = x[g.argmax(x, pl, rows, cols)]);
    y
}

pub(crate) fn max_pool_grad(x: &[f64], dy: &[f64], g: &PoolGeom) -> Vec<f64> {
    let mut dx = vec![0.0; x.len()];
    g.for_each_window(|pl, o, rows, cols| dx[g.argmax(x, pl, rows, cols)] += dy[o]);
    dx
}

pub(crate) fn avg_pool(x: &[f64], g: &PoolGeom, count_include_pad: bool) -> Vec<f64> {
    let mut y = vec![0.0; g.planes * g.ho * g.wo];
    g.for_each_window(|pl, o, rows, cols| {
        let d = g.divisor(&rows, &cols, count_include_pad);
        let mut s = 0.0;
        for ih in rows {
            for iw in cols.clone() {
                s += x[(pl * g.h + ih) * g.w + iw];
            }
        }
        y[o] = s / d;
    });
    y
}

pub(crate) fn avg_pool_grad(dy: &[f64], g: &PoolGeom, count_include_pad: bool) -> Vec<f64> {
    let mut dx = vec![0.0; g.planes * g.h * g.w];
    g.for_each_window(|pl, o, rows, cols| {
        let v = dy[o] / g.divisor(&rows, &cols, count_include_pad);
        for ih in rows {
            for iw in cols.clone() {
                dx[(pl * g.h + ih) * g.w + iw] += v;
            }
        }
    });
    dx
}
