//! kiln: define a model in Rust, compile a whole training step or inference
//! pass to one program, run it on the interpreter or the CPU JIT.
//!
//! - Layers register their parameters in a seeded [`ParamStore`] under
//!   PyTorch's names and layouts (`fc1.weight` is [out, in], conv weights
//!   OIHW, `lstm.weight_ih_l0`, `bn1.running_mean`) with PyTorch's default
//!   initialization; [`init`] has the other initializers
//!   (`store.reinit(name, Init::XavierUniform { gain: 1.0 })`).
//! - A [`Builder`] is a graph under construction in a [`Mode`] (train or
//!   eval); `layer.forward(&mut b, x)` adds the layer's ops and its
//!   parameters as named graph inputs, so one layer applied twice shares its
//!   parameters. Shape errors surface there, naming the op and the `%N`s.
//! - [`nn`]: Linear, Conv1d/Conv2d, pooling (max, avg, adaptive, global),
//!   BatchNorm1d/2d, LayerNorm, Dropout, Flatten, Embedding, RNN/LSTM/GRU,
//!   Sequential/Residual, and the activations. [`loss`]: MSE, L1,
//!   SmoothL1/Huber, log-cosh, cross-entropy/NLL (weights, label smoothing,
//!   ignore_index), BCE, BCE-with-logits, L1/L2/elastic-net penalties.
//! - [`models`]: torchvision's ResNet-18/34, AlexNet, VGG (with and without
//!   BatchNorm), GoogLeNet and DenseNet with torchvision's state_dict names
//!   (its safetensors exports load unchanged), and the course's LeNet-5,
//!   NiN, Inception net and tiny ViT; `nn::Branches` and
//!   `nn::DenselyConnected` build such branching blocks.
//! - [`optim`]: SGD, Adam/AdamW (AMSGrad), NAdam, RMSprop, Adagrad, Adadelta
//!   as graph nodes, with parameter groups, gradient clipping, and the
//!   learning rate as runtime state ([`Program::set_lr`], schedules in
//!   [`optim::schedule`]) and, opt-in, the weight decay
//!   ([`Program::set_weight_decay`]). PyTorch's update formulas, checked against
//!   PyTorch's own numbers by the golden tests.
//! - [`train_step`] turns forward + loss into one training graph (autodiff
//!   and the optimizer's updates appended); [`inference`] takes an eval-mode
//!   graph as is; [`compile`] runs the pass pipeline (verified after every
//!   pass, dumped with [`CompileOptions::dump`] or `KILN_DUMP`) and a backend
//!   and returns a [`Program`], which keeps params and optimizer state
//!   between runs, exposes `state_dict`s (safetensors, PyTorch names) and
//!   saves to a `.kiln` file ([`Program::save`]).
//!
//! ```
//! use kiln::prelude::*;
//! use kiln::{nn, optim, loss, Builder, CompileOptions, HostTensor, ParamStore, f32_shape, i64_shape};
//!
//! # fn main() -> kiln::Result<()> {
//! let mut store = ParamStore::new(0);
//! let mlp = nn::Sequential::new()
//!     .add(nn::Linear::new(&mut store, "fc1", 4, 16)?)
//!     .add(nn::ReLU)
//!     .add(nn::Linear::new(&mut store, "fc2", 16, 3)?);
//!
//! let mut b = Builder::train();
//! let x = b.input("x", f32_shape([8, 4]))?;
//! let y = b.input("y", i64_shape([8]))?;
//! let logits = mlp.forward(&mut b, x)?;
//! let l = loss::cross_entropy_mean(&mut b, logits, y)?;
//! let step = kiln::train_step(&b, l, &store, optim::Sgd::new(0.1).momentum(0.9))?;
//! let mut exe = kiln::compile(&step, CompileOptions::interp())?;
//!
//! let xs = HostTensor::from_f32([8, 4], (0..32).map(|i| (i % 7) as f32 / 7.0 - 0.4).collect())?;
//! let ys = HostTensor::from_i64([8], vec![0, 1, 2, 0, 1, 2, 0, 1])?;
//! let first = exe.run(&[("x", &xs), ("y", &ys)])?["loss"].scalar()?;
//! let second = exe.run(&[("x", &xs), ("y", &ys)])?["loss"].scalar()?;
//! assert!(second < first, "loss {first} -> {second}");
//!
//! // Inference: the same layers in an eval-mode graph, trained weights copied in.
//! let mut e = Builder::eval();
//! let x = e.input("x", f32_shape([8, 4]))?;
//! let out = mlp.forward(&mut e, x)?;
//! e.output("logits", out)?;
//! let mut infer = kiln::compile(&kiln::inference(&e, &store)?, CompileOptions::interp())?;
//! infer.load_from(&exe)?;
//! assert_eq!(infer.run(&[("x", &xs)])?["logits"].shape().dims(), &[8, 3]);
//! # Ok(()) }
//! ```

mod compile;
mod error;
pub mod init;
pub mod loss;
mod model;
pub mod models;
pub mod nn;
pub mod optim;
mod program;

/// The traits user code needs in scope: `use kiln::prelude::*;`.
pub mod prelude {
    pub use crate::nn::Module;
    pub use crate::optim::schedule::LrSchedule;
    pub use crate::optim::{Optimizer, Rule};
}

pub mod data;
pub mod format;
pub mod metrics;
pub mod train;

pub use compile::{compile, grad, inference, train_step, train_step_params, wgpu_adapter, BackendKind, CompileOptions, EgraphLimits};
pub use error::{Error, Result};
pub use kiln_wgpu::WgpuError;
pub use model::{Builder, Mode, ParamStore, Spec};
pub use kiln_passes::PipelineReport;
pub use program::{is_model_state, Program};

pub use kiln_ir as ir;
pub use kiln_ir::{f32_shape, i64_shape, DType, Graph, HostTensor, InputRole, NodeId, Shape, TensorType};
