//! Probe: how ResNet-18's 3x3 convolutions (batch 16, CIFAR sizes) scale
//! from one thread to two, forward and both gradients, each alone in a
//! loop (ms per call, best of 20). `cargo run --release -p kiln-cpu --example conv_scaling_probe`.
//! On a 2-core Zen 4 (2026-12-04): one thread runs every one of them at
//! 12.5-16.8 ms (82-100 GFLOP/s, near the GEMM rate); two threads give
//! 1.8-2.0x on the 64-channel layer but 1.4-1.65x on the 256- and
//! 512-channel ones (e.g. 512 dw 15.96 -> 11.54 ms, 256 dx 15.77 -> 11.42),
//! which is most of ResNet-18's gap to PyTorch there.
use std::collections::BTreeMap;
use std::time::Instant;

use kiln_ir::*;

fn main() {
    // ONLY=512:dx:1 runs one case (channels, pass, threads) 200 times, for a
    // profiler; a field left out matches any.
    let only: Option<Vec<String>> = std::env::var("ONLY").ok().map(|s| s.split(':').map(str::to_string).collect());
    let skip = |field: usize, value: &str| only.as_ref().and_then(|o| o.get(field)).is_some_and(|o| o != value);
    for &(c, hw) in &[(64usize, 32usize), (128, 16), (256, 8), (512, 4)] {
        if skip(0, &c.to_string()) {
            continue;
        }
        let attrs = Conv2dAttrs { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1 };
        let mut times = Vec::new();
        for (name, which) in [("fwd", 0), ("dx", 1), ("dw", 2)] {
            if skip(1, name) {
                continue;
            }
            let mut g = Graph::new();
            let x = g.input("x", f32_shape([16, c, hw, hw])).unwrap();
            let w = g.input("w", f32_shape([c, c, 3, 3])).unwrap();
            let dy = g.input("dy", f32_shape([16, c, hw, hw])).unwrap();
            let out = match which {
                0 => g.conv2d(x, w, attrs).unwrap(),
                1 => g.apply(Op::Conv2dGradInput { attrs, input_hw: [hw, hw] }, &[dy, w]).unwrap(),
                _ => g.apply(Op::Conv2dGradWeight { attrs, kernel_hw: [3, 3] }, &[x, dy]).unwrap(),
            };
            g.set_output("y", out).unwrap();
            let vals = |n: usize| (0..n).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect::<Vec<f32>>();
            let inp: BTreeMap<String, HostTensor> = [
                ("x".to_string(), HostTensor::from_f32([16, c, hw, hw], vals(16 * c * hw * hw)).unwrap()),
                ("w".to_string(), HostTensor::from_f32([c, c, 3, 3], vals(c * c * 9)).unwrap()),
                ("dy".to_string(), HostTensor::from_f32([16, c, hw, hw], vals(16 * c * hw * hw)).unwrap()),
            ]
            .into_iter()
            .filter(|(k, _)| g.inputs().iter().any(|(_, n, _)| *n == k.as_str()))
            .collect();
            for threads in [1, 2] {
                if skip(2, &threads.to_string()) {
                    continue;
                }
                let reps = if only.is_some() { 200 } else { 20 };
                let mut exe = kiln_cpu::CpuBackend::new().with_threads(threads).compile_cpu(&g).unwrap();
                exe.run(&inp).unwrap();
                exe.enable_profiling();
                let mut best = f64::MAX;
                for _ in 0..reps {
                    let t = Instant::now();
                    exe.run(&inp).unwrap();
                    best = best.min(t.elapsed().as_secs_f64());
                }
                times.push(format!("{name} {threads}t {:.2}", best * 1e3));
            }
        }
        println!("{c}ch {hw}x{hw}: {}", times.join(", "));
    }
}
