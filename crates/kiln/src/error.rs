//! The facade's error type: every lower crate's error plus model-level ones.

use kiln_ir::{IrError, RunError};
use kiln_passes::PassError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Graph construction (shape/dtype errors name the op and the `%N`s).
    #[error(transparent)]
    Ir(#[from] IrError),
    #[error(transparent)]
    Pass(#[from] PassError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Wgpu(#[from] kiln_wgpu::WgpuError),
    /// A layer, loss or optimizer was configured with values it cannot use.
    #[error("config: {0}")]
    Config(String),
    #[error("parameter `{0}` is already registered")]
    DuplicateParam(String),
    #[error("unknown parameter or state `{0}`")]
    UnknownParam(String),
    #[error("`{name}`: expected {expected}, got {got}")]
    ValueType { name: String, expected: String, got: String },
    /// A param/state input of the graph has no initial value anywhere.
    #[error("param/state `{0}` has no initial value (not in the parameter store)")]
    MissingValue(String),
    /// Writing or reading a `.kiln` program file.
    #[error(transparent)]
    Format(#[from] crate::format::FormatError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error(transparent)]
    Train(#[from] crate::train::TrainError),
    #[error("io: {0}")]
    Io(String),
    #[error("backend `{0}` is not available in this build")]
    BackendUnavailable(String),
}
