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
