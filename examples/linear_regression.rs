//! Linear regression: fit y = w x + b (data from w = 3, b = 2 plus noise)
//! with one `Linear(1, 1)` layer, mean squared error and SGD, full batch.
//!
//! `cargo run --release --example linear_regression`

use std::time::Instant;

use kiln::data::SplitMix64;
use kiln::nn::{self, Module};
use kiln::{f32_shape, loss, optim, Builder, HostTensor, ParamStore};
use kiln_examples::{args, scalar, OrDie};

const N: usize = 256;

fn main() {
    let a = args();
    let steps = a.epochs.unwrap_or(200);
    let mut r = SplitMix64::new(7);
    let xs: Vec<f32> = (0..N).map(|_| (r.unit() * 2.0 - 1.0) as f32).collect();
    let ys: Vec<f32> = xs.iter().map(|&x| 3.0 * x + 2.0 + 0.1 * (r.unit() as f32 - 0.5)).collect();
    let x_t = HostTensor::from_f32([N, 1], xs).or_die("data");
    let y_t = HostTensor::from_f32([N, 1], ys).or_die("data");

    let mut store = ParamStore::new(0);
    let lin = nn::Linear::new(&mut store, "lin", 1, 1).or_die("model");
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([N, 1])).or_die("graph");
    let y = b.input("y", f32_shape([N, 1])).or_die("graph");
    let pred = lin.forward(&mut b, x).or_die("forward");
    let l = loss::mse(&mut b, pred, y, loss::Reduction::Mean).or_die("loss");
    let step = kiln::train_step(&b, l, &store, optim::Sgd::new(0.1)).or_die("train step");
    let mut prog = kiln::compile(&step, a.compile_options()).or_die("compile");

    let t0 = Instant::now();
    let mut mse = f64::NAN;
    for s in 0..steps {
        mse = scalar(&prog.run(&[("x", &x_t), ("y", &y_t)]).or_die("step")["loss"]);
        if s % 50 == 0 {
            println!("step {s:>4}  mse {mse:.6}");
        }
    }
    let w = scalar(&prog.state("lin.weight").or_die_none("lin.weight"));
    let bias = scalar(&prog.state("lin.bias").or_die_none("lin.bias"));
    println!("learned y = {w:.4} x + {bias:.4} (true: 3 x + 2) in {:.3} s on {}", t0.elapsed().as_secs_f64(), a.backend_name());
    // `mse` is the loss before the last update.
    println!("mse={mse:.6}");
}

trait OrDieNone<T> {
    fn or_die_none(self, what: &str) -> T;
}

impl<T> OrDieNone<T> for Option<T> {
    fn or_die_none(self, what: &str) -> T {
        self.unwrap_or_else(|| kiln_examples::die(&format!("no value for {what}")))
    }
}
