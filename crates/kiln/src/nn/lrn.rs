//! Local response normalization across channels, PyTorch's
//! `nn.LocalResponseNorm(size, alpha=1e-4, beta=0.75, k=1.0)` (AlexNet,
//! GoogLeNet): `y = x / (k + alpha/size * sum_{window} x^2)^beta`, the
//! window over channels `c - size/2 ..= c + (size-1)/2`, zero-padded.
//!
//! Built from primitive ops: the squares are zero-padded along the
//! channels and averaged over each window by one `avg_pool2d` op (kernel
//! `[size, 1]` over a `[N, 1, C, rest]` view, dividing by `size` as
//! PyTorch's `avg_pool3d` does), then scaled, shifted and raised to beta.

use kiln_ir::{Graph, NodeId, Pool2dAttrs};

use super::{shape_of, Module};
use crate::{Builder, Error, Result};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocalResponseNorm {
    pub size: usize,
    pub alpha: f64,
    pub beta: f64,
    pub k: f64,
}

impl LocalResponseNorm {
    /// PyTorch's defaults: alpha 1e-4, beta 0.75, k 1.
    pub fn new(size: usize) -> LocalResponseNorm {
        LocalResponseNorm { size, alpha: 1e-4, beta: 0.75, k: 1.0 }
    }
    pub fn with(size: usize, alpha: f64, beta: f64, k: f64) -> LocalResponseNorm {
        LocalResponseNorm { size, alpha, beta, k }
    }
}

impl Module for LocalResponseNorm {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        local_response_norm(cx, x, self.size, self.alpha, self.beta, self.k)
    }
}

/// Functional LRN over dim 1 of a rank >= 3 `x` (`[N, C, ...]`).
pub fn local_response_norm(g: &mut Graph, x: NodeId, size: usize, alpha: f64, beta: f64, k: f64) -> Result<NodeId> {
    let s = shape_of(g, x)?;
    if s.rank() < 3 {
        return Err(Error::Config(format!("local_response_norm({x}: {}): expected [N, C, ...] of rank >= 3", g.ty(x))));
    }
    if size == 0 {
        return Err(Error::Config(format!("local_response_norm({x}: {}): size must be positive", g.ty(x))));
    }
    let (n, c) = (s.0[0], s.0[1]);
    let rest: usize = s.0[2..].iter().product();
    let sq = g.mul(x, x)?;
    let sq = g.reshape(sq, [n, 1, c, rest])?;
    let sq = g.pad(sq, &[0, 0, size / 2, 0], &[0, 0, (size - 1) / 2, 0], 0.0)?;
    let avg = g.avg_pool2d(sq, Pool2dAttrs { kernel: [size, 1], stride: [1, 1], padding: [0, 0] }, true)?;
    let avg = g.reshape(avg, s.clone())?;
    let d = g.mul_scalar(avg, alpha)?;
    let d = g.add_scalar(d, k)?;
    let b = g.scalar_like(beta, d)?;
    let d = g.pow(d, b)?;
    Ok(g.div(x, d)?)
}
