//! Train/validation/test splits and K-fold cross-validation indices, all
//! seeded. Splits of a classification set are stratified: each class is
//! split in the same proportion, so a small validation set does not
//! under-represent a rare class by chance.

use super::{DataError, SplitMix64, TensorDataset};

fn check_fraction(name: &str, f: f64) -> Result<(), DataError> {
    if !(0.0..1.0).contains(&f) {
        return Err(DataError::Invalid(format!("{name} fraction {f} must be in [0, 1)")));
    }
    Ok(())
}

/// Item indices grouped by class (one group for float targets), each group
/// shuffled by `seed`.
fn shuffled_groups(d: &TensorDataset, seed: u64) -> Vec<Vec<usize>> {
    let mut groups = match d.labels() {
        Some(labels) => {
            let mut g = vec![Vec::new(); d.num_classes().unwrap_or(0)];
            for (i, &l) in labels.iter().enumerate() {
                g[l as usize].push(i);
            }
            g
        }
        None => vec![(0..d.len()).collect()],
    };
    for (c, g) in groups.iter_mut().enumerate() {
        SplitMix64::derive(seed, u64::MAX, c as u64 + 1).shuffle(g);
    }
    groups
}

/// Per-group counts summing to exactly `floor(n * frac)`: each group gets
/// the floor of its share, the leftovers go to the largest remainders.
fn quotas(sizes: &[usize], frac: f64) -> Vec<usize> {
    let total = (sizes.iter().sum::<usize>() as f64 * frac) as usize;
    let exact: Vec<f64> = sizes.iter().map(|&s| s as f64 * frac).collect();
    let mut q: Vec<usize> = exact.iter().map(|e| *e as usize).collect();
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())).then(a.cmp(&b)));
    let mut left = total.saturating_sub(q.iter().sum());
    for &g in order.iter().cycle().take(sizes.len() * 2) {
        if left == 0 {
            break;
        }
        if q[g] < sizes[g] {
            q[g] += 1;
            left -= 1;
        }
    }
    q
}

/// Splits `(train, held_out)` indices, `floor(n * frac)` held out,
/// stratified by class; both lists are shuffled.
pub fn stratified_split(d: &TensorDataset, frac: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>), DataError> {
    check_fraction("held-out", frac)?;
    let groups = shuffled_groups(d, seed);
    let q = quotas(&groups.iter().map(Vec::len).collect::<Vec<_>>(), frac);
    let (mut train, mut held) = (Vec::new(), Vec::new());
    for (g, n) in groups.iter().zip(q) {
        held.extend_from_slice(&g[..n]);
        train.extend_from_slice(&g[n..]);
    }
    // Interleave the classes again so a subset is not sorted by label.
    SplitMix64::derive(seed, u64::MAX - 1, 0).shuffle(&mut train);
    SplitMix64::derive(seed, u64::MAX - 1, 1).shuffle(&mut held);
    Ok((train, held))
}

/// Splits off `val_fraction` of the items (rounded down, stratified by
/// class) as a validation set: `(train, val)`.
pub fn train_val_split(d: &TensorDataset, val_fraction: f64, seed: u64) -> Result<(TensorDataset, TensorDataset), DataError> {
    let (tr, va) = stratified_split(d, val_fraction, seed)?;
    Ok((d.subset(&tr), d.subset(&va)))
}

/// Three disjoint stratified parts: (train, validation, test).
pub fn train_val_test_split(d: &TensorDataset, val_fraction: f64, test_fraction: f64, seed: u64) -> Result<(TensorDataset, TensorDataset, TensorDataset), DataError> {
    check_fraction("validation", val_fraction)?;
    check_fraction("test", test_fraction)?;
    check_fraction("validation + test", val_fraction + test_fraction)?;
    let (rest, test) = stratified_split(d, test_fraction, seed)?;
    let rest_set = d.subset(&rest);
    // The validation share is of the whole set, so rescale it to the rest.
    let nv = (d.len() as f64 * val_fraction) as usize;
    let (tr, va) = stratified_split(&rest_set, nv as f64 / rest.len().max(1) as f64, seed ^ 0x5A5A)?;
    let (mut tr, mut va): (Vec<usize>, Vec<usize>) = (tr.iter().map(|&i| rest[i]).collect(), va.iter().map(|&i| rest[i]).collect());
    // Rounding of the rescaled fraction can be one off; move items to fix.
    while va.len() < nv && !tr.is_empty() {
        va.push(tr.pop().unwrap_or_default());
    }
    while va.len() > nv {
        tr.push(va.pop().unwrap_or_default());
    }
    Ok((d.subset(&tr), d.subset(&va), d.subset(&test)))
}

/// One fold of K-fold cross-validation: indices into the dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Fold {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
}

/// K folds over `n` items: every item is in exactly one fold's `val`, fold
/// sizes differ by at most one. Use with [`TensorDataset::subset`].
pub fn kfold(n: usize, k: usize, seed: u64) -> Result<Vec<Fold>, DataError> {
    if k < 2 || k > n {
        return Err(DataError::Invalid(format!("K-fold needs 2 <= k <= n, got k = {k}, n = {n}")));
    }
    let mut idx: Vec<usize> = (0..n).collect();
    SplitMix64::derive(seed, u64::MAX, 1).shuffle(&mut idx);
    Ok(folds_of(&idx, k))
}

/// K folds whose validation parts each hold about `1/k` of every class
/// (sklearn's `StratifiedKFold`); float-target sets fold like [`kfold`].
pub fn stratified_kfold(d: &TensorDataset, k: usize, seed: u64) -> Result<Vec<Fold>, DataError> {
    if k < 2 || k > d.len() {
        return Err(DataError::Invalid(format!("K-fold needs 2 <= k <= n, got k = {k}, n = {}", d.len())));
    }
    // Dealing the class-sorted items round-robin puts each class evenly
    // into the folds.
    let order: Vec<usize> = shuffled_groups(d, seed).concat();
    let mut val: Vec<Vec<usize>> = vec![Vec::new(); k];
    for (j, &i) in order.iter().enumerate() {
        val[j % k].push(i);
    }
    Ok((0..k)
        .map(|f| Fold { train: (0..k).filter(|&g| g != f).flat_map(|g| val[g].iter().copied()).collect(), val: val[f].clone() })
        .collect())
}

fn folds_of(idx: &[usize], k: usize) -> Vec<Fold> {
    let n = idx.len();
    let mut folds = Vec::with_capacity(k);
    let mut start = 0;
    for f in 0..k {
        let size = n / k + usize::from(f < n % k);
        let val = idx[start..start + size].to_vec();
        let train = idx[..start].iter().chain(&idx[start + size..]).copied().collect();
        folds.push(Fold { train, val });
        start += size;
    }
    folds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::tensor_dataset::toy;

    fn ids(d: &TensorDataset) -> Vec<i64> {
        d.inputs.iter().step_by(2).map(|v| *v as i64).collect()
    }

    #[test]
    fn splits_are_disjoint_and_complete() {
        let d = toy(100);
        let (tr, va) = train_val_split(&d, 0.2, 1).unwrap();
        assert_eq!((tr.len(), va.len()), (80, 20));
        let (tr, va, te) = train_val_test_split(&d, 0.1, 0.25, 1).unwrap();
        assert_eq!((tr.len(), va.len(), te.len()), (65, 10, 25));
        let mut all: Vec<i64> = [tr, va, te].iter().flat_map(ids).collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert!(train_val_split(&d, 1.0, 0).is_err());
        assert!(train_val_test_split(&d, 0.5, 0.5, 0).is_err());
    }

    #[test]
    fn split_is_stratified_and_seeded() {
        // 90 items of class 0, 10 of class 1: a 20% split holds 18 and 2.
        let labels: Vec<i64> = (0..100).map(|i| i64::from(i % 10 == 0)).collect();
        let d = TensorDataset::new((0..100).map(|i| i as f32).collect(), labels, vec![1], 2).unwrap();
        let (tr, va) = train_val_split(&d, 0.2, 3).unwrap();
        assert_eq!(va.class_counts(), vec![18, 2]);
        assert_eq!(tr.class_counts(), vec![72, 8]);
        assert_eq!(train_val_split(&d, 0.2, 3).unwrap().1, va);
        assert_ne!(train_val_split(&d, 0.2, 4).unwrap().1.inputs, va.inputs);
        // Float targets split as one group.
        let f = TensorDataset::with_float_targets(vec![0.0; 10], vec![0.0; 10], vec![1], 1).unwrap();
        assert_eq!(train_val_split(&f, 0.3, 0).unwrap().1.len(), 3);
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

    #[test]
    fn stratified_kfold_balances_classes() {
        let d = toy(30); // 10 items of each of 3 classes
        let folds = stratified_kfold(&d, 5, 2).unwrap();
        let mut vals: Vec<usize> = folds.iter().flat_map(|f| f.val.clone()).collect();
        vals.sort();
        assert_eq!(vals, (0..30).collect::<Vec<_>>());
        for f in &folds {
            assert_eq!(d.subset(&f.val).class_counts(), vec![2, 2, 2]);
            assert_eq!(f.train.len(), 24);
        }
        assert!(stratified_kfold(&d, 31, 0).is_err());
    }
}
