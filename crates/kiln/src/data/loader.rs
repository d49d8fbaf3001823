//! Batching with a static batch shape.
//!
//! A compiled kiln program has static shapes, so every batch a loader yields
//! has exactly `batch_size` rows; a dataset whose length is not a multiple of
//! the batch size ends in a partial batch, handled one of two ways
//! ([`LastBatch`]), neither of which recompiles anything:
//!
//! - `Drop` (the default, what training usually wants): the partial batch
//!   is skipped. With shuffling a different tail is skipped each epoch, so
//!   every item is still seen.
//! - `Pad`: the partial batch is filled up with zero inputs and label 0, and
//!   [`Batch::mask`] is 1.0 for real rows and 0.0 for padding. Evaluation
//!   counts only the first [`Batch::len`] rows (see
//!   [`metrics`](crate::metrics)); a training graph weights its per-row loss
//!   by the mask (`sum(mask * loss) / sum(mask)`) so padding contributes no
//!   gradient.

use kiln_ir::HostTensor;

use super::{Augment, DataError, Dataset, SplitMix64};

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
    /// f32 `[batch_size, ..item_shape]`.
    pub x: HostTensor,
    /// i64 `[batch_size]` class labels.
    pub y: HostTensor,
    /// f32 `[batch_size]`: 1.0 for real rows, 0.0 for padding.
    pub mask: HostTensor,
    /// How many leading rows are real (`batch_size` except for a padded tail).
    pub len: usize,
    /// The dataset index of each real row.
    pub indices: Vec<usize>,
}

impl Batch {
    /// The real labels (without padding).
    pub fn labels(&self) -> &[i64] {
        &self.y.as_i64().expect("labels are i64")[..self.len]
    }
}

/// Iterates a [`Dataset`] in batches of a fixed size.
#[derive(Debug, Clone)]
pub struct DataLoader<'a> {
    data: &'a Dataset,
    batch_size: usize,
    shuffle: Option<u64>,
    last: LastBatch,
    augment: Option<Augment>,
}

impl<'a> DataLoader<'a> {
    /// In order, no augmentation, the partial tail dropped.
    pub fn new(data: &'a Dataset, batch_size: usize) -> Result<DataLoader<'a>, DataError> {
        if batch_size == 0 {
            return Err(DataError::Invalid("batch size must be at least 1".into()));
        }
        Ok(DataLoader { data, batch_size, shuffle: None, last: LastBatch::Drop, augment: None })
    }

    /// Shuffle each epoch; epoch `e`'s order depends only on `(seed, e)`.
    pub fn shuffle(mut self, seed: u64) -> DataLoader<'a> {
        self.shuffle = Some(seed);
        self
    }

    pub fn last_batch(mut self, last: LastBatch) -> DataLoader<'a> {
        self.last = last;
        self
    }

    pub fn augment(mut self, a: Augment) -> DataLoader<'a> {
        self.augment = Some(a);
        self
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    pub fn dataset(&self) -> &'a Dataset {
        self.data
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

    /// The batches of epoch `epoch`.
    pub fn epoch(&self, epoch: u64) -> EpochIter<'a> {
        EpochIter { loader: self.clone(), order: self.order(epoch), epoch, next: 0, scratch: Vec::new() }
    }
}

/// The batches of one epoch, built lazily.
pub struct EpochIter<'a> {
    loader: DataLoader<'a>,
    order: Vec<usize>,
    epoch: u64,
    next: usize,
    scratch: Vec<f32>,
}

impl Iterator for EpochIter<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let l = &self.loader;
        let (b, n) = (l.batch_size, self.order.len());
        if self.next >= n || (l.last == LastBatch::Drop && self.next + b > n) {
            return None;
        }
        let indices: Vec<usize> = self.order[self.next..(self.next + b).min(n)].to_vec();
        self.next += b;
        let d = l.data;
        let item = d.item_numel();
        let mut x = vec![0.0f32; b * item];
        let mut y = vec![0i64; b];
        let mut mask = vec![0.0f32; b];
        for (row, &i) in indices.iter().enumerate() {
            let dst = &mut x[row * item..(row + 1) * item];
            dst.copy_from_slice(d.item(i));
            if let Some(a) = &l.augment {
                a.apply(dst, &d.item_shape, self.epoch, i as u64, &mut self.scratch);
            }
            y[row] = d.labels[i];
            mask[row] = 1.0;
        }
        let mut shape = vec![b];
        shape.extend(&d.item_shape);
        Some(Batch {
            x: HostTensor::from_f32(shape, x).expect("sized above"),
            y: HostTensor::from_i64([b], y).expect("sized above"),
            mask: HostTensor::from_f32([b], mask).expect("sized above"),
            len: indices.len(),
            indices,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.loader.len().saturating_sub(self.next / self.loader.batch_size);
        (left, Some(left))
    }
}

impl ExactSizeIterator for EpochIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::toy;

    #[test]
    fn drop_last_yields_full_batches_only() {
        let d = toy(10);
        let l = DataLoader::new(&d, 4).unwrap();
        let bs: Vec<Batch> = l.epoch(0).collect();
        assert_eq!(bs.len(), 2);
        assert_eq!(l.len(), 2);
        assert_eq!(bs[1].indices, vec![4, 5, 6, 7]);
        assert_eq!(bs[0].x.shape().dims(), &[4, 2]);
        assert_eq!(bs[0].x.as_f32().unwrap()[2..4], [1.0, 1.5]);
        assert_eq!(bs[0].labels(), &[0, 1, 2, 0]);
    }

    #[test]
    fn pad_keeps_the_shape_and_masks_the_tail() {
        let d = toy(10);
        let l = DataLoader::new(&d, 4).unwrap().last_batch(LastBatch::Pad);
        let bs: Vec<Batch> = l.epoch(0).collect();
        assert_eq!(bs.len(), 3);
        let t = &bs[2];
        assert_eq!(t.len, 2);
        assert_eq!(t.x.shape().dims(), &[4, 2]);
        assert_eq!(t.mask.as_f32().unwrap(), &[1.0, 1.0, 0.0, 0.0]);
        assert_eq!(&t.x.as_f32().unwrap()[4..], &[0.0; 4]);
        assert_eq!(t.labels(), &[2, 0]);
        assert_eq!(l.epoch(0).len(), 3);
    }

    #[test]
    fn shuffle_is_seeded_per_epoch_and_covers_everything() {
        let d = toy(50);
        let l = DataLoader::new(&d, 5).unwrap().shuffle(7);
        assert_eq!(l.order(3), l.order(3));
        assert_ne!(l.order(0), l.order(1));
        let mut seen: Vec<usize> = l.epoch(1).flat_map(|b| b.indices).collect();
        assert_ne!(seen, (0..50).collect::<Vec<_>>());
        seen.sort();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
        // A different seed gives a different order.
        let l2 = DataLoader::new(&d, 5).unwrap().shuffle(8);
        assert_ne!(l.order(0), l2.order(0));
    }

    #[test]
    fn zero_batch_size_is_an_error() {
        assert!(DataLoader::new(&toy(3), 0).is_err());
    }
}
