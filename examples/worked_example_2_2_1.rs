//! The course's 2-2-1 worked example: x = [0.5, 0.6], a hidden ReLU layer
//! of 2 units, one linear output, loss 0.5 (y - t)^2 with t = 1, weights
//! W1 = [[0.1, 0.2], [0.3, 0.4]], b1 = [0.1, 0.2], W2 = [[0.5, 0.6]],
//! b2 = [0.3]. Prints the forward values and every gradient (computed by
//! kiln's autodiff pass), which match the hand derivation:
//! h = [0.27, 0.59], y = 0.789, loss = 0.0222605, dL/dy = -0.211.
//!
//! `cargo run --release --example worked_example_2_2_1`

use kiln::nn::{self, Module};
use kiln::{f32_shape, loss, Builder, HostTensor, ParamStore};
use kiln_examples::{args, OrDie};

fn main() {
    let a = args();
    let mut store = ParamStore::new(0);
    let fc1 = nn::Linear::new(&mut store, "fc1", 2, 2).or_die("model");
    let fc2 = nn::Linear::new(&mut store, "fc2", 2, 1).or_die("model");
    for (name, shape, v) in [
        ("fc1.weight", vec![2, 2], vec![0.1, 0.2, 0.3, 0.4]),
        ("fc1.bias", vec![2], vec![0.1, 0.2]),
        ("fc2.weight", vec![1, 2], vec![0.5, 0.6]),
        ("fc2.bias", vec![1], vec![0.3]),
    ] {
        store.set(name, HostTensor::from_f32(shape, v).or_die("value")).or_die("set weights");
    }

    let mut b = Builder::train();
    let x = b.input("x", f32_shape([1, 2])).or_die("graph");
    let t = b.input("t", f32_shape([1, 1])).or_die("graph");
    let z1 = fc1.forward(&mut b, x).or_die("forward");
    let h = b.relu(z1).or_die("relu");
    let y = fc2.forward(&mut b, h).or_die("forward");
    let se = loss::mse(&mut b, y, t, loss::Reduction::Sum).or_die("loss");
    let l = b.mul_scalar(se, 0.5).or_die("loss");
    let names = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"];
    let mut wrt: Vec<kiln::NodeId> = names.iter().map(|n| b.find_input(n).unwrap_or_else(|| kiln_examples::die(n))).collect();
    wrt.push(x);
    wrt.push(y);
    let grads = kiln::grad(&mut b, l, &wrt).or_die("autodiff");
    for (name, id) in [("h", h), ("y", y), ("loss", l)] {
        b.output(name, id).or_die("graph");
    }
    for (n, g) in names.iter().chain(&["x", "y"]).zip(&grads) {
        b.output(&format!("d_loss/d_{n}"), *g).or_die("graph");
    }
    let mut prog = kiln::compile(&kiln::inference(&b, &store).or_die("spec"), a.compile_options()).or_die("compile");
    let xv = HostTensor::from_f32([1, 2], vec![0.5, 0.6]).or_die("x");
    let tv = HostTensor::from_f32([1, 1], vec![1.0]).or_die("t");
    let out = prog.run(&[("x", &xv), ("t", &tv)]).or_die("run");

    let show = |k: &str| {
        let v: Vec<String> = out[k].to_f32_vec().iter().map(|v| format!("{v:.6}")).collect();
        println!("{k:<20} {:<10} [{}]", out[k].shape().to_string(), v.join(", "));
    };
    println!("forward:");
    for k in ["h", "y", "loss"] {
        show(k);
    }
    println!("gradients:");
    for n in names.iter().chain(&["x", "y"]) {
        show(&format!("d_loss/d_{n}"));
    }
    println!("loss={:.7}", out["loss"].scalar().or_die("loss"));
}
