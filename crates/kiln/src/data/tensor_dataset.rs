//! The in-memory dataset: `n` items of one fixed shape stored contiguously
//! as f32, with class labels or float targets.

use kiln_ir::HostTensor;

use super::{DataError, Dataset, Sample, Target, TargetKind};

/// Every item's target, stored column-wise beside the inputs.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// One label per item, each in `0..num_classes`.
    Class { labels: Vec<i64>, num_classes: usize },
    /// `width` values per item, item after item.
    Float { values: Vec<f32>, width: usize },
}

#[derive(Debug, Clone, PartialEq)]
pub struct TensorDataset {
    /// `len() * item_numel()` values, item after item, row-major.
    pub inputs: Vec<f32>,
    /// The shape of one item, e.g. `[1, 28, 28]` for MNIST.
    pub item_shape: Vec<usize>,
    pub targets: Targets,
}

fn check_inputs(inputs: &[f32], n: usize, item_shape: &[usize]) -> Result<(), DataError> {
    let item: usize = item_shape.iter().product();
    if inputs.len() != n * item {
        return Err(DataError::Invalid(format!("{n} targets of items {item_shape:?} need {} input values, got {}", n * item, inputs.len())));
    }
    Ok(())
}

impl TensorDataset {
    /// A classification set; checks that the sizes agree and every label is
    /// in `0..num_classes` (the first that is not is named).
    pub fn new(inputs: Vec<f32>, labels: Vec<i64>, item_shape: Vec<usize>, num_classes: usize) -> Result<TensorDataset, DataError> {
        check_inputs(&inputs, labels.len(), &item_shape)?;
        if let Some((index, &label)) = labels.iter().enumerate().find(|(_, l)| **l < 0 || **l as usize >= num_classes) {
            return Err(DataError::LabelOutOfRange { index, label, num_classes });
        }
        Ok(TensorDataset { inputs, item_shape, targets: Targets::Class { labels, num_classes } })
    }

    /// A set with `width` float targets per item (regression, BCE).
    pub fn with_float_targets(inputs: Vec<f32>, values: Vec<f32>, item_shape: Vec<usize>, width: usize) -> Result<TensorDataset, DataError> {
        if width == 0 || !values.len().is_multiple_of(width) {
            return Err(DataError::Invalid(format!("{} target values do not split into rows of width {width}", values.len())));
        }
        check_inputs(&inputs, values.len() / width, &item_shape)?;
        Ok(TensorDataset { inputs, item_shape, targets: Targets::Float { values, width } })
    }

    pub fn len(&self) -> usize {
        match &self.targets {
            Targets::Class { labels, .. } => labels.len(),
            Targets::Float { values, width } => values.len() / width,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn item_numel(&self) -> usize {
        self.item_shape.iter().product()
    }

    /// The class labels, if this is a classification set.
    pub fn labels(&self) -> Option<&[i64]> {
        match &self.targets {
            Targets::Class { labels, .. } => Some(labels),
            Targets::Float { .. } => None,
        }
    }

    pub fn num_classes(&self) -> Option<usize> {
        match &self.targets {
            Targets::Class { num_classes, .. } => Some(*num_classes),
            Targets::Float { .. } => None,
        }
    }

    /// The values of item `i`.
    pub fn item(&self, i: usize) -> &[f32] {
        let n = self.item_numel();
        &self.inputs[i * n..(i + 1) * n]
    }

    /// A new dataset holding the items at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> TensorDataset {
        let n = self.item_numel();
        let mut inputs = Vec::with_capacity(indices.len() * n);
        for &i in indices {
            inputs.extend_from_slice(self.item(i));
        }
        let targets = match &self.targets {
            Targets::Class { labels, num_classes } => Targets::Class { labels: indices.iter().map(|&i| labels[i]).collect(), num_classes: *num_classes },
            Targets::Float { values, width } => {
                Targets::Float { values: indices.iter().flat_map(|&i| values[i * width..(i + 1) * width].iter().copied()).collect(), width: *width }
            }
        };
        TensorDataset { inputs, item_shape: self.item_shape.clone(), targets }
    }

    /// The first `n` items (all of them if `n >= len`).
    pub fn take(&self, n: usize) -> TensorDataset {
        self.subset(&(0..n.min(self.len())).collect::<Vec<_>>())
    }

    /// The same items with each reshaped to `shape` (same element count),
    /// e.g. `[784]` for an MLP or `[28, 28]` for a row sequence.
    pub fn reshaped(mut self, shape: &[usize]) -> Result<TensorDataset, DataError> {
        if shape.iter().product::<usize>() != self.item_numel() {
            return Err(DataError::Invalid(format!("cannot reshape items {:?} to {shape:?}", self.item_shape)));
        }
        self.item_shape = shape.to_vec();
        Ok(self)
    }

    /// The whole set as `(x: f32[len, ..item_shape], y)`, `y` being i64
    /// `[len]` labels or f32 `[len, width]` targets.
    pub fn to_tensors(&self) -> (HostTensor, HostTensor) {
        let mut shape = vec![self.len()];
        shape.extend(&self.item_shape);
        let x = HostTensor::from_f32(shape, self.inputs.clone()).expect("sizes checked at construction");
        let y = match &self.targets {
            Targets::Class { labels, .. } => HostTensor::from_i64([labels.len()], labels.clone()),
            Targets::Float { values, width } => HostTensor::from_f32([values.len() / width, *width], values.clone()),
        };
        (x, y.expect("sizes checked at construction"))
    }

    /// How many items carry each label (empty for float targets).
    pub fn class_counts(&self) -> Vec<usize> {
        let Targets::Class { labels, num_classes } = &self.targets else { return Vec::new() };
        let mut c = vec![0; *num_classes];
        for &l in labels {
            c[l as usize] += 1;
        }
        c
    }

    /// Mean and standard deviation of every input value (population std),
    /// what [`Normalize`](super::Normalize) takes.
    pub fn mean_std(&self) -> (f32, f32) {
        if self.inputs.is_empty() {
            return (0.0, 1.0);
        }
        let n = self.inputs.len() as f64;
        let mean = self.inputs.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = self.inputs.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean as f32, var.sqrt() as f32)
    }

    /// Concatenates two datasets of the same item shape and target kind.
    pub fn concat(&self, other: &TensorDataset) -> Result<TensorDataset, DataError> {
        let mut d = self.clone();
        let same_kind = Dataset::target_kind(self) == Dataset::target_kind(other);
        match (&mut d.targets, &other.targets) {
            (Targets::Class { labels, .. }, Targets::Class { labels: o, .. }) if same_kind => labels.extend_from_slice(o),
            (Targets::Float { values, .. }, Targets::Float { values: o, .. }) if same_kind => values.extend_from_slice(o),
            _ => {
                return Err(DataError::Invalid(format!(
                    "cannot concatenate items {:?} with {:?} targets and items {:?} with {:?} targets",
                    self.item_shape,
                    Dataset::target_kind(self),
                    other.item_shape,
                    Dataset::target_kind(other)
                )))
            }
        }
        if self.item_shape != other.item_shape {
            return Err(DataError::Invalid(format!("cannot concatenate items {:?} with items {:?}", self.item_shape, other.item_shape)));
        }
        d.inputs.extend_from_slice(&other.inputs);
        Ok(d)
    }
}

impl Dataset for TensorDataset {
    fn len(&self) -> usize {
        TensorDataset::len(self)
    }

    fn item_shape(&self) -> &[usize] {
        &self.item_shape
    }

    fn target_kind(&self) -> TargetKind {
        match &self.targets {
            Targets::Class { num_classes, .. } => TargetKind::Class { num_classes: *num_classes },
            Targets::Float { width, .. } => TargetKind::Float { width: *width },
        }
    }

    fn get(&self, i: usize) -> Result<Sample, DataError> {
        if i >= self.len() {
            return Err(DataError::IndexOutOfRange { index: i, len: self.len() });
        }
        let target = match &self.targets {
            Targets::Class { labels, .. } => Target::Class(labels[i]),
            Targets::Float { values, width } => Target::Float(values[i * width..(i + 1) * width].to_vec()),
        };
        Ok(Sample { x: self.item(i).to_vec(), target })
    }
}

#[cfg(test)]
pub(crate) fn toy(n: usize) -> TensorDataset {
    // Item i is [i, i+0.5] with label i % 3, so tests can identify items.
    let inputs = (0..n).flat_map(|i| [i as f32, i as f32 + 0.5]).collect();
    TensorDataset::new(inputs, (0..n as i64).map(|i| i % 3).collect(), vec![2], 3).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn construction_checks_sizes_and_labels() {
        assert!(TensorDataset::new(vec![0.0; 5], vec![0, 1], vec![3], 2).is_err());
        let e = TensorDataset::new(vec![0.0; 6], vec![0, 2], vec![3], 2).unwrap_err();
        assert_eq!(e, DataError::LabelOutOfRange { index: 1, label: 2, num_classes: 2 });
        assert!(e.to_string().contains("label 2 of item 1"), "{e}");
        assert!(TensorDataset::new(vec![0.0; 6], vec![0, -1], vec![3], 2).is_err());
        assert!(TensorDataset::with_float_targets(vec![0.0; 6], vec![0.0; 3], vec![3], 2).is_err());
    }

    #[test]
    fn subset_and_tensors() {
        let d = toy(5);
        let s = d.subset(&[4, 1]);
        assert_eq!(s.inputs, vec![4.0, 4.5, 1.0, 1.5]);
        assert_eq!(s.labels(), Some(&[1, 1][..]));
        let (x, y) = s.to_tensors();
        assert_eq!(x.shape().dims(), &[2, 2]);
        assert_eq!(y.as_i64().unwrap(), &[1, 1]);
        assert_eq!(d.class_counts(), vec![2, 2, 1]);
        assert_eq!(d.take(2).len(), 2);
        assert_eq!(d.concat(&s).unwrap().len(), 7);
    }

    #[test]
    fn float_targets_follow_their_items() {
        let d = TensorDataset::with_float_targets(vec![0.0, 1.0, 2.0], vec![10.0, 11.0, 20.0, 21.0, 30.0, 31.0], vec![1], 2).unwrap();
        assert_eq!(d.len(), 3);
        let s = d.subset(&[2, 0]);
        assert_eq!(s.targets, Targets::Float { values: vec![30.0, 31.0, 10.0, 11.0], width: 2 });
        assert_eq!(Dataset::get(&d, 1).unwrap(), Sample { x: vec![1.0], target: Target::Float(vec![20.0, 21.0]) });
        assert_eq!(Dataset::get(&d, 3).unwrap_err(), DataError::IndexOutOfRange { index: 3, len: 3 });
        assert_eq!(d.to_tensors().1.shape().dims(), &[3, 2]);
        assert!(d.concat(&toy(1)).is_err(), "float and class targets do not mix");
        assert_eq!(d.labels(), None);
    }

    #[test]
    fn mean_std_of_known_values() {
        let d = TensorDataset::new(vec![1.0, 3.0, 1.0, 3.0], vec![0, 0], vec![2], 1).unwrap();
        assert_eq!(d.mean_std(), (2.0, 1.0));
        assert!(d.clone().reshaped(&[1, 2]).is_ok());
        assert!(d.reshaped(&[3]).is_err());
    }
}
