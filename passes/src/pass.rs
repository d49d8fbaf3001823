//! The `Pass` trait and the context passes run in.

use std::path::PathBuf;

use kiln_ir::{Graph, HostTensor, IrError, Op, TensorType};

/// Whether a pass changed the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    Yes,
    No,
}

impl Changed {
    pub fn from_bool(b: bool) -> Changed {
        if b { Changed::Yes } else { Changed::No }
    }
    pub fn changed(self) -> bool {
        self == Changed::Yes
    }
}

/// Evaluates one op on constant operands. Constant folding uses this so the
/// pass crate does not depend on a backend; kiln-interp provides one.
pub trait ConstEvaluator {
    fn eval(&self, op: &Op, ty: &TensorType, operands: &[&HostTensor]) -> Result<HostTensor, String>;
}

/// Shared state for one pipeline run: where to dump, extra reports.
#[derive(Default)]
pub struct PassCx {
    /// When set, passes may write reports here (the manager writes the graphs).
    pub dump_dir: Option<PathBuf>,
    /// Used by constant folding; folding is skipped when absent.
    pub evaluator: Option<Box<dyn ConstEvaluator>>,
    /// Extra named text reports a pass wants dumped (file name, contents).
    pub reports: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("pass `{pass}`: {source}")]
    Ir { pass: String, source: IrError },
    #[error("pass `{pass}` left an invalid graph: {source}")]
    Verify { pass: String, source: IrError },
    #[error("autodiff: {0}")]
    Autodiff(String),
    #[error("unknown pass `{0}` (known: {1})")]
    UnknownPass(String, String),
    #[error("dump: {0}")]
    Dump(String),
    #[error("pass `{pass}`: {message}")]
    Failed { pass: String, message: String },
}

/// One graph transformation. One pass per file.
pub trait Pass {
    fn name(&self) -> &str;
    fn run(&self, g: &mut Graph, cx: &mut PassCx) -> Result<Changed, PassError>;
}
