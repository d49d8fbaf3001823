//! kiln-ir's error type.

use crate::{NodeId, TensorType};

/// An operand as reported in an error: its id and type.
#[derive(Debug, Clone, PartialEq)]
pub struct OperandInfo {
    pub id: NodeId,
    pub ty: TensorType,
}

fn list(ops: &[OperandInfo]) -> String {
    ops.iter().map(|o| format!("{}: {}", o.id, o.ty)).collect::<Vec<_>>().join(", ")
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IrError {
    /// Shape/dtype inference rejected an op at graph-build time.
    #[error("{op}({operands}): {reason}", operands = list(operands))]
    Type { op: &'static str, operands: Vec<OperandInfo>, reason: String },
    #[error("unknown node {0}")]
    UnknownNode(NodeId),
    #[error("duplicate name `{0}`")]
    DuplicateName(String),
    #[error("unknown name `{0}`")]
    UnknownName(String),
    #[error("verifier: {0}")]
    Verify(String),
    #[error("tensor data: {0}")]
    TensorData(String),
    #[error("safetensors: {0}")]
    Safetensors(String),
    #[error("io: {0}")]
    Io(String),
    /// A `.kir` parse error, already formatted as `file:line:col: message`.
    #[error("{file}:{line}:{col}: {message}")]
    Parse { file: String, line: usize, col: usize, message: String },
}
