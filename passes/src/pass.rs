//! The `Pass` trait and the context passes run in.

use std::path::PathBuf;

use kiln_ir::{Graph, HostTensor, IrError, NodeId, Op, TensorType};
use rustc_hash::FxHashSet;

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
    /// The manager writes the ones a pass added under that pass's number and
    /// leaves them here, so API users can read them with dumping off.
    pub reports: Vec<(String, String)>,
    /// The number prefix the next dump group gets (`00-input.kir` is 0). 0
    /// means this compilation has dumped nothing yet, so the manager starts a
    /// fresh dump folder; later pipelines on the same `PassCx` continue the
    /// numbering.
    pub dump_seq: usize,
}

impl std::fmt::Debug for PassCx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PassCx")
            .field("dump_dir", &self.dump_dir)
            .field("evaluator", &self.evaluator.as_ref().map(|_| "<evaluator>"))
            .field("reports", &self.reports.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .field("dump_seq", &self.dump_seq)
            .finish()
    }
}

impl PassCx {
    pub fn new() -> PassCx {
        PassCx::default()
    }

    /// Dumping into `dir` (see [`crate::dump`]).
    pub fn with_dump_dir(mut self, dir: impl Into<PathBuf>) -> PassCx {
        self.dump_dir = Some(dir.into());
        self
    }

    /// Dumping as `KILN_DUMP` says (off when unset or empty).
    pub fn with_dump_from_env(mut self) -> PassCx {
        self.dump_dir = crate::dump::dump_dir_from_env();
        self
    }

    pub fn with_evaluator(mut self, e: impl ConstEvaluator + 'static) -> PassCx {
        self.evaluator = Some(Box::new(e));
        self
    }

    /// Adds a named report for the dump folder (e.g. `egraph.txt`).
    pub fn add_report(&mut self, file_name: impl Into<String>, contents: impl Into<String>) {
        self.reports.push((file_name.into(), contents.into()));
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("pass `{pass}`: {source}")]
    Ir { pass: String, source: IrError },
    #[error("pass `{pass}` left an invalid graph: {source}")]
    Verify { pass: String, source: IrError },
    /// The graph handed to the pipeline did not verify; no pass ran.
    #[error("the input graph is invalid (before any pass): {0}")]
    InvalidInput(IrError),
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

/// Every node a pending grad request differentiates with respect to. Passes
/// that run before autodiff must not change what these nodes mean: merging
/// one with a twin or folding through one would change the gradient.
pub fn grad_wrt_nodes(g: &Graph) -> FxHashSet<NodeId> {
    g.grad_requests().iter().flat_map(|r| r.wrt.iter().copied()).collect()
}
