//! The course notes' small Inception network for 28x28 digits (a
//! GoogLeNet-style block, names as in the course code): `conv1` 5x5 to 10
//! channels -> 2x2 max pool -> ReLU -> `incep1` (88 channels) -> `conv2`
//! 5x5 to 20 -> max pool -> ReLU -> `incep2` -> flatten -> `fc`
//! (1408 = 88 * 4 * 4 features).
//!
//! Each block concatenates on channels, in this order: `branch1x1` (1x1 to
//! 16), `branch5x5_1` -> `branch5x5_2` (1x1 to 16, 5x5 padding 2 to 24),
//! `branch3x3_1` -> `_2` -> `_3` (1x1 to 16, two 3x3 padding 1 to 24),
//! and a 3x3 average pool (stride 1, padding 1) -> `branch_pool` (1x1 to
//! 24); no activations inside the block.

use kiln_ir::NodeId;

use super::{check_sizes, conv_default, linear_default};
use crate::nn::{pname, AvgPool2d, Branches, Conv2d, Flatten, MaxPool2d, Module, ReLU, Sequential};
use crate::{Builder, ParamStore, Result};

/// Output channels of one block: 16 + 24 + 24 + 24.
const BLOCK_OUT: usize = 88;

/// The notes' InceptionA block on `cin` channels, registered in the
/// course code's attribute order.
fn inception_a(store: &mut ParamStore, name: &str, cin: usize) -> Result<Branches> {
    let p = |n: &str| pname(name, n);
    let b1 = conv_default(store, &p("branch1x1"), Conv2d::config(cin, 16, 1))?;
    let b5 = Sequential::new()
        .add(conv_default(store, &p("branch5x5_1"), Conv2d::config(cin, 16, 1))?)
        .add(conv_default(store, &p("branch5x5_2"), Conv2d::config(16, 24, 5).padding(2))?);
    let b3 = Sequential::new()
        .add(conv_default(store, &p("branch3x3_1"), Conv2d::config(cin, 16, 1))?)
        .add(conv_default(store, &p("branch3x3_2"), Conv2d::config(16, 24, 3).padding(1))?)
        .add(conv_default(store, &p("branch3x3_3"), Conv2d::config(24, 24, 3).padding(1))?);
    let bp = Sequential::new()
        .add(AvgPool2d::new(3).stride(1).padding(1))
        .add(conv_default(store, &p("branch_pool"), Conv2d::config(cin, 24, 1))?);
    Ok(Branches::new(1).add(b1).add(b5).add(b3).add(bp))
}

/// The notes' Inception network; `forward` maps `[N, C, 28, 28]` to logits.
pub struct InceptionNet {
    pub num_classes: usize,
    pub in_channels: usize,
    net: Sequential,
}

impl InceptionNet {
    /// Registers the parameters under `prefix` with PyTorch's default init
    /// (the course code's order: conv1, conv2, incep1, incep2, fc).
    pub fn build(store: &mut ParamStore, prefix: &str, num_classes: usize, in_channels: usize) -> Result<InceptionNet> {
        check_sizes("inception_net", &[("num_classes", num_classes), ("in_channels", in_channels)])?;
        let p = |n: &str| pname(prefix, n);
        let conv1 = conv_default(store, &p("conv1"), Conv2d::config(in_channels, 10, 5))?;
        let conv2 = conv_default(store, &p("conv2"), Conv2d::config(BLOCK_OUT, 20, 5))?;
        let incep1 = inception_a(store, &p("incep1"), 10)?;
        let incep2 = inception_a(store, &p("incep2"), 20)?;
        let fc = linear_default(store, &p("fc"), BLOCK_OUT * 4 * 4, num_classes)?;
        let net = Sequential::new()
            .add(conv1)
            .add(MaxPool2d::new(2))
            .add(ReLU)
            .add(incep1)
            .add(conv2)
            .add(MaxPool2d::new(2))
            .add(ReLU)
            .add(incep2)
            .add(Flatten::new())
            .add(fc);
        Ok(InceptionNet { num_classes, in_channels, net })
    }
}

impl Module for InceptionNet {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        self.net.forward(cx, x)
    }
}

/// The notes' Inception network at the top level of the store.
pub fn inception_net(store: &mut ParamStore, num_classes: usize, in_channels: usize) -> Result<InceptionNet> {
    InceptionNet::build(store, "", num_classes, in_channels)
}
