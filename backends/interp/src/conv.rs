//! 2-D convolution (NCHW x OIHW, stride/padding/dilation/groups), its two
//! gradients, conv1d as a height-1 conv2d, and the fused conv epilogue.
//!
//! All three kernels walk the same (n, o, ci, ky, kx, oh, ow) nest and differ
//! only in which tensor accumulates, so they are obviously adjoint.

use kiln_ir::{Activation, Conv2dAttrs};

use crate::elementwise::activate;

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

    /// Input row/column hit by output position `o` and kernel tap `k` along
    /// `axis`, or `None` when it falls into the zero padding.
    #[inline]
    fn src(&self, axis: usize, o: usize, k: usize) -> Option<usize> {
        let a = &self.attrs;
        let i = (o * a.stride[axis] + k * a.dilation[axis]) as isize - a.padding[axis] as isize;
        let bound = if axis == 0 { self.h } else { self.w };
        (i >= 0 && (i as usize) < bound).then_some(i as usize)
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
        for oh in 0..g.ho {
            let Some(ih) = g.src(0, oh, ky) else { continue };
            for ow in 0..g.wo {
                if let Some(iw) = g.src(1, ow, kx) {
                    y[yp + oh * g.wo + ow] += wv * x[xp + ih * g.w + iw];
                }
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
        for oh in 0..g.ho {
            let Some(ih) = g.src(0, oh, ky) else { continue };
            for ow in 0..g.wo {
                if let Some(iw) = g.src(1, ow, kx) {
                    dx[xp + ih * g.w + iw] += wv * dy[yp + oh * g.wo + ow];
                }
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
        for oh in 0..g.ho {
            let Some(ih) = g.src(0, oh, ky) else { continue };
            for ow in 0..g.wo {
                if let Some(iw) = g.src(1, ow, kx) {
                    acc += x[xp + ih * g.w + iw] * dy[yp + oh * g.wo + ow];
                }
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
