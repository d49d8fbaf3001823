//! The course notes' sequence-to-sequence toy: learn to map "hello" to
//! "ohlol", one character per step, over the dictionary [e, h, l, o].
//!
//! 1. An `RNNCell(4 -> 4)` unrolled over the 5 steps on one-hot input
//!    vectors; the hidden state itself is the 4 class scores; the loss is
//!    the sum of the per-step cross-entropies; Adam lr 0.1 (as the notes).
//! 2. The same task with `Embedding(4, 10)` -> `RNN(10 -> 8)` ->
//!    `Linear(8 -> 4)`; Adam lr 0.05 (as the notes).
//!
//! Each run prints the predicted string after every epoch (one epoch = one
//! step on the one sequence). There is no held-out data here: the task is
//! to memorize one mapping, as in the notes. The last line is the second
//! model's final prediction.
//!
//! `cargo run --release --example char_rnn`

use kiln::nn::{self, Module};
use kiln::{f32_shape, i64_shape, loss, optim, Builder, HostTensor, NodeId, ParamStore, Program};
use kiln_examples::{args, scalar, Args, OrDie};

const DICT: [char; 4] = ['e', 'h', 'l', 'o'];
const INPUT: &str = "hello";
const TARGET: &str = "ohlol";
const SEQ: usize = 5;
const CLASSES: usize = 4;

fn indices(s: &str) -> Vec<i64> {
    s.chars().map(|c| DICT.iter().position(|d| *d == c).or_die_opt("character") as i64).collect()
}

trait OrDieOpt<T> {
    fn or_die_opt(self, what: &str) -> T;
}

impl<T> OrDieOpt<T> for Option<T> {
    fn or_die_opt(self, what: &str) -> T {
        self.unwrap_or_else(|| kiln_examples::die(&format!("{what} not in the dictionary")))
    }
}

/// Arg-max of each row of `[SEQ, CLASSES]` scores as characters.
fn decode(scores: &HostTensor) -> String {
    let v = scores.to_f32_vec();
    v.chunks(CLASSES)
        .map(|row| {
            let best = row.iter().enumerate().fold(0, |b, (i, x)| if *x > row[b] { i } else { b });
            DICT[best]
        })
        .collect()
}

/// Trains `step` (inputs `x`, `y`; outputs `loss`, `scores`) for `epochs`,
/// printing the prediction per epoch; returns the last prediction.
fn train(name: &str, step: &mut Program, x: &HostTensor, y: &HostTensor, epochs: usize) -> String {
    let mut predicted = String::new();
    for epoch in 0..epochs {
        let out = step.run(&[("x", x), ("y", y)]).or_die("train step");
        // The scores are those the step computed before its update.
        predicted = decode(&out["scores"]);
        println!("{name} epoch {:>2}  loss {:.4}  predicted {predicted}", epoch + 1, scalar(&out["loss"]));
    }
    predicted
}

/// The first model: an RNNCell on one-hot vectors (x [SEQ, 1, 4]) whose
/// hidden state is the class scores.
fn one_hot_cell(a: &Args, epochs: usize) -> String {
    // Seed 1: with four tanh units as the scores, some draws (seed 0 among
    // them) settle on "ollll" within 15 epochs.
    let mut store = ParamStore::new(1);
    let cell = nn::RnnCell::new(&mut store, "rnncell", CLASSES, CLASSES).or_die("model");
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([SEQ, 1, CLASSES])).or_die("graph");
    let y = b.input("y", i64_shape([SEQ])).or_die("graph");
    let mut h: Option<NodeId> = None;
    let mut hs = Vec::with_capacity(SEQ);
    for t in 0..SEQ {
        let xt = b.slice_axis(x, 0, t, t + 1).or_die("graph");
        let xt = b.reshape(xt, [1, CLASSES]).or_die("graph");
        let ht = cell.step(&mut b, xt, h).or_die("forward");
        hs.push(ht);
        h = Some(ht);
    }
    let scores = b.concat(&hs, 0).or_die("graph");
    b.output("scores", scores).or_die("graph");
    // The notes add up the five per-step losses.
    let l = loss::cross_entropy(&mut b, scores, y, &loss::CrossEntropyOptions::default().sum()).or_die("loss");
    let step = kiln::train_step(&b, l, &store, optim::Adam::new(0.1)).or_die("train step");
    let mut step = kiln::compile(&step, a.compile_options()).or_die("compile");
    let mut onehot = vec![0f32; SEQ * CLASSES];
    for (t, i) in indices(INPUT).into_iter().enumerate() {
        onehot[t * CLASSES + i as usize] = 1.0;
    }
    let xv = HostTensor::from_f32([SEQ, 1, CLASSES], onehot).or_die("data");
    let yv = HostTensor::from_i64([SEQ], indices(TARGET)).or_die("data");
    train("rnncell", &mut step, &xv, &yv, epochs)
}

/// The second model: Embedding -> RNN -> Linear on the character indices
/// (x [1, SEQ]).
fn embedding_rnn(a: &Args, epochs: usize) -> String {
    let mut store = ParamStore::new(0);
    let emb = nn::Embedding::new(&mut store, "emb", CLASSES, 10).or_die("model");
    let rnn = nn::Rnn::config(10, 8).batch_first(true).build(&mut store, "rnn").or_die("model");
    let fc = nn::Linear::new(&mut store, "fc", 8, CLASSES).or_die("model");
    let mut b = Builder::train();
    let x = b.input("x", i64_shape([1, SEQ])).or_die("graph");
    let y = b.input("y", i64_shape([SEQ])).or_die("graph");
    let e = emb.forward(&mut b, x).or_die("forward");
    let out = rnn.forward_seq(&mut b, e, None, None).or_die("forward");
    let hs = b.reshape(out.out, [SEQ, 8]).or_die("graph");
    let scores = fc.forward(&mut b, hs).or_die("forward");
    b.output("scores", scores).or_die("graph");
    let l = loss::cross_entropy_mean(&mut b, scores, y).or_die("loss");
    let step = kiln::train_step(&b, l, &store, optim::Adam::new(0.05)).or_die("train step");
    let mut step = kiln::compile(&step, a.compile_options()).or_die("compile");
    let xv = HostTensor::from_i64([1, SEQ], indices(INPUT)).or_die("data");
    let yv = HostTensor::from_i64([SEQ], indices(TARGET)).or_die("data");
    train("embedding", &mut step, &xv, &yv, epochs)
}

fn main() {
    let a = args();
    let epochs = a.epochs.unwrap_or(15);
    println!("\"{INPUT}\" -> \"{TARGET}\" over [e, h, l, o], {epochs} epochs, backend {}", a.backend_name());
    let p1 = one_hot_cell(&a, epochs);
    println!("RNNCell on one-hot vectors: predicted {p1}");
    let p2 = embedding_rnn(&a, epochs);
    println!("Embedding + RNN + Linear: predicted {p2}");
    println!("predicted={p2}");
}
