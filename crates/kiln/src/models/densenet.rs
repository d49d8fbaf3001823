//! DenseNet-121/161/169/201 (torchvision's `densenet121` ...): a 7x7 conv
//! stem, dense blocks whose layers (BN-ReLU-1x1 conv-BN-ReLU-3x3 conv) each
//! see every earlier feature map concatenated, transitions (BN-ReLU-1x1
//! conv halving the channels, 2x2 average pool), a final BatchNorm, ReLU,
//! global average pooling and `classifier`.

use kiln_ir::NodeId;

use super::{check_dropout, check_sizes, conv, linear};
use crate::init::{FanMode, Init, Nonlinearity};
use crate::nn::{pname, AdaptiveAvgPool2d, AvgPool2d, BatchNorm, Conv2d, DenselyConnected, Dropout, Flatten, MaxPool2d, Module, ReLU, Sequential};
use crate::{Builder, ParamStore, Result};

/// torchvision's `DenseNet(growth_rate, block_config, num_init_features,
/// bn_size, drop_rate, num_classes)` plus the input channels
/// (`memory_efficient` only trades memory for time in PyTorch; the graph
/// is the same).
#[derive(Debug, Clone)]
pub struct DenseNetConfig {
    pub growth_rate: usize,
    pub block_config: Vec<usize>,
    pub num_init_features: usize,
    /// The bottleneck 1x1 conv has `bn_size * growth_rate` channels.
    pub bn_size: usize,
    /// Dropout after each dense layer (0: none).
    pub drop_rate: f64,
    pub num_classes: usize,
    pub in_channels: usize,
}

impl DenseNetConfig {
    pub fn new(growth_rate: usize, block_config: &[usize], num_init_features: usize) -> DenseNetConfig {
        DenseNetConfig {
            growth_rate,
            block_config: block_config.to_vec(),
            num_init_features,
            bn_size: 4,
            drop_rate: 0.0,
            num_classes: 1000,
            in_channels: 3,
        }
    }
    pub fn densenet121() -> DenseNetConfig {
        Self::new(32, &[6, 12, 24, 16], 64)
    }
    pub fn densenet161() -> DenseNetConfig {
        Self::new(48, &[6, 12, 36, 24], 96)
    }
    pub fn densenet169() -> DenseNetConfig {
        Self::new(32, &[6, 12, 32, 32], 64)
    }
    pub fn densenet201() -> DenseNetConfig {
        Self::new(32, &[6, 12, 48, 32], 64)
    }
    setters!(bn_size: usize, drop_rate: f64, num_classes: usize, in_channels: usize);

    /// Registers `features.conv0`, `features.denseblock<b>.denselayer<l>.*`,
    /// `features.transition<b>.*`, `features.norm5`, `classifier` under
    /// `prefix` with torchvision's init (Kaiming-normal convs, zero
    /// classifier bias).
    pub fn build(self, store: &mut ParamStore, prefix: &str) -> Result<DenseNet> {
        check_sizes(
            "densenet",
            &[
                ("num_classes", self.num_classes),
                ("in_channels", self.in_channels),
                ("growth_rate", self.growth_rate),
                ("num_init_features", self.num_init_features),
                ("bn_size", self.bn_size),
            ],
        )?;
        check_dropout("densenet", "drop_rate", self.drop_rate)?;
        let f = |n: &str| pname(prefix, &format!("features.{n}"));
        let mut c = self.num_init_features;
        let mut net = Sequential::new()
            .add(conv(store, &f("conv0"), Conv2d::config(self.in_channels, c, 7).stride(2).padding(3).bias(false), KAIMING, Init::Zeros)?)
            .add(BatchNorm::new2d(store, &f("norm0"), c)?)
            .add(ReLU)
            .add(MaxPool2d::new(3).stride(2).padding(1));
        for (b, &layers) in self.block_config.iter().enumerate() {
            let mut block = DenselyConnected::new(1);
            for l in 0..layers {
                let name = f(&format!("denseblock{}.denselayer{}", b + 1, l + 1));
                block.push(self.dense_layer(store, &name, c + l * self.growth_rate)?);
            }
            net.push(block);
            c += layers * self.growth_rate;
            if b + 1 < self.block_config.len() {
                let t = f(&format!("transition{}", b + 1));
                net.push(
                    Sequential::new()
                        .add(BatchNorm::new2d(store, &pname(&t, "norm"), c)?)
                        .add(ReLU)
                        .add(conv(store, &pname(&t, "conv"), Conv2d::config(c, c / 2, 1).bias(false), KAIMING, Init::Zeros)?)
                        .add(AvgPool2d::new(2)),
                );
                c /= 2;
            }
        }
        let net = net
            .add(BatchNorm::new2d(store, &f("norm5"), c)?)
            .add(ReLU)
            .add(AdaptiveAvgPool2d([1, 1]))
            .add(Flatten::new())
            .add(linear(store, &pname(prefix, "classifier"), c, self.num_classes, Init::torch_default(c), Init::Zeros)?);
        Ok(DenseNet { cfg: self, net })
    }

    /// BN-ReLU-1x1 conv to `bn_size * growth_rate`, BN-ReLU-3x3 conv to
    /// `growth_rate` (and dropout when `drop_rate` > 0).
    fn dense_layer(&self, store: &mut ParamStore, name: &str, cin: usize) -> Result<Sequential> {
        let p = |n: &str| pname(name, n);
        let mid = self.bn_size * self.growth_rate;
        let mut layer = Sequential::new()
            .add(BatchNorm::new2d(store, &p("norm1"), cin)?)
            .add(ReLU)
            .add(conv(store, &p("conv1"), Conv2d::config(cin, mid, 1).bias(false), KAIMING, Init::Zeros)?)
            .add(BatchNorm::new2d(store, &p("norm2"), mid)?)
            .add(ReLU)
            .add(conv(store, &p("conv2"), Conv2d::config(mid, self.growth_rate, 3).padding(1).bias(false), KAIMING, Init::Zeros)?);
        if self.drop_rate > 0.0 {
            layer.push(Dropout::new(store, self.drop_rate)?);
        }
        Ok(layer)
    }
}

/// torchvision's `nn.init.kaiming_normal_(w)`: fan-in, gain sqrt(2).
const KAIMING: Init = Init::KaimingNormal { a: 0.0, mode: FanMode::FanIn, nonlinearity: Nonlinearity::Relu };

/// A DenseNet; `forward` maps `[N, C, H, W]` to logits.
pub struct DenseNet {
    pub cfg: DenseNetConfig,
    net: Sequential,
}

impl Module for DenseNet {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        self.net.forward(cx, x)
    }
}

/// torchvision's `densenet121(num_classes=...)` on `in_channels`-channel images.
pub fn densenet121(store: &mut ParamStore, num_classes: usize, in_channels: usize) -> Result<DenseNet> {
    DenseNetConfig::densenet121().num_classes(num_classes).in_channels(in_channels).build(store, "")
}

/// torchvision's `densenet161(num_classes=...)`.
pub fn densenet161(store: &mut ParamStore, num_classes: usize, in_channels: usize) -> Result<DenseNet> {
    DenseNetConfig::densenet161().num_classes(num_classes).in_channels(in_channels).build(store, "")
}

/// torchvision's `densenet169(num_classes=...)`.
pub fn densenet169(store: &mut ParamStore, num_classes: usize, in_channels: usize) -> Result<DenseNet> {
    DenseNetConfig::densenet169().num_classes(num_classes).in_channels(in_channels).build(store, "")
}

/// torchvision's `densenet201(num_classes=...)`.
pub fn densenet201(store: &mut ParamStore, num_classes: usize, in_channels: usize) -> Result<DenseNet> {
    DenseNetConfig::densenet201().num_classes(num_classes).in_channels(in_channels).build(store, "")
}
