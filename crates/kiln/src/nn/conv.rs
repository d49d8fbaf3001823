//! Convolutions: Conv2d (NCHW input, OIHW weight) and Conv1d (NCL, OIL),
//! with stride, padding, dilation, groups and optional bias.

use kiln_ir::{Conv1dAttrs, Conv2dAttrs, NodeId};

use super::{expect_rank, pname, register_weight_bias, Module, PaddingMode};
use crate::{Builder, Error, ParamStore, Result};

/// The settings PyTorch rejects (groups that do not divide the channels,
/// zero kernel/stride/dilation); returns the weight's fan-in.
pub(crate) fn check_conv(what: &str, cin: usize, cout: usize, groups: usize, kernel: &[usize], stride: &[usize], dilation: &[usize]) -> Result<usize> {
    if groups == 0 || !cin.is_multiple_of(groups) || !cout.is_multiple_of(groups) {
        return Err(Error::Config(format!("{what}: groups {groups} must divide in {cin} and out {cout} channels")));
    }
    for (name, v) in [("kernel", kernel), ("stride", stride), ("dilation", dilation)] {
        if v.contains(&0) {
            return Err(Error::Config(format!("{what}: {name} {v:?} must be >= 1")));
        }
    }
    Ok(kernel.iter().fold(cin / groups, |a, &k| a.saturating_mul(k)))
}

/// `y + <name>.bias` with the bias `[C]` reshaped to `bias_shape`
/// (`[C, 1, ...]`) so it broadcasts over the spatial axes; `y` itself when
/// the layer has no bias.
pub(crate) fn add_channel_bias<const N: usize>(cx: &mut Builder, name: &str, y: NodeId, bias: bool, bias_shape: [usize; N]) -> Result<NodeId> {
    if !bias {
        return Ok(y);
    }
    let b = cx.param(&pname(name, "bias"), [bias_shape[0]])?;
    let b = cx.reshape(b, bias_shape)?;
    Ok(cx.add(y, b)?)
}

#[derive(Debug, Clone)]
pub struct Conv2dConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub attrs: Conv2dAttrs,
    pub bias: bool,
    /// How the padding is filled (PyTorch's `padding_mode`); anything but
    /// zeros pads the input explicitly ([`super::pad2d`]) before an
    /// unpadded convolution.
    pub padding_mode: PaddingMode,
}

impl Conv2dConfig {
    /// PyTorch's `padding_mode`: zeros (default), reflect, replicate, circular.
    pub fn padding_mode(mut self, m: PaddingMode) -> Self {
        self.padding_mode = m;
        self
    }
    pub fn stride(mut self, s: usize) -> Self {
        self.attrs.stride = [s, s];
        self
    }
    pub fn stride2(mut self, s: [usize; 2]) -> Self {
        self.attrs.stride = s;
        self
    }
    pub fn padding(mut self, p: usize) -> Self {
        self.attrs.padding = [p, p];
        self
    }
    pub fn padding2(mut self, p: [usize; 2]) -> Self {
        self.attrs.padding = p;
        self
    }
    pub fn dilation(mut self, d: usize) -> Self {
        self.attrs.dilation = [d, d];
        self
    }
    pub fn dilation2(mut self, d: [usize; 2]) -> Self {
        self.attrs.dilation = d;
        self
    }
    pub fn groups(mut self, g: usize) -> Self {
        self.attrs.groups = g;
        self
    }
    pub fn bias(mut self, on: bool) -> Self {
        self.bias = on;
        self
    }
    /// Registers `<name>.weight` [out, in/groups, kh, kw] and `<name>.bias`
    /// `[out]` with PyTorch's default init (fan_in = in/groups * kh * kw).
    pub fn build(self, store: &mut ParamStore, name: &str) -> Result<Conv2d> {
        let a = &self.attrs;
        let what = format!("conv2d `{name}`");
        let fan_in = check_conv(&what, self.in_channels, self.out_channels, a.groups, &self.kernel, &a.stride, &a.dilation)?;
        let shape = [self.out_channels, self.in_channels / a.groups, self.kernel[0], self.kernel[1]];
        register_weight_bias(store, name, &shape, self.bias, fan_in)?;
        Ok(Conv2d { name: name.to_string(), cfg: self })
    }
}

#[derive(Debug, Clone)]
pub struct Conv2d {
    pub name: String,
    pub cfg: Conv2dConfig,
}

impl Conv2d {
    /// Square kernel `k`, stride 1, no padding, bias on; chain options
    /// (`.stride(2).padding(1)...`) and finish with `.build(store, name)`.
    pub fn config(in_channels: usize, out_channels: usize, k: usize) -> Conv2dConfig {
        Self::config2(in_channels, out_channels, [k, k])
    }
    pub fn config2(in_channels: usize, out_channels: usize, kernel: [usize; 2]) -> Conv2dConfig {
        Conv2dConfig { in_channels, out_channels, kernel, attrs: Conv2dAttrs::default(), bias: true, padding_mode: PaddingMode::Zeros }
    }
    pub fn new(store: &mut ParamStore, name: &str, in_channels: usize, out_channels: usize, k: usize) -> Result<Conv2d> {
        Self::config(in_channels, out_channels, k).build(store, name)
    }
    fn weight_shape(&self) -> [usize; 4] {
        let c = &self.cfg;
        [c.out_channels, c.in_channels / c.attrs.groups, c.kernel[0], c.kernel[1]]
    }
}

impl Module for Conv2d {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        expect_rank(cx, &format!("conv2d `{}`", self.name), x, &[4], Some((1, self.cfg.in_channels)))?;
        let w = cx.param(&pname(&self.name, "weight"), self.weight_shape())?;
        let mut attrs = self.cfg.attrs;
        let x = if self.cfg.padding_mode != PaddingMode::Zeros && attrs.padding != [0, 0] {
            let [ph, pw] = attrs.padding;
            attrs.padding = [0, 0];
            super::pad2d(cx, x, [pw, pw, ph, ph], self.cfg.padding_mode)?
        } else {
            x
        };
        let y = cx.conv2d(x, w, attrs)?;
        add_channel_bias(cx, &self.name, y, self.cfg.bias, [self.cfg.out_channels, 1, 1])
    }
}

#[derive(Debug, Clone)]
pub struct Conv1dConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub attrs: Conv1dAttrs,
    pub bias: bool,
    /// How the padding is filled (PyTorch's `padding_mode`).
    pub padding_mode: PaddingMode,
}

impl Conv1dConfig {
    /// PyTorch's `padding_mode`: zeros (default), reflect, replicate, circular.
    pub fn padding_mode(mut self, m: PaddingMode) -> Self {
        self.padding_mode = m;
        self
    }
    pub fn stride(mut self, s: usize) -> Self {
        self.attrs.stride = s;
        self
    }
    pub fn padding(mut self, p: usize) -> Self {
        self.attrs.padding = p;
        self
    }
    pub fn dilation(mut self, d: usize) -> Self {
        self.attrs.dilation = d;
        self
    }
    pub fn groups(mut self, g: usize) -> Self {
        self.attrs.groups = g;
        self
    }
    pub fn bias(mut self, on: bool) -> Self {
        self.bias = on;
        self
    }
    pub fn build(self, store: &mut ParamStore, name: &str) -> Result<Conv1d> {
        let a = &self.attrs;
        let what = format!("conv1d `{name}`");
        let fan_in = check_conv(&what, self.in_channels, self.out_channels, a.groups, &[self.kernel], &[a.stride], &[a.dilation])?;
        let shape = [self.out_channels, self.in_channels / a.groups, self.kernel];
        register_weight_bias(store, name, &shape, self.bias, fan_in)?;
        Ok(Conv1d { name: name.to_string(), cfg: self })
    }
}

#[derive(Debug, Clone)]
pub struct Conv1d {
    pub name: String,
    pub cfg: Conv1dConfig,
}

impl Conv1d {
    pub fn config(in_channels: usize, out_channels: usize, k: usize) -> Conv1dConfig {
        Conv1dConfig { in_channels, out_channels, kernel: k, attrs: Conv1dAttrs::default(), bias: true, padding_mode: PaddingMode::Zeros }
    }
    pub fn new(store: &mut ParamStore, name: &str, in_channels: usize, out_channels: usize, k: usize) -> Result<Conv1d> {
        Self::config(in_channels, out_channels, k).build(store, name)
    }
}

impl Module for Conv1d {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        let c = &self.cfg;
        expect_rank(cx, &format!("conv1d `{}`", self.name), x, &[3], Some((1, c.in_channels)))?;
        let w = cx.param(&pname(&self.name, "weight"), [c.out_channels, c.in_channels / c.attrs.groups, c.kernel])?;
        let mut attrs = c.attrs;
        let x = if c.padding_mode != PaddingMode::Zeros && attrs.padding != 0 {
            let p = attrs.padding;
            attrs.padding = 0;
            super::pad1d(cx, x, [p, p], c.padding_mode)?
        } else {
            x
        };
        let y = cx.conv1d(x, w, attrs)?;
        add_channel_bias(cx, &self.name, y, c.bias, [c.out_channels, 1])
    }
}
