//! Pooling: max and average windows, global and adaptive average pooling.

use kiln_ir::{Graph, NodeId, Pool2dAttrs};

use super::{expect_rank, Module};
use crate::{Builder, Error, Result};

/// Max pooling (padding acts as -inf; floor output size).
#[derive(Debug, Clone, Copy)]
pub struct MaxPool2d {
    pub attrs: Pool2dAttrs,
}

impl MaxPool2d {
    /// Kernel k, stride k (PyTorch's default stride), no padding.
    pub fn new(k: usize) -> MaxPool2d {
        MaxPool2d { attrs: Pool2dAttrs { kernel: [k, k], stride: [k, k], padding: [0, 0] } }
    }
    pub fn stride(mut self, s: usize) -> Self {
        self.attrs.stride = [s, s];
        self
    }
    pub fn padding(mut self, p: usize) -> Self {
        self.attrs.padding = [p, p];
        self
    }
}

impl Module for MaxPool2d {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        Ok(cx.max_pool2d(x, self.attrs)?)
    }
}

/// Average pooling; `count_include_pad` (default true) divides border
/// windows by k*k as PyTorch does.
#[derive(Debug, Clone, Copy)]
pub struct AvgPool2d {
    pub attrs: Pool2dAttrs,
    pub count_include_pad: bool,
}

impl AvgPool2d {
    pub fn new(k: usize) -> AvgPool2d {
        AvgPool2d { attrs: Pool2dAttrs { kernel: [k, k], stride: [k, k], padding: [0, 0] }, count_include_pad: true }
    }
    pub fn stride(mut self, s: usize) -> Self {
        self.attrs.stride = [s, s];
        self
    }
    pub fn padding(mut self, p: usize) -> Self {
        self.attrs.padding = [p, p];
        self
    }
    pub fn count_include_pad(mut self, on: bool) -> Self {
        self.count_include_pad = on;
        self
    }
}

impl Module for AvgPool2d {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        Ok(cx.avg_pool2d(x, self.attrs, self.count_include_pad)?)
    }
}

/// Mean over H and W, keeping them as size 1: `[N,C,H,W] -> [N,C,1,1]`.
pub fn global_avg_pool2d(g: &mut Graph, x: NodeId) -> Result<NodeId> {
    expect_rank(g, "global_avg_pool2d", x, &[4], None)?;
    Ok(g.mean(x, &[2, 3], true)?)
}

/// Adaptive average pooling to `out` = [oh, ow]: window i spans
/// [floor(i*In/Out), ceil((i+1)*In/Out)), so windows may overlap.
pub fn adaptive_avg_pool2d(g: &mut Graph, x: NodeId, out: [usize; 2]) -> Result<NodeId> {
    let s = expect_rank(g, "adaptive_avg_pool2d", x, &[4], None)?;
    let (h, w) = (s.0[2], s.0[3]);
    if out[0] == 0 || out[1] == 0 {
        return Err(Error::Config(format!("adaptive_avg_pool2d({x}): output size {out:?} must be positive")));
    }
    if out == [1, 1] {
        return global_avg_pool2d(g, x);
    }
    // A uniform split is one plain pooling op.
    if h % out[0] == 0 && w % out[1] == 0 {
        let k = [h / out[0], w / out[1]];
        let attrs = Pool2dAttrs { kernel: k, stride: k, padding: [0, 0] };
        return Ok(g.avg_pool2d(x, attrs, true)?);
    }
    let win = |i: usize, inp: usize, o: usize| (i * inp / o, ((i + 1) * inp).div_ceil(o));
    let mut rows = Vec::with_capacity(out[0]);
    for i in 0..out[0] {
        let (h0, h1) = win(i, h, out[0]);
        let mut cols = Vec::with_capacity(out[1]);
        for j in 0..out[1] {
            let (w0, w1) = win(j, w, out[1]);
            let (n, c) = (s.0[0], s.0[1]);
            let sl = g.slice(x, &[0, 0, h0, w0], &[n, c, h1, w1], &[1, 1, 1, 1])?;
            cols.push(g.mean(sl, &[2, 3], true)?);
        }
        rows.push(g.concat(&cols, 3)?);
    }
    Ok(g.concat(&rows, 2)?)
}

#[derive(Debug, Clone, Copy)]
pub struct AdaptiveAvgPool2d(pub [usize; 2]);

impl Module for AdaptiveAvgPool2d {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        adaptive_avg_pool2d(cx, x, self.0)
    }
}
