//! Padding layers and modes: PyTorch's `nn.ZeroPad2d`, `nn.ReflectionPad2d`,
//! `nn.ReplicationPad2d`, `nn.CircularPad2d` (padding `[left, right, top,
//! bottom]`), their 1-d forms, and the `padding_mode` of convolutions.
//!
//! Zero padding is the `pad` op. Reflect, replicate and circular padding
//! are a `gather` along each padded axis with a constant index vector
//! (e.g. reflect of `[a b c d]` by 2 reads indices `2 1 0 1 2 3 2 1`), so
//! the gradient is autodiff's `scatter_add`, summing what each input
//! element fed, on every backend.

use kiln_ir::{DType, Graph, HostTensor, NodeId, TensorType};

use super::{shape_of, Module};
use crate::{Builder, Error, Result};

/// How a padded border is filled (PyTorch's `padding_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PaddingMode {
    /// Zeros (`"zeros"`, PyTorch's default).
    #[default]
    Zeros,
    /// Mirror without repeating the edge (`"reflect"`): `c b | a b c d | c b`.
    Reflect,
    /// Repeat the edge (`"replicate"`): `a a | a b c d | d d`.
    Replicate,
    /// Wrap around (`"circular"`): `c d | a b c d | a b`.
    Circular,
}

impl PaddingMode {
    pub fn name(self) -> &'static str {
        match self {
            PaddingMode::Zeros => "zeros",
            PaddingMode::Reflect => "reflect",
            PaddingMode::Replicate => "replicate",
            PaddingMode::Circular => "circular",
        }
    }
}

/// Pads `axis` of `x` by `lo` before and `hi` after, filled per `mode`.
/// Reflect needs `lo, hi < size`, circular `lo, hi <= size`, replicate a
/// non-empty axis (PyTorch's limits).
pub fn pad_axis(g: &mut Graph, x: NodeId, axis: usize, lo: usize, hi: usize, mode: PaddingMode) -> Result<NodeId> {
    let s = shape_of(g, x)?;
    if axis >= s.rank() {
        return Err(Error::Config(format!("pad({x}: {}): axis {axis} out of range", g.ty(x))));
    }
    if lo == 0 && hi == 0 {
        return Ok(x);
    }
    let n = s.0[axis];
    let bad = match mode {
        PaddingMode::Zeros => false,
        PaddingMode::Reflect => lo >= n || hi >= n,
        PaddingMode::Replicate => n == 0,
        PaddingMode::Circular => lo > n || hi > n,
    };
    if bad {
        return Err(Error::Config(format!(
            "{} pad({x}: {}): padding ({lo}, {hi}) on axis {axis} of size {n} is out of range for this mode",
            mode.name(),
            g.ty(x)
        )));
    }
    if mode == PaddingMode::Zeros {
        let mut l = vec![0; s.rank()];
        let mut h = vec![0; s.rank()];
        l[axis] = lo;
        h[axis] = hi;
        return Ok(g.pad(x, &l, &h, 0.0)?);
    }
    let (n, lo_i) = (n as i64, lo as i64);
    let idx: Vec<f64> = (0..(n + lo_i + hi as i64))
        .map(|o| {
            let i = o - lo_i;
            let j = match mode {
                PaddingMode::Reflect => {
                    if i < 0 {
                        -i
                    } else if i >= n {
                        2 * (n - 1) - i
                    } else {
                        i
                    }
                }
                PaddingMode::Replicate => i.clamp(0, n - 1),
                _ => i.rem_euclid(n),
            };
            j as f64
        })
        .collect();
    let len = idx.len();
    let ids = g.constant(HostTensor::from_f64_values(&TensorType::new(DType::I64, [len]), &idx))?;
    Ok(g.gather(x, ids, axis)?)
}

/// Pads the last two axes (H, W) of `x` by `[left, right, top, bottom]`.
pub fn pad2d(g: &mut Graph, x: NodeId, padding: [usize; 4], mode: PaddingMode) -> Result<NodeId> {
    let r = shape_of(g, x)?.rank();
    if !(3..=4).contains(&r) {
        return Err(Error::Config(format!("{} pad2d({x}: {}): expected [N, C, H, W] or [C, H, W]", mode.name(), g.ty(x))));
    }
    let [l, rr, t, bo] = padding;
    if mode == PaddingMode::Zeros {
        let mut lo = vec![0; r];
        let mut hi = vec![0; r];
        lo[r - 2] = t;
        hi[r - 2] = bo;
        lo[r - 1] = l;
        hi[r - 1] = rr;
        return Ok(g.pad(x, &lo, &hi, 0.0)?);
    }
    let y = pad_axis(g, x, r - 2, t, bo, mode)?;
    pad_axis(g, y, r - 1, l, rr, mode)
}

/// Pads the last axis (L) of `x` by `[left, right]`.
pub fn pad1d(g: &mut Graph, x: NodeId, padding: [usize; 2], mode: PaddingMode) -> Result<NodeId> {
    let r = shape_of(g, x)?.rank();
    if !(2..=3).contains(&r) {
        return Err(Error::Config(format!("{} pad1d({x}: {}): expected [N, C, L] or [C, L]", mode.name(), g.ty(x))));
    }
    pad_axis(g, x, r - 1, padding[0], padding[1], mode)
}

macro_rules! pad_module {
    ($(#[$m:meta])* $name:ident, $mode:expr, $n:literal, $f:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name(pub [usize; $n]);
        impl $name {
            /// The same padding on every side.
            pub fn new(p: usize) -> $name {
                $name([p; $n])
            }
        }
        impl Module for $name {
            fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
                $f(cx, x, self.0, $mode)
            }
        }
    };
}

pad_module!(
    /// PyTorch's `nn.ZeroPad2d((left, right, top, bottom))`.
    ZeroPad2d, PaddingMode::Zeros, 4, pad2d
);
pad_module!(
    /// PyTorch's `nn.ReflectionPad2d((left, right, top, bottom))`.
    ReflectionPad2d, PaddingMode::Reflect, 4, pad2d
);
pad_module!(
    /// PyTorch's `nn.ReplicationPad2d((left, right, top, bottom))`.
    ReplicationPad2d, PaddingMode::Replicate, 4, pad2d
);
pad_module!(
    /// PyTorch's `nn.CircularPad2d((left, right, top, bottom))`.
    CircularPad2d, PaddingMode::Circular, 4, pad2d
);
pad_module!(
    /// PyTorch's `nn.ZeroPad1d((left, right))`.
    ZeroPad1d, PaddingMode::Zeros, 2, pad1d
);
pad_module!(
    /// PyTorch's `nn.ReflectionPad1d((left, right))`.
    ReflectionPad1d, PaddingMode::Reflect, 2, pad1d
);
pad_module!(
    /// PyTorch's `nn.ReplicationPad1d((left, right))`.
    ReplicationPad1d, PaddingMode::Replicate, 2, pad1d
);
pad_module!(
    /// PyTorch's `nn.CircularPad1d((left, right))`.
    CircularPad1d, PaddingMode::Circular, 2, pad1d
);
