//! kiln-passes: graph transformations and the pipeline that runs them.

mod pass;

pub mod autodiff;
pub mod egraph;
pub mod memory_plan;
pub mod partition;

pub use pass::{Changed, ConstEvaluator, Pass, PassCx, PassError};
