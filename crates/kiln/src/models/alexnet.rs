//! AlexNet (torchvision's `alexnet`): five convs with ReLU and three max
//! pools (`features.0` ... `features.10`), adaptive average pooling to
//! 6x6, and a dropout-Linear-ReLU classifier (`classifier.1`, `.4`, `.6`).
//! Made for 224x224 inputs (smaller ones pool away to nothing, as in
//! PyTorch).

use kiln_ir::NodeId;

use super::{check_dropout, check_sizes, conv_default, linear_default};
use crate::nn::{pname, AdaptiveAvgPool2d, Conv2d, Dropout, Flatten, MaxPool2d, Module, ReLU, Sequential};
use crate::{Builder, ParamStore, Result};

/// torchvision's `AlexNet(num_classes, dropout)` plus the input channels.
#[derive(Debug, Clone)]
pub struct AlexNetConfig {
    pub num_classes: usize,
    pub in_channels: usize,
    pub dropout: f64,
}

impl Default for AlexNetConfig {
    fn default() -> Self {
        AlexNetConfig { num_classes: 1000, in_channels: 3, dropout: 0.5 }
    }
}

impl AlexNetConfig {
    setters!(num_classes: usize, in_channels: usize, dropout: f64);

    /// Registers the parameters under `prefix` with PyTorch's default init
    /// (torchvision's AlexNet keeps it).
    pub fn build(self, store: &mut ParamStore, prefix: &str) -> Result<AlexNet> {
        check_sizes("alexnet", &[("num_classes", self.num_classes), ("in_channels", self.in_channels)])?;
        check_dropout("alexnet", "dropout", self.dropout)?;
        let f = |i: usize| pname(prefix, &format!("features.{i}"));
        let c = |i: usize| pname(prefix, &format!("classifier.{i}"));
        let pool = || MaxPool2d::new(3).stride(2);
        let features = Sequential::new()
            .add(conv_default(store, &f(0), Conv2d::config(self.in_channels, 64, 11).stride(4).padding(2))?)
            .add(ReLU)
            .add(pool())
            .add(conv_default(store, &f(3), Conv2d::config(64, 192, 5).padding(2))?)
            .add(ReLU)
            .add(pool())
            .add(conv_default(store, &f(6), Conv2d::config(192, 384, 3).padding(1))?)
            .add(ReLU)
            .add(conv_default(store, &f(8), Conv2d::config(384, 256, 3).padding(1))?)
            .add(ReLU)
            .add(conv_default(store, &f(10), Conv2d::config(256, 256, 3).padding(1))?)
            .add(ReLU)
            .add(pool());
        let net = features
            .add(AdaptiveAvgPool2d([6, 6]))
            .add(Flatten::new())
            .add(Dropout::new(store, self.dropout)?)
            .add(linear_default(store, &c(1), 256 * 6 * 6, 4096)?)
            .add(ReLU)
            .add(Dropout::new(store, self.dropout)?)
            .add(linear_default(store, &c(4), 4096, 4096)?)
            .add(ReLU)
            .add(linear_default(store, &c(6), 4096, self.num_classes)?);
        Ok(AlexNet { cfg: self, net })
    }
}

pub struct AlexNet {
    pub cfg: AlexNetConfig,
    net: Sequential,
}

impl Module for AlexNet {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        self.net.forward(cx, x)
    }
}

/// torchvision's `alexnet(num_classes=...)` on `in_channels`-channel images.
pub fn alexnet(store: &mut ParamStore, num_classes: usize, in_channels: usize) -> Result<AlexNet> {
    AlexNetConfig::default().num_classes(num_classes).in_channels(in_channels).build(store, "")
}
