//! Every `kiln::models` network by name, fed MNIST digits the way the
//! `zoo` example and its test do: `[N, 1, 28, 28]` normalized digits,
//! padded in the graph with the background value to 32x32 for the
//! torchvision networks (resized up by nearest neighbour where a network
//! pools a 32x32 image away to nothing: AlexNet 64x64, NiN 96x96); the
//! course's 28x28 networks (LeNet-5, the Inception net, the tiny ViT) take
//! the digits as they are.

use kiln::nn::{Module, Upsample};
use kiln::{models, Builder, Error, NodeId, ParamStore, Result};

/// The names `zoo --model` accepts.
pub const MODELS: [&str; 20] = [
    "lenet5",
    "inception_net",
    "tiny_vit",
    "nin",
    "resnet18",
    "resnet34",
    "alexnet",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
    "googlenet",
    "densenet121",
    "densenet161",
    "densenet169",
    "densenet201",
];

/// A zoo network with the input size it is fed.
pub struct ZooModel {
    pub net: Box<dyn Module>,
    /// Side of the square image the network sees (28, 32, 64 or 96).
    pub image: usize,
}

/// Builds `name` for single-channel digits, 10 classes.
pub fn build(name: &str, store: &mut ParamStore) -> Result<ZooModel> {
    let (c, k) = (1, 10);
    let (net, image): (Box<dyn Module>, usize) = match name {
        "lenet5" => (Box::new(models::lenet5(store, k, c)?), 28),
        "inception_net" => (Box::new(models::inception_net(store, k, c)?), 28),
        "tiny_vit" => (Box::new(models::tiny_vit(store, k, c)?), 28),
        "nin" => (Box::new(models::nin(store, k, c)?), 96),
        "resnet18" => (Box::new(models::resnet18(store, k, c)?), 32),
        "resnet34" => (Box::new(models::resnet34(store, k, c)?), 32),
        "alexnet" => (Box::new(models::alexnet(store, k, c)?), 64),
        "vgg11" => (Box::new(models::vgg11(store, k, c)?), 32),
        "vgg11_bn" => (Box::new(models::vgg11_bn(store, k, c)?), 32),
        "vgg13" => (Box::new(models::vgg13(store, k, c)?), 32),
        "vgg13_bn" => (Box::new(models::vgg13_bn(store, k, c)?), 32),
        "vgg16" => (Box::new(models::vgg16(store, k, c)?), 32),
        "vgg16_bn" => (Box::new(models::vgg16_bn(store, k, c)?), 32),
        "vgg19" => (Box::new(models::vgg19(store, k, c)?), 32),
        "vgg19_bn" => (Box::new(models::vgg19_bn(store, k, c)?), 32),
        "googlenet" => (Box::new(models::googlenet(store, k, c)?), 32),
        "densenet121" => (Box::new(models::densenet121(store, k, c)?), 32),
        "densenet161" => (Box::new(models::densenet161(store, k, c)?), 32),
        "densenet169" => (Box::new(models::densenet169(store, k, c)?), 32),
        "densenet201" => (Box::new(models::densenet201(store, k, c)?), 32),
        other => return Err(Error::Config(format!("unknown model `{other}` (known: {})", MODELS.join(", ")))),
    };
    Ok(ZooModel { net, image })
}

impl ZooModel {
    /// Logits of `x` (`[N, 1, 28, 28]` digits normalized so that the
    /// background is `background`): padded to 32x32 and resized as
    /// the network needs.
    pub fn forward_digits(&self, b: &mut Builder, x: NodeId, background: f64) -> Result<NodeId> {
        let x = match self.image {
            28 => x,
            _ => b.pad(x, &[0, 0, 2, 2], &[0, 0, 2, 2], background)?,
        };
        let x = match self.image {
            28 | 32 => x,
            s => Upsample::nearest((s / 32) as f64).forward(b, x)?,
        };
        self.net.forward(b, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln::f32_shape;

    /// Every name builds; the small networks' graphs give [N, 10] logits
    /// from digits (the big ones only register parameters: drawing VGG's
    /// 130M initial weights is what would make this test slow).
    #[test]
    fn zoo_models_build() {
        for name in ["lenet5", "inception_net", "tiny_vit", "nin", "resnet18", "googlenet", "densenet121"] {
            let mut store = ParamStore::new(0);
            let m = build(name, &mut store).unwrap();
            let mut b = Builder::eval();
            let x = b.input("x", f32_shape([2, 1, 28, 28])).unwrap();
            let y = m.forward_digits(&mut b, x, -0.42).unwrap();
            assert_eq!(b.ty(y).shape.0, vec![2, 10], "{name}");
        }
        assert!(build("resnet50", &mut ParamStore::new(0)).is_err());
        assert_eq!(MODELS.len(), MODELS.iter().collect::<std::collections::BTreeSet<_>>().len());
    }
}
