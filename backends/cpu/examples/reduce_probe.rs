//! Probe: BatchNorm-statistics and bias-gradient reductions (sums over the
//! batch that keep the channels) on 1 and 2 threads; prints the per-step
//! profile. `cargo run --release -p kiln-cpu --example reduce_probe`.
use std::collections::BTreeMap;

use kiln_ir::*;

fn main() {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([32, 32, 28, 28])).unwrap();
    let m = g.input("m", f32_shape([128, 512])).unwrap();
    let mean = g.mean(x, &[0, 2, 3], true).unwrap();
    g.set_output("mean", mean).unwrap();
    let xx = g.mul(x, x).unwrap();
    let sq = g.mean(xx, &[0, 2, 3], true).unwrap();
    g.set_output("sq", sq).unwrap();
    let bias = g.sum(m, &[0], false).unwrap();
    g.set_output("bias", bias).unwrap();
    let vals = |n: usize| (0..n).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect::<Vec<f32>>();
    let inp: BTreeMap<String, HostTensor> = [
        ("x".to_string(), HostTensor::from_f32([32, 32, 28, 28], vals(32 * 32 * 784)).unwrap()),
        ("m".to_string(), HostTensor::from_f32([128, 512], vals(128 * 512)).unwrap()),
    ]
    .into_iter()
    .collect();
    for threads in [1, 2, 1, 2] {
        let mut exe = kiln_cpu::CpuBackend::new().with_threads(threads).compile_cpu(&g).unwrap();
        for _ in 0..20 {
            exe.run(&inp).unwrap();
        }
        exe.enable_profiling();
        for _ in 0..200 {
            exe.run(&inp).unwrap();
        }
        println!("threads {threads}: {}", exe.profile_report());
    }
}
