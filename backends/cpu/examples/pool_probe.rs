//! Probe: one max-pool kernel's time (prints microseconds).
use kiln_ir::*;
use std::time::Instant;
fn main() {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([64, 6, 28, 28])).unwrap();
    let p = g.max_pool2d(x, Pool2dAttrs { kernel: [2, 2], stride: [2, 2], padding: [0, 0] }).unwrap();
    let s = g.sum_all(p).unwrap();
    g.set_output("s", s).unwrap();
    for threads in [1, 2] {
        let mut exe = kiln_cpu::CpuBackend::new().with_threads(threads).compile_cpu(&g).unwrap();
        let xs = HostTensor::from_f32([64, 6, 28, 28], (0..301056).map(|i| (i % 97) as f32).collect()).unwrap();
        let inp: std::collections::BTreeMap<String, HostTensor> = [("x".to_string(), xs)].into_iter().collect();
        exe.enable_profiling();
        let t = Instant::now();
        for _ in 0..100 {
            exe.run(&inp).unwrap();
        }
        println!("threads {threads}: {:.1} us per run\n{}", t.elapsed().as_secs_f64() * 1e4, exe.profile_report());
    }
}
