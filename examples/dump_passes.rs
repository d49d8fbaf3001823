//! Shows what the dump flag writes: compiles the training step of a small
//! CNN with `CompileOptions::dump(dir)` (the same as `KILN_DUMP=dir`) and
//! lists the folder: the graph after every pass that changed it (`.kir`
//! and Graphviz `.dot`), the e-graph report, the kernel partition, the
//! memory plan, the generated code, and the summary table.
//!
//! `cargo run --release --example dump_passes [-- --out DIR]`

use kiln::nn::{self, Module};
use kiln::{f32_shape, i64_shape, loss, optim, Builder, ParamStore};
use kiln_examples::{args, OrDie};

fn main() {
    let a = args();
    let dir = a.out.join("dump_passes");
    let _ = std::fs::remove_dir_all(&dir);

    let mut store = ParamStore::new(0);
    let net = nn::Sequential::new()
        .add(nn::Conv2d::config(1, 4, 3).padding(1).build(&mut store, "conv1").or_die("model"))
        .add(nn::ReLU)
        .add(nn::MaxPool2d::new(2))
        .add(nn::Flatten::new())
        .add(nn::Linear::new(&mut store, "fc", 4 * 4 * 4, 10).or_die("model"));
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([8, 1, 8, 8])).or_die("graph");
    let y = b.input("y", i64_shape([8])).or_die("graph");
    let logits = net.forward(&mut b, x).or_die("forward");
    let l = loss::cross_entropy_mean(&mut b, logits, y).or_die("loss");
    let step = kiln::train_step(&b, l, &store, optim::Sgd::new(0.1).momentum(0.9)).or_die("train step");
    let prog = kiln::compile(&step, a.compile_options().dump(&dir)).or_die("compile");

    println!("dump folder {} (backend {}):", dir.display(), a.backend_name());
    let mut files = Vec::new();
    collect(&dir, &mut files);
    files.sort();
    for (p, size) in &files {
        println!("  {:<60} {size:>8} bytes", p.strip_prefix(&dir).unwrap_or(p).display());
    }
    if let Ok(s) = std::fs::read_to_string(dir.join("summary.txt")) {
        println!("\nsummary.txt:\n{s}");
    }
    println!("pipeline: {} nodes in, {} nodes out", prog.report().nodes_in, prog.report().nodes_out());
    println!("dump_files={}", files.len());
}

fn collect(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, u64)>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else {
            out.push((p.clone(), e.metadata().map(|m| m.len()).unwrap_or(0)));
        }
    }
}
