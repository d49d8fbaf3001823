//! kiln-passes: graph transformations and the pipeline that runs them.

mod pass;

pub use pass::{Changed, ConstEvaluator, Pass, PassCx, PassError};
