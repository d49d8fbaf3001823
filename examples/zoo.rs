//! Trains any `kiln::models` network on the shipped MNIST digits for a
//! few steps and reports what it costs: compile time of the training step
//! (every pass plus code generation), time per step (median after two
//! warm-up steps), the backend's planned memory and the process's peak
//! resident memory. The digits are padded to 32x32 in the graph (the
//! torchvision networks; AlexNet and NiN see them resized to 64x64 and
//! 96x96, the course's LeNet-5, Inception net and tiny ViT take 28x28), see
//! `src/zoo.rs`. SGD lr 0.01 momentum 0.9, batch 32 by default; the loss
//! of each step is printed so one can see it move.
//!
//! `cargo run --release --example zoo -- --model resnet18 [--steps 20] [--batch 32]`
//! (`--model list` prints the names).

use std::sync::Arc;
use std::time::Instant;

use kiln::data::{DataLoader, LastBatch, Mnist, Normalize};
use kiln::{f32_shape, i64_shape, loss, optim, Builder, ParamStore};
use kiln_examples::zoo::{self, MODELS};
use kiln_examples::{args_with, die, limit, scalar, OrDie};

/// Peak resident memory of this process (Linux), in bytes.
fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

fn mib(b: u64) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

fn main() {
    let (a, own) = args_with(&[("model", "NAME (or `list`)"), ("steps", "N training steps (default 20)"), ("batch", "B (default 32)")]);
    let name = own.get("model").map(String::as_str).unwrap_or_else(|| die(&format!("--model NAME is required (one of {})", MODELS.join(", "))));
    if name == "list" {
        println!("{}", MODELS.join("\n"));
        return;
    }
    let steps: usize = own.get("steps").map_or(20, |s| s.parse().or_die("--steps"));
    let batch: usize = own.get("batch").map_or(32, |s| s.parse().or_die("--batch"));
    if steps == 0 || batch == 0 {
        die("--steps and --batch must be at least 1");
    }
    let mut mnist = Mnist::shipped().or_die("MNIST");
    mnist.normalize(Normalize::MNIST);
    let train = Arc::new(limit(mnist.train, a.train_limit));
    let background = f64::from(-Normalize::MNIST.mean / Normalize::MNIST.std);

    let t0 = Instant::now();
    let mut store = ParamStore::new(0);
    let model = zoo::build(name, &mut store).or_die("model");
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([batch, 1, 28, 28])).or_die("graph");
    let y = b.input("y", i64_shape([batch])).or_die("graph");
    let logits = model.forward_digits(&mut b, x, background).or_die("forward");
    let l = loss::cross_entropy_mean(&mut b, logits, y).or_die("loss");
    let step = kiln::train_step(&b, l, &store, optim::Sgd::new(0.01).momentum(0.9)).or_die("train step");
    let build_s = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let mut prog = kiln::compile(&step, a.compile_options()).or_die("compile");
    let compile_s = t0.elapsed().as_secs_f64();
    let plan = prog.executable().peak_bytes();
    println!(
        "{name}: {} parameters, input {}x{}, batch {batch}, backend {}; graph built in {:.2} s, training step compiled in {:.2} s",
        store.num_params(),
        model.image,
        model.image,
        a.backend_name(),
        build_s,
        compile_s
    );

    let loader = DataLoader::new(train, batch).or_die("loader").shuffle(1).last_batch(LastBatch::Drop);
    let mut times = Vec::with_capacity(steps);
    let mut done = 0;
    'outer: for epoch in 0.. {
        for bt in loader.epoch(epoch) {
            let bt = bt.or_die("batch");
            let t = Instant::now();
            let out = prog.run(&[("x", &bt.x), ("y", &bt.y)]).or_die("train step");
            times.push(t.elapsed().as_secs_f64());
            done += 1;
            println!("step {done:>4}  loss {:.4}  {:.1} ms", scalar(&out["loss"]), times[done - 1] * 1e3);
            if done == steps {
                break 'outer;
            }
        }
    }
    // Median of the steps after two warm-up steps (all of them if fewer).
    let mut timed: Vec<f64> = if times.len() > 2 { times[2..].to_vec() } else { times.clone() };
    timed.sort_by(f64::total_cmp);
    let step_ms = timed[timed.len() / 2] * 1e3;
    let plan_mib = plan.map_or("-".to_string(), |p| format!("{:.1}", mib(p as u64)));
    let rss_mib = peak_rss().map_or("-".to_string(), |p| format!("{:.1}", mib(p)));
    println!("{steps} steps, median {step_ms:.1} ms/step ({:.0} images/s); planned memory {plan_mib} MiB, peak resident {rss_mib} MiB", batch as f64 / step_ms * 1e3);
    println!("model={name} compile_s={compile_s:.3} step_ms={step_ms:.2} plan_mib={plan_mib} peak_rss_mib={rss_mib}");
}
