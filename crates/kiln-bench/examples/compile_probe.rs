//! Probe: compile one bench workload for the CPU backend repeatedly (no
//! steps run), so a profiler sees only the compiler. Prints each compile's
//! seconds.
//! `cargo run --release -p kiln-bench --example compile_probe -- S512-lstm-adam [times]`

#[path = "../src/workloads.rs"]
#[allow(dead_code)]
mod workloads;

use std::time::Instant;

use kiln::CompileOptions;

fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "S512-lstm-adam".into());
    let times: usize = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let w = workloads::build(&name).expect("a known workload");
    for _ in 0..times {
        let s = Instant::now();
        let prog = kiln::compile(&w.spec, CompileOptions::cpu()).expect("compiles");
        let t = s.elapsed().as_secs_f64();
        println!("{name}: compile {t:.3} s, {} nodes", prog.graph().node_count());
    }
}
