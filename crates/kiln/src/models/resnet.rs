//! ResNet-18/34 (torchvision's `resnet18`, `resnet34`): BasicBlocks of two
//! 3x3 convs with BatchNorm, a strided 1x1 conv + BatchNorm shortcut
//! (`downsample`) where the shape changes.

use kiln_ir::NodeId;

use super::{check_sizes, conv, linear_default, KAIMING_FAN_OUT};
use crate::init::Init;
use crate::nn::{pname, AdaptiveAvgPool2d, BatchNorm, Conv2d, Flatten, MaxPool2d, Module, ReLU, Residual, Sequential};
use crate::{Builder, ParamStore, Result};

/// torchvision's `ResNet(BasicBlock, layers, num_classes, zero_init_residual)`
/// plus the input channel count (3 in torchvision).
#[derive(Debug, Clone)]
pub struct ResNetConfig {
    /// BasicBlocks per stage: [2, 2, 2, 2] for ResNet-18, [3, 4, 6, 3] for 34.
    pub layers: [usize; 4],
    pub num_classes: usize,
    pub in_channels: usize,
    /// Start each block's last BatchNorm weight at 0, so every residual
    /// block begins as the identity.
    pub zero_init_residual: bool,
    /// The CIFAR-10 stem: one 3x3 stride-1 conv (padding 1) + BatchNorm +
    /// ReLU and no max-pool, so 32x32 images keep their size through
    /// `layer1` (torchvision's 7x7/2 conv and 3x3/2 max-pool are made for
    /// 224x224 inputs).
    pub small_input_stem: bool,
}

impl ResNetConfig {
    pub fn resnet18() -> ResNetConfig {
        ResNetConfig { layers: [2, 2, 2, 2], num_classes: 1000, in_channels: 3, zero_init_residual: false, small_input_stem: false }
    }
    pub fn resnet34() -> ResNetConfig {
        ResNetConfig { layers: [3, 4, 6, 3], ..Self::resnet18() }
    }
    setters!(num_classes: usize, in_channels: usize, zero_init_residual: bool, small_input_stem: bool);

    /// Registers every parameter under `prefix` ("" for torchvision's
    /// top-level names: `conv1.weight`, `layer1.0.bn1.running_mean`, ...,
    /// `fc.bias`).
    pub fn build(self, store: &mut ParamStore, prefix: &str) -> Result<ResNet> {
        check_sizes("resnet", &[("num_classes", self.num_classes), ("in_channels", self.in_channels)])?;
        let p = |n: &str| pname(prefix, n);
        let stem = if self.small_input_stem {
            Conv2d::config(self.in_channels, 64, 3).padding(1).bias(false)
        } else {
            Conv2d::config(self.in_channels, 64, 7).stride(2).padding(3).bias(false)
        };
        let mut net = Sequential::new()
            .add(conv(store, &p("conv1"), stem, KAIMING_FAN_OUT, Init::Zeros)?)
            .add(BatchNorm::new2d(store, &p("bn1"), 64)?)
            .add(ReLU);
        if !self.small_input_stem {
            net.push(MaxPool2d::new(3).stride(2).padding(1));
        }
        let mut cin = 64;
        for (stage, &blocks) in self.layers.iter().enumerate() {
            let width = 64 << stage;
            for i in 0..blocks {
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                net.push(basic_block(store, &p(&format!("layer{}.{i}", stage + 1)), cin, width, stride, self.zero_init_residual)?);
                net.push(ReLU);
                cin = width;
            }
        }
        let net = net
            .add(AdaptiveAvgPool2d([1, 1]))
            .add(Flatten::new())
            .add(linear_default(store, &p("fc"), cin, self.num_classes)?);
        Ok(ResNet { cfg: self, net })
    }
}

/// conv3x3-BN-ReLU-conv3x3-BN plus the shortcut; the ReLU after the sum is
/// added by the caller.
fn basic_block(store: &mut ParamStore, name: &str, cin: usize, width: usize, stride: usize, zero_init: bool) -> Result<Residual> {
    let p = |n: &str| pname(name, n);
    let c3 = |cin: usize, s: usize| Conv2d::config(cin, width, 3).stride(s).padding(1).bias(false);
    let body = Sequential::new()
        .add(conv(store, &p("conv1"), c3(cin, stride), KAIMING_FAN_OUT, Init::Zeros)?)
        .add(BatchNorm::new2d(store, &p("bn1"), width)?)
        .add(ReLU)
        .add(conv(store, &p("conv2"), c3(width, 1), KAIMING_FAN_OUT, Init::Zeros)?)
        .add(BatchNorm::new2d(store, &p("bn2"), width)?);
    if zero_init {
        store.reinit(&p("bn2.weight"), Init::Zeros)?;
    }
    let block = Residual::new(body);
    if stride == 1 && cin == width {
        return Ok(block);
    }
    let down = Sequential::new()
        .add(conv(store, &p("downsample.0"), Conv2d::config(cin, width, 1).stride(stride).bias(false), KAIMING_FAN_OUT, Init::Zeros)?)
        .add(BatchNorm::new2d(store, &p("downsample.1"), width)?);
    Ok(block.with_shortcut(down))
}

/// A ResNet with BasicBlocks; `forward` maps `[N, C, H, W]` to logits.
pub struct ResNet {
    pub cfg: ResNetConfig,
    net: Sequential,
}

impl Module for ResNet {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        self.net.forward(cx, x)
    }
}

/// torchvision's `resnet18(num_classes=...)` on `in_channels`-channel images.
pub fn resnet18(store: &mut ParamStore, num_classes: usize, in_channels: usize) -> Result<ResNet> {
    ResNetConfig::resnet18().num_classes(num_classes).in_channels(in_channels).build(store, "")
}

/// torchvision's `resnet34(num_classes=...)` on `in_channels`-channel images.
pub fn resnet34(store: &mut ParamStore, num_classes: usize, in_channels: usize) -> Result<ResNet> {
    ResNetConfig::resnet34().num_classes(num_classes).in_channels(in_channels).build(store, "")
}
