//! Pooling: max and average windows, global and adaptive average pooling.

use kiln_ir::{CompareOp, Graph, HostTensor, NodeId, Pool2dAttrs, TensorType};

use super::{expect_rank, Module};
use crate::{Builder, Error, Result};

/// Max pooling, PyTorch's `nn.MaxPool2d(kernel_size, stride, padding,
/// dilation, ceil_mode)`: padding acts as -inf, the gradient goes to the
/// first maximum of each window. Plain windows are one `max_pool2d` op;
/// `ceil_mode` pads the far edges with -inf first; `dilation` > 1 is a
/// maximum over strided slices (see [`max_pool2d_ext`]).
#[derive(Debug, Clone, Copy)]
pub struct MaxPool2d {
    pub attrs: Pool2dAttrs,
    pub dilation: [usize; 2],
    pub ceil_mode: bool,
}

impl MaxPool2d {
    /// Kernel k, stride k (PyTorch's default stride), no padding.
    pub fn new(k: usize) -> MaxPool2d {
        Self::from_attrs(Pool2dAttrs { kernel: [k, k], stride: [k, k], padding: [0, 0] })
    }
    /// The given window, dilation 1, floor mode.
    pub fn from_attrs(attrs: Pool2dAttrs) -> MaxPool2d {
        MaxPool2d { attrs, dilation: [1, 1], ceil_mode: false }
    }
    pub fn stride(mut self, s: usize) -> Self {
        self.attrs.stride = [s, s];
        self
    }
    pub fn padding(mut self, p: usize) -> Self {
        self.attrs.padding = [p, p];
        self
    }
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = [d, d];
        self
    }
    pub fn dilation2(mut self, d: [usize; 2]) -> Self {
        self.dilation = d;
        self
    }
    /// PyTorch's `ceil_mode`: the output size rounds up, so a last window
    /// may hang over the edge (it must start inside the input or the
    /// leading padding).
    pub fn ceil_mode(mut self, on: bool) -> Self {
        self.ceil_mode = on;
        self
    }
}

impl Module for MaxPool2d {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        max_pool2d_ext(cx, x, self.attrs, self.dilation, self.ceil_mode)
    }
}

/// Average pooling, PyTorch's `nn.AvgPool2d(kernel_size, stride, padding,
/// ceil_mode, count_include_pad)`; `count_include_pad` (default true)
/// divides border windows by k*k, false by their in-bounds count. With
/// `ceil_mode`, windows are zero-padded sums divided by PyTorch's
/// per-window divisor (a constant) (see [`avg_pool2d_ext`]).
#[derive(Debug, Clone, Copy)]
pub struct AvgPool2d {
    pub attrs: Pool2dAttrs,
    pub count_include_pad: bool,
    pub ceil_mode: bool,
}

impl AvgPool2d {
    pub fn new(k: usize) -> AvgPool2d {
        Self::from_attrs(Pool2dAttrs { kernel: [k, k], stride: [k, k], padding: [0, 0] }, true)
    }
    /// The given window, floor mode.
    pub fn from_attrs(attrs: Pool2dAttrs, count_include_pad: bool) -> AvgPool2d {
        AvgPool2d { attrs, count_include_pad, ceil_mode: false }
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
    pub fn ceil_mode(mut self, on: bool) -> Self {
        self.ceil_mode = on;
        self
    }
}

impl Module for AvgPool2d {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        avg_pool2d_ext(cx, x, self.attrs, self.count_include_pad, self.ceil_mode)
    }
}

/// PyTorch's pooled extent along one axis (`None` if the window does not
/// fit): `(in + 2p - d(k-1) - 1) / s + 1` rounded down, or up in
/// `ceil_mode` unless that last window would start past the input and
/// the leading padding.
pub fn pool_out_dim(input: usize, kernel: usize, stride: usize, padding: usize, dilation: usize, ceil_mode: bool) -> Option<usize> {
    if kernel == 0 || stride == 0 || dilation == 0 {
        return None;
    }
    let span = dilation.checked_mul(kernel - 1)?.checked_add(1)?;
    let padded = padding.checked_mul(2)?.checked_add(input)?;
    if padded < span {
        return None;
    }
    let num = padded - span;
    let mut o = if ceil_mode { num.div_ceil(stride) } else { num / stride } + 1;
    if ceil_mode && (o - 1) * stride >= input + padding {
        o -= 1;
    }
    Some(o)
}

/// Checks a pooling window against `x` `[N,C,H,W]` and returns the input
/// shape and the output extent `[Ho, Wo]`.
fn pool_geometry(g: &Graph, what: &str, x: NodeId, a: &Pool2dAttrs, dilation: [usize; 2], ceil_mode: bool) -> Result<(Vec<usize>, [usize; 2])> {
    let s = expect_rank(g, what, x, &[4], None)?;
    let mut out = [0; 2];
    for ax in 0..2 {
        let span = dilation[ax].saturating_mul(a.kernel[ax].saturating_sub(1)).saturating_add(1);
        if a.padding[ax] > span / 2 {
            return Err(Error::Config(format!(
                "{what}({x}: {}): padding {:?} must be at most half the (dilated) kernel {:?}",
                g.ty(x),
                a.padding,
                a.kernel
            )));
        }
        out[ax] = pool_out_dim(s.0[2 + ax], a.kernel[ax], a.stride[ax], a.padding[ax], dilation[ax], ceil_mode).ok_or_else(|| {
            Error::Config(format!(
                "{what}({x}: {}): kernel {:?} stride {:?} padding {:?} dilation {dilation:?} does not fit the input",
                g.ty(x),
                a.kernel,
                a.stride,
                a.padding
            ))
        })?;
    }
    Ok((s.0, out))
}

/// Pads `x`'s H and W with `value`: `lo` before, and after as much as the
/// windows of an `out`-sized result reach (never less than nothing).
fn pad_for_windows(g: &mut Graph, x: NodeId, hw: [usize; 2], a: &Pool2dAttrs, dilation: [usize; 2], out: [usize; 2], value: f64) -> Result<NodeId> {
    let mut hi = [0; 2];
    for ax in 0..2 {
        let needed = (out[ax] - 1) * a.stride[ax] + dilation[ax] * (a.kernel[ax] - 1) + 1;
        hi[ax] = needed.saturating_sub(hw[ax] + a.padding[ax]);
    }
    if a.padding == [0, 0] && hi == [0, 0] {
        return Ok(x);
    }
    Ok(g.pad(x, &[0, 0, a.padding[0], a.padding[1]], &[0, 0, hi[0], hi[1]], value)?)
}

/// Max pooling with PyTorch's dilation and ceil_mode, built from primitive
/// ops: one `max_pool2d` op for plain windows; with `ceil_mode`, -inf
/// padding of the far edges and then the op; with dilation, the maximum
/// of the k*k strided slices of the -inf-padded input, the gradient going
/// to the first maximum of each window (as PyTorch's) through masks.
pub fn max_pool2d_ext(g: &mut Graph, x: NodeId, a: Pool2dAttrs, dilation: [usize; 2], ceil_mode: bool) -> Result<NodeId> {
    let (s, out) = pool_geometry(g, "max_pool2d", x, &a, dilation, ceil_mode)?;
    if dilation == [1, 1] && !ceil_mode {
        return Ok(g.max_pool2d(x, a)?);
    }
    let xp = pad_for_windows(g, x, [s[2], s[3]], &a, dilation, out, f64::NEG_INFINITY)?;
    if dilation == [1, 1] {
        return Ok(g.max_pool2d(xp, Pool2dAttrs { padding: [0, 0], ..a })?);
    }
    let (n, c) = (s[0], s[1]);
    let mut slices = Vec::with_capacity(a.kernel[0] * a.kernel[1]);
    for i in 0..a.kernel[0] {
        for j in 0..a.kernel[1] {
            let (h0, w0) = (i * dilation[0], j * dilation[1]);
            let end = [n, c, h0 + (out[0] - 1) * a.stride[0] + 1, w0 + (out[1] - 1) * a.stride[1] + 1];
            slices.push(g.slice(xp, &[0, 0, h0, w0], &end, &[1, 1, a.stride[0], a.stride[1]])?);
        }
    }
    first_max(g, &slices)
}

/// The elementwise maximum of `xs`, differentiated as PyTorch's max
/// pooling is: the whole gradient goes to the first operand holding the
/// maximum. The value is a chain of selects, the first operand equal to
/// the (gradient-stopped) maximum winning, so -inf padding never meets a
/// zero factor.
pub(crate) fn first_max(g: &mut Graph, xs: &[NodeId]) -> Result<NodeId> {
    let mut m = xs[0];
    for &v in &xs[1..] {
        m = g.maximum(m, v)?;
    }
    if xs.len() == 1 {
        return Ok(m);
    }
    let m = g.stop_gradient(m)?;
    let (last, rest) = xs.split_last().expect("non-empty");
    let mut y = *last;
    for &v in rest.iter().rev() {
        let hit = g.compare(CompareOp::Eq, v, m)?;
        y = g.select(hit, v, y)?;
    }
    Ok(y)
}

/// Average pooling with PyTorch's ceil_mode and count_include_pad, built
/// from primitive ops: one `avg_pool2d` op unless `ceil_mode`; then the
/// zero-padded window sums (an `avg_pool2d` times k*k) divided by each
/// window's PyTorch divisor, a constant `[Ho, Wo]` tensor.
pub fn avg_pool2d_ext(g: &mut Graph, x: NodeId, a: Pool2dAttrs, count_include_pad: bool, ceil_mode: bool) -> Result<NodeId> {
    let (s, out) = pool_geometry(g, "avg_pool2d", x, &a, [1, 1], ceil_mode)?;
    if !ceil_mode {
        return Ok(g.avg_pool2d(x, a, count_include_pad)?);
    }
    let xp = pad_for_windows(g, x, [s[2], s[3]], &a, [1, 1], out, 0.0)?;
    let mean = g.avg_pool2d(xp, Pool2dAttrs { padding: [0, 0], ..a }, true)?;
    // PyTorch: a window spans [o*s - p, min(o*s - p + k, in + p)); it
    // divides by that extent, or (count_include_pad = false) by the part
    // inside the input.
    let extent = |o: usize, ax: usize| -> f64 {
        let (st, k, p, inp) = (a.stride[ax] as i64, a.kernel[ax] as i64, a.padding[ax] as i64, s[2 + ax] as i64);
        let lo = o as i64 * st - p;
        let hi = (lo + k).min(inp + p);
        if count_include_pad { (hi - lo) as f64 } else { (hi.min(inp) - lo.max(0)) as f64 }
    };
    let kk = (a.kernel[0] * a.kernel[1]) as f64;
    let scale: Vec<f64> = (0..out[0]).flat_map(|i| (0..out[1]).map(move |j| (i, j))).map(|(i, j)| kk / (extent(i, 0) * extent(j, 1))).collect();
    let dt = g.ty(x).dtype;
    let sc = g.constant(HostTensor::from_f64_values(&TensorType::new(dt, [out[0], out[1]]), &scale))?;
    Ok(g.mul(mean, sc)?)
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

/// Adaptive max pooling to `out` = [oh, ow] (PyTorch's
/// `nn.AdaptiveMaxPool2d`): window i spans [floor(i*In/Out),
/// ceil((i+1)*In/Out)); a uniform split is one `max_pool2d` op, otherwise
/// one `max_pool2d` per window (the gradient goes to each window's first
/// maximum).
pub fn adaptive_max_pool2d(g: &mut Graph, x: NodeId, out: [usize; 2]) -> Result<NodeId> {
    let s = expect_rank(g, "adaptive_max_pool2d", x, &[4], None)?;
    let (h, w) = (s.0[2], s.0[3]);
    if out[0] == 0 || out[1] == 0 {
        return Err(Error::Config(format!("adaptive_max_pool2d({x}: {}): output size {out:?} must be positive", g.ty(x))));
    }
    if h == 0 || w == 0 {
        return Err(Error::Config(format!("adaptive_max_pool2d({x}: {}): empty input", g.ty(x))));
    }
    if h % out[0] == 0 && w % out[1] == 0 {
        let k = [h / out[0], w / out[1]];
        return Ok(g.max_pool2d(x, Pool2dAttrs { kernel: k, stride: k, padding: [0, 0] })?);
    }
    let win = |i: usize, inp: usize, o: usize| (i * inp / o, ((i + 1) * inp).div_ceil(o));
    let (n, c) = (s.0[0], s.0[1]);
    let mut rows = Vec::with_capacity(out[0]);
    for i in 0..out[0] {
        let (h0, h1) = win(i, h, out[0]);
        let mut cols = Vec::with_capacity(out[1]);
        for j in 0..out[1] {
            let (w0, w1) = win(j, w, out[1]);
            let sl = g.slice(x, &[0, 0, h0, w0], &[n, c, h1, w1], &[1, 1, 1, 1])?;
            let k = [h1 - h0, w1 - w0];
            cols.push(g.max_pool2d(sl, Pool2dAttrs { kernel: k, stride: k, padding: [0, 0] })?);
        }
        rows.push(if cols.len() == 1 { cols[0] } else { g.concat(&cols, 3)? });
    }
    Ok(if rows.len() == 1 { rows[0] } else { g.concat(&rows, 2)? })
}

/// PyTorch's `nn.AdaptiveMaxPool2d(output_size)`.
#[derive(Debug, Clone, Copy)]
pub struct AdaptiveMaxPool2d(pub [usize; 2]);

impl Module for AdaptiveMaxPool2d {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        adaptive_max_pool2d(cx, x, self.0)
    }
}
