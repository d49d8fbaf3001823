//! Probe: per-step profile of one bench workload's optimized training step
//! on the CPU backend (where the time of a step goes, slowest kernels first).
//! `cargo run --release -p kiln-bench --example step_profile -- W4-resnet-sgd [iters] [threads]`
//! (`PARTITION=1` also prints the kernel list, `DUMP=dir` writes the CPU dump).

#[path = "../src/workloads.rs"]
#[allow(dead_code)]
mod workloads;

use std::collections::BTreeMap;
use std::time::Instant;

use kiln::ir::Executable;
use kiln::{CompileOptions, HostTensor};

fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "W4-resnet-sgd".into());
    let iters: usize = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(50);
    let threads: usize = std::env::args().nth(3).and_then(|s| s.parse().ok()).unwrap_or(2);
    let w = workloads::build(&name).expect("a known workload");
    let prog = kiln::compile(&w.spec, CompileOptions::default()).expect("compiles");
    let mut be = kiln_cpu::CpuBackend::new().with_threads(threads);
    if let Ok(dir) = std::env::var("DUMP") {
        be = be.with_dump(dir);
    }
    let mut exe = be.compile_cpu(prog.graph()).expect("cpu compile");
    for (k, v) in prog.state_dict() {
        exe.set_state(&k, v).expect("state");
    }
    let map: BTreeMap<String, HostTensor> = w.inputs.iter().cloned().collect();
    for _ in 0..5 {
        exe.run(&map).expect("runs");
    }
    let mut t: Vec<f64> = (0..iters)
        .map(|_| {
            let s = Instant::now();
            exe.run(&map).expect("runs");
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    println!("{name}: median {:.3} ms over {iters} steps", t[t.len() / 2]);
    exe.enable_profiling();
    for _ in 0..iters {
        exe.run(&map).expect("runs");
    }
    if std::env::var("PARTITION").is_ok() {
        println!("{}", exe.partition_text());
    }
    println!("{}", exe.profile_report());
}
