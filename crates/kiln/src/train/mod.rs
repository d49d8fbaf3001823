//! Training helpers: a progress bar with live loss/accuracy, early stopping
//! on validation loss, checkpoints (state dict + position in safetensors),
//! and a run [`History`] that can be drawn as a PNG loss/accuracy curve.

mod checkpoint;
mod curve;
mod early_stop;
mod history;
mod progress;

pub use checkpoint::{load_checkpoint, save_checkpoint, Checkpoint, CheckpointDir};
pub use curve::plot_history;
pub use early_stop::{EarlyStopping, Verdict};
pub use history::{EpochRecord, History};
pub use progress::TrainProgress;

use std::path::PathBuf;

/// Errors from checkpoints and plots.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrainError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("plot {path}: {message}")]
    Plot { path: PathBuf, message: String },
}
