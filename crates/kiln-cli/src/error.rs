//! The CLI's error type: one variant per way a command can fail.

use std::path::PathBuf;

use kiln_ir::{IrError, RunError};
use kiln_passes::PassError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Parse errors, each already `file:line:col: message`.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Parse(Vec<IrError>),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Ir(#[from] IrError),
    #[error("{0}")]
    Pass(#[from] PassError),
    #[error("{0}")]
    Run(#[from] RunError),
    #[error("{0}")]
    Kiln(#[from] kiln::Error),
    #[error("{0}")]
    Format(#[from] kiln::format::FormatError),
    /// Options that do not go together.
    #[error("{0}")]
    Usage(String),
    /// Errors that were already printed (e.g. per file by `check`).
    #[error("")]
    Reported,
    /// Problems with the tensors of `--inputs`, one per line.
    #[error("{}: {}", path.display(), problems.join(&format!("\n{}: ", path.display())))]
    Inputs { path: PathBuf, problems: Vec<String> },
}

impl CliError {
    /// Prints the error to stderr: parse errors bare (so editors and scripts
    /// can read `file:line:col:`), everything else after `error: `.
    pub fn report(&self) {
        match self {
            CliError::Parse(_) => eprintln!("{self}"),
            CliError::Reported => {}
            other => {
                for line in other.to_string().lines() {
                    eprintln!("error: {line}");
                }
            }
        }
    }
}
