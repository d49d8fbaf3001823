//! Load times of LeNet-5's training step (SGD with momentum, batch 64) from
//! a `.kiln` image: sealed with the loading user's own code key (stored
//! machine code installed), sealed with another key (every kernel
//! compiled from the graph, as for any file from someone else), and with no
//! key at all. Median of 15 loads each; run with `--release`:
//!
//! ```text
//! cargo run --release -p kiln --example load_time
//! ```
//!
//! The keys are given explicitly, so this touches no key file.

use std::time::Instant;

use kiln::format::{CodeKey, KeyChoice, LoadOptions, ProgramFile};
use kiln::nn::Module;
use kiln::{f32_shape, i64_shape, loss, nn, optim, Builder, CompileOptions, ParamStore, Program};

fn lenet_step() -> kiln::Result<Program> {
    let mut store = ParamStore::new(0);
    let net = nn::Sequential::new()
        .add(nn::Conv2d::config(1, 6, 5).padding(2).build(&mut store, "conv1")?)
        .add(nn::ReLU)
        .add(nn::MaxPool2d::new(2))
        .add(nn::Conv2d::new(&mut store, "conv2", 6, 16, 5)?)
        .add(nn::ReLU)
        .add(nn::MaxPool2d::new(2))
        .add(nn::Flatten::new())
        .add(nn::Linear::new(&mut store, "fc1", 400, 120)?)
        .add(nn::ReLU)
        .add(nn::Linear::new(&mut store, "fc2", 120, 84)?)
        .add(nn::ReLU)
        .add(nn::Linear::new(&mut store, "fc3", 84, 10)?);
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([64, 1, 28, 28]))?;
    let y = b.input("y", i64_shape([64]))?;
    let logits = net.forward(&mut b, x)?;
    let l = loss::cross_entropy_mean(&mut b, logits, y)?;
    let step = kiln::train_step(&b, l, &store, optim::Sgd::new(0.01).momentum(0.9))?;
    kiln::compile(&step, CompileOptions::cpu())
}

fn median_ms(mut f: impl FnMut()) -> f64 {
    f(); // warm: page in, first-touch allocations
    let mut t: Vec<f64> = (0..15)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() -> kiln::Result<()> {
    let own = CodeKey::from_bytes([0x11; 32]);
    let other = CodeKey::from_bytes([0x22; 32]);
    let compile_ms = median_ms(|| drop(lenet_step().expect("compile")));
    let p = lenet_step()?;
    let bytes = kiln::format::to_file_with(&p, &KeyChoice::Key(own.clone()))?.to_bytes()?;
    let load = |key: KeyChoice| {
        let opts = LoadOptions::new().key(key);
        median_ms(|| drop(ProgramFile::from_bytes_with(&bytes, &opts).and_then(|f| f.instantiate_with(&opts)).expect("load")))
    };
    println!("LeNet-5 training step, {} byte file", bytes.len());
    println!("  kiln::compile (all passes)      {compile_ms:8.2} ms");
    println!("  load, own key (code installed)  {:8.2} ms", load(KeyChoice::Key(own)));
    println!("  load, other key (compiled)      {:8.2} ms", load(KeyChoice::Key(other)));
    println!("  load, no key (compiled)         {:8.2} ms", load(KeyChoice::None));
    Ok(())
}
