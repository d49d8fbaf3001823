//! Private timing of W1-like and LeNet-like training steps on the CPU
//! backend (not a test; prints a table). `cargo run --release -p kiln-cpu
//! --example cpu_bench [-- steps]`.

#[path = "../tests/common/models.rs"]
mod models;

use std::time::Instant;

use kiln_cpu::CpuBackend;
use kiln_ir::Executable;
use models::*;

fn bench(name: &str, g: &kiln_ir::Graph, classes: usize, steps: usize) {
    let t0 = Instant::now();
    let threads: usize = std::env::var("THREADS").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    let mut be = CpuBackend::new().with_threads(threads);
    if let Ok(d) = std::env::var("DUMP") {
        be = be.with_dump(format!("{d}/{name}"));
    }
    let mut exe = be.compile_cpu(g).unwrap();
    let compile = t0.elapsed();
    for (k, v) in init_state(g, 1) {
        exe.set_state(&k, v).unwrap();
    }
    let data = batch_or_x(g, classes);
    for _ in 0..5 {
        exe.run(&data).unwrap();
    }
    let mut times = Vec::new();
    let mut loss = 0.0;
    for _ in 0..steps {
        let t = Instant::now();
        let out = exe.run(&data).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        loss = out.get("loss").map(|l| l.scalar().unwrap()).unwrap_or(0.0);
    }
    if std::env::var("PROFILE").is_ok() {
        exe.enable_profiling();
        for _ in 0..steps {
            exe.run(&data).unwrap();
        }
        println!("{}", exe.profile_report());
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!(
        "{name:<14} median {:>7.3} ms  p10 {:>7.3}  p90 {:>7.3}  compile {:>6.3} s  peak {:>9} B  kernels {:>3}  loss {loss:.4}",
        p(0.5),
        p(0.1),
        p(0.9),
        compile.as_secs_f64(),
        exe.peak_bytes(),
        exe.kernel_code().len()
    );
}

fn batch_or_x(g: &kiln_ir::Graph, classes: usize) -> std::collections::BTreeMap<String, kiln_ir::HostTensor> {
    if g.find_input("y").is_some() {
        return batch(g, classes, 2);
    }
    let xt = g.ty(g.find_input("x").unwrap()).clone();
    let x = (0..xt.numel()).map(|i| kiln_ir::random::uniform(2, 1, i as u64, -1.7, 1.7)).collect();
    [("x".to_string(), kiln_ir::HostTensor::from_f32(xt.shape.clone(), x).unwrap())].into_iter().collect()
}

fn main() {
    let steps: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(200);
    let which: String = std::env::args().nth(2).unwrap_or_else(|| "all".into());
    if which == "all" || which == "w1" {
        bench("W1-mlp-sgd", &mlp_train(128, &[784, 512, 512, 10], Optim::Sgd { lr: 0.01, momentum: 0.9 }), 10, steps);
        bench("W1-mlp-adam", &mlp_train(128, &[784, 512, 512, 10], Optim::Adam { lr: 1e-3, b1: 0.9, b2: 0.999, eps: 1e-8 }), 10, steps);
    }
    if which == "all" || which == "w2" {
        bench("W2-infer-b1", &mlp_infer(1, &[784, 512, 512, 10]), 10, steps);
        bench("W2-infer-b1024", &mlp_infer(1024, &[784, 512, 512, 10]), 10, steps);
    }
    if which == "all" || which == "lenet" {
        bench("W3-lenet-sgd", &lenet_train(64, Optim::Sgd { lr: 0.01, momentum: 0.9 }), 10, steps);
    }
}
