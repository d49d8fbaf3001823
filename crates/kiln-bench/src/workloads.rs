//! The workloads of `../shared/bench/README.md`, built with kiln's facade
//! exactly as the PyTorch/JAX anchors define them: float32, PyTorch default
//! init (seeded), one fixed synthetic batch (standard-normal inputs, uniform
//! labels) reused every step.

use kiln::data::SplitMix64;
use kiln::nn::{self, Module};
use kiln::{f32_shape, i64_shape, loss, optim, Builder, HostTensor, ParamStore, Spec};

// The model-zoo rows; a path beside this file, so that the examples that
// include this file by path get them too.
#[path = "workloads_zoo.rs"]
mod zoo;

pub const ALL: [&str; 11] = [
    "W1-mlp-sgd",
    "W1-mlp-adam",
    "W2-mlp-infer-b1",
    "W2-mlp-infer-b1024",
    "W3-lenet5-sgd",
    "W4-resnet-sgd",
    "W5-lstm-adam",
    // The model-zoo rows (workloads_zoo.rs).
    "Z1-resnet18-sgd",
    "Z2-inception-sgd",
    "Z3-tinyvit-adam",
    "R18-resnet18-sgd",
];

/// Sequence lengths of the compile-time scaling rows (the W5 LSTM unrolled
/// over more steps).
pub const SCALING_STEPS: [usize; 3] = [32, 128, 512];

const SEED: u64 = 0;
const CLASSES: usize = 10;

/// A workload ready to compile: its graph and the per-call inputs.
pub struct Workload {
    pub name: &'static str,
    pub batch: usize,
    pub spec: Spec,
    pub inputs: Vec<(String, HostTensor)>,
}

fn normal(shape: &[usize], seed: u64) -> HostTensor {
    let n: usize = shape.iter().product();
    let mut r = SplitMix64::new(seed);
    let mut v = Vec::with_capacity(n + 1);
    while v.len() < n {
        // Box-Muller
        let (u1, u2) = (r.unit().max(1e-300), r.unit());
        let m = (-2.0 * u1.ln()).sqrt();
        v.push((m * (std::f64::consts::TAU * u2).cos()) as f32);
        v.push((m * (std::f64::consts::TAU * u2).sin()) as f32);
    }
    v.truncate(n);
    HostTensor::from_f32(shape.to_vec(), v).expect("sized")
}

fn labels(batch: usize, seed: u64) -> HostTensor {
    let mut r = SplitMix64::new(seed ^ 0xABCD);
    HostTensor::from_i64([batch], (0..batch).map(|_| r.below(CLASSES) as i64).collect()).expect("sized")
}

fn mlp(store: &mut ParamStore) -> kiln::Result<nn::Sequential> {
    Ok(nn::Sequential::new()
        .add(nn::Linear::new(store, "fc1", 784, 512)?)
        .add(nn::ReLU)
        .add(nn::Linear::new(store, "fc2", 512, 512)?)
        .add(nn::ReLU)
        .add(nn::Linear::new(store, "fc3", 512, 10)?))
}

fn lenet(store: &mut ParamStore) -> kiln::Result<nn::Sequential> {
    Ok(nn::Sequential::new()
        .add(nn::Conv2d::config(1, 6, 5).padding(2).build(store, "conv1")?)
        .add(nn::ReLU)
        .add(nn::MaxPool2d::new(2))
        .add(nn::Conv2d::new(store, "conv2", 6, 16, 5)?)
        .add(nn::ReLU)
        .add(nn::MaxPool2d::new(2))
        .add(nn::Flatten::new())
        .add(nn::Linear::new(store, "fc1", 400, 120)?)
        .add(nn::ReLU)
        .add(nn::Linear::new(store, "fc2", 120, 84)?)
        .add(nn::ReLU)
        .add(nn::Linear::new(store, "fc3", 84, 10)?))
}

fn conv_bn(store: &mut ParamStore, conv: &str, bn: &str, cin: usize, c: usize) -> kiln::Result<nn::Sequential> {
    Ok(nn::Sequential::new()
        .add(nn::Conv2d::config(cin, c, 3).padding(1).bias(false).build(store, conv)?)
        .add(nn::BatchNorm::config2d(c).eps(1e-5).momentum(0.1).build(store, bn)?))
}

fn resnet(store: &mut ParamStore) -> kiln::Result<nn::Sequential> {
    let c = 32;
    let mut net = nn::Sequential::new().add(conv_bn(store, "stem", "bn", 1, c)?).add(nn::ReLU);
    for i in 0..2 {
        let p = format!("blocks.{i}");
        let body = nn::Sequential::new()
            .add(conv_bn(store, &format!("{p}.conv1"), &format!("{p}.bn1"), c, c)?)
            .add(nn::ReLU)
            .add(conv_bn(store, &format!("{p}.conv2"), &format!("{p}.bn2"), c, c)?);
        net = net.add(nn::Residual::new(body)).add(nn::ReLU);
    }
    Ok(net
        .add(nn::Lambda(|b: &mut Builder, x| Ok(nn::global_avg_pool2d(b, x)?)))
        .add(nn::Flatten::new())
        .add(nn::Linear::new(store, "fc", c, CLASSES)?))
}

pub(crate) fn train(name: &'static str, batch: usize, x_shape: Vec<usize>, adam: bool, build: impl FnOnce(&mut ParamStore, &mut Builder, kiln::NodeId) -> kiln::Result<kiln::NodeId>) -> kiln::Result<Workload> {
    let mut store = ParamStore::new(SEED);
    let mut b = Builder::train();
    let x = b.input("x", f32_shape(x_shape.clone()))?;
    let y = b.input("y", i64_shape([batch]))?;
    let logits = build(&mut store, &mut b, x)?;
    let l = loss::cross_entropy_mean(&mut b, logits, y)?;
    let spec = if adam {
        kiln::train_step(&b, l, &store, optim::Adam::new(1e-3).betas(0.9, 0.999).eps(1e-8))?
    } else {
        kiln::train_step(&b, l, &store, optim::Sgd::new(0.01).momentum(0.9))?
    };
    Ok(Workload { name, batch, spec, inputs: vec![("x".into(), normal(&x_shape, SEED + 1)), ("y".into(), labels(batch, SEED + 2))] })
}

pub fn build(name: &str) -> kiln::Result<Workload> {
    match name {
        "W1-mlp-sgd" => train("W1-mlp-sgd", 128, vec![128, 784], false, |s, b, x| mlp(s)?.forward(b, x)),
        "W1-mlp-adam" => train("W1-mlp-adam", 128, vec![128, 784], true, |s, b, x| mlp(s)?.forward(b, x)),
        "W2-mlp-infer-b1" | "W2-mlp-infer-b1024" => {
            let (name, batch) = if name.ends_with("b1") { ("W2-mlp-infer-b1", 1) } else { ("W2-mlp-infer-b1024", 1024) };
            let mut store = ParamStore::new(SEED);
            let net = mlp(&mut store)?;
            let mut b = Builder::eval();
            let x = b.input("x", f32_shape([batch, 784]))?;
            let out = net.forward(&mut b, x)?;
            b.output("logits", out)?;
            let spec = kiln::inference(&b, &store)?;
            Ok(Workload { name, batch, spec, inputs: vec![("x".into(), normal(&[batch, 784], SEED + 1))] })
        }
        "W3-lenet5-sgd" => train("W3-lenet5-sgd", 64, vec![64, 1, 28, 28], false, |s, b, x| lenet(s)?.forward(b, x)),
        "W4-resnet-sgd" => train("W4-resnet-sgd", 32, vec![32, 1, 28, 28], false, |s, b, x| resnet(s)?.forward(b, x)),
        "W5-lstm-adam" => lstm("W5-lstm-adam", 32),
        // The scaling rows by name (`S128-lstm-adam`), so that one of them
        // can be run (or dumped) alone.
        other if let Some(steps) = scaling_steps(other) => lstm(SCALING_NAME, steps),
        other => zoo::build(other).unwrap_or_else(|| Err(kiln::Error::Config(format!("unknown workload `{other}` (known: {})", ALL.join(", "))))),
    }
}

/// The time steps a scaling row's name (`S<steps>-lstm-adam`) asks for.
pub fn scaling_steps(name: &str) -> Option<usize> {
    name.strip_prefix('S').and_then(|r| r.strip_suffix("-lstm-adam")).and_then(|n| n.parse::<usize>().ok()).filter(|&n| n > 0)
}

/// The workload name of every scaling row (its steps are printed beside).
pub const SCALING_NAME: &str = "S-lstm-adam";

/// W5's LSTM training step over a sequence of `steps` time steps (W5 is
/// 32); the scaling rows use the same network at 128 and 512.
pub fn lstm(name: &'static str, steps: usize) -> kiln::Result<Workload> {
    train(name, 32, vec![steps, 32, 64], true, |s, b, x| {
        let lstm = nn::Lstm::new(s, "lstm", 64, 256)?;
        let fc = nn::Linear::new(s, "fc", 256, CLASSES)?;
        let out = lstm.forward_seq(b, x, None, None)?;
        let h = b.reshape(out.h_n, [32, 256])?;
        fc.forward(b, h)
    })
}
