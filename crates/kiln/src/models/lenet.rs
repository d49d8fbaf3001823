//! LeNet-5 as the course (and `examples/mnist_lenet.rs`) builds it for
//! 28x28 digits: conv 5x5 (padding 2) -> ReLU -> 2x2 max pool, conv 5x5 ->
//! ReLU -> 2x2 max pool, then Linear 400-120-84-classes with ReLUs.
//! Names `conv1`, `conv2`, `fc1`, `fc2`, `fc3`.

use kiln_ir::NodeId;

use super::{check_sizes, conv_default, linear_default};
use crate::nn::{pname, Conv2d, Flatten, MaxPool2d, Module, ReLU, Sequential};
use crate::{Builder, ParamStore, Result};

/// LeNet-5 for `[N, in_channels, 28, 28]` images.
pub struct LeNet5 {
    pub num_classes: usize,
    pub in_channels: usize,
    net: Sequential,
}

impl LeNet5 {
    /// Registers the parameters under `prefix` with PyTorch's default init.
    pub fn build(store: &mut ParamStore, prefix: &str, num_classes: usize, in_channels: usize) -> Result<LeNet5> {
        check_sizes("lenet5", &[("num_classes", num_classes), ("in_channels", in_channels)])?;
        let p = |n: &str| pname(prefix, n);
        let net = Sequential::new()
            .add(conv_default(store, &p("conv1"), Conv2d::config(in_channels, 6, 5).padding(2))?)
            .add(ReLU)
            .add(MaxPool2d::new(2))
            .add(conv_default(store, &p("conv2"), Conv2d::config(6, 16, 5))?)
            .add(ReLU)
            .add(MaxPool2d::new(2))
            .add(Flatten::new())
            .add(linear_default(store, &p("fc1"), 16 * 5 * 5, 120)?)
            .add(ReLU)
            .add(linear_default(store, &p("fc2"), 120, 84)?)
            .add(ReLU)
            .add(linear_default(store, &p("fc3"), 84, num_classes)?);
        Ok(LeNet5 { num_classes, in_channels, net })
    }
}

impl Module for LeNet5 {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        self.net.forward(cx, x)
    }
}

/// LeNet-5 at the top level of the store.
pub fn lenet5(store: &mut ParamStore, num_classes: usize, in_channels: usize) -> Result<LeNet5> {
    LeNet5::build(store, "", num_classes, in_channels)
}
