//! Train/validation/test splits and K-fold cross-validation indices, all
//! seeded and stratified by nothing (a plain shuffle): on MNIST-sized sets
//! the class balance of a random split is within a percent or two.

use super::{DataError, Dataset, SplitMix64};

fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    SplitMix64::derive(seed, u64::MAX, 1).shuffle(&mut idx);
    idx
}

fn check_fraction(name: &str, f: f64) -> Result<(), DataError> {
    if !(0.0..1.0).contains(&f) {
        return Err(DataError::Invalid(format!("{name} fraction {f} must be in [0, 1)")));
    }
    Ok(())
}

/// Splits off `val_fraction` of the items (rounded down) as a validation set.
pub fn train_val_split(d: &Dataset, val_fraction: f64, seed: u64) -> Result<(Dataset, Dataset), DataError> {
    check_fraction("validation", val_fraction)?;
    let idx = shuffled(d.len(), seed);
    let nv = (d.len() as f64 * val_fraction) as usize;
    Ok((d.subset(&idx[nv..]), d.subset(&idx[..nv])))
}

/// Three disjoint parts: (train, validation, test).
pub fn train_val_test_split(d: &Dataset, val_fraction: f64, test_fraction: f64, seed: u64) -> Result<(Dataset, Dataset, Dataset), DataError> {
    check_fraction("validation", val_fraction)?;
    check_fraction("test", test_fraction)?;
    check_fraction("validation + test", val_fraction + test_fraction)?;
    let idx = shuffled(d.len(), seed);
    let nv = (d.len() as f64 * val_fraction) as usize;
    let nt = (d.len() as f64 * test_fraction) as usize;
    Ok((d.subset(&idx[nv + nt..]), d.subset(&idx[..nv]), d.subset(&idx[nv..nv + nt])))
}

/// One fold of K-fold cross-validation: indices into the dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Fold {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
}

/// K folds over `n` items: every item is in exactly one fold's `val`, fold
/// sizes differ by at most one. Use with [`Dataset::subset`].
pub fn kfold(n: usize, k: usize, seed: u64) -> Result<Vec<Fold>, DataError> {
    if k < 2 || k > n {
        return Err(DataError::Invalid(format!("K-fold needs 2 <= k <= n, got k = {k}, n = {n}")));
    }
    let idx = shuffled(n, seed);
    let mut folds = Vec::with_capacity(k);
    let mut start = 0;
    for f in 0..k {
        let size = n / k + usize::from(f < n % k);
        let val = idx[start..start + size].to_vec();
        let train = idx[..start].iter().chain(&idx[start + size..]).copied().collect();
        folds.push(Fold { train, val });
        start += size;
    }
    Ok(folds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::toy;

    #[test]
    fn splits_are_disjoint_and_complete() {
        let d = toy(100);
        let (tr, va) = train_val_split(&d, 0.2, 1).unwrap();
        assert_eq!((tr.len(), va.len()), (80, 20));
        let (tr, va, te) = train_val_test_split(&d, 0.1, 0.25, 1).unwrap();
        assert_eq!((tr.len(), va.len(), te.len()), (65, 10, 25));
        // Items are identified by their first value.
        let mut all: Vec<i64> = [tr, va, te].iter().flat_map(|s| s.inputs.iter().step_by(2).map(|v| *v as i64).collect::<Vec<_>>()).collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert!(train_val_split(&d, 1.0, 0).is_err());
        assert!(train_val_test_split(&d, 0.5, 0.5, 0).is_err());
    }

    #[test]
    fn kfold_partitions_every_item_once() {
        let folds = kfold(10, 3, 4).unwrap();
        assert_eq!(folds.iter().map(|f| f.val.len()).collect::<Vec<_>>(), vec![4, 3, 3]);
        let mut vals: Vec<usize> = folds.iter().flat_map(|f| f.val.clone()).collect();
        vals.sort();
        assert_eq!(vals, (0..10).collect::<Vec<_>>());
        for f in &folds {
            assert_eq!(f.train.len() + f.val.len(), 10);
            assert!(f.train.iter().all(|i| !f.val.contains(i)));
        }
        assert!(kfold(3, 1, 0).is_err());
        assert!(kfold(3, 4, 0).is_err());
    }
}
