//! `kiln-bench`: runs the workloads W1-W5 of `../shared/bench/README.md`
//! with kiln and prints one row per workload beside the PyTorch and JAX
//! anchor figures (`anchors/cpu-2core.jsonl`, a copy of
//! `../shared/bench/results/cpu-2core.jsonl`).
//!
//! ```text
//! cargo run --release -p kiln-bench -- [--backend cpu|wgpu|interp] [--json FILE]
//!     [--workloads W1-mlp-sgd,W3-lenet5-sgd,...] [--min-time SECONDS] [--min-samples N (30; fewer for slow backends such as software Vulkan)] [--anchors FILE]
//! ```
//!
//! Timing follows the anchors' `common.time_fn`: warm-up calls, then at
//! least 30 timed calls and at least `--min-time` seconds (default 3), each
//! call timed on its own; median and p10/p90 of those. Compile time is the
//! whole of `kiln::compile` (every pass plus code generation) on a cold
//! process-wide start for that workload. Peak bytes are the backend's memory
//! plan (arena + params/state + constants).

mod anchors;
mod workloads;

use std::io::Write;
use std::time::Instant;

use kiln::{BackendKind, CompileOptions, HostTensor};

struct Args {
    backend: BackendKind,
    json: Option<String>,
    workloads: Vec<String>,
    min_time: f64,
    /// Samples to take at least (each workload also runs `min_time`).
    min_samples: usize,
    anchors: Option<String>,
    /// Print the compile-time scaling rows (the W5 LSTM over 32, 128, 512 steps).
    scaling: bool,
    /// Print each workload's compile-time profile (build, every pass, backend).
    profile: bool,
}

const USAGE: &str = "usage: kiln-bench [--backend cpu|wgpu|interp] [--json FILE] [--workloads W1-mlp-sgd,...] [--min-time SECONDS] [--min-samples N (30; fewer for slow backends such as software Vulkan)] [--anchors FILE] [--no-scaling] [--profile]

Runs kiln on the benchmark workloads and prints median ms/step (p10/p90),
samples/s, compile time and peak memory beside the PyTorch/JAX anchors,
then the compile-time scaling rows: the W5 LSTM unrolled over 32, 128 and
512 steps (nodes, compile s, step ms, peak). --profile prints where each
workload's compile time goes (graph build with autodiff, every pass, the
backend's code generation).

examples:
  cargo run --release -p kiln-bench
  cargo run --release -p kiln-bench -- --workloads W3-lenet5-sgd --json out.jsonl";

fn parse_args() -> Result<Args, String> {
    let mut a = Args { backend: BackendKind::Cpu, json: None, workloads: workloads::ALL.iter().map(|s| s.to_string()).collect(), min_time: 3.0, min_samples: 30, anchors: None, scaling: true, profile: false };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value\n\n{USAGE}"));
        match arg.as_str() {
            "--backend" => {
                a.backend = match val("--backend")?.as_str() {
                    "cpu" => BackendKind::Cpu,
                    "interp" => BackendKind::Interp,
                    "wgpu" => BackendKind::Wgpu,
                    other => return Err(format!("unknown backend `{other}` (cpu, wgpu, interp)")),
                }
            }
            "--json" => a.json = Some(val("--json")?),
            "--workloads" => {
                a.workloads = val("--workloads")?.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect();
                if let Some(w) = a.workloads.iter().find(|w| !workloads::ALL.contains(&w.as_str()) && workloads::scaling_steps(w).is_none()) {
                    return Err(format!("unknown workload `{w}` (known: {})", workloads::ALL.join(", ")));
                }
            }
            "--min-time" => a.min_time = val("--min-time")?.parse().map_err(|e| format!("--min-time: {e}"))?,
            "--min-samples" => a.min_samples = val("--min-samples")?.parse().map_err(|e| format!("--min-samples: {e}"))?,
            "--anchors" => a.anchors = Some(val("--anchors")?),
            "--no-scaling" => a.scaling = false,
            "--profile" => a.profile = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`\n\n{USAGE}")),
        }
    }
    Ok(a)
}

struct Row {
    workload: String,
    batch: usize,
    median_ms: f64,
    p10_ms: f64,
    p90_ms: f64,
    samples_per_s: f64,
    compile_s: f64,
    peak_bytes: Option<u64>,
    iters: usize,
    nodes: usize,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q) as usize]
}

fn run_one(name: &str, a: &Args) -> Result<Row, String> {
    let t0 = Instant::now();
    let w = workloads::build(name).map_err(|e| e.to_string())?;
    run_workload(w, t0.elapsed().as_secs_f64(), a)
}

/// Times `w`'s compile and steps; `build_s` is how long building its graph
/// took (the train step's autodiff included), shown by `--profile`.
fn run_workload(w: workloads::Workload, build_s: f64, a: &Args) -> Result<Row, String> {
    let opts = CompileOptions::default().backend(a.backend);
    let t0 = Instant::now();
    let mut prog = kiln::compile(&w.spec, opts).map_err(|e| e.to_string())?;
    let compile_s = t0.elapsed().as_secs_f64();
    if a.profile {
        print_profile(w.name, build_s, compile_s, prog.report());
    }
    let nodes = prog.graph().node_count();
    let peak_bytes = match a.backend {
        // The program holds its executable as `dyn Executable`; the plan is
        // a deterministic function of the optimized graph, so re-lower it.
        BackendKind::Cpu => kiln_cpu::CpuBackend::new().compile_cpu(prog.graph()).ok().map(|e| e.peak_bytes() as u64),
        _ => prog.executable().peak_bytes().map(|b| b as u64),
    };
    let inputs: Vec<(&str, &HostTensor)> = w.inputs.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let warmup = if a.backend == BackendKind::Cpu { 10 } else { 2 };
    for _ in 0..warmup {
        prog.run(&inputs).map_err(|e| e.to_string())?;
    }
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < a.min_samples.max(1) || start.elapsed().as_secs_f64() < a.min_time {
        let t = Instant::now();
        let out = prog.run(&inputs).map_err(|e| e.to_string())?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(out);
        if samples.len() >= 100_000 {
            break;
        }
    }
    samples.sort_by(f64::total_cmp);
    let median_ms = percentile(&samples, 0.5);
    Ok(Row {
        workload: w.name.to_string(),
        batch: w.batch,
        median_ms,
        p10_ms: percentile(&samples, 0.1),
        p90_ms: percentile(&samples, 0.9),
        samples_per_s: w.batch as f64 / (median_ms / 1e3),
        compile_s,
        peak_bytes,
        iters: samples.len(),
        nodes,
    })
}

fn print_profile(name: &str, build_s: f64, compile_s: f64, report: &kiln::PipelineReport) {
    let passes: f64 = report.rows.iter().map(|r| r.duration.as_secs_f64()).sum();
    let mut line = format!("  profile {name}: build+autodiff {build_s:.3}s");
    for r in &report.rows {
        line += &format!(", {} {:.3}s ({}->{})", r.pass, r.duration.as_secs_f64(), r.nodes_before, r.nodes_after);
    }
    line += &format!(", backend {:.3}s", compile_s - passes);
    println!("{line}");
}

/// The compile-time scaling rows: W5's LSTM over 32, 128 and 512 steps.
fn print_scaling(a: &Args) -> usize {
    println!();
    println!("{:<20} {:>6} {:>8} {:>10} {:>9} {:>10} {:>10}", "scaling (W5 LSTM)", "steps", "nodes", "build", "compile", "step ms", "peak");
    let mut failed = 0;
    for steps in workloads::SCALING_STEPS {
        let t0 = Instant::now();
        let row = workloads::lstm(workloads::SCALING_NAME, steps).map_err(|e| e.to_string()).and_then(|w| {
            let build_s = t0.elapsed().as_secs_f64();
            // Long sequences cost hundreds of ms a step: fewer samples.
            let a = Args { min_samples: a.min_samples.min(10), min_time: a.min_time.min(2.0), workloads: Vec::new(), json: None, anchors: None, ..*a };
            run_workload(w, build_s, &a).map(|r| (build_s, r))
        });
        match row {
            Ok((build_s, r)) => println!(
                "{:<20} {:>6} {:>8} {:>9.3}s {:>8.3}s {:>10} {:>10}",
                "", steps, r.nodes, build_s, r.compile_s, fmt_ms(Some(r.median_ms)), fmt_bytes(r.peak_bytes)
            ),
            Err(e) => {
                failed += 1;
                println!("{:<20} {steps:>6} failed: {e}", "");
            }
        }
    }
    println!("nodes = the optimized graph's node count; build = graph + train step with autodiff; compile = kiln::compile (every pass + code generation)");
    failed
}

fn fmt_bytes(b: Option<u64>) -> String {
    match b {
        Some(b) if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
        Some(b) => format!("{:.1} KiB", b as f64 / 1024.0),
        None => "-".into(),
    }
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| if v < 1.0 { format!("{v:.3}") } else { format!("{v:.2}") })
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let anchors = match &a.anchors {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(s) => anchors::parse(&s),
            Err(e) => {
                eprintln!("{p}: {e}");
                std::process::exit(2);
            }
        },
        None => anchors::parse(anchors::BUILTIN),
    };
    let framework = match a.backend {
        BackendKind::Cpu => "kiln-cpu",
        BackendKind::Wgpu => "kiln-wgpu",
        _ => "kiln-interp",
    };
    println!(
        "{:<20} {:>5} {:>9} {:>17} {:>10} {:>8} {:>10} | {:>8} {:>8} {:>8} {:>8} {:>6}",
        "workload", "batch", "median", "p10/p90 ms", "samples/s", "compile", "peak", "torch", "t.comp", "jax", "best", "ratio"
    );
    let mut failed = 0;
    for name in &a.workloads {
        let row = run_one(name, &a);
        let anchor = |fw: &str| anchors.iter().find(|r| r.workload == *name && r.framework == fw).and_then(|r| r.median_ms);
        let (te, tc, jj) = (anchor("torch-eager"), anchor("torch-compile"), anchor("jax-jit"));
        let best = [te, tc, jj].into_iter().flatten().min_by(f64::total_cmp);
        match row {
            Ok(r) => {
                let ratio = best.map_or("-".into(), |b| format!("{:.2}", r.median_ms / b));
                println!(
                    "{:<20} {:>5} {:>9} {:>17} {:>10.0} {:>7.3}s {:>10} | {:>8} {:>8} {:>8} {:>8} {:>6}",
                    r.workload,
                    r.batch,
                    fmt_ms(Some(r.median_ms)),
                    format!("{}/{}", fmt_ms(Some(r.p10_ms)), fmt_ms(Some(r.p90_ms))),
                    r.samples_per_s,
                    r.compile_s,
                    fmt_bytes(r.peak_bytes),
                    fmt_ms(te),
                    fmt_ms(tc),
                    fmt_ms(jj),
                    fmt_ms(best),
                    ratio
                );
                if let Some(path) = &a.json {
                    let obj = serde_json::json!({
                        "workload": r.workload, "framework": framework, "batch": r.batch,
                        "median_ms": r.median_ms, "p10_ms": r.p10_ms, "p90_ms": r.p90_ms,
                        "samples_per_s": r.samples_per_s, "compile_s": r.compile_s,
                        "peak_bytes": r.peak_bytes, "iters": r.iters, "error": null,
                    });
                    let res = std::fs::OpenOptions::new().create(true).append(true).open(path).and_then(|mut f| writeln!(f, "{obj}"));
                    if let Err(e) = res {
                        eprintln!("{path}: {e}");
                        std::process::exit(1);
                    }
                }
            }
            Err(e) => {
                failed += 1;
                println!("{name:<20} failed: {e}");
            }
        }
    }
    if a.scaling {
        failed += print_scaling(&a);
    }
    println!("ratio = kiln median / best of torch eager, torch.compile, jax.jit (anchors recorded on the reference 2-core machine; rerun them beside kiln to compare in one sitting)");
    if failed > 0 {
        std::process::exit(1);
    }
}
