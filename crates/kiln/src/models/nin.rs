//! Network in Network as the course builds it (Lin et al. 2013, for
//! 224x224 inputs): four NiN blocks (a conv followed by two 1x1 convs, each
//! with ReLU) with 3x3 stride-2 max pools between them and dropout before
//! the last, whose channels are the classes; global average pooling gives
//! the logits, with no Linear layer.
//!
//! Names follow the course's nested `nn.Sequential`: block `i` of the outer
//! Sequential has its convs at `i.0`, `i.2`, `i.4` (`0.0.weight`,
//! `2.4.bias`, `7.0.weight`, ...).

use kiln_ir::NodeId;

use super::{check_sizes, conv_default};
use crate::nn::{pname, AdaptiveAvgPool2d, Conv2d, Dropout, Flatten, MaxPool2d, Module, ReLU, Sequential};
use crate::{Builder, ParamStore, Result};

/// Network in Network; `forward` maps `[N, C, 224, 224]` to logits.
pub struct NiN {
    pub num_classes: usize,
    pub in_channels: usize,
    net: Sequential,
}

/// `k`x`k` conv (stride `s`, padding `p`) then two 1x1 convs, ReLU after each.
fn block(store: &mut ParamStore, name: &str, cin: usize, cout: usize, k: usize, s: usize, p: usize) -> Result<Sequential> {
    Ok(Sequential::new()
        .add(conv_default(store, &pname(name, "0"), Conv2d::config(cin, cout, k).stride(s).padding(p))?)
        .add(ReLU)
        .add(conv_default(store, &pname(name, "2"), Conv2d::config(cout, cout, 1))?)
        .add(ReLU)
        .add(conv_default(store, &pname(name, "4"), Conv2d::config(cout, cout, 1))?)
        .add(ReLU))
}

impl NiN {
    /// Registers the parameters under `prefix` with PyTorch's default init;
    /// `dropout` is the course's 0.5.
    pub fn build(store: &mut ParamStore, prefix: &str, num_classes: usize, in_channels: usize, dropout: f64) -> Result<NiN> {
        check_sizes("nin", &[("num_classes", num_classes), ("in_channels", in_channels)])?;
        let p = |i: usize| pname(prefix, &i.to_string());
        let pool = || MaxPool2d::new(3).stride(2);
        let net = Sequential::new()
            .add(block(store, &p(0), in_channels, 96, 11, 4, 0)?)
            .add(pool())
            .add(block(store, &p(2), 96, 256, 5, 1, 2)?)
            .add(pool())
            .add(block(store, &p(4), 256, 384, 3, 1, 1)?)
            .add(pool())
            .add(Dropout::new(store, dropout)?)
            .add(block(store, &p(7), 384, num_classes, 3, 1, 1)?)
            .add(AdaptiveAvgPool2d([1, 1]))
            .add(Flatten::new());
        Ok(NiN { num_classes, in_channels, net })
    }
}

impl Module for NiN {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        self.net.forward(cx, x)
    }
}

/// The course's NiN at the top level of the store, dropout 0.5.
pub fn nin(store: &mut ParamStore, num_classes: usize, in_channels: usize) -> Result<NiN> {
    NiN::build(store, "", num_classes, in_channels, 0.5)
}
