//! 2-D convolution (NCHW x OIHW, stride/padding/dilation/groups), its two
//! gradients, conv1d as a height-1 conv2d, and the fused conv epilogue.
//!
//! All three kernels walk the same (n, o, ci, ky, kx, oh, ow) nest and differ
//! only in which tensor accumulates, so they are obviously adjoint.

use kiln_ir::{Activation, Conv2dAttrs};

use kiln_ir::scalar::activate;

/// Sizes of one convolution: input x[n,c,h,w], weight w[o,cg,kh,kw],
/// output y[n,o,ho,wo].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub ho: usize,
    pub wo: usize,
    pub attrs: Conv2dAttrs,
}

impl Geom {
    pub fn new(x: &[usize], wt: &[usize], y: &[usize], attrs: Conv2dAttrs) -> Geom {
        Geom { n: x[0], c: x[1], h: x[2], w: x[3], o: wt[0], kh: wt[2], kw: wt[3], ho: y[2], wo: y[3], attrs }
    }

    /// For every (n, oc, ci-within-group, ky, kx): calls `f` with the flat
    /// offsets of the x plane, the y plane and the weight element; `f` then
    /// walks the (oh, ow) positions via `positions`.
    fn for_each_tap(&self, mut f: impl FnMut(usize, usize, usize)) {
        let g = self.attrs.groups;
        let cg = self.c / g;
        let og = self.o / g;
        for n in 0..self.n {
            for oc in 0..self.o {
                let grp = oc / og;
                let y_plane = (n * self.o + oc) * self.ho * self.wo;
                for ci in 0..cg {
                    let c = grp * cg + ci;
                    let x_plane = (n * self.c + c) * self.h * self.w;
                    for ky in 0..self.kh {
                        for kx in 0..self.kw {
                            let wi = ((oc * cg + ci) * self.kh + ky) * self.kw + kx;
                            f(x_plane, y_plane, wi);
                        }
                    }
                }
            }
        }
    }

    /// The output positions along `axis` whose input under kernel tap `k`
    /// lies inside the image (not in the zero padding). For those,
    /// `o * stride + k * dilation - padding` is a valid input index.
    fn valid(&self, axis: usize, k: usize) -> std::ops::Range<usize> {
        let a = &self.attrs;
        let (s, off) = (a.stride[axis] as isize, (k * a.dilation[axis]) as isize - a.padding[axis] as isize);
        let (bound, outs) = if axis == 0 { (self.h, self.ho) } else { (self.w, self.wo) };
        // o * s + off >= 0  and  o * s + off < bound
        let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
        let hi = if bound as isize - off <= 0 { 0 } else { (bound as isize - off + s - 1) / s };
        let hi = (hi as usize).min(outs);
        (lo as usize).min(hi)..hi
    }

    #[inline]
    fn src(&self, axis: usize, o: usize, k: usize) -> usize {
        let a = &self.attrs;
        o * a.stride[axis] + k * a.dilation[axis] - a.padding[axis]
    }

    /// For kernel tap (ky, kx): per output row that reads the image, the
    /// range of valid output elements in the y plane at `yp` and the flat x
    /// index of the first input they read (successive outputs read every
    /// `stride[1]`-th input after it).
    fn rows(&self, yp: usize, xp: usize, ky: usize, kx: usize) -> impl Iterator<Item = (std::ops::Range<usize>, usize)> + '_ {
        let cols = self.valid(1, kx);
        let rows = if cols.is_empty() { 0..0 } else { self.valid(0, ky) };
        rows.map(move |oh| {
            let y0 = yp + oh * self.wo;
            (y0 + cols.start..y0 + cols.end, xp + self.src(0, oh, ky) * self.w + self.src(1, cols.start, kx))
        })
    }

    fn tap(&self, wi: usize) -> (usize, usize) {
        ((wi / self.kw) % self.kh, wi % self.kw)
    }
}

pub(crate) fn conv2d(x: &[f64], w: &[f64], g: &Geom) -> Vec<f64> {
    let mut y = vec![0.0; g.n * g.o * g.ho * g.wo];
    g.for_each_tap(|xp, yp, wi| {
        let wv = w[wi];
        let (ky, kx) = g.tap(wi);
        for (ys, xs) in g.rows(yp, xp, ky, kx) {
            let xrow = x[xs..].iter().step_by(g.attrs.stride[1]);
            for (yv, &xv) in y[ys].iter_mut().zip(xrow) {
                *yv += wv * xv;
            }
        }
    });
    y
}

pub(crate) fn conv2d_grad_input(dy: &[f64], w: &[f64], g: &Geom) -> Vec<f64> {
    let mut dx = vec![0.0; g.n * g.c * g.h * g.w];
    g.for_each_tap(|xp, yp, wi| {
        let wv = w[wi];
        let (ky, kx) = g.tap(wi);
        for (ys, xs) in g.rows(yp, xp, ky, kx) {
            let xrow = dx[xs..].iter_mut().step_by(g.attrs.stride[1]);
            for (xv, &dyv) in xrow.zip(&dy[ys]) {
                *xv += wv * dyv;
            }
        }
    });
    dx
}

pub(crate) fn conv2d_grad_weight(x: &[f64], dy: &[f64], g: &Geom) -> Vec<f64> {
    let mut dw = vec![0.0; g.o * (g.c / g.attrs.groups) * g.kh * g.kw];
    g.for_each_tap(|xp, yp, wi| {
        let (ky, kx) = g.tap(wi);
        let mut acc = 0.0;
        for (ys, xs) in g.rows(yp, xp, ky, kx) {
            let xrow = x[xs..].iter().step_by(g.attrs.stride[1]);
            for (&xv, &dyv) in xrow.zip(&dy[ys]) {
                acc += xv * dyv;
            }
        }
        dw[wi] += acc;
    });
    dw
}

/// Adds `bias[o]` to every element of channel o and applies `act`.
pub(crate) fn bias_act(y: &mut [f64], bias: Option<&[f64]>, o: usize, plane: usize, act: Activation) {
    for (i, v) in y.iter_mut().enumerate() {
        let b = bias.map_or(0.0, |b| b[(i / plane.max(1)) % o]);
        *v = activate(act, *v + b);
    }
}
