//! Upsampling / interpolation: PyTorch's `nn.Upsample(size, scale_factor,
//! mode, align_corners)` and `F.interpolate` for `nearest` and
//! `linear`/`bilinear` (with or without `align_corners`), on `[N, C, L]`
//! or `[N, C, H, W]` inputs, by output size or by scale factor (the
//! output size is `floor(in * scale)` and the source positions use the
//! given scale, as PyTorch's default `recompute_scale_factor=None`).
//!
//! Each spatial axis is resampled separately (W first, then H, as PyTorch
//! sums): nearest is one `gather` with a constant index vector; linear is
//! two gathers (the left and right neighbours) weighted by constant
//! per-position weights. The gradients are autodiff's `scatter_add` (each
//! source element sums what it fed) and products, on every backend, and
//! the cost stays O(output) per axis.

use kiln_ir::{DType, Graph, HostTensor, NodeId, TensorType};

use super::{shape_of, Module};
use crate::{Builder, Error, Result};

/// The interpolation of [`Upsample`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsampleMode {
    /// PyTorch's `"nearest"`: source `floor(dst * scale)`.
    Nearest,
    /// PyTorch's `"linear"` (1-d) / `"bilinear"` (2-d). With
    /// `align_corners` the corner pixels' centres line up (source
    /// `dst * (in-1)/(out-1)`); without, half-pixel centres
    /// (`(dst + 0.5) * scale - 0.5`, clamped at 0).
    Linear { align_corners: bool },
}

/// PyTorch's `nn.Upsample`: give either `size` or `scale_factor` (one value
/// per spatial axis, or one for all).
#[derive(Debug, Clone, PartialEq)]
pub struct Upsample {
    pub size: Option<Vec<usize>>,
    pub scale_factor: Option<Vec<f64>>,
    pub mode: UpsampleMode,
}

impl Upsample {
    /// Nearest by `scale` on every spatial axis.
    pub fn scale(scale: f64, mode: UpsampleMode) -> Upsample {
        Upsample { size: None, scale_factor: Some(vec![scale]), mode }
    }
    /// To the spatial `size` (e.g. `[H, W]`).
    pub fn size(size: &[usize], mode: UpsampleMode) -> Upsample {
        Upsample { size: Some(size.to_vec()), scale_factor: None, mode }
    }
    /// `nn.Upsample(scale_factor=s, mode="bilinear", align_corners=a)`.
    pub fn bilinear(scale: f64, align_corners: bool) -> Upsample {
        Self::scale(scale, UpsampleMode::Linear { align_corners })
    }
    /// `nn.Upsample(scale_factor=s)` (nearest).
    pub fn nearest(scale: f64) -> Upsample {
        Self::scale(scale, UpsampleMode::Nearest)
    }
}

impl Module for Upsample {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        interpolate(cx, x, self.size.as_deref(), self.scale_factor.as_deref(), self.mode)
    }
}

/// PyTorch's `F.interpolate(x, size, scale_factor, mode, align_corners)`
/// over the spatial axes (all after the first two) of a rank-3 or rank-4
/// `x`. Exactly one of `size` / `scale_factor` must be given; a single
/// value applies to every spatial axis.
pub fn interpolate(g: &mut Graph, x: NodeId, size: Option<&[usize]>, scale_factor: Option<&[f64]>, mode: UpsampleMode) -> Result<NodeId> {
    let s = shape_of(g, x)?;
    let what = || format!("interpolate({x}: {})", g.ty(x));
    if !(3..=4).contains(&s.rank()) {
        return Err(Error::Config(format!("{}: expected [N, C, L] or [N, C, H, W]", what())));
    }
    let sp = s.rank() - 2;
    let per_axis = |v: usize| -> Option<usize> {
        match v {
            1 => Some(0),
            n if n == sp => Some(1),
            _ => None,
        }
    };
    let mut plan = Vec::with_capacity(sp); // (out size, scale used for source indices or None = in/out)
    for ax in 0..sp {
        let inp = s.0[2 + ax];
        let (out, scale) = match (size, scale_factor) {
            (Some(sz), None) => {
                let k = per_axis(sz.len()).ok_or_else(|| Error::Config(format!("{}: size {sz:?} must have 1 or {sp} values", what())))?;
                (sz[if k == 0 { 0 } else { ax }], None)
            }
            (None, Some(sf)) => {
                let k = per_axis(sf.len()).ok_or_else(|| Error::Config(format!("{}: scale_factor {sf:?} must have 1 or {sp} values", what())))?;
                let f = sf[if k == 0 { 0 } else { ax }];
                if !(f.is_finite() && f > 0.0) {
                    return Err(Error::Config(format!("{}: scale_factor {f} must be positive", what())));
                }
                ((inp as f64 * f).floor() as usize, Some(1.0 / f))
            }
            _ => return Err(Error::Config(format!("{}: give exactly one of size and scale_factor", what()))),
        };
        if out == 0 || inp == 0 {
            return Err(Error::Config(format!("{}: axis {} would resample {inp} -> {out}", what(), 2 + ax)));
        }
        plan.push((out, scale));
    }
    let mut y = x;
    // W first, then H (PyTorch's order of the separable sums).
    for ax in (0..sp).rev() {
        let (out, scale) = plan[ax];
        y = resample_axis(g, y, 2 + ax, s.0[2 + ax], out, scale, mode)?;
    }
    Ok(y)
}

/// Resamples `axis` of `x` from `inp` to `out` positions.
fn resample_axis(g: &mut Graph, x: NodeId, axis: usize, inp: usize, out: usize, scale: Option<f64>, mode: UpsampleMode) -> Result<NodeId> {
    let rank = shape_of(g, x)?.rank();
    let idx = |g: &mut Graph, v: &[usize]| -> Result<NodeId> {
        let f: Vec<f64> = v.iter().map(|&i| i as f64).collect();
        Ok(g.constant(HostTensor::from_f64_values(&TensorType::new(DType::I64, [v.len()]), &f))?)
    };
    let ratio = scale.unwrap_or(inp as f64 / out as f64);
    match mode {
        UpsampleMode::Nearest => {
            if inp == out {
                return Ok(x);
            }
            let src: Vec<usize> = (0..out).map(|d| ((d as f64 * ratio).floor() as usize).min(inp - 1)).collect();
            let ids = idx(g, &src)?;
            Ok(g.gather(x, ids, axis)?)
        }
        UpsampleMode::Linear { align_corners } => {
            if inp == out && (align_corners || scale.is_none_or(|r| r == 1.0)) {
                return Ok(x);
            }
            let mut i0 = Vec::with_capacity(out);
            let mut i1 = Vec::with_capacity(out);
            let mut l0 = Vec::with_capacity(out);
            let mut l1 = Vec::with_capacity(out);
            for d in 0..out {
                let src = if align_corners {
                    if out > 1 { d as f64 * (inp as f64 - 1.0) / (out as f64 - 1.0) } else { 0.0 }
                } else {
                    ((d as f64 + 0.5) * ratio - 0.5).max(0.0)
                };
                let a = (src.floor() as usize).min(inp - 1);
                let b = (a + 1).min(inp - 1);
                let lam = (src - a as f64).clamp(0.0, 1.0);
                i0.push(a);
                i1.push(b);
                l0.push(1.0 - lam);
                l1.push(lam);
            }
            let dt = g.ty(x).dtype;
            // The weights broadcast along `axis` (trailing axes of size 1).
            let mut wshape = vec![out];
            wshape.extend(std::iter::repeat_n(1, rank - 1 - axis));
            let (id0, id1) = (idx(g, &i0)?, idx(g, &i1)?);
            let w0 = g.constant(HostTensor::from_f64_values(&TensorType::new(dt, wshape.clone()), &l0))?;
            let w1 = g.constant(HostTensor::from_f64_values(&TensorType::new(dt, wshape), &l1))?;
            let a = g.gather(x, id0, axis)?;
            let b = g.gather(x, id1, axis)?;
            let a = g.mul(a, w0)?;
            let b = g.mul(b, w1)?;
            Ok(g.add(a, b)?)
        }
    }
}
