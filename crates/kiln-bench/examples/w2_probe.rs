//! Probe: where W2 (MLP inference) time goes through the facade — the
//! facade's `Program::run`, the executable's `run` on a prebuilt map, and a
//! per-step profile of the optimized graph on the CPU backend.
//! `cargo run --release -p kiln-bench --example w2_probe -- [batch] [iters]`.

use std::collections::BTreeMap;
use std::time::Instant;

use kiln::nn::{self, Module};
use kiln::{f32_shape, Builder, CompileOptions, HostTensor, ParamStore};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time(iters: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..10 {
        f();
    }
    median((0..iters).map(|_| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64() * 1e3
    }).collect())
}

fn main() {
    let batch: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let iters: usize = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let mut store = ParamStore::new(0);
    let net = nn::Sequential::new()
        .add(nn::Linear::new(&mut store, "fc1", 784, 512).unwrap())
        .add(nn::ReLU)
        .add(nn::Linear::new(&mut store, "fc2", 512, 512).unwrap())
        .add(nn::ReLU)
        .add(nn::Linear::new(&mut store, "fc3", 512, 10).unwrap());
    let mut b = Builder::eval();
    let x = b.input("x", f32_shape([batch, 784])).unwrap();
    let out = net.forward(&mut b, x).unwrap();
    b.output("logits", out).unwrap();
    let spec = kiln::inference(&b, &store).unwrap();
    let mut prog = kiln::compile(&spec, CompileOptions::cpu()).unwrap();
    let xs = HostTensor::from_f32([batch, 784], (0..batch * 784).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect()).unwrap();
    let inputs = [("x", &xs)];
    let facade = time(iters, || {
        std::hint::black_box(prog.run(&inputs).unwrap());
    });
    let map: BTreeMap<String, HostTensor> = [("x".to_string(), xs.clone())].into_iter().collect();
    let exe_only = time(iters, || {
        std::hint::black_box(prog.run_map(&map).unwrap());
    });
    println!("batch {batch}: Program::run {facade:.4} ms, run_map {exe_only:.4} ms");
    let mut exe = kiln_cpu::CpuBackend::new().compile_cpu(prog.graph()).unwrap();
    for (k, v) in prog.state_dict() {
        use kiln::ir::Executable;
        exe.set_state(&k, v).unwrap();
    }
    use kiln::ir::Executable;
    let raw = time(iters, || {
        std::hint::black_box(exe.run(&map).unwrap());
    });
    println!("CpuExecutable::run {raw:.4} ms");
    exe.enable_profiling();
    for _ in 0..iters {
        exe.run(&map).unwrap();
    }
    println!("{}", exe.partition_text());
    println!("{}", exe.profile_report());
}
