//! What the golden-zoo cases (tests/tests/golden_zoo_models.rs) leave out:
//! the other depths and options, the course models' sizes, errors, and a
//! training step through dense connectivity and BatchNorm.

use super::*;
use crate::nn::Module;
use crate::{f32_shape, i64_shape, Builder, CompileOptions, HostTensor, ParamStore};

/// Parameter count and logits shape of `model` on `input`.
fn logits_shape(model: &dyn Module, input: &[usize]) -> Vec<usize> {
    let mut b = Builder::eval();
    let x = b.input("x", f32_shape(input.to_vec())).unwrap();
    let y = model.forward(&mut b, x).unwrap();
    b.ty(y).shape.dims().to_vec()
}

/// torchvision's counts are for 1000 classes; a 10-class head has
/// `990 * (features + 1)` fewer.
fn ten_class(count_1000: usize, head_features: usize) -> usize {
    count_1000 - 990 * (head_features + 1)
}

#[test]
fn resnet34_has_torchvisions_size() {
    let mut s = ParamStore::new(0);
    let m = resnet34(&mut s, 10, 3).unwrap();
    assert_eq!(s.num_params(), ten_class(21_797_672, 512));
    assert_eq!(logits_shape(&m, &[2, 3, 32, 32]), [2, 10]);
    assert!(s.contains("layer3.5.bn2.running_var") && s.contains("layer4.0.downsample.0.weight") && !s.contains("layer1.0.downsample.0.weight"));
}

#[test]
fn zero_init_residual_zeroes_each_blocks_last_norm() {
    let mut s = ParamStore::new(0);
    let m = ResNetConfig::resnet18().num_classes(4).in_channels(1).zero_init_residual(true).build(&mut s, "net").unwrap();
    assert_eq!(logits_shape(&m, &[1, 1, 32, 32]), [1, 4]);
    assert!(s.get("net.layer2.1.bn2.weight").unwrap().to_f64_vec().iter().all(|&v| v == 0.0));
    assert!(s.get("net.layer2.1.bn1.weight").unwrap().to_f64_vec().iter().all(|&v| v == 1.0));
    assert_eq!(s.get("net.conv1.weight").unwrap().shape().dims(), &[64, 1, 7, 7]);
}

#[test]
fn small_input_stem_is_the_cifar_resnet18() {
    // The usual CIFAR-10 ResNet-18 (3x3 stride-1 stem, no max-pool) has
    // 11,173,962 parameters with 10 classes; its logits come from 4x4 maps.
    let mut s = ParamStore::new(0);
    let m = ResNetConfig::resnet18().num_classes(10).small_input_stem(true).build(&mut s, "").unwrap();
    assert_eq!(s.num_params(), 11_173_962);
    assert_eq!(s.get("conv1.weight").unwrap().shape().dims(), &[64, 3, 3, 3]);
    assert_eq!(logits_shape(&m, &[2, 3, 32, 32]), [2, 10]);
}

#[test]
fn vgg19_bn_and_densenet169_have_torchvisions_size() {
    // PyTorch's layer defaults draw faster than torchvision's normal init;
    // the count is the same.
    let mut s = ParamStore::new(0);
    let m = VggConfig::vgg19(true).num_classes(10).init_weights(false).build(&mut s, "").unwrap();
    assert_eq!(s.num_params(), ten_class(143_678_248, 4096));
    assert_eq!(logits_shape(&m, &[1, 3, 32, 32]), [1, 10]);
    assert!(s.get("features.49.weight").unwrap().shape().dims() == [512, 512, 3, 3] && s.contains("features.50.running_mean"));
    drop(s);
    let mut s = ParamStore::new(0);
    let m = densenet169(&mut s, 10, 3).unwrap();
    assert_eq!(s.num_params(), ten_class(14_149_480, 1664));
    assert_eq!(logits_shape(&m, &[1, 3, 32, 32]), [1, 10]);
    assert!(s.contains("features.denseblock4.denselayer32.conv2.weight"));
}

#[test]
fn course_models_have_their_sizes() {
    let mut s = ParamStore::new(0);
    let m = lenet5(&mut s, 10, 1).unwrap();
    assert_eq!(s.num_params(), 61_706);
    assert_eq!(logits_shape(&m, &[3, 1, 28, 28]), [3, 10]);

    let mut s = ParamStore::new(0);
    let m = nin(&mut s, 10, 1).unwrap();
    assert_eq!(s.num_params(), 1_992_166);
    assert_eq!(logits_shape(&m, &[1, 1, 224, 224]), [1, 10]);
    assert!(s.contains("0.0.weight") && s.contains("7.4.bias"));

    let mut s = ParamStore::new(0);
    let m = inception_net(&mut s, 10, 1).unwrap();
    assert_eq!(logits_shape(&m, &[2, 1, 28, 28]), [2, 10]);
    assert_eq!(s.names().first().map(String::as_str), Some("conv1.weight"));

    let mut s = ParamStore::new(0);
    let m = tiny_vit(&mut s, 10, 1).unwrap();
    assert_eq!(s.num_params(), 5_738);
    assert_eq!(logits_shape(&m, &[2, 1, 28, 28]), [2, 10]);
}

#[test]
fn bad_configurations_are_errors_naming_the_model() {
    let msg = |e: crate::Error| e.to_string();
    let mut s = ParamStore::new(0);
    assert!(msg(resnet18(&mut s, 0, 3).err().unwrap()).contains("resnet: num_classes"));
    assert!(msg(lenet5(&mut s, 10, 0).err().unwrap()).contains("lenet5: in_channels"));
    assert!(msg(GoogLeNetConfig::default().in_channels(1).transform_input(true).build(&mut s, "").err().unwrap()).contains("3 input channels"));
    assert!(msg(AlexNetConfig::default().dropout(1.0).build(&mut s, "").err().unwrap()).contains("dropout"));
    assert!(msg(TinyVitConfig::default().patch_size(5).build(&mut s, "").err().unwrap()).contains("multiple of patch size"));
    // A wrong input is a typed error at graph-build time.
    let mut s = ParamStore::new(0);
    let vit = tiny_vit(&mut s, 10, 1).unwrap();
    let mut b = Builder::eval();
    let x = b.input("x", f32_shape([1, 1, 21, 21])).unwrap();
    assert!(msg(vit.forward(&mut b, x).unwrap_err()).contains("28x28"));
    let mut s = ParamStore::new(0);
    let lenet = lenet5(&mut s, 10, 1).unwrap();
    let x = b.input("y", f32_shape([1, 3, 28, 28])).unwrap();
    assert!(lenet.forward(&mut b, x).is_err());
}

/// torchvision's `_transform_input` on known values.
#[test]
fn googlenet_transform_input_rescales_each_channel() {
    let mut s = ParamStore::new(0);
    let m = GoogLeNetConfig::default().num_classes(3).transform_input(true).build(&mut s, "").unwrap();
    assert_eq!(logits_shape(&m, &[1, 3, 32, 32]), [1, 3]);
    let mut b = Builder::eval();
    let x = b.input("x", f32_shape([1, 3, 1, 1])).unwrap();
    let y = super::googlenet::transform_input(&mut b, x).unwrap();
    b.output("y", y).unwrap();
    let mut p = crate::compile(&crate::inference(&b, &ParamStore::new(0)).unwrap(), CompileOptions::interp()).unwrap();
    let out = p.run(&[("x", &HostTensor::from_f32([1, 3, 1, 1], vec![1.0, 0.0, -1.0]).unwrap())]).unwrap();
    let want = [0.229 / 0.5 + (0.485 - 0.5) / 0.5, (0.456 - 0.5) / 0.5, -0.225 / 0.5 + (0.406 - 0.5) / 0.5];
    for (g, w) in out["y"].to_f64_vec().iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{g} vs {w}");
    }
}

/// A small DenseNet trains: BatchNorm in train mode, gradients through
/// every concatenation of the dense blocks, SGD steps lower the loss.
#[test]
fn a_small_densenet_trains() {
    let mut s = ParamStore::new(1);
    let cfg = DenseNetConfig::new(4, &[2, 2], 8).bn_size(2).num_classes(3).in_channels(1);
    let m = cfg.build(&mut s, "").unwrap();
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([4, 1, 16, 16])).unwrap();
    let y = b.input("y", i64_shape([4])).unwrap();
    let logits = m.forward(&mut b, x).unwrap();
    let l = crate::loss::cross_entropy_mean(&mut b, logits, y).unwrap();
    let step = crate::train_step(&b, l, &s, crate::optim::Sgd::new(0.1)).unwrap();
    let mut p = crate::compile(&step, CompileOptions::interp()).unwrap();
    let xs = HostTensor::from_f32([4, 1, 16, 16], (0..1024).map(|i| ((i * 37 % 101) as f32 / 101.0) - 0.5 + (i / 256) as f32 * 0.3).collect()).unwrap();
    let ys = HostTensor::from_i64([4], vec![0, 1, 2, 1]).unwrap();
    let losses: Vec<f64> = (0..4).map(|_| p.run(&[("x", &xs), ("y", &ys)]).unwrap()["loss"].scalar().unwrap()).collect();
    assert!(losses[3] < losses[0], "{losses:?}");
    assert!(p.state("features.denseblock2.denselayer2.norm1.running_mean").is_some());
}
