//! The scaffold the MNIST classifier examples share: the shipped digits
//! split into train / validation / test, the random-shift augmentation, and
//! a network's training step and inference program compiled for [`fit`].
//!
//! [`fit`]: crate::fit

use std::sync::Arc;
use std::time::Instant;

use kiln::data::transforms::{Compose, RandomCrop};
use kiln::data::{Mnist, Normalize, TensorDataset};
use kiln::optim::Optimizer;
use kiln::{f32_shape, i64_shape, loss, Builder, NodeId, ParamStore, Program};

use crate::{holdout, limit, Args, OrDie, VAL_FRACTION};

/// The shipped MNIST digits, normalized, each item reshaped to `item`
/// (`None`: the dataset's own `[1, 28, 28]`): (train, validation, test), the
/// validation set being [`VAL_FRACTION`] of the (`--train-limit`ed)
/// training digits, stratified.
pub fn splits(a: &Args, item: Option<&[usize]>) -> (Arc<TensorDataset>, Arc<TensorDataset>, Arc<TensorDataset>) {
    let mut mnist = Mnist::shipped().or_die("MNIST");
    mnist.normalize(Normalize::MNIST);
    let (train, test) = match item {
        None => (limit(mnist.train, a.train_limit), mnist.test),
        Some(item) => (limit(mnist.train, a.train_limit).reshaped(item).or_die("reshape"), mnist.test.reshaped(item).or_die("reshape")),
    };
    let (train_set, val_set) = holdout(train, VAL_FRACTION, 0);
    (train_set, val_set, Arc::new(test))
}

/// Random shifts by up to 2 pixels (pad with the normalized background,
/// crop back to 28x28).
pub fn random_shifts() -> Compose {
    Compose::new().add(RandomCrop::new(28).padding(2, -Normalize::MNIST.mean / Normalize::MNIST.std))
}

/// A classifier's compiled programs, as [`fit`](crate::fit) wants them.
pub struct Programs {
    /// Inputs `x` `[batch, ..item]` and `y` `[batch]`; mean cross-entropy
    /// loss, outputs `loss` and `logits`.
    pub train: Program,
    /// Inputs `x` `[eval_batch, ..item]` and `y`; outputs `logits` and `loss`.
    pub eval: Program,
    /// Seconds `kiln::compile` took for the training step (every pass of
    /// the pipeline plus code generation).
    pub compile_train_s: f64,
}

/// Builds and compiles the training step (optimizer `opt`) and the inference
/// program of the network `forward` (given the builder, the input node and
/// the batch size) for inputs of shape `item`.
pub fn compile_classifier(
    a: &Args,
    store: &ParamStore,
    opt: impl Optimizer,
    item: &[usize],
    batch: usize,
    eval_batch: usize,
    forward: impl Fn(&mut Builder, NodeId, usize) -> kiln::Result<NodeId>,
) -> Programs {
    let x_shape = |n: usize| f32_shape([&[n][..], item].concat());
    let mut b = Builder::train();
    let x = b.input("x", x_shape(batch)).or_die("graph");
    let y = b.input("y", i64_shape([batch])).or_die("graph");
    let logits = forward(&mut b, x, batch).or_die("forward");
    b.output("logits", logits).or_die("graph");
    let l = loss::cross_entropy_mean(&mut b, logits, y).or_die("loss");
    let step = kiln::train_step(&b, l, store, opt).or_die("train step");
    let t0 = Instant::now();
    let train = kiln::compile(&step, a.compile_options()).or_die("compile");
    let compile_train_s = t0.elapsed().as_secs_f64();

    let mut e = Builder::eval();
    let x = e.input("x", x_shape(eval_batch)).or_die("graph");
    let y = e.input("y", i64_shape([eval_batch])).or_die("graph");
    let logits = forward(&mut e, x, eval_batch).or_die("forward");
    e.output("logits", logits).or_die("graph");
    let l = loss::cross_entropy_mean(&mut e, logits, y).or_die("loss");
    e.output("loss", l).or_die("graph");
    let eval = kiln::compile(&kiln::inference(&e, store).or_die("inference"), a.compile_options()).or_die("compile");
    Programs { train, eval, compile_train_s }
}
