//! Data for training: the [`Dataset`] trait and its in-memory
//! [`TensorDataset`] (class or float targets), the MNIST IDX reader, a
//! CSV/delimited-text table reader, a [`DataLoader`] with seeded per-epoch
//! shuffling, a static batch shape and worker threads, stratified splits and
//! K-fold, normalization/standardization, and image [`transforms`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use kiln::data::{train_val_split, DataLoader, LastBatch, Mnist, Normalize};
//! use kiln::data::transforms::{Compose, RandomCrop};
//! let mut mnist = Mnist::shipped()?;                  // 8,000 train / 2,000 test
//! mnist.normalize(Normalize::MNIST);
//! // Validation data comes out of the training data; the test set waits.
//! let (train, val) = train_val_split(&mnist.train, 0.1, 0)?;
//! let loader = DataLoader::new(Arc::new(train), 64)?
//!     .shuffle(42)
//!     .last_batch(LastBatch::Drop)
//!     .transform(Compose::new().add(RandomCrop::new(28).padding(2, -0.42)), 7)?
//!     .num_workers(2);
//! for batch in loader.epoch(0) {
//!     let batch = batch?;
//!     // batch.x: f32[64,1,28,28], batch.y: i64[64], batch.mask: f32[64]
//! }
//! # Ok::<(), kiln::data::DataError>(())
//! ```

mod csv;
mod dataset;
mod loader;
mod mnist;
mod normalize;
mod rng;
mod split;
mod standardize;
mod tensor_dataset;
pub mod transforms;

pub use self::csv::{Column, CsvTable};
pub use dataset::{Dataset, Sample, Target, TargetKind};
pub use loader::{Batch, DataLoader, EpochIter, LastBatch};
pub use mnist::{parse_idx, read_idx, Idx, Mnist};
pub use normalize::Normalize;
pub use rng::SplitMix64;
pub use split::{kfold, stratified_kfold, stratified_split, train_val_split, train_val_test_split, Fold};
pub use standardize::Standardize;
pub use tensor_dataset::{Targets, TensorDataset};

use std::path::PathBuf;

/// Everything that can go wrong reading or batching data.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path}: not a valid gzip stream ({message})")]
    Gzip { path: PathBuf, message: String },
    #[error("{path}: wrong magic number 0x{found:08x} (expected an IDX file: 0x0000TTNN, type 0x08 = u8)")]
    BadMagic { path: PathBuf, found: u32 },
    #[error("{path}: truncated: {what} needs {expected} bytes, the file has {got}")]
    Truncated { path: PathBuf, what: &'static str, expected: usize, got: usize },
    #[error("{path}: malformed: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("{images_path}: {images} images but {labels_path}: {labels} labels")]
    CountMismatch { images_path: PathBuf, images: usize, labels_path: PathBuf, labels: usize },
    #[error("no file for {what} in {dir} (tried {tried})")]
    NotFound { dir: PathBuf, what: &'static str, tried: String },
    #[error("label {label} of item {index} is outside 0..{num_classes}")]
    LabelOutOfRange { index: usize, label: i64, num_classes: usize },
    #[error("item {index} is out of range (the dataset has {len} items)")]
    IndexOutOfRange { index: usize, len: usize },
    #[error("item {index} has {got} input values, the dataset's item shape needs {expected}")]
    ItemSize { index: usize, expected: usize, got: usize },
    #[error("{path}: {message}")]
    Csv { path: PathBuf, message: String },
    #[error("{path}: the table has no data rows")]
    EmptyTable { path: PathBuf },
    #[error("{path}: line {line} has {got} cells, the header/first row has {expected}")]
    RaggedRow { path: PathBuf, line: u64, expected: usize, got: usize },
    #[error("{path}: line {line}, column {column}: `{cell}` is not a finite number")]
    NotANumber { path: PathBuf, line: u64, column: String, cell: String },
    #[error("{path}: line {line}, column {column}: missing value `{cell}` (impute or drop it before loading)")]
    MissingValue { path: PathBuf, line: u64, column: String, cell: String },
    #[error("{path}: line {line}, column {column}: label `{cell}` is not an integer in 0..{num_classes}")]
    BadLabel { path: PathBuf, line: u64, column: String, cell: String, num_classes: usize },
    #[error("{path}: no column {column} (columns: {columns})")]
    UnknownColumn { path: PathBuf, column: String, columns: String },
    #[error("data loader worker: {0}")]
    Worker(String),
    #[error("invalid argument: {0}")]
    Invalid(String),
}
