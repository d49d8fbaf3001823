//! compile() options: dumping every pass, optimization off, the CPU backend
//! against the interpreter, and saving a program to disk.

use kiln::nn::{self, Module};
use kiln::optim::Adam;
use kiln::{loss, BackendKind, Builder, CompileOptions, HostTensor, ParamStore, Spec, f32_shape, i64_shape};

fn ramp(shape: &[usize], scale: f32) -> HostTensor {
    let n: usize = shape.iter().product();
    HostTensor::from_f32(shape.to_vec(), (0..n).map(|i| ((i * 7919 % 97) as f32 / 97.0 - 0.5) * scale).collect()).unwrap()
}

fn mlp_step() -> (Spec, HostTensor, HostTensor) {
    let mut s = ParamStore::new(9);
    let net = nn::Sequential::new()
        .add(nn::Linear::new(&mut s, "fc1", 12, 16).unwrap())
        .add(nn::GELU::tanh())
        .add(nn::LayerNorm::new(&mut s, "ln", &[16]).unwrap())
        .add(nn::Linear::new(&mut s, "fc2", 16, 4).unwrap());
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([8, 12])).unwrap();
    let y = b.input("y", i64_shape([8])).unwrap();
    let logits = net.forward(&mut b, x).unwrap();
    let l = loss::cross_entropy_mean(&mut b, logits, y).unwrap();
    let spec = kiln::train_step(&b, l, &s, Adam::new(0.01)).unwrap();
    (spec, ramp(&[8, 12], 3.0), HostTensor::from_i64([8], vec![0, 1, 2, 3, 3, 2, 1, 0]).unwrap())
}

fn losses(opts: CompileOptions, steps: usize) -> Vec<f64> {
    let (spec, xs, ys) = mlp_step();
    let mut p = kiln::compile(&spec, opts).unwrap();
    (0..steps).map(|_| p.run(&[("x", &xs), ("y", &ys)]).unwrap()["loss"].scalar().unwrap()).collect()
}

#[test]
fn dump_writes_every_changed_pass_and_a_summary() {
    let dir = std::env::temp_dir().join(format!("kiln-dump-{}", std::process::id()));
    let (spec, ..) = mlp_step();
    let p = kiln::compile(&spec, CompileOptions::interp().dump(&dir)).unwrap();
    let names: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().any(|n| n.ends_with(".kir")), "{names:?}");
    assert!(names.iter().any(|n| n == "summary.txt"), "{names:?}");
    assert!(!p.report().rows.is_empty());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn optimized_and_unoptimized_programs_agree() {
    let a = losses(CompileOptions::interp(), 4);
    let b = losses(CompileOptions::interp().optimize(false), 4);
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
    assert!(a[3] < a[0]);
}

#[test]
fn cpu_backend_matches_the_interpreter() {
    let a = losses(CompileOptions::interp(), 5);
    let b = losses(CompileOptions::cpu(), 5);
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "interp {a:?} vs cpu {b:?}");
    }
}

#[test]
fn a_saved_training_program_resumes_identically() {
    let path = std::env::temp_dir().join(format!("kiln-save-{}.kiln", std::process::id()));
    let (spec, xs, ys) = mlp_step();
    let mut p = kiln::compile(&spec, CompileOptions::interp()).unwrap();
    p.run(&[("x", &xs), ("y", &ys)]).unwrap();
    p.save(&path).unwrap();
    let mut q = kiln::Program::load(&path).unwrap();
    assert_eq!(q.backend(), BackendKind::Interp);
    let a = p.run(&[("x", &xs), ("y", &ys)]).unwrap();
    let b = q.run(&[("x", &xs), ("y", &ys)]).unwrap();
    assert_eq!(a["loss"], b["loss"]);
    std::fs::remove_file(&path).ok();
}

/// A CNN with BatchNorm and dropout and an LSTM head, trained for a few
/// steps on both backends: same losses, same running statistics.
#[test]
fn cpu_and_interpreter_agree_on_a_conv_bn_dropout_lstm_model() {
    use kiln::optim::{Rule, Sgd};
    let build = || {
        let mut s = ParamStore::new(17);
        let conv = nn::Sequential::new()
            .add(nn::Conv2d::config(1, 4, 3).padding(1).build(&mut s, "conv").unwrap())
            .add(nn::BatchNorm::new2d(&mut s, "bn", 4).unwrap())
            .add(nn::ReLU)
            .add(nn::MaxPool2d::new(2))
            .add(nn::Dropout::new(&mut s, 0.2).unwrap());
        let lstm = nn::Lstm::config(8, 6).batch_first(true).build(&mut s, "lstm").unwrap();
        let head = nn::Linear::new(&mut s, "head", 6, 3).unwrap();
        let mut b = Builder::train();
        let x = b.input("x", f32_shape([5, 1, 8, 8])).unwrap();
        let y = b.input("y", i64_shape([5])).unwrap();
        let f = conv.forward(&mut b, x).unwrap(); // [5, 4, 4, 4]
        let seq = b.reshape(f, [5, 4, 16]).unwrap();
        let seq = b.slice_axis(seq, 2, 0, 8).unwrap(); // [5, 4 steps, 8]
        let o = lstm.forward_seq(&mut b, seq, None, None).unwrap();
        let last = b.reshape(o.h_n, [5, 6]).unwrap();
        let logits = head.forward(&mut b, last).unwrap();
        let l = loss::cross_entropy_mean(&mut b, logits, y).unwrap();
        kiln::train_step(&b, l, &s, Sgd::new(0.1).momentum(0.9).clip_grad_norm(5.0)).unwrap()
    };
    let xs = ramp(&[5, 1, 8, 8], 3.0);
    let ys = HostTensor::from_i64([5], vec![0, 1, 2, 1, 0]).unwrap();
    let mut a = kiln::compile(&build(), CompileOptions::interp()).unwrap();
    let mut c = kiln::compile(&build(), CompileOptions::cpu()).unwrap();
    for step in 0..4 {
        let la = a.run(&[("x", &xs), ("y", &ys)]).unwrap()["loss"].scalar().unwrap();
        let lc = c.run(&[("x", &xs), ("y", &ys)]).unwrap()["loss"].scalar().unwrap();
        assert!((la - lc).abs() <= 1e-4 * (1.0 + la.abs()), "step {step}: interp {la} vs cpu {lc}");
    }
    for name in ["bn.running_var", "lstm.weight_hh_l0", "head.weight"] {
        let (x, y) = (a.state(name).unwrap().to_f64_vec(), c.state(name).unwrap().to_f64_vec());
        for (p, q) in x.iter().zip(&y) {
            assert!((p - q).abs() <= 1e-4 * (1.0 + p.abs()), "{name}: {p} vs {q}");
        }
    }
}
