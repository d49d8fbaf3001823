//! kiln-interp: the reference interpreter, the oracle every other backend and
//! every gradient check is tested against.
//!
//! Naive and obviously right: every value is a `Vec<f64>` next to its static
//! type; each op is a plain loop nest (see `eval.rs` for the one exhaustive
//! `match` over `Op`). Two precisions:
//!
//! - [`Precision::F32`]: every f32 result is rounded to f32 after every op,
//!   as f32 hardware would (accumulations inside one op run in f64 and are
//!   rounded once). Inputs must match the graph's types exactly.
//! - [`Precision::F64`]: nothing is rounded; float inputs/params may be given
//!   as f32 or f64, and every float result (outputs and updated state) comes
//!   back as f64. Finite-difference gradient checks use this mode. The
//!   graph's f32 is read as "real number" here: even an explicit `cast` to
//!   f32 does not round. Integer and bool results are exact in both modes.
//!
//! Entry points:
//! - [`Interpreter`] implements [`kiln_ir::Backend`]; its executables keep
//!   params/state between runs and write the graph's updates back after each.
//! - [`run_graph`] / [`run_graph_full`] run a graph once from one map holding
//!   inputs *and* params/state by name, without a compile step.
//! - [`eval_op`] evaluates a single op on host tensors (constant folding).
//!
//! Semantics follow PyTorch where the IR docs leave a choice: NaN propagates
//! through relu/max/min/pooling, argmax and max-pooling pick the first
//! maximum, integer division truncates toward zero, float->int casts truncate
//! toward zero, and every index (gather, scatter_add, one_hot, labels of
//! softmax_cross_entropy) must lie in `0..extent`: negative indices are out of
//! range (no wrap-around), reported as `RunError::IndexOutOfRange` naming the
//! node `%N`.

mod conv;
mod elementwise;
mod eval;
mod indexing;
mod linalg;
mod pool;
mod run;
mod shape_ops;
mod value;

pub use eval::eval_op;
pub use run::{run_graph, run_graph_full, run_graph_nodes, GraphRun, InterpExecutable, Interpreter};

/// How float results are rounded; see the crate docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// Round every f32 result to f32 (the default; what real backends do).
    #[default]
    F32,
    /// Keep every float in f64 (for finite-difference gradient checks).
    F64,
}

/// Failures of a single op evaluation. Run-level entry points turn these into
/// `kiln_ir::RunError`s that name the node.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InterpError {
    #[error("index {index} out of range 0..{bound}")]
    IndexOutOfRange { index: i64, bound: usize },
    #[error("{0}")]
    Invalid(String),
}
