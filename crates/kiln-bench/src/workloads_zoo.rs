//! Model-zoo training steps (issue #14), built like the W1-W5 workloads
//! (float32, seeded PyTorch-default or torchvision init, one fixed
//! synthetic batch of standard-normal inputs and uniform labels reused
//! every step); `scripts/zoo_torch_bench.py` runs the same three networks
//! in PyTorch eager:
//!
//! - `Z1-resnet18-sgd`: torchvision's resnet18 on 3x32x32, batch 32, SGD
//!   lr 0.01 momentum 0.9, 10 classes;
//! - `Z2-inception-sgd`: the course notes' Inception net on 1x28x28,
//!   batch 64, SGD lr 0.01 momentum 0.9;
//! - `R18-resnet18-sgd` (issue #16's ResNet-18): the CIFAR-10 ResNet-18
//!   (64-512 channels, 3x3 stride-1 stem without max-pool) on 3x32x32,
//!   batch 16, SGD lr 0.01 momentum 0.9;
//! - `Z3-tinyvit-adam`: the course's tiny ViT (7x7 patches, width 16, 2
//!   layers of 4 heads, feed-forward 32) on 1x28x28, batch 64, Adam 1e-3.

use kiln::models;
use kiln::nn::Module;

use super::{train, Workload};

pub fn build(name: &str) -> Option<kiln::Result<Workload>> {
    Some(match name {
        "Z1-resnet18-sgd" => train("Z1-resnet18-sgd", 32, vec![32, 3, 32, 32], false, |s, b, x| models::resnet18(s, 10, 3)?.forward(b, x)),
        "Z2-inception-sgd" => train("Z2-inception-sgd", 64, vec![64, 1, 28, 28], false, |s, b, x| models::inception_net(s, 10, 1)?.forward(b, x)),
        "Z3-tinyvit-adam" => train("Z3-tinyvit-adam", 64, vec![64, 1, 28, 28], true, |s, b, x| models::tiny_vit(s, 10, 1)?.forward(b, x)),
        "R18-resnet18-sgd" => train("R18-resnet18-sgd", 16, vec![16, 3, 32, 32], false, |s, b, x| {
            models::ResNetConfig::resnet18().num_classes(10).small_input_stem(true).build(s, "")?.forward(b, x)
        }),
        _ => return None,
    })
}
