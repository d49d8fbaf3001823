//! The [`Dataset`] trait: what a loader needs from any source of samples
//! (PyTorch's `__len__` and `__getitem__`), plus the sample and target types.
//! [`TensorDataset`](super::TensorDataset) is the in-memory implementation;
//! a user's own source (files decoded on demand, a database) implements the
//! trait and gets batching, transforms and worker threads for free.

use super::DataError;

/// One item's target.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A class index in `0..num_classes`.
    Class(i64),
    /// Float values (regression, or 0/1 targets for BCE), `width` of them.
    Float(Vec<f32>),
}

/// What kind of target every item of a dataset carries; fixes the dtype and
/// shape of a batch's `y` (i64 `[B]` or f32 `[B, width]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Class { num_classes: usize },
    Float { width: usize },
}

/// One item: its input values (row-major, `item_shape`) and its target.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub x: Vec<f32>,
    pub target: Target,
}

/// A source of samples of one static shape. `Send + Sync` because worker
/// threads read it concurrently.
pub trait Dataset: Send + Sync {
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of one item's input, e.g. `[1, 28, 28]` or `[8]`.
    fn item_shape(&self) -> &[usize];

    fn target_kind(&self) -> TargetKind;

    /// Item `i` (`i < len()`); a source that decodes on demand reports a
    /// bad item here as a typed error.
    fn get(&self, i: usize) -> Result<Sample, DataError>;
}
