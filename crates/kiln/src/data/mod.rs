//! Data for training: an in-memory classification [`Dataset`], the MNIST IDX
//! reader, a [`DataLoader`] with seeded per-epoch shuffling and a static
//! batch shape, splits and K-fold, normalization and image augmentation.
//!
//! ```no_run
//! use kiln::data::{Mnist, DataLoader, LastBatch, Normalize};
//! let mut mnist = Mnist::shipped()?;                  // 8,000 train / 2,000 test
//! mnist.normalize(Normalize::MNIST);
//! let loader = DataLoader::new(&mnist.train, 64)?.shuffle(42).last_batch(LastBatch::Drop);
//! for batch in loader.epoch(0) {
//!     // batch.x: f32[64,1,28,28], batch.y: i64[64], batch.mask: f32[64]
//! }
//! # Ok::<(), kiln::data::DataError>(())
//! ```

mod augment;
mod dataset;
mod loader;
mod mnist;
mod rng;
mod split;

pub use augment::{Augment, Normalize};
pub use dataset::Dataset;
pub use loader::{Batch, DataLoader, EpochIter, LastBatch};
pub use mnist::{parse_idx, read_idx, Idx, Mnist};
pub use rng::SplitMix64;
pub use split::{kfold, train_val_split, train_val_test_split, Fold};

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
    #[error("invalid argument: {0}")]
    Invalid(String),
}
