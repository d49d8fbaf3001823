//! Batching with a static batch shape, optionally on worker threads.
//!
//! A compiled kiln program has static shapes, so every batch a loader yields
//! has exactly `batch_size` rows; a dataset whose length is not a multiple of
//! the batch size ends in a partial batch, handled one of two ways
//! ([`LastBatch`]), neither of which recompiles anything:
//!
//! - `Drop` (the default, what training usually wants): the partial batch
//!   is skipped. With shuffling a different tail is skipped each epoch, so
//!   every item is still seen.
//! - `Pad`: the partial batch is filled up with zero inputs and targets, and
//!   [`Batch::mask`] is 1.0 for real rows and 0.0 for padding. Evaluation
//!   counts only the first [`Batch::len`] rows (see
//!   [`metrics`](crate::metrics)); a training graph weights its per-row loss
//!   by the mask (`sum(mask * loss) / sum(mask)`) so padding contributes no
//!   gradient.
//!
//! With `num_workers(n)`, `n > 0` threads build the next batches (read the
//! items, transform, pack) while the caller runs its step: worker `w` builds
//! batches `w, w + n, w + 2n, ...` into its own bounded queue of
//! `prefetch_factor` batches (PyTorch's names and default of 2), and the
//! iterator takes them round-robin, so batches arrive in order. Every
//! random draw depends only on `(seed, epoch, item index)`, so the batches
//! are the same bits whatever the worker count.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use kiln_ir::HostTensor;

use super::transforms::Transform;
use super::{DataError, Dataset, SplitMix64, Target, TargetKind};

/// What to do with the final, partial batch of an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LastBatch {
    #[default]
    Drop,
    Pad,
}

/// One batch: always `batch_size` rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// f32 `[batch_size, ..item_shape]` (the shape after the transform).
    pub x: HostTensor,
    /// i64 `[batch_size]` class labels, or f32 `[batch_size, width]` targets.
    pub y: HostTensor,
    /// f32 `[batch_size]`: 1.0 for real rows, 0.0 for padding.
    pub mask: HostTensor,
    /// How many leading rows are real (`batch_size` except for a padded tail).
    pub len: usize,
    /// The dataset index of each real row.
    pub indices: Vec<usize>,
}

impl Batch {
    /// The real class labels (without padding); `None` for float targets.
    pub fn labels(&self) -> Option<&[i64]> {
        self.y.as_i64().map(|l| &l[..self.len])
    }
}

/// Iterates a [`Dataset`] in batches of a fixed size. Cheap to clone (the
/// dataset and transform are shared).
#[derive(Clone)]
pub struct DataLoader {
    data: Arc<dyn Dataset>,
    batch_size: usize,
    shuffle: Option<u64>,
    last: LastBatch,
    transform: Option<(Arc<dyn Transform>, u64)>,
    /// The item shape after the transform.
    item_shape: Vec<usize>,
    num_workers: usize,
    prefetch: usize,
}

impl std::fmt::Debug for DataLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataLoader")
            .field("len", &self.data.len())
            .field("batch_size", &self.batch_size)
            .field("shuffle", &self.shuffle)
            .field("last", &self.last)
            .field("item_shape", &self.item_shape)
            .field("num_workers", &self.num_workers)
            .finish_non_exhaustive()
    }
}

impl DataLoader {
    /// In order, no transform, the partial tail dropped, no workers.
    pub fn new(data: Arc<dyn Dataset>, batch_size: usize) -> Result<DataLoader, DataError> {
        if batch_size == 0 {
            return Err(DataError::Invalid("batch size must be at least 1".into()));
        }
        let item_shape = data.item_shape().to_vec();
        Ok(DataLoader { data, batch_size, shuffle: None, last: LastBatch::Drop, transform: None, item_shape, num_workers: 0, prefetch: 2 })
    }

    /// Shuffle each epoch; epoch `e`'s order depends only on `(seed, e)`.
    pub fn shuffle(mut self, seed: u64) -> DataLoader {
        self.shuffle = Some(seed);
        self
    }

    pub fn last_batch(mut self, last: LastBatch) -> DataLoader {
        self.last = last;
        self
    }

    /// Transforms every item (e.g. a [`Compose`](super::transforms::Compose)),
    /// item `i` of epoch `e` with a generator derived from `(seed, e, i)`.
    /// Fails if the transform cannot take the dataset's items.
    pub fn transform(mut self, t: impl Transform + 'static, seed: u64) -> Result<DataLoader, DataError> {
        self.item_shape = t.out_shape(self.data.item_shape())?;
        self.transform = Some((Arc::new(t), seed));
        Ok(self)
    }

    /// Threads that build batches ahead of the consumer (0: built on the
    /// calling thread when asked for).
    pub fn num_workers(mut self, n: usize) -> DataLoader {
        self.num_workers = n;
        self
    }

    /// Batches each worker keeps ready (at least 1).
    pub fn prefetch_factor(mut self, n: usize) -> DataLoader {
        self.prefetch = n.max(1);
        self
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.data
    }

    /// The shape of one item of a batch (after the transform).
    pub fn item_shape(&self) -> &[usize] {
        &self.item_shape
    }

    /// Batches per epoch.
    pub fn len(&self) -> usize {
        match self.last {
            LastBatch::Drop => self.data.len() / self.batch_size,
            LastBatch::Pad => self.data.len().div_ceil(self.batch_size),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The item order of epoch `epoch`.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.data.len()).collect();
        if let Some(seed) = self.shuffle {
            SplitMix64::derive(seed, epoch, 0).shuffle(&mut idx);
        }
        idx
    }

    /// The batches of epoch `epoch`; with workers, they start building now.
    pub fn epoch(&self, epoch: u64) -> EpochIter {
        let order = Arc::new(self.order(epoch));
        let batches = self.len();
        let mut it = EpochIter { loader: self.clone(), order, epoch, next: 0, batches, queues: Vec::new(), workers: Vec::new() };
        let n = self.num_workers.min(batches);
        for w in 0..n {
            let (tx, rx) = sync_channel(self.prefetch);
            let (loader, order) = (self.clone(), it.order.clone());
            let handle = std::thread::Builder::new().name(format!("kiln-loader-{w}")).spawn(move || {
                for k in (w..batches).step_by(n) {
                    // A closed queue means the consumer stopped early.
                    if tx.send(loader.build(&order, k, epoch)).is_err() {
                        return;
                    }
                }
            });
            match handle {
                Ok(h) => {
                    it.queues.push(rx);
                    it.workers.push(h);
                }
                // No thread to be had: the ones started so far stop, and the
                // epoch is built on the calling thread instead.
                Err(_) => {
                    it.stop_workers();
                    break;
                }
            }
        }
        it
    }

    /// Batch `k` of an epoch whose item order is `order`.
    fn build(&self, order: &[usize], k: usize, epoch: u64) -> Result<Batch, DataError> {
        let (b, n) = (self.batch_size, order.len());
        let indices: Vec<usize> = order[k * b..((k + 1) * b).min(n)].to_vec();
        let item: usize = self.item_shape.iter().product();
        let raw: usize = self.data.item_shape().iter().product();
        let kind = self.data.target_kind();
        let mut x = vec![0.0f32; b * item];
        let mut labels = vec![0i64; if matches!(kind, TargetKind::Class { .. }) { b } else { 0 }];
        let mut values = vec![0f32; if let TargetKind::Float { width } = kind { b * width } else { 0 }];
        let mut mask = vec![0.0f32; b];
        for (row, &i) in indices.iter().enumerate() {
            let s = self.data.get(i)?;
            if s.x.len() != raw {
                return Err(DataError::ItemSize { index: i, expected: raw, got: s.x.len() });
            }
            let v = match &self.transform {
                Some((t, seed)) => t.apply(s.x, self.data.item_shape(), &mut SplitMix64::derive(*seed, epoch, i as u64)),
                None => s.x,
            };
            x[row * item..(row + 1) * item].copy_from_slice(&v);
            match (kind, s.target) {
                (TargetKind::Class { num_classes }, Target::Class(l)) => {
                    if l < 0 || l as usize >= num_classes {
                        return Err(DataError::LabelOutOfRange { index: i, label: l, num_classes });
                    }
                    labels[row] = l;
                }
                (TargetKind::Float { width }, Target::Float(t)) if t.len() == width => values[row * width..(row + 1) * width].copy_from_slice(&t),
                (kind, t) => return Err(DataError::Invalid(format!("item {i}: target {t:?} does not match the dataset's {kind:?}"))),
            }
            mask[row] = 1.0;
        }
        let mut shape = vec![b];
        shape.extend(&self.item_shape);
        let y = match kind {
            TargetKind::Class { .. } => HostTensor::from_i64([b], labels),
            TargetKind::Float { width } => HostTensor::from_f32([b, width], values),
        };
        Ok(Batch {
            x: HostTensor::from_f32(shape, x).expect("sized above"),
            y: y.expect("sized above"),
            mask: HostTensor::from_f32([b], mask).expect("sized above"),
            len: indices.len(),
            indices,
        })
    }
}

/// The batches of one epoch, in order. Dropping it early stops its workers.
pub struct EpochIter {
    loader: DataLoader,
    order: Arc<Vec<usize>>,
    epoch: u64,
    next: usize,
    batches: usize,
    queues: Vec<Receiver<Result<Batch, DataError>>>,
    workers: Vec<JoinHandle<()>>,
}

impl EpochIter {
    fn stop_workers(&mut self) {
        // Closing the queues first makes a worker blocked on a full queue
        // return, so the joins cannot hang.
        self.queues.clear();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

impl Iterator for EpochIter {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Result<Batch, DataError>> {
        if self.next >= self.batches {
            return None;
        }
        let k = self.next;
        self.next += 1;
        if self.queues.is_empty() {
            return Some(self.loader.build(&self.order, k, self.epoch));
        }
        let q = &self.queues[k % self.queues.len()];
        Some(q.recv().unwrap_or_else(|_| Err(DataError::Worker(format!("the worker building batch {k} stopped (it panicked)")))))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.batches - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for EpochIter {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::tensor_dataset::toy;
    use crate::data::transforms::{Compose, RandomCrop, RandomHorizontalFlip};
    use crate::data::{Sample, TensorDataset};

    fn all(l: &DataLoader, e: u64) -> Vec<Batch> {
        l.epoch(e).collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn drop_last_yields_full_batches_only() {
        let l = DataLoader::new(Arc::new(toy(10)), 4).unwrap();
        let bs = all(&l, 0);
        assert_eq!(bs.len(), 2);
        assert_eq!(l.len(), 2);
        assert_eq!(bs[1].indices, vec![4, 5, 6, 7]);
        assert_eq!(bs[0].x.shape().dims(), &[4, 2]);
        assert_eq!(bs[0].x.as_f32().unwrap()[2..4], [1.0, 1.5]);
        assert_eq!(bs[0].labels(), Some(&[0, 1, 2, 0][..]));
    }

    #[test]
    fn pad_keeps_the_shape_and_masks_the_tail() {
        let l = DataLoader::new(Arc::new(toy(10)), 4).unwrap().last_batch(LastBatch::Pad);
        let bs = all(&l, 0);
        assert_eq!(bs.len(), 3);
        let t = &bs[2];
        assert_eq!(t.len, 2);
        assert_eq!(t.x.shape().dims(), &[4, 2]);
        assert_eq!(t.mask.as_f32().unwrap(), &[1.0, 1.0, 0.0, 0.0]);
        assert_eq!(&t.x.as_f32().unwrap()[4..], &[0.0; 4]);
        assert_eq!(t.labels(), Some(&[2, 0][..]));
        assert_eq!(l.epoch(0).len(), 3);
    }

    #[test]
    fn shuffle_is_seeded_per_epoch_and_covers_everything() {
        let d = Arc::new(toy(50));
        let l = DataLoader::new(d.clone(), 5).unwrap().shuffle(7);
        assert_eq!(l.order(3), l.order(3));
        assert_ne!(l.order(0), l.order(1));
        let mut seen: Vec<usize> = all(&l, 1).into_iter().flat_map(|b| b.indices).collect();
        assert_ne!(seen, (0..50).collect::<Vec<_>>());
        seen.sort();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
        let l2 = DataLoader::new(d, 5).unwrap().shuffle(8);
        assert_ne!(l.order(0), l2.order(0));
    }

    #[test]
    fn float_targets_batch_as_f32_rows() {
        let d = TensorDataset::with_float_targets(vec![0.0, 1.0, 2.0], vec![0.5, 1.5, 2.5], vec![1], 1).unwrap();
        let bs = all(&DataLoader::new(Arc::new(d), 2).unwrap().last_batch(LastBatch::Pad), 0);
        assert_eq!(bs[0].y.shape().dims(), &[2, 1]);
        assert_eq!(bs[1].y.as_f32().unwrap(), &[2.5, 0.0]);
        assert_eq!(bs[0].labels(), None);
    }

    #[test]
    fn workers_give_the_same_batches_as_the_calling_thread() {
        let imgs: Vec<f32> = (0..37 * 16).map(|v| (v % 97) as f32).collect();
        let d = Arc::new(TensorDataset::new(imgs, (0..37).map(|i| i % 4).collect(), vec![1, 4, 4], 4).unwrap());
        let make = |w: usize| {
            let t = Compose::new().add(RandomCrop::new(3).padding(1, -1.0)).add(RandomHorizontalFlip::new(0.5));
            DataLoader::new(d.clone(), 5).unwrap().shuffle(3).last_batch(LastBatch::Pad).transform(t, 11).unwrap().num_workers(w).prefetch_factor(1)
        };
        let base = all(&make(0), 2);
        assert_eq!(base.len(), 8);
        assert_eq!(base[0].x.shape().dims(), &[5, 1, 3, 3]);
        for w in [1, 2, 3, 16] {
            assert_eq!(all(&make(w), 2), base, "{w} workers");
        }
        assert_ne!(all(&make(2), 3), base, "another epoch draws other crops");
        // Stopping after one batch ends the workers (the drop joins them).
        let mut it = make(2).epoch(0);
        assert!(it.next().unwrap().is_ok());
        drop(it);
    }

    struct Flaky;
    impl Dataset for Flaky {
        fn len(&self) -> usize {
            6
        }
        fn item_shape(&self) -> &[usize] {
            &[2]
        }
        fn target_kind(&self) -> TargetKind {
            TargetKind::Class { num_classes: 3 }
        }
        fn get(&self, i: usize) -> Result<Sample, DataError> {
            match i {
                3 => Err(DataError::Invalid("item 3 is unreadable".into())),
                4 => Ok(Sample { x: vec![0.0; 2], target: Target::Class(7) }),
                5 => Ok(Sample { x: vec![0.0; 3], target: Target::Class(0) }),
                _ => Ok(Sample { x: vec![i as f32; 2], target: Target::Class(i as i64 % 3) }),
            }
        }
    }

    #[test]
    fn a_bad_item_is_an_error_in_its_batch_with_or_without_workers() {
        for w in [0, 2] {
            let l = DataLoader::new(Arc::new(Flaky), 1).unwrap().num_workers(w);
            let r: Vec<Result<Batch, DataError>> = l.epoch(0).collect();
            assert!(r[..3].iter().all(Result::is_ok));
            assert_eq!(r[3].as_ref().unwrap_err(), &DataError::Invalid("item 3 is unreadable".into()));
            assert_eq!(r[4].as_ref().unwrap_err(), &DataError::LabelOutOfRange { index: 4, label: 7, num_classes: 3 });
            assert_eq!(r[5].as_ref().unwrap_err(), &DataError::ItemSize { index: 5, expected: 2, got: 3 });
        }
    }

    #[test]
    fn bad_configuration_is_an_error() {
        assert!(DataLoader::new(Arc::new(toy(3)), 0).is_err());
        assert!(DataLoader::new(Arc::new(toy(3)), 1).unwrap().transform(RandomHorizontalFlip::new(0.5), 0).is_err(), "[2] items are not images");
    }
}
