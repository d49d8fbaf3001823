//! GoogLeNet / Inception v1 (torchvision's `googlenet`, without the
//! auxiliary classifiers): BasicConv2d (conv without bias, BatchNorm with
//! eps 0.001, ReLU) stem, nine Inception blocks of four branches
//! concatenated on channels, ceil-mode max pools, global average pooling,
//! dropout and `fc`.

use kiln_ir::NodeId;

use super::{check_dropout, check_sizes, conv, linear};
use crate::init::Init;
use crate::nn::{pname, AdaptiveAvgPool2d, BatchNorm, Branches, Conv2d, Conv2dConfig, Dropout, Flatten, MaxPool2d, Module, ReLU, Sequential};
use crate::{Builder, Error, ParamStore, Result};

/// torchvision's `GoogLeNet(num_classes, aux_logits=False, transform_input,
/// init_weights, dropout)` plus the input channels.
#[derive(Debug, Clone)]
pub struct GoogLeNetConfig {
    pub num_classes: usize,
    pub in_channels: usize,
    /// Maps ImageNet-normalized input to the (x - 0.5) / 0.5 scaling the
    /// original Google weights expect; needs 3 channels.
    pub transform_input: bool,
    /// torchvision's init: conv and linear weights N(0, 0.01) (truncated
    /// at +-2, which at that std never cuts); `false` keeps PyTorch's
    /// layer defaults.
    pub init_weights: bool,
    pub dropout: f64,
}

impl Default for GoogLeNetConfig {
    fn default() -> Self {
        GoogLeNetConfig { num_classes: 1000, in_channels: 3, transform_input: false, init_weights: true, dropout: 0.2 }
    }
}

/// The channel counts of one Inception block, torchvision's argument order.
struct Widths {
    ch1x1: usize,
    ch3x3red: usize,
    ch3x3: usize,
    ch5x5red: usize,
    ch5x5: usize,
    pool_proj: usize,
}

const fn w(ch1x1: usize, ch3x3red: usize, ch3x3: usize, ch5x5red: usize, ch5x5: usize, pool_proj: usize) -> Widths {
    Widths { ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj }
}

/// Blocks in order, `None` marking the ceil-mode max pools between them
/// (3x3 stride 2, except the last, 2x2).
const BLOCKS: &[(&str, Option<Widths>)] = &[
    ("inception3a", Some(w(64, 96, 128, 16, 32, 32))),
    ("inception3b", Some(w(128, 128, 192, 32, 96, 64))),
    ("maxpool3", None),
    ("inception4a", Some(w(192, 96, 208, 16, 48, 64))),
    ("inception4b", Some(w(160, 112, 224, 24, 64, 64))),
    ("inception4c", Some(w(128, 128, 256, 24, 64, 64))),
    ("inception4d", Some(w(112, 144, 288, 32, 64, 64))),
    ("inception4e", Some(w(256, 160, 320, 32, 128, 128))),
    ("maxpool4", None),
    ("inception5a", Some(w(256, 160, 320, 32, 128, 128))),
    ("inception5b", Some(w(384, 192, 384, 48, 128, 128))),
];

impl GoogLeNetConfig {
    setters!(num_classes: usize, in_channels: usize, transform_input: bool, init_weights: bool, dropout: f64);

    pub fn build(self, store: &mut ParamStore, prefix: &str) -> Result<GoogLeNet> {
        check_sizes("googlenet", &[("num_classes", self.num_classes), ("in_channels", self.in_channels)])?;
        if self.transform_input && self.in_channels != 3 {
            return Err(Error::Config(format!("googlenet: transform_input needs 3 input channels, not {}", self.in_channels)));
        }
        check_dropout("googlenet", "dropout", self.dropout)?;
        let p = |n: &str| pname(prefix, n);
        let init = self.init_weights;
        let pool = |k: usize| MaxPool2d::new(k).stride(2).ceil_mode(true);
        let mut net = Sequential::new()
            .add(basic_conv(store, &p("conv1"), Conv2d::config(self.in_channels, 64, 7).stride(2).padding(3), init)?)
            .add(pool(3))
            .add(basic_conv(store, &p("conv2"), Conv2d::config(64, 64, 1), init)?)
            .add(basic_conv(store, &p("conv3"), Conv2d::config(64, 192, 3).padding(1), init)?)
            .add(pool(3));
        let mut cin = 192;
        for (name, widths) in BLOCKS {
            match widths {
                Some(wd) => {
                    net.push(inception(store, &p(name), cin, wd, init)?);
                    cin = wd.ch1x1 + wd.ch3x3 + wd.ch5x5 + wd.pool_proj;
                }
                None if *name == "maxpool4" => net.push(pool(2)),
                None => net.push(pool(3)),
            }
        }
        let fc_w = if init { Init::Normal { mean: 0.0, std: 0.01 } } else { Init::torch_default(cin) };
        let net = net
            .add(AdaptiveAvgPool2d([1, 1]))
            .add(Flatten::new())
            .add(Dropout::new(store, self.dropout)?)
            .add(linear(store, &p("fc"), cin, self.num_classes, fc_w, Init::torch_default(cin))?);
        Ok(GoogLeNet { cfg: self, net })
    }
}

/// torchvision's BasicConv2d: `<name>.conv` (no bias), `<name>.bn` (eps
/// 0.001), ReLU.
fn basic_conv(store: &mut ParamStore, name: &str, cfg: Conv2dConfig, init: bool) -> Result<Sequential> {
    let c = cfg.bias(false);
    let out = c.out_channels;
    let wi = if init { Init::Normal { mean: 0.0, std: 0.01 } } else { Init::torch_default(c.in_channels * c.kernel[0] * c.kernel[1]) };
    Ok(Sequential::new()
        .add(conv(store, &pname(name, "conv"), c, wi, Init::Zeros)?)
        .add(BatchNorm::config2d(out).eps(1e-3).build(store, &pname(name, "bn"))?)
        .add(ReLU))
}

/// Four branches on the same input, concatenated on channels: 1x1;
/// 1x1 -> 3x3; 1x1 -> 3x3 (torchvision's "5x5" branch really is 3x3, and
/// its weights are shaped so); 3x3 max pool -> 1x1.
fn inception(store: &mut ParamStore, name: &str, cin: usize, wd: &Widths, init: bool) -> Result<Branches> {
    let p = |n: &str| pname(name, n);
    // Registered in torchvision's order: branch1 .. branch4.
    let b1 = basic_conv(store, &p("branch1"), Conv2d::config(cin, wd.ch1x1, 1), init)?;
    let b2 = Sequential::new()
        .add(basic_conv(store, &p("branch2.0"), Conv2d::config(cin, wd.ch3x3red, 1), init)?)
        .add(basic_conv(store, &p("branch2.1"), Conv2d::config(wd.ch3x3red, wd.ch3x3, 3).padding(1), init)?);
    let b3 = Sequential::new()
        .add(basic_conv(store, &p("branch3.0"), Conv2d::config(cin, wd.ch5x5red, 1), init)?)
        .add(basic_conv(store, &p("branch3.1"), Conv2d::config(wd.ch5x5red, wd.ch5x5, 3).padding(1), init)?);
    let b4 = Sequential::new()
        .add(MaxPool2d::new(3).stride(1).padding(1).ceil_mode(true))
        .add(basic_conv(store, &p("branch4.1"), Conv2d::config(cin, wd.pool_proj, 1), init)?);
    Ok(Branches::new(1).add(b1).add(b2).add(b3).add(b4))
}

/// GoogLeNet; `forward` maps `[N, C, H, W]` to logits.
pub struct GoogLeNet {
    pub cfg: GoogLeNetConfig,
    net: Sequential,
}

impl Module for GoogLeNet {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        let x = if self.cfg.transform_input { transform_input(cx, x)? } else { x };
        self.net.forward(cx, x)
    }
}

/// torchvision's `_transform_input`: channel c becomes
/// `x_c * std_c / 0.5 + (mean_c - 0.5) / 0.5` with ImageNet's mean and std.
pub(super) fn transform_input(cx: &mut Builder, x: NodeId) -> Result<NodeId> {
    const MEAN: [f64; 3] = [0.485, 0.456, 0.406];
    const STD: [f64; 3] = [0.229, 0.224, 0.225];
    crate::nn::expect_rank(cx, "googlenet transform_input", x, &[4], Some((1, 3)))?;
    let mut chans = Vec::with_capacity(3);
    for c in 0..3 {
        let xc = cx.slice_axis(x, 1, c, c + 1)?;
        let xc = cx.mul_scalar(xc, STD[c] / 0.5)?;
        chans.push(cx.add_scalar(xc, (MEAN[c] - 0.5) / 0.5)?);
    }
    Ok(cx.concat(&chans, 1)?)
}

/// torchvision's `googlenet(num_classes=..., aux_logits=False)` on
/// `in_channels`-channel images (`transform_input` off, as torchvision
/// has it without pretrained weights).
pub fn googlenet(store: &mut ParamStore, num_classes: usize, in_channels: usize) -> Result<GoogLeNet> {
    GoogLeNetConfig::default().num_classes(num_classes).in_channels(in_channels).build(store, "")
}
