//! The e-graph runs in the default pipeline: on every example model family
//! (MLP with dropout, LeNet-5, a ResNet-style CNN with BatchNorm, an LSTM
//! classifier) the optimized training step must compute what the
//! unoptimized one does, step after step, and the dump must show what the
//! e-graph fused and the cost before/after.

use kiln::nn::{self, Module};
use kiln::optim::{Adam, Sgd};
use kiln::{loss, Builder, CompileOptions, HostTensor, NodeId, ParamStore, Spec, f32_shape, i64_shape};

fn ramp(shape: &[usize], scale: f32) -> HostTensor {
    let n: usize = shape.iter().product();
    HostTensor::from_f32(shape.to_vec(), (0..n).map(|i| ((i * 7919 % 97) as f32 / 97.0 - 0.5) * scale).collect()).unwrap()
}

fn labels(n: usize) -> HostTensor {
    HostTensor::from_i64([n], (0..n as i64).map(|i| (i * 7) % 10).collect()).unwrap()
}

fn finish(b: &Builder, logits: NodeId, s: &ParamStore, adam: bool, batch: usize) -> Spec {
    let mut b = b.clone();
    let y = b.input("y", i64_shape([batch])).unwrap();
    let l = loss::cross_entropy_mean(&mut b, logits, y).unwrap();
    if adam { kiln::train_step(&b, l, s, Adam::new(1e-3)).unwrap() } else { kiln::train_step(&b, l, s, Sgd::new(0.01).momentum(0.9)).unwrap() }
}

fn mlp() -> (Spec, Vec<usize>) {
    let mut s = ParamStore::new(1);
    let net = nn::Sequential::new()
        .add(nn::Linear::new(&mut s, "fc1", 784, 32).unwrap())
        .add(nn::ReLU)
        .add(nn::Dropout::new(&mut s, 0.2).unwrap())
        .add(nn::Linear::new(&mut s, "fc2", 32, 10).unwrap());
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([8, 784])).unwrap();
    let logits = net.forward(&mut b, x).unwrap();
    (finish(&b, logits, &s, true, 8), vec![8, 784])
}

fn lenet() -> (Spec, Vec<usize>) {
    let mut s = ParamStore::new(2);
    let net = nn::Sequential::new()
        .add(nn::Conv2d::config(1, 6, 5).padding(2).build(&mut s, "conv1").unwrap())
        .add(nn::ReLU)
        .add(nn::MaxPool2d::new(2))
        .add(nn::Conv2d::new(&mut s, "conv2", 6, 16, 5).unwrap())
        .add(nn::ReLU)
        .add(nn::MaxPool2d::new(2))
        .add(nn::Flatten::new())
        .add(nn::Linear::new(&mut s, "fc1", 400, 120).unwrap())
        .add(nn::ReLU)
        .add(nn::Linear::new(&mut s, "fc2", 120, 84).unwrap())
        .add(nn::ReLU)
        .add(nn::Linear::new(&mut s, "fc3", 84, 10).unwrap());
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([4, 1, 28, 28])).unwrap();
    let logits = net.forward(&mut b, x).unwrap();
    (finish(&b, logits, &s, false, 4), vec![4, 1, 28, 28])
}

fn resnet() -> (Spec, Vec<usize>) {
    let mut s = ParamStore::new(3);
    let block = |s: &mut ParamStore, name: &str| {
        nn::Residual::new(
            nn::Sequential::new()
                .add(nn::Conv2d::config(8, 8, 3).padding(1).bias(false).build(s, &format!("{name}.conv1")).unwrap())
                .add(nn::BatchNorm::new2d(s, &format!("{name}.bn1"), 8).unwrap())
                .add(nn::ReLU)
                .add(nn::Conv2d::config(8, 8, 3).padding(1).bias(false).build(s, &format!("{name}.conv2")).unwrap())
                .add(nn::BatchNorm::new2d(s, &format!("{name}.bn2"), 8).unwrap()),
        )
    };
    let stem = nn::Sequential::new()
        .add(nn::Conv2d::config(1, 8, 3).padding(1).bias(false).build(&mut s, "stem").unwrap())
        .add(nn::BatchNorm::new2d(&mut s, "bn", 8).unwrap())
        .add(nn::ReLU);
    let b1 = block(&mut s, "layer1");
    let b2 = block(&mut s, "layer2");
    let head = nn::Linear::new(&mut s, "fc", 8, 10).unwrap();
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([4, 1, 10, 10])).unwrap();
    let mut h = stem.forward(&mut b, x).unwrap();
    for blk in [&b1, &b2] {
        h = blk.forward(&mut b, h).unwrap();
        h = nn::ReLU.forward(&mut b, h).unwrap();
    }
    let p = nn::global_avg_pool2d(&mut b, h).unwrap();
    let p = b.reshape(p, [4, 8]).unwrap();
    let logits = head.forward(&mut b, p).unwrap();
    (finish(&b, logits, &s, false, 4), vec![4, 1, 10, 10])
}

fn lstm() -> (Spec, Vec<usize>) {
    let mut s = ParamStore::new(4);
    let lstm = nn::Lstm::config(28, 16).batch_first(true).build(&mut s, "lstm").unwrap();
    let head = nn::Linear::new(&mut s, "fc", 16, 10).unwrap();
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([4, 6, 28])).unwrap();
    let o = lstm.forward_seq(&mut b, x, None, None).unwrap();
    let last = b.reshape(o.h_n, [4, 16]).unwrap();
    let logits = head.forward(&mut b, last).unwrap();
    (finish(&b, logits, &s, true, 4), vec![4, 6, 28])
}

fn check(name: &str, build: fn() -> (Spec, Vec<usize>), expect_fused: &[&str]) {
    let dir = std::env::temp_dir().join(format!("kiln-opt-vs-unopt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (spec, xshape) = build();
    let batch = xshape[0];
    let mut opt = kiln::compile(&spec, CompileOptions::interp().dump(&dir)).unwrap();
    let mut raw = kiln::compile(&spec, CompileOptions::interp().optimize(false)).unwrap();
    let (xs, ys) = (ramp(&xshape, 3.0), labels(batch));
    for step in 0..3 {
        let a = opt.run(&[("x", &xs), ("y", &ys)]).unwrap()["loss"].scalar().unwrap();
        let b = raw.run(&[("x", &xs), ("y", &ys)]).unwrap()["loss"].scalar().unwrap();
        assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{name} step {step}: optimized {a} vs unoptimized {b}");
    }
    for (k, v) in raw.state_dict() {
        let w = opt.state(&k).unwrap_or_else(|| panic!("{name}: optimized program lacks `{k}`"));
        for (p, q) in v.to_f64_vec().iter().zip(w.to_f64_vec()) {
            assert!((p - q).abs() <= 1e-4 * (1.0 + p.abs()), "{name}: `{k}` differs: {p} vs {q}");
        }
    }
    assert!(opt.graph().node_count() < raw.graph().node_count(), "{name}: the pipeline removed nothing");
    let report = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("egraph-report.txt"))
        .unwrap_or_else(|| panic!("{name}: no e-graph report in the dump"));
    let text = std::fs::read_to_string(report).unwrap();
    assert!(text.contains("cost") && text.contains("stop"), "{name}: report lacks cost/stop reason:\n{text}");
    for f in expect_fused {
        assert!(text.contains(f), "{name}: expected `{f}` in the e-graph report:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mlp_with_dropout() {
    check("mlp", mlp, &["fused_dense"]);
}

#[test]
fn lenet5() {
    check("lenet", lenet, &["fused_conv2d", "fused_dense", "act=relu"]);
}

#[test]
fn resnet_style_with_batchnorm() {
    check("resnet", resnet, &["fused_dense"]);
}

#[test]
fn lstm_classifier() {
    check("lstm", lstm, &["fused_dense"]);
}
