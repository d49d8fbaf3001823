//! The GPU backend through the facade: save/load/resume bit for bit,
//! determinism, the dump, and bad input (f64, NaN, wrong shapes, labels
//! out of range or beyond i32) as typed errors that change no state.
//! Runs on Mesa's software Vulkan in CI; skipped outside CI without Vulkan.

use std::collections::BTreeMap;

use kiln::nn::Module;
use kiln::{f32_shape, i64_shape, loss, nn, optim, Builder, CompileOptions, HostTensor, ParamStore, Program};

fn gpu() -> bool {
    match kiln::wgpu_adapter() {
        Ok(_) => true,
        Err(e) => {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but no GPU adapter: {e}");
            eprintln!("skipping: {e}");
            false
        }
    }
}

fn batch(step: u64) -> (HostTensor, HostTensor) {
    let mut r = kiln::data::SplitMix64::derive(5, step, 0);
    let x = (0..4 * 8 * 8).map(|_| r.unit() as f32 * 2.0 - 1.0).collect();
    let y = (0..4).map(|_| r.below(10) as i64).collect();
    (HostTensor::from_f32([4, 1, 8, 8], x).unwrap(), HostTensor::from_i64([4], y).unwrap())
}

/// A small CNN with BatchNorm and dropout (running stats, Philox masks)
/// trained with Adam: every kind of persistent state.
fn cnn(opts: CompileOptions) -> Program {
    let mut store = ParamStore::new(7);
    let net = nn::Sequential::new()
        .add(nn::Conv2d::config(1, 4, 3).padding(1).build(&mut store, "conv").unwrap())
        .add(nn::BatchNorm::new2d(&mut store, "bn", 4).unwrap())
        .add(nn::ReLU)
        .add(nn::MaxPool2d::new(2))
        .add(nn::Flatten::new())
        .add(nn::Dropout::new(&mut store, 0.25).unwrap())
        .add(nn::Linear::new(&mut store, "fc", 64, 10).unwrap());
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([4, 1, 8, 8])).unwrap();
    let y = b.input("y", i64_shape([4])).unwrap();
    let logits = net.forward(&mut b, x).unwrap();
    let l = loss::cross_entropy_mean(&mut b, logits, y).unwrap();
    let step = kiln::train_step(&b, l, &store, optim::Adam::new(0.01)).unwrap();
    kiln::compile(&step, opts).unwrap()
}

fn step(p: &mut Program, s: u64) -> BTreeMap<String, HostTensor> {
    let (x, y) = batch(s);
    p.run(&[("x", &x), ("y", &y)]).unwrap()
}

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("kiln-wgpu-{name}-{}.kiln", std::process::id()))
}

#[test]
fn save_load_resume_is_bit_identical() {
    if !gpu() {
        return;
    }
    let mut a = cnn(CompileOptions::wgpu());
    let full: Vec<_> = (0..6).map(|s| step(&mut a, s)).collect();
    let mut b = cnn(CompileOptions::wgpu());
    for s in 0..3 {
        assert_eq!(step(&mut b, s), full[s as usize], "same program, same inputs: same bits");
    }
    let path = tmp("resume");
    b.save(&path).unwrap();
    let mut c = kiln::format::load(&path).unwrap();
    assert_eq!(c.backend(), kiln::BackendKind::Wgpu);
    assert_eq!(c.state_dict(), b.state_dict());
    for s in 3..6 {
        let out = step(&mut c, s);
        assert_eq!(out, step(&mut b, s), "loaded vs in-memory at step {s}");
        assert_eq!(out, full[s as usize], "resumed vs uninterrupted at step {s}");
    }
    // The file names the GPU it was compiled on; a wgpu file is refused
    // as a CPU program (it is never silently run elsewhere).
    let f = kiln::format::ProgramFile::read(&path).unwrap();
    assert!(f.extra.get("device").is_some_and(|d| !d.is_empty()), "{:?}", f.extra);
    assert!(f.plan.iter().any(|e| e.kind == "wgsl"));
    assert!(kiln::format::load_expecting(&path, kiln::BackendKind::Cpu).is_err());
    let _ = std::fs::remove_file(&path);
}

#[test]
fn the_wgpu_trajectory_matches_the_cpu_one() {
    if !gpu() {
        return;
    }
    let (mut g, mut c) = (cnn(CompileOptions::wgpu()), cnn(CompileOptions::cpu()));
    for s in 0..4 {
        let (lg, lc) = (step(&mut g, s)["loss"].scalar().unwrap(), step(&mut c, s)["loss"].scalar().unwrap());
        assert!((lg - lc).abs() <= 1e-4 * (1.0 + lc.abs()), "step {s}: wgpu {lg} vs cpu {lc}");
    }
}

#[test]
fn bad_inputs_are_typed_errors_and_change_no_state() {
    if !gpu() {
        return;
    }
    let mut p = cnn(CompileOptions::wgpu());
    step(&mut p, 0);
    let before = p.state_dict();
    let (x, _) = batch(1);
    // A label out of range: found by a shader, the step rolled back.
    let y = HostTensor::from_i64([4], vec![1, 2, 10, 3]).unwrap();
    let e = p.run(&[("x", &x), ("y", &y)]).unwrap_err();
    assert!(matches!(e, kiln::Error::Run(kiln::ir::RunError::IndexOutOfRange { index: 10, bound: 10, .. })), "{e}");
    assert_eq!(p.state_dict(), before, "a failed step changes no param or state");
    // Beyond the device's i32: refused before anything runs, never wrapped.
    let y = HostTensor::from_i64([4], vec![1, 1 << 40, 2, 3]).unwrap();
    let e = p.run(&[("x", &x), ("y", &y)]).unwrap_err();
    assert!(e.to_string().contains("does not fit"), "{e}");
    let mut nan = x.clone();
    nan.as_f32_mut().unwrap()[17] = f32::NAN;
    let y = HostTensor::from_i64([4], vec![1, 2, 3, 4]).unwrap();
    assert!(matches!(p.run(&[("x", &nan), ("y", &y)]).unwrap_err(), kiln::Error::Run(kiln::ir::RunError::NonFinite { .. })));
    let short = HostTensor::from_f32([3, 1, 8, 8], vec![0.0; 192]).unwrap();
    assert!(matches!(p.run(&[("x", &short), ("y", &y)]).unwrap_err(), kiln::Error::Run(kiln::ir::RunError::InputType { .. })));
    assert_eq!(p.state_dict(), before);
    // And the program still trains afterwards.
    step(&mut p, 1);
    assert_ne!(p.state_dict(), before);
}

#[test]
fn an_f64_program_is_refused_at_compile_time() {
    let mut b = Builder::eval();
    let x = b.input("x", kiln::TensorType::new(kiln::DType::F64, [3])).unwrap();
    let y = b.relu(x).unwrap();
    b.output("y", y).unwrap();
    let spec = kiln::inference(&b, &ParamStore::new(0)).unwrap();
    let e = kiln::compile(&spec, CompileOptions::wgpu()).unwrap_err();
    assert!(matches!(e, kiln::Error::Wgpu(kiln::WgpuError::Unsupported(_))), "{e}");
    assert!(e.to_string().contains("f64"), "{e}");
}

#[test]
fn the_dump_holds_every_shader_and_the_dispatch_list() {
    if !gpu() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("kiln-wgpu-dump-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _p = cnn(CompileOptions::wgpu().dump(&dir));
    let names: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    let wgsl = names.iter().filter(|n| n.ends_with(".wgsl")).count();
    assert!(wgsl >= 10, "{names:?}");
    let dispatches = names.iter().find(|n| n.contains("dispatches")).expect("dispatch list");
    let text = std::fs::read_to_string(dir.join(dispatches)).unwrap();
    assert_eq!(text.lines().count(), wgsl, "one dispatch per shader");
    assert!(text.contains("workgroups ["));
    let _ = std::fs::remove_dir_all(&dir);
}
