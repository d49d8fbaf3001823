//! The model zoo: builders for classic networks whose parameters and
//! buffers carry exactly torchvision's state_dict names and shapes, so a
//! torchvision state_dict saved as safetensors loads unchanged into the
//! store ([`ParamStore::load`], before compiling) and gives torchvision's
//! logits.
//!
//! - torchvision: [`resnet18`], [`resnet34`], [`alexnet`], [`vgg11`] ...
//!   [`vgg19_bn`], [`googlenet`] (no auxiliary heads), [`densenet121`]
//!   (and 161/169/201); each has a config type for torchvision's options
//!   (`ResNetConfig::resnet18().zero_init_residual(true)`, ...).
//! - The course's small ones: [`lenet5`], [`nin`] (Network in Network),
//!   [`inception_net`] (the notes' Inception network for 28x28 digits) and
//!   [`tiny_vit`] (a small vision transformer).
//!
//! Every builder takes the number of classes and of input channels,
//! registers its parameters in the store in PyTorch's order (so
//! [`ParamStore::names`] lists them as `model.state_dict()` does, plus
//! BatchNorm's `num_batches_tracked`) with torchvision's initialization,
//! and returns a [`Module`](crate::nn::Module) mapping images to logits
//! `[N, num_classes]`. BatchNorm and Dropout follow the builder's mode, so
//! `Builder::eval()` gives `model.eval()`'s graph.

/// Chainable setters of a config's fields: `setters!(num_classes: usize)`
/// gives `pub fn num_classes(mut self, v: usize) -> Self`.
macro_rules! setters {
    ($($field:ident: $ty:ty),* $(,)?) => {
        $(
            pub fn $field(mut self, v: $ty) -> Self {
                self.$field = v;
                self
            }
        )*
    };
}

mod alexnet;
mod densenet;
mod googlenet;
mod inception;
mod lenet;
mod nin;
mod resnet;
mod vgg;
mod vit;

#[cfg(test)]
mod tests;

pub use alexnet::{alexnet, AlexNet, AlexNetConfig};
pub use densenet::{densenet121, densenet161, densenet169, densenet201, DenseNet, DenseNetConfig};
pub use googlenet::{googlenet, GoogLeNet, GoogLeNetConfig};
pub use inception::{inception_net, InceptionNet};
pub use lenet::{lenet5, LeNet5};
pub use nin::{nin, NiN};
pub use resnet::{resnet18, resnet34, ResNet, ResNetConfig};
pub use vgg::{vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn, Vgg, VggConfig, VggLayer};
pub use vit::{tiny_vit, TinyVit, TinyVitConfig};

use kiln_ir::InputRole;

use crate::init::{FanMode, Init, Nonlinearity};
use crate::nn::{pname, Conv2d, Conv2dConfig, Linear};
use crate::{Error, ParamStore, Result};

/// `num_classes` and `in_channels` must be at least 1 (PyTorch fails later,
/// inside a layer; here the error names the model).
pub(crate) fn check_sizes(model: &str, sizes: &[(&str, usize)]) -> Result<()> {
    match sizes.iter().find(|(_, v)| *v == 0) {
        Some((name, _)) => Err(Error::Config(format!("{model}: {name} must be at least 1"))),
        None => Ok(()),
    }
}

/// A dropout probability must be in [0, 1).
pub(crate) fn check_dropout(model: &str, name: &str, p: f64) -> Result<()> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(Error::Config(format!("{model}: {name} {p} must be in [0, 1)")))
    }
}

/// torchvision's conv init for ReLU networks (ResNet, VGG):
/// `kaiming_normal_(mode="fan_out", nonlinearity="relu")`.
pub(crate) const KAIMING_FAN_OUT: Init = Init::KaimingNormal { a: 0.0, mode: FanMode::FanOut, nonlinearity: Nonlinearity::Relu };

/// A Conv2d whose weight and bias are drawn from the given initializers
/// (the model's own init, drawn once instead of PyTorch's default followed
/// by a redraw: VGG's classifier alone has 100M weights).
pub(crate) fn conv(store: &mut ParamStore, name: &str, cfg: Conv2dConfig, weight: Init, bias: Init) -> Result<Conv2d> {
    let a = &cfg.attrs;
    if cfg.in_channels == 0 || cfg.out_channels == 0 || a.groups == 0 || !cfg.in_channels.is_multiple_of(a.groups) {
        return Err(Error::Config(format!("conv2d `{name}`: {} -> {} channels, groups {}", cfg.in_channels, cfg.out_channels, a.groups)));
    }
    let shape = [cfg.out_channels, cfg.in_channels / a.groups, cfg.kernel[0], cfg.kernel[1]];
    store.register(&pname(name, "weight"), InputRole::Param, shape, weight)?;
    if cfg.bias {
        store.register(&pname(name, "bias"), InputRole::Param, [cfg.out_channels], bias)?;
    }
    Ok(Conv2d { name: name.to_string(), cfg })
}

/// A Conv2d with PyTorch's default init (U(-1/sqrt(fan_in), 1/sqrt(fan_in))
/// for weight and bias).
pub(crate) fn conv_default(store: &mut ParamStore, name: &str, cfg: Conv2dConfig) -> Result<Conv2d> {
    let fan_in = cfg.in_channels / cfg.attrs.groups.max(1) * cfg.kernel[0] * cfg.kernel[1];
    let init = Init::torch_default(fan_in);
    conv(store, name, cfg, init, init)
}

/// A Linear layer (with bias) whose weight and bias come from the given
/// initializers.
pub(crate) fn linear(store: &mut ParamStore, name: &str, in_features: usize, out_features: usize, weight: Init, bias: Init) -> Result<Linear> {
    if in_features == 0 || out_features == 0 {
        return Err(Error::Config(format!("linear `{name}`: {in_features} -> {out_features} features")));
    }
    store.register(&pname(name, "weight"), InputRole::Param, [out_features, in_features], weight)?;
    store.register(&pname(name, "bias"), InputRole::Param, [out_features], bias)?;
    Ok(Linear { name: name.to_string(), cfg: Linear::config(in_features, out_features) })
}

/// A Linear layer with PyTorch's default init.
pub(crate) fn linear_default(store: &mut ParamStore, name: &str, in_features: usize, out_features: usize) -> Result<Linear> {
    let init = Init::torch_default(in_features);
    linear(store, name, in_features, out_features, init, init)
}
