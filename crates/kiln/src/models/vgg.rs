//! VGG-11/13/16/19, with and without BatchNorm (torchvision's `vgg11` ...
//! `vgg19_bn`): 3x3 convs (+ BatchNorm) + ReLU, 2x2 max pools, adaptive
//! average pooling to 7x7 and a Linear-ReLU-Dropout classifier. The
//! `features.<i>` indices count every module (conv, BatchNorm, ReLU, pool)
//! as torchvision's `nn.Sequential` does.

use kiln_ir::NodeId;

use super::{check_dropout, check_sizes, conv, conv_default, linear, linear_default, KAIMING_FAN_OUT};
use crate::init::Init;
use crate::nn::{pname, AdaptiveAvgPool2d, BatchNorm, Conv2d, Dropout, Flatten, MaxPool2d, Module, ReLU, Sequential};
use crate::{Builder, ParamStore, Result};

/// One entry of a VGG layer list: a 3x3 conv to that many channels, or a
/// 2x2 max pool (`None`, torchvision's `"M"`).
pub type VggLayer = Option<usize>;

const M: VggLayer = None;
const A: &[VggLayer] = &[Some(64), M, Some(128), M, Some(256), Some(256), M, Some(512), Some(512), M, Some(512), Some(512), M];
const B: &[VggLayer] =
    &[Some(64), Some(64), M, Some(128), Some(128), M, Some(256), Some(256), M, Some(512), Some(512), M, Some(512), Some(512), M];
const D: &[VggLayer] = &[
    Some(64), Some(64), M, Some(128), Some(128), M, Some(256), Some(256), Some(256), M, Some(512), Some(512), Some(512), M, Some(512),
    Some(512), Some(512), M,
];
const E: &[VggLayer] = &[
    Some(64), Some(64), M, Some(128), Some(128), M, Some(256), Some(256), Some(256), Some(256), M, Some(512), Some(512), Some(512),
    Some(512), M, Some(512), Some(512), Some(512), Some(512), M,
];

/// torchvision's `VGG(make_layers(cfg, batch_norm), num_classes,
/// init_weights, dropout)` plus the input channels.
#[derive(Debug, Clone)]
pub struct VggConfig {
    pub layers: Vec<VggLayer>,
    pub batch_norm: bool,
    pub num_classes: usize,
    pub in_channels: usize,
    /// torchvision's init (Kaiming-normal fan-out convs, zero biases,
    /// N(0, 0.01) linear weights); `false` keeps PyTorch's layer defaults.
    pub init_weights: bool,
    pub dropout: f64,
}

impl VggConfig {
    /// A VGG over the given layer list (configs A/B/D/E are
    /// [`Self::vgg11`] .. [`Self::vgg19`]).
    pub fn new(layers: &[VggLayer], batch_norm: bool) -> VggConfig {
        VggConfig { layers: layers.to_vec(), batch_norm, num_classes: 1000, in_channels: 3, init_weights: true, dropout: 0.5 }
    }
    pub fn vgg11(batch_norm: bool) -> VggConfig {
        Self::new(A, batch_norm)
    }
    pub fn vgg13(batch_norm: bool) -> VggConfig {
        Self::new(B, batch_norm)
    }
    pub fn vgg16(batch_norm: bool) -> VggConfig {
        Self::new(D, batch_norm)
    }
    pub fn vgg19(batch_norm: bool) -> VggConfig {
        Self::new(E, batch_norm)
    }
    setters!(num_classes: usize, in_channels: usize, init_weights: bool, dropout: f64);

    pub fn build(self, store: &mut ParamStore, prefix: &str) -> Result<Vgg> {
        check_sizes("vgg", &[("num_classes", self.num_classes), ("in_channels", self.in_channels)])?;
        check_dropout("vgg", "dropout", self.dropout)?;
        let f = |i: usize| pname(prefix, &format!("features.{i}"));
        let c = |i: usize| pname(prefix, &format!("classifier.{i}"));
        let mut net = Sequential::new();
        let (mut i, mut cin) = (0, self.in_channels);
        for layer in &self.layers {
            let Some(width) = *layer else {
                net.push(MaxPool2d::new(2));
                i += 1;
                continue;
            };
            let cfg = Conv2d::config(cin, width, 3).padding(1);
            net.push(if self.init_weights { conv(store, &f(i), cfg, KAIMING_FAN_OUT, Init::Zeros)? } else { conv_default(store, &f(i), cfg)? });
            i += 1;
            if self.batch_norm {
                net.push(BatchNorm::new2d(store, &f(i), width)?);
                i += 1;
            }
            net.push(ReLU);
            i += 1;
            cin = width;
        }
        let fc = |store: &mut ParamStore, name: &str, i: usize, o: usize| {
            if self.init_weights {
                linear(store, name, i, o, Init::Normal { mean: 0.0, std: 0.01 }, Init::Zeros)
            } else {
                linear_default(store, name, i, o)
            }
        };
        let net = net
            .add(AdaptiveAvgPool2d([7, 7]))
            .add(Flatten::new())
            .add(fc(store, &c(0), cin * 7 * 7, 4096)?)
            .add(ReLU)
            .add(Dropout::new(store, self.dropout)?)
            .add(fc(store, &c(3), 4096, 4096)?)
            .add(ReLU)
            .add(Dropout::new(store, self.dropout)?)
            .add(fc(store, &c(6), 4096, self.num_classes)?);
        Ok(Vgg { cfg: self, net })
    }
}

pub struct Vgg {
    pub cfg: VggConfig,
    net: Sequential,
}

impl Module for Vgg {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        self.net.forward(cx, x)
    }
}

macro_rules! vgg_builder {
    ($name:ident, $cfg:ident, $bn:expr, $doc:literal) => {
        #[doc = $doc]
        pub fn $name(store: &mut ParamStore, num_classes: usize, in_channels: usize) -> Result<Vgg> {
            VggConfig::$cfg($bn).num_classes(num_classes).in_channels(in_channels).build(store, "")
        }
    };
}

vgg_builder!(vgg11, vgg11, false, "torchvision's `vgg11(num_classes=...)` on `in_channels`-channel images.");
vgg_builder!(vgg11_bn, vgg11, true, "torchvision's `vgg11_bn(num_classes=...)`.");
vgg_builder!(vgg13, vgg13, false, "torchvision's `vgg13(num_classes=...)`.");
vgg_builder!(vgg13_bn, vgg13, true, "torchvision's `vgg13_bn(num_classes=...)`.");
vgg_builder!(vgg16, vgg16, false, "torchvision's `vgg16(num_classes=...)`.");
vgg_builder!(vgg16_bn, vgg16, true, "torchvision's `vgg16_bn(num_classes=...)`.");
vgg_builder!(vgg19, vgg19, false, "torchvision's `vgg19(num_classes=...)`.");
vgg_builder!(vgg19_bn, vgg19, true, "torchvision's `vgg19_bn(num_classes=...)`.");
