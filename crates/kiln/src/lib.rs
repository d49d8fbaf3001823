//! kiln: define a model in Rust, compile a whole training step or inference
//! pass to one program, run it on the interpreter or the CPU JIT.
//!
//! Module ownership while the first version is built (see docs/TEAM.md):
//! nn/loss/optim/init/compile/program/error: models-in-code;
//! data/metrics/train/format: training utilities and the on-disk format.

pub use kiln_ir as ir;
