//! Reading `.kir` files, and the interpreter as constant folding's evaluator.

use std::path::Path;

use kiln_ir::{Graph, HostTensor, Op, TensorType};
use kiln_passes::ConstEvaluator;

use crate::error::CliError;

/// Reads and parses a `.kir` file; errors name the path as given.
pub fn load_kir(path: &Path) -> Result<Graph, CliError> {
    let src = std::fs::read_to_string(path).map_err(|source| CliError::Io { path: path.to_path_buf(), source })?;
    kiln_ir::text::parse(&src, &path.display().to_string()).map_err(CliError::Parse)
}

pub fn write_file(path: &Path, contents: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, contents).map_err(|source| CliError::Io { path: path.to_path_buf(), source })
}

/// `const_fold` evaluates ops with the reference interpreter in f32, the
/// precision the folded graph would have run in.
pub struct InterpEvaluator;

impl ConstEvaluator for InterpEvaluator {
    fn eval(&self, op: &Op, ty: &TensorType, operands: &[&HostTensor]) -> Result<HostTensor, String> {
        kiln_interp::eval_op(op, ty, operands, kiln_interp::Precision::F32)
    }
}
