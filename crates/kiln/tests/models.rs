//! Models in code: parameter sharing, seeded init, state dicts, modes,
//! dropout, BatchNorm state, learning-rate changes, clipping, penalties and
//! build-time shape errors.


use kiln::nn::{self, Module};
use kiln::optim::{self, schedule::LrSchedule, Rule, Sgd};
use kiln::{loss, Builder, CompileOptions, HostTensor, InputRole, ParamStore, f32_shape, i64_shape};

fn ramp(shape: &[usize], scale: f32) -> HostTensor {
    let n: usize = shape.iter().product();
    HostTensor::from_f32(shape.to_vec(), (0..n).map(|i| ((i * 7919 % 97) as f32 / 97.0 - 0.5) * scale).collect()).unwrap()
}

fn vec_of(t: &HostTensor) -> Vec<f64> {
    t.to_f64_vec()
}

#[test]
fn a_layer_applied_twice_shares_one_parameter() {
    let mut s = ParamStore::new(0);
    let fc = nn::Linear::new(&mut s, "fc", 4, 4).unwrap();
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([2, 4])).unwrap();
    let h = fc.forward(&mut b, x).unwrap();
    let h = nn::tanh(&mut b, h).unwrap();
    let y = fc.forward(&mut b, h).unwrap();
    let l = b.sum_all(y).unwrap();
    let params: Vec<_> = b.inputs().into_iter().filter(|(_, _, r)| *r == InputRole::Param).map(|(_, n, _)| n.to_string()).collect();
    assert_eq!(params, ["fc.weight", "fc.bias"]);
    let step = kiln::train_step(&b, l, &s, Sgd::new(0.1)).unwrap();
    let mut p = kiln::compile(&step, CompileOptions::interp()).unwrap();
    let before = p.state("fc.weight").unwrap();
    p.run(&[("x", ramp(&[2, 4], 1.0))]).unwrap();
    let after = p.state("fc.weight").unwrap();
    assert_ne!(before, after);
    assert_eq!(p.model_state_dict().len(), 2);

    // The gradient of the shared weight is the sum over both uses: compare
    // with the same network written with two separate (equal) weights.
    let mut s2 = ParamStore::new(0);
    let a = nn::Linear::new(&mut s2, "a", 4, 4).unwrap();
    let c = nn::Linear::new(&mut s2, "c", 4, 4).unwrap();
    for leaf in ["weight", "bias"] {
        let v = s.get(&format!("fc.{leaf}")).unwrap().clone();
        s2.set(&format!("a.{leaf}"), v.clone()).unwrap();
        s2.set(&format!("c.{leaf}"), v).unwrap();
    }
    let mut b2 = Builder::train();
    let x2 = b2.input("x", f32_shape([2, 4])).unwrap();
    let h2 = a.forward(&mut b2, x2).unwrap();
    let h2 = nn::tanh(&mut b2, h2).unwrap();
    let y2 = c.forward(&mut b2, h2).unwrap();
    let l2 = b2.sum_all(y2).unwrap();
    let mut p2 = kiln::compile(&kiln::train_step(&b2, l2, &s2, Sgd::new(0.1)).unwrap(), CompileOptions::interp()).unwrap();
    p2.run(&[("x", ramp(&[2, 4], 1.0))]).unwrap();
    // shared update = w - lr (g_a + g_c) = a_after + c_after - w
    let w = vec_of(&before);
    let (aa, ca) = (vec_of(&p2.state("a.weight").unwrap()), vec_of(&p2.state("c.weight").unwrap()));
    for (i, got) in vec_of(&after).iter().enumerate() {
        let want = aa[i] + ca[i] - w[i];
        assert!((got - want).abs() < 1e-5, "element {i}: {got} vs {want}");
    }
}

#[test]
fn the_same_seed_builds_the_same_model() {
    let build = |seed| {
        let mut s = ParamStore::new(seed);
        nn::Linear::new(&mut s, "fc1", 8, 5).unwrap();
        nn::Conv2d::config(3, 4, 3).groups(1).build(&mut s, "conv").unwrap();
        nn::Lstm::new(&mut s, "lstm", 3, 4).unwrap();
        nn::Embedding::new(&mut s, "emb", 10, 3).unwrap();
        s.state_dict()
    };
    assert_eq!(build(7), build(7));
    assert_ne!(build(7), build(8));
    let d = build(1);
    // PyTorch layouts and default init bounds.
    assert_eq!(d["fc1.weight"].shape().dims(), &[5, 8]);
    assert!(d["fc1.weight"].to_f64_vec().iter().all(|v| v.abs() <= 1.0 / 8f64.sqrt()));
    assert_eq!(d["conv.weight"].shape().dims(), &[4, 3, 3, 3]);
    assert!(d["conv.weight"].to_f64_vec().iter().all(|v| v.abs() <= 1.0 / 27f64.sqrt()));
    assert_eq!(d["lstm.weight_ih_l0"].shape().dims(), &[16, 3]);
    assert_eq!(d["lstm.bias_hh_l0"].shape().dims(), &[16]);
}

#[test]
fn state_dicts_round_trip_through_safetensors() {
    let dir = std::env::temp_dir().join(format!("kiln-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut s = ParamStore::new(3);
    let net = nn::Sequential::new()
        .add(nn::Linear::new(&mut s, "fc1", 6, 8).unwrap())
        .add(nn::BatchNorm::new1d(&mut s, "bn1", 8).unwrap())
        .add(nn::ReLU)
        .add(nn::Linear::new(&mut s, "fc2", 8, 3).unwrap());
    s.save(dir.join("store.safetensors")).unwrap();
    let mut s2 = ParamStore::new(99);
    nn::Linear::new(&mut s2, "fc1", 6, 8).unwrap();
    nn::BatchNorm::new1d(&mut s2, "bn1", 8).unwrap();
    nn::Linear::new(&mut s2, "fc2", 8, 3).unwrap();
    assert_ne!(s.state_dict(), s2.state_dict());
    s2.load(dir.join("store.safetensors")).unwrap();
    assert_eq!(s.state_dict(), s2.state_dict());

    // Train a few steps, save everything (optimizer state too), load it into
    // a fresh program: both continue identically.
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([4, 6])).unwrap();
    let y = b.input("y", i64_shape([4])).unwrap();
    let logits = net.forward(&mut b, x).unwrap();
    let l = loss::cross_entropy_mean(&mut b, logits, y).unwrap();
    let spec = kiln::train_step(&b, l, &s, optim::Adam::new(0.01)).unwrap();
    let mut p = kiln::compile(&spec, CompileOptions::interp()).unwrap();
    let xs = ramp(&[4, 6], 2.0);
    let ys = HostTensor::from_i64([4], vec![0, 2, 1, 2]).unwrap();
    for _ in 0..3 {
        p.run(&[("x", &xs), ("y", &ys)]).unwrap();
    }
    p.save_state(dir.join("all.safetensors")).unwrap();
    let mut q = kiln::compile(&spec, CompileOptions::interp()).unwrap();
    q.load_state(dir.join("all.safetensors")).unwrap();
    assert_eq!(p.state_dict(), q.state_dict());
    let a = p.run(&[("x", &xs), ("y", &ys)]).unwrap()["loss"].clone();
    let c = q.run(&[("x", &xs), ("y", &ys)]).unwrap()["loss"].clone();
    assert_eq!(a, c);
    // PyTorch-style weights only: params and buffers, no optimizer state.
    let w = p.model_state_dict();
    assert!(w.contains_key("bn1.running_mean") && w.contains_key("fc2.weight"));
    assert!(w.keys().all(|k| !k.starts_with("optim.")));
    assert!(p.state_dict().contains_key("optim.fc1.weight.exp_avg"));
    // Trained weights flow back into the store.
    p.sync_to(&mut s).unwrap();
    assert_eq!(s.get("fc1.weight").unwrap(), &p.state("fc1.weight").unwrap());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn dropout_draws_a_new_mask_each_step_and_is_identity_in_eval() {
    let mut s = ParamStore::new(0);
    let d = nn::Dropout::new(&mut s, 0.25).unwrap();
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([64, 32])).unwrap();
    let y = d.forward(&mut b, x).unwrap();
    b.output("y", y).unwrap();
    let mut p = kiln::compile(&kiln::inference(&b, &s).unwrap(), CompileOptions::interp()).unwrap();
    let ones = HostTensor::from_f32([64, 32], vec![1.0; 2048]).unwrap();
    let a = p.run(&[("x", &ones)]).unwrap()["y"].to_f64_vec();
    let c = p.run(&[("x", &ones)]).unwrap()["y"].to_f64_vec();
    assert_ne!(a, c, "each step draws a new mask");
    let zeros = a.iter().filter(|v| **v == 0.0).count() as f64 / a.len() as f64;
    assert!((zeros - 0.25).abs() < 0.04, "dropped fraction {zeros}");
    assert!(a.iter().all(|v| *v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
    assert_eq!(p.state(nn::RNG_STEP).unwrap().scalar().unwrap(), 2.0);

    let mut e = Builder::eval();
    let x = e.input("x", f32_shape([64, 32])).unwrap();
    let y = d.forward(&mut e, x).unwrap();
    assert_eq!(y, x, "eval-mode dropout adds nothing");
}

#[test]
fn batchnorm_updates_running_stats_in_train_and_uses_them_in_eval() {
    let mut s = ParamStore::new(0);
    let bn = nn::BatchNorm::new2d(&mut s, "bn", 2).unwrap();
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([4, 2, 3, 3])).unwrap();
    let y = bn.forward(&mut b, x).unwrap();
    b.output("y", y).unwrap();
    let mut p = kiln::compile(&kiln::inference(&b, &s).unwrap(), CompileOptions::interp()).unwrap();
    let xs = ramp(&[4, 2, 3, 3], 4.0);
    p.run(&[("x", &xs)]).unwrap();
    let rm = p.state("bn.running_mean").unwrap().to_f64_vec();
    assert!(rm.iter().any(|v| *v != 0.0));
    assert_eq!(p.state("bn.num_batches_tracked").unwrap().scalar().unwrap(), 1.0);
    p.sync_to(&mut s).unwrap();

    let mut e = Builder::eval();
    let x = e.input("x", f32_shape([4, 2, 3, 3])).unwrap();
    let y = bn.forward(&mut e, x).unwrap();
    e.output("y", y).unwrap();
    assert!(e.updates().is_empty(), "eval graphs update nothing");
    let mut q = kiln::compile(&kiln::inference(&e, &s).unwrap(), CompileOptions::interp()).unwrap();
    let out = q.run(&[("x", &xs)]).unwrap()["y"].to_f64_vec();
    let rv = s.get("bn.running_var").unwrap().to_f64_vec();
    let xv = xs.to_f64_vec();
    for (i, got) in out.iter().enumerate() {
        let c = (i / 9) % 2;
        let want = (xv[i] - rm[c]) / (rv[c] + 1e-5).sqrt();
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
}

fn tiny_regression(opt: impl optim::Optimizer) -> (kiln::Program, HostTensor, HostTensor) {
    let mut s = ParamStore::new(5);
    let fc = nn::Linear::new(&mut s, "fc", 3, 2).unwrap();
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([5, 3])).unwrap();
    let t = b.input("t", f32_shape([5, 2])).unwrap();
    let y = fc.forward(&mut b, x).unwrap();
    let l = loss::mse(&mut b, y, t, loss::Reduction::Mean).unwrap();
    let p = kiln::compile(&kiln::train_step(&b, l, &s, opt).unwrap(), CompileOptions::interp()).unwrap();
    (p, ramp(&[5, 3], 3.0), ramp(&[5, 2], 10.0))
}

#[test]
fn the_learning_rate_is_a_runtime_value() {
    let (mut p, xs, ts) = tiny_regression(Sgd::new(0.1));
    assert_eq!(p.lr(), Some(0.1f32 as f64));
    p.set_lr(0.0).unwrap();
    let before = p.model_state_dict();
    p.run(&[("x", &xs), ("t", &ts)]).unwrap();
    assert_eq!(before, p.model_state_dict(), "lr 0 leaves the weights alone");
    let sched = optim::schedule::Cosine { base: 0.05, t_max: 10, eta_min: 0.0 };
    let mut losses = Vec::new();
    for k in 0..10 {
        p.set_lr(sched.lr(k)).unwrap();
        losses.push(p.run(&[("x", &xs), ("t", &ts)]).unwrap()["loss"].scalar().unwrap());
    }
    assert!(losses[9] < losses[0], "{losses:?}");
    assert_eq!(p.state(optim::STEP).unwrap().scalar().unwrap(), 11.0);
}

#[test]
fn gradient_clipping_bounds_the_step() {
    let (mut p, xs, ts) = tiny_regression(Sgd::new(1.0).clip_grad_norm(0.01));
    let before: Vec<f64> = ["fc.weight", "fc.bias"].iter().flat_map(|n| p.state(n).unwrap().to_f64_vec()).collect();
    p.run(&[("x", &xs), ("t", &ts)]).unwrap();
    let after: Vec<f64> = ["fc.weight", "fc.bias"].iter().flat_map(|n| p.state(n).unwrap().to_f64_vec()).collect();
    let norm: f64 = before.iter().zip(&after).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt();
    assert!((norm - 0.01).abs() < 1e-4, "step norm {norm}");

    let (mut p, xs, ts) = tiny_regression(Sgd::new(1.0).clip_grad_value(0.001));
    let w0 = p.state("fc.weight").unwrap().to_f64_vec();
    p.run(&[("x", &xs), ("t", &ts)]).unwrap();
    let w1 = p.state("fc.weight").unwrap().to_f64_vec();
    assert!(w0.iter().zip(&w1).all(|(a, b)| (a - b).abs() <= 0.001 + 1e-7));
}

#[test]
fn penalties_add_their_gradient() {
    let mut s = ParamStore::new(1);
    nn::Linear::new(&mut s, "fc", 3, 2).unwrap();
    let mut b = Builder::train();
    let w = b.param("fc.weight", [2, 3]).unwrap();
    let bias = b.param("fc.bias", [2]).unwrap();
    let l2 = loss::l2_penalty(&mut b, &[w], 0.5).unwrap();
    let l1 = loss::l1_penalty(&mut b, &[bias], 0.25).unwrap();
    let total = b.add(l2, l1).unwrap();
    let mut p = kiln::compile(&kiln::train_step(&b, total, &s, Sgd::new(0.1)).unwrap(), CompileOptions::interp()).unwrap();
    let w0 = s.get("fc.weight").unwrap().to_f64_vec();
    let b0 = s.get("fc.bias").unwrap().to_f64_vec();
    let out = p.run::<HostTensor>(&[]).unwrap();
    let want: f64 = 0.5 * w0.iter().map(|v| v * v).sum::<f64>() + 0.25 * b0.iter().map(|v| v.abs()).sum::<f64>();
    assert!((out["loss"].scalar().unwrap() - want).abs() < 1e-5);
    // d/dw 0.5 |w|^2 = w; d/db 0.25 |b|_1 = 0.25 sign(b).
    for (a, b) in p.state("fc.weight").unwrap().to_f64_vec().iter().zip(&w0) {
        assert!((a - 0.9 * b).abs() < 1e-6);
    }
    for (a, b) in p.state("fc.bias").unwrap().to_f64_vec().iter().zip(&b0) {
        assert!((a - (b - 0.1 * 0.25 * b.signum())).abs() < 1e-6);
    }
    let e = loss::elastic_net(&mut b, &[w], 0.1, 0.2).unwrap();
    assert_eq!(b.ty(e).shape.rank(), 0);
}

#[test]
fn shape_errors_surface_at_build_time_naming_the_nodes() {
    let mut s = ParamStore::new(0);
    let fc = nn::Linear::new(&mut s, "fc", 4, 3).unwrap();
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([2, 5])).unwrap();
    let err = fc.forward(&mut b, x).unwrap_err().to_string();
    assert!(err.contains("%0") && err.contains("f32[2,5]"), "{err}");
    let conv = nn::Conv2d::new(&mut s, "conv", 3, 8, 3).unwrap();
    let img = b.input("img", f32_shape([1, 3, 2, 2])).unwrap();
    let err = conv.forward(&mut b, img).unwrap_err().to_string();
    assert!(err.contains("conv2d(%") && err.contains("f32[1,3,2,2]"), "{err}");
    let bad = b.input("bad", f32_shape([2, 3])).unwrap();
    let y = b.input("y", i64_shape([4])).unwrap();
    let err = loss::cross_entropy_mean(&mut b, bad, y).unwrap_err().to_string();
    assert!(err.contains(&bad.to_string()), "{err}");
    // A param name reused with another shape is an error, not silent sharing.
    let other = nn::Linear::config(4, 3).build(&mut s, "fc2").unwrap();
    let mut b2 = Builder::train();
    let x2 = b2.input("x", f32_shape([1, 4])).unwrap();
    b2.param("fc2.weight", [7]).unwrap();
    let err = other.forward(&mut b2, x2).unwrap_err();
    assert!(matches!(&err, kiln::Error::ValueType { name, .. } if name == "fc2.weight"), "{err:?}");
    assert!(err.to_string().contains("f32[7]") && err.to_string().contains("f32[3,4]"), "{err}");
    let err = nn::Linear::new(&mut s, "fc", 4, 3).unwrap_err();
    assert!(matches!(&err, kiln::Error::DuplicateParam(n) if n == "fc.weight"), "duplicate registration: {err:?}");
}

#[test]
fn residual_sequential_conv_net_trains_and_infers() {
    let mut s = ParamStore::new(11);
    let block = nn::Residual::new(
        nn::Sequential::new()
            .add(nn::Conv2d::config(4, 4, 3).padding(1).bias(false).build(&mut s, "block.conv1").unwrap())
            .add(nn::BatchNorm::new2d(&mut s, "block.bn1", 4).unwrap())
            .add(nn::ReLU),
    );
    let net = nn::Sequential::new()
        .add(nn::Conv2d::config(1, 4, 3).padding(1).build(&mut s, "stem").unwrap())
        .add(block)
        .add(nn::MaxPool2d::new(2))
        .add(nn::AdaptiveAvgPool2d([1, 1]))
        .add(nn::Flatten::new())
        .add(nn::Dropout::new(&mut s, 0.1).unwrap())
        .add(nn::Linear::new(&mut s, "head", 4, 3).unwrap());
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([6, 1, 6, 6])).unwrap();
    let y = b.input("y", i64_shape([6])).unwrap();
    let logits = net.forward(&mut b, x).unwrap();
    b.output("logits", logits).unwrap();
    let l = loss::cross_entropy_mean(&mut b, logits, y).unwrap();
    let spec = kiln::train_step(&b, l, &s, optim::Adam::new(0.02)).unwrap();
    let mut p = kiln::compile(&spec, CompileOptions::interp()).unwrap();
    let xs = ramp(&[6, 1, 6, 6], 2.0);
    let ys = HostTensor::from_i64([6], vec![0, 1, 2, 0, 1, 2]).unwrap();
    let mut losses = Vec::new();
    for _ in 0..15 {
        let out = p.run(&[("x", &xs), ("y", &ys)]).unwrap();
        assert_eq!(out["logits"].shape().dims(), &[6, 3]);
        losses.push(out["loss"].scalar().unwrap());
    }
    assert!(losses[14] < 0.8 * losses[0], "{losses:?}");

    let mut e = Builder::eval();
    let x = e.input("x", f32_shape([6, 1, 6, 6])).unwrap();
    let out = net.forward(&mut e, x).unwrap();
    e.output("logits", out).unwrap();
    let mut q = kiln::compile(&kiln::inference(&e, &s).unwrap(), CompileOptions::interp()).unwrap();
    q.load_from(&p).unwrap();
    let a = q.run(&[("x", &xs)]).unwrap()["logits"].clone();
    let c = q.run(&[("x", &xs)]).unwrap()["logits"].clone();
    assert_eq!(a, c, "inference is deterministic");
}

#[test]
fn cross_entropy_ignores_the_ignore_index() {
    let logits = ramp(&[4, 3], 4.0);
    let run = |labels: Vec<i64>, n: usize, opts: loss::CrossEntropyOptions| {
        let mut b = Builder::train();
        let x = b.input("x", f32_shape([n, 3])).unwrap();
        let y = b.input("y", i64_shape([n])).unwrap();
        let l = loss::cross_entropy(&mut b, x, y, &opts).unwrap();
        b.output("l", l).unwrap();
        let mut p = kiln::compile(&kiln::inference(&b, &ParamStore::new(0)).unwrap(), CompileOptions::interp()).unwrap();
        let xs = HostTensor::from_f32([n, 3], logits.to_f32_vec()[..n * 3].to_vec()).unwrap();
        p.run(&[("x", xs), ("y", HostTensor::from_i64([n], labels).unwrap())]).unwrap()["l"].scalar().unwrap()
    };
    let w = loss::CrossEntropyOptions::default().weight(vec![0.5, 2.0, 1.0]);
    let with_ignored = run(vec![2, 0, 1, -100], 4, w.clone().ignore_index(-100));
    let without = run(vec![2, 0, 1], 3, w);
    assert!((with_ignored - without).abs() < 1e-6, "{with_ignored} vs {without}");
}

#[test]
fn batchnorm_cumulative_average_and_no_running_stats() {
    let mut s = ParamStore::new(0);
    let bn = nn::BatchNorm::config1d(3).cumulative_average().build(&mut s, "bn").unwrap();
    let plain = nn::BatchNorm::config1d(3).track_running_stats(false).affine(false).build(&mut s, "plain").unwrap();
    assert!(!s.contains("plain.running_mean"));
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([4, 3])).unwrap();
    let y = bn.forward(&mut b, x).unwrap();
    b.output("y", y).unwrap();
    let mut p = kiln::compile(&kiln::inference(&b, &s).unwrap(), CompileOptions::interp()).unwrap();
    let batches = [ramp(&[4, 3], 2.0), ramp(&[4, 3], -5.0)];
    for xs in &batches {
        p.run(&[("x", xs)]).unwrap();
    }
    // Cumulative average: the running mean is the mean of the batch means.
    let rm = p.state("bn.running_mean").unwrap().to_f64_vec();
    for (c, got) in rm.iter().enumerate() {
        let mean = |t: &HostTensor| (0..4).map(|i| t.to_f64_vec()[i * 3 + c]).sum::<f64>() / 4.0;
        let want = (mean(&batches[0]) + mean(&batches[1])) / 2.0;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }
    // Without running stats, eval mode still normalizes with the batch.
    let mut e = Builder::eval();
    let x = e.input("x", f32_shape([4, 3])).unwrap();
    let y = plain.forward(&mut e, x).unwrap();
    e.output("y", y).unwrap();
    let mut q = kiln::compile(&kiln::inference(&e, &s).unwrap(), CompileOptions::interp()).unwrap();
    let out = q.run(&[("x", &batches[0])]).unwrap()["y"].to_f64_vec();
    for c in 0..3 {
        let m: f64 = (0..4).map(|i| out[i * 3 + c]).sum::<f64>() / 4.0;
        assert!(m.abs() < 1e-5);
    }
}

#[test]
fn weighted_bce_scales_each_element() {
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([2, 2])).unwrap();
    let t = b.input("t", f32_shape([2, 2])).unwrap();
    let w = b.input("w", f32_shape([2])).unwrap();
    let plain = loss::bce_with_logits(&mut b, x, t, None, loss::Reduction::None).unwrap();
    let weighted = loss::bce_weighted(&mut b, x, t, w, true, loss::Reduction::Sum).unwrap();
    b.output("plain", plain).unwrap();
    b.output("weighted", weighted).unwrap();
    let mut p = kiln::compile(&kiln::inference(&b, &ParamStore::new(0)).unwrap(), CompileOptions::interp()).unwrap();
    let out = p
        .run(&[
            ("x", HostTensor::from_f32([2, 2], vec![0.5, -1.0, 40.0, -2.0]).unwrap()),
            ("t", HostTensor::from_f32([2, 2], vec![1.0, 0.0, 0.0, 1.0]).unwrap()),
            ("w", HostTensor::from_f32([2], vec![2.0, 0.5]).unwrap()),
        ])
        .unwrap();
    let pl = out["plain"].to_f64_vec();
    let want = 2.0 * pl[0] + 0.5 * pl[1] + 2.0 * pl[2] + 0.5 * pl[3];
    assert!((out["weighted"].scalar().unwrap() - want).abs() < 1e-4);
    assert!((pl[2] - 40.0).abs() < 1e-4, "stable for large logits: {}", pl[2]);
    let mut s = ParamStore::new(0);
    nn::Linear::new(&mut s, "fc", 3, 2).unwrap();
    assert_eq!(s.num_params(), 8);
}

#[test]
fn rnn_dropout_between_layers_only_in_train_mode() {
    let mut s = ParamStore::new(4);
    let l = nn::Gru::config(3, 4).num_layers(2).dropout(0.5).build(&mut s, "gru").unwrap();
    let run = |mode| {
        let mut b = Builder::new(mode);
        let x = b.input("x", f32_shape([3, 2, 3])).unwrap();
        let o = l.forward_seq(&mut b, x, None, None).unwrap();
        b.output("out", o.out).unwrap();
        let mut p = kiln::compile(&kiln::inference(&b, &s).unwrap(), CompileOptions::interp()).unwrap();
        let xs = ramp(&[3, 2, 3], 2.0);
        let a = p.run(&[("x", &xs)]).unwrap()["out"].clone();
        let c = p.run(&[("x", &xs)]).unwrap()["out"].clone();
        (a, c, p.has_state(nn::RNG_STEP))
    };
    let (a, c, rng) = run(kiln::Mode::Train);
    assert!(rng && a != c, "train mode draws masks");
    let (a, c, rng) = run(kiln::Mode::Eval);
    assert!(!rng && a == c, "eval mode has no dropout");
}
