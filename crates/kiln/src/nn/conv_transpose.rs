//! Transposed convolutions: PyTorch's `nn.ConvTranspose2d` and
//! `nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride,
//! padding, output_padding, groups, bias, dilation)`, weight
//! `[in, out/groups, k...]`, bias `[out]`.
//!
//! A transposed convolution is the input-gradient of the convolution with
//! the same weight, so it is exactly one `conv2d_grad_input` op whose
//! "input size" is the output size
//! `(in - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1`;
//! the 1-d form runs it on a height-1 image. Its gradients are autodiff's
//! rules for that op (a conv2d for the input, conv2d_grad_weight for the
//! weight), on every backend.

use kiln_ir::{Conv2dAttrs, NodeId, Op};

use super::conv::{add_channel_bias, check_conv};
use super::{expect_rank, pname, register_weight_bias, Module};
use crate::{Builder, Error, ParamStore, Result};

/// Settings of a transposed convolution over `N` spatial axes.
#[derive(Debug, Clone)]
pub struct ConvTransposeConfig<const N: usize> {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: [usize; N],
    pub stride: [usize; N],
    pub padding: [usize; N],
    pub output_padding: [usize; N],
    pub dilation: [usize; N],
    pub groups: usize,
    pub bias: bool,
}

impl<const N: usize> ConvTransposeConfig<N> {
    fn new(in_channels: usize, out_channels: usize, kernel: [usize; N]) -> Self {
        ConvTransposeConfig {
            in_channels,
            out_channels,
            kernel,
            stride: [1; N],
            padding: [0; N],
            output_padding: [0; N],
            dilation: [1; N],
            groups: 1,
            bias: true,
        }
    }
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = [s; N];
        self
    }
    pub fn stride_n(mut self, s: [usize; N]) -> Self {
        self.stride = s;
        self
    }
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = [p; N];
        self
    }
    pub fn padding_n(mut self, p: [usize; N]) -> Self {
        self.padding = p;
        self
    }
    /// Extra size on the far side of each output axis (must be smaller
    /// than the stride or the dilation, as PyTorch requires).
    pub fn output_padding(mut self, p: usize) -> Self {
        self.output_padding = [p; N];
        self
    }
    pub fn output_padding_n(mut self, p: [usize; N]) -> Self {
        self.output_padding = p;
        self
    }
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = [d; N];
        self
    }
    pub fn dilation_n(mut self, d: [usize; N]) -> Self {
        self.dilation = d;
        self
    }
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
    pub fn bias(mut self, on: bool) -> Self {
        self.bias = on;
        self
    }

    fn weight_shape(&self) -> Vec<usize> {
        let mut s = vec![self.in_channels, self.out_channels / self.groups];
        s.extend_from_slice(&self.kernel);
        s
    }

    /// Registers `<name>.weight` `[in, out/groups, k...]` and `<name>.bias`
    /// `[out]` with PyTorch's default init (its fan-in is computed from the
    /// weight's dim 1: `out/groups * prod(k)`).
    fn register(&self, store: &mut ParamStore, name: &str, what: &str) -> Result<()> {
        check_conv(what, self.in_channels, self.out_channels, self.groups, &self.kernel, &self.stride, &self.dilation)?;
        for ax in 0..N {
            if self.output_padding[ax] >= self.stride[ax].max(self.dilation[ax]) {
                return Err(Error::Config(format!(
                    "{what}: output_padding {:?} must be smaller than the stride {:?} or the dilation {:?}",
                    self.output_padding, self.stride, self.dilation
                )));
            }
        }
        let fan_in = self.kernel.iter().fold(self.out_channels / self.groups, |a, &k| a.saturating_mul(k));
        let shape = self.weight_shape();
        // The bias is `[out]`, not `[shape[0]]` = `[in]`.
        register_weight_bias(store, name, &shape, false, fan_in)?;
        if self.bias {
            store.register(&pname(name, "bias"), kiln_ir::InputRole::Param, [self.out_channels], crate::init::Init::torch_default(fan_in))?;
        }
        Ok(())
    }

    /// The output extent along spatial axis `ax` for an input extent `n`.
    pub fn out_dim(&self, ax: usize, n: usize) -> Option<usize> {
        let grown = n.checked_sub(1)?.checked_mul(self.stride[ax])?;
        let span = self.dilation[ax].checked_mul(self.kernel[ax].checked_sub(1)?)?;
        grown.checked_add(span)?.checked_add(self.output_padding[ax])?.checked_add(1)?.checked_sub(2 * self.padding[ax])
    }
}

/// The transposed convolution of `x` `[N, in, H, W]` with `w`
/// `[in, out/groups, kh, kw]` as one `conv2d_grad_input` op.
fn conv_transpose2d_op(cx: &mut Builder, what: &str, x: NodeId, w: NodeId, cfg: &ConvTransposeConfig<2>) -> Result<NodeId> {
    let s = expect_rank(cx, what, x, &[4], Some((1, cfg.in_channels)))?;
    let mut hw = [0; 2];
    for (ax, o) in hw.iter_mut().enumerate() {
        *o = cfg.out_dim(ax, s.0[2 + ax]).filter(|&v| v > 0).ok_or_else(|| {
            Error::Config(format!(
                "{what}({x}: {}): kernel {:?} stride {:?} padding {:?} dilation {:?} output_padding {:?} leave no output",
                cx.ty(x),
                cfg.kernel,
                cfg.stride,
                cfg.padding,
                cfg.dilation,
                cfg.output_padding
            ))
        })?;
    }
    let attrs = Conv2dAttrs { stride: cfg.stride, padding: cfg.padding, dilation: cfg.dilation, groups: cfg.groups };
    Ok(cx.apply(Op::Conv2dGradInput { attrs, input_hw: hw }, &[x, w])?)
}

/// PyTorch's `nn.ConvTranspose2d`: `[N, in, H, W]` -> `[N, out, H', W']`.
#[derive(Debug, Clone)]
pub struct ConvTranspose2d {
    pub name: String,
    pub cfg: ConvTransposeConfig<2>,
}

impl ConvTranspose2d {
    /// Square kernel `k`, stride 1, no padding, bias on; chain options and
    /// finish with `.build(store, name)`.
    pub fn config(in_channels: usize, out_channels: usize, k: usize) -> ConvTransposeConfig<2> {
        ConvTransposeConfig::new(in_channels, out_channels, [k, k])
    }
    pub fn config2(in_channels: usize, out_channels: usize, kernel: [usize; 2]) -> ConvTransposeConfig<2> {
        ConvTransposeConfig::new(in_channels, out_channels, kernel)
    }
    pub fn new(store: &mut ParamStore, name: &str, in_channels: usize, out_channels: usize, k: usize) -> Result<ConvTranspose2d> {
        Self::config(in_channels, out_channels, k).build(store, name)
    }
}

impl ConvTransposeConfig<2> {
    pub fn build(self, store: &mut ParamStore, name: &str) -> Result<ConvTranspose2d> {
        self.register(store, name, &format!("conv_transpose2d `{name}`"))?;
        Ok(ConvTranspose2d { name: name.to_string(), cfg: self })
    }
}

impl ConvTranspose2d {
    /// PyTorch's `forward(x, output_size)`: the output padding that gives
    /// spatial size `output_size` `[H', W']` (which must be reachable with
    /// an output padding below the stride or the dilation).
    pub fn forward_with_output_size(&self, cx: &mut Builder, x: NodeId, output_size: [usize; 2]) -> Result<NodeId> {
        let what = format!("conv_transpose2d `{}`", self.name);
        let s = expect_rank(cx, &what, x, &[4], Some((1, self.cfg.in_channels)))?;
        let mut cfg = self.cfg.clone();
        cfg.output_padding = [0, 0];
        for ax in 0..2 {
            let base = cfg.out_dim(ax, s.0[2 + ax]).unwrap_or(0);
            let extra = output_size[ax].checked_sub(base).filter(|&e| e < cfg.stride[ax].max(cfg.dilation[ax])).ok_or_else(|| {
                Error::Config(format!("{what}({x}: {}): output size {output_size:?} is not reachable (smallest {base} on axis {})", cx.ty(x), 2 + ax))
            })?;
            cfg.output_padding[ax] = extra;
        }
        ConvTranspose2d { name: self.name.clone(), cfg }.forward(cx, x)
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        let c = &self.cfg;
        let w = cx.param(&pname(&self.name, "weight"), c.weight_shape())?;
        let y = conv_transpose2d_op(cx, &format!("conv_transpose2d `{}`", self.name), x, w, c)?;
        add_channel_bias(cx, &self.name, y, c.bias, [c.out_channels, 1, 1])
    }
}

/// PyTorch's `nn.ConvTranspose1d`: `[N, in, L]` -> `[N, out, L']`.
#[derive(Debug, Clone)]
pub struct ConvTranspose1d {
    pub name: String,
    pub cfg: ConvTransposeConfig<1>,
}

impl ConvTranspose1d {
    pub fn config(in_channels: usize, out_channels: usize, k: usize) -> ConvTransposeConfig<1> {
        ConvTransposeConfig::new(in_channels, out_channels, [k])
    }
    pub fn new(store: &mut ParamStore, name: &str, in_channels: usize, out_channels: usize, k: usize) -> Result<ConvTranspose1d> {
        Self::config(in_channels, out_channels, k).build(store, name)
    }
}

impl ConvTransposeConfig<1> {
    pub fn build(self, store: &mut ParamStore, name: &str) -> Result<ConvTranspose1d> {
        self.register(store, name, &format!("conv_transpose1d `{name}`"))?;
        Ok(ConvTranspose1d { name: name.to_string(), cfg: self })
    }
}

impl Module for ConvTranspose1d {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        let c = &self.cfg;
        let what = format!("conv_transpose1d `{}`", self.name);
        let s = expect_rank(cx, &what, x, &[3], Some((1, c.in_channels)))?;
        let w = cx.param(&pname(&self.name, "weight"), c.weight_shape())?;
        let w4 = cx.reshape(w, [c.in_channels, c.out_channels / c.groups, 1, c.kernel[0]])?;
        let x4 = cx.reshape(x, [s.0[0], s.0[1], 1, s.0[2]])?;
        let c2 = ConvTransposeConfig::<2> {
            in_channels: c.in_channels,
            out_channels: c.out_channels,
            kernel: [1, c.kernel[0]],
            stride: [1, c.stride[0]],
            padding: [0, c.padding[0]],
            output_padding: [0, c.output_padding[0]],
            dilation: [1, c.dilation[0]],
            groups: c.groups,
            bias: c.bias,
        };
        let y4 = conv_transpose2d_op(cx, &what, x4, w4, &c2)?;
        let ys = super::shape_of(cx, y4)?;
        let y = cx.reshape(y4, [ys.0[0], ys.0[1], ys.0[3]])?;
        add_channel_bias(cx, &self.name, y, c.bias, [c.out_channels, 1])
    }
}
