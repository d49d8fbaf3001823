//! Training helpers: a progress bar with live loss/accuracy, early stopping
//! on validation loss, checkpoints (state dict + position in safetensors),
//! a run [`History`] that can be drawn as a PNG loss/accuracy curve, K-fold
//! cross-validation that trains one model per fold, grid and random
//! hyper-parameter search, and a cache that reuses compiled steps across
//! trials.

mod checkpoint;
mod cross_val;
mod curve;
mod early_stop;
mod history;
mod program_cache;
mod progress;
mod search;

pub use checkpoint::{load_checkpoint, save_checkpoint, Checkpoint, CheckpointDir};
pub use cross_val::{cross_validate, CvReport};
pub use curve::plot_history;
pub use early_stop::{EarlyStopping, Verdict};
pub use history::{EpochRecord, History};
pub use program_cache::ProgramCache;
pub use progress::TrainProgress;
pub use search::{search, Hyper, Range, SearchReport, SearchSpace, Trial};

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
