//! An in-memory classification dataset: `n` items of one fixed shape stored
//! contiguously as f32, and one i64 class label per item.

use kiln_ir::HostTensor;

use super::DataError;

#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// `len() * item_numel()` values, item after item, row-major.
    pub inputs: Vec<f32>,
    pub labels: Vec<i64>,
    /// The shape of one item, e.g. `[1, 28, 28]` for MNIST.
    pub item_shape: Vec<usize>,
    /// Labels are in `0..num_classes`.
    pub num_classes: usize,
}

impl Dataset {
    /// Checks that the sizes agree and every label is in `0..num_classes`.
    pub fn new(inputs: Vec<f32>, labels: Vec<i64>, item_shape: Vec<usize>, num_classes: usize) -> Result<Dataset, DataError> {
        let item: usize = item_shape.iter().product();
        if inputs.len() != labels.len() * item {
            return Err(DataError::Invalid(format!(
                "{} labels of items {:?} need {} input values, got {}",
                labels.len(),
                item_shape,
                labels.len() * item,
                inputs.len()
            )));
        }
        if let Some((i, l)) = labels.iter().enumerate().find(|(_, l)| **l < 0 || **l as usize >= num_classes) {
            return Err(DataError::Invalid(format!("label {l} of item {i} is outside 0..{num_classes}")));
        }
        Ok(Dataset { inputs, labels, item_shape, num_classes })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn item_numel(&self) -> usize {
        self.item_shape.iter().product()
    }

    /// The values of item `i`.
    pub fn item(&self, i: usize) -> &[f32] {
        let n = self.item_numel();
        &self.inputs[i * n..(i + 1) * n]
    }

    /// A new dataset holding the items at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let n = self.item_numel();
        let mut inputs = Vec::with_capacity(indices.len() * n);
        for &i in indices {
            inputs.extend_from_slice(self.item(i));
        }
        Dataset {
            inputs,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            item_shape: self.item_shape.clone(),
            num_classes: self.num_classes,
        }
    }

    /// The first `n` items (all of them if `n >= len`).
    pub fn take(&self, n: usize) -> Dataset {
        self.subset(&(0..n.min(self.len())).collect::<Vec<_>>())
    }

    /// The same items with each reshaped to `shape` (same element count),
    /// e.g. `[784]` for an MLP or `[28, 28]` for a row sequence.
    pub fn reshaped(mut self, shape: &[usize]) -> Result<Dataset, DataError> {
        if shape.iter().product::<usize>() != self.item_numel() {
            return Err(DataError::Invalid(format!("cannot reshape items {:?} to {shape:?}", self.item_shape)));
        }
        self.item_shape = shape.to_vec();
        Ok(self)
    }

    /// The whole set as `(x: f32[len, ..item_shape], y: i64[len])`.
    pub fn to_tensors(&self) -> (HostTensor, HostTensor) {
        let mut shape = vec![self.len()];
        shape.extend(&self.item_shape);
        let x = HostTensor::from_f32(shape, self.inputs.clone()).expect("sizes checked at construction");
        let y = HostTensor::from_i64([self.len()], self.labels.clone()).expect("one label per item");
        (x, y)
    }

    /// How many items carry each label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.num_classes];
        for &l in &self.labels {
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

    /// Concatenates two datasets of the same item shape and class count.
    pub fn concat(&self, other: &Dataset) -> Result<Dataset, DataError> {
        if self.item_shape != other.item_shape || self.num_classes != other.num_classes {
            return Err(DataError::Invalid(format!(
                "cannot concatenate items {:?}/{} classes with {:?}/{} classes",
                self.item_shape, self.num_classes, other.item_shape, other.num_classes
            )));
        }
        let mut d = self.clone();
        d.inputs.extend_from_slice(&other.inputs);
        d.labels.extend_from_slice(&other.labels);
        Ok(d)
    }
}

#[cfg(test)]
pub(crate) fn toy(n: usize) -> Dataset {
    // Item i is [i, i+0.5] with label i % 3, so tests can identify items.
    let inputs = (0..n).flat_map(|i| [i as f32, i as f32 + 0.5]).collect();
    Dataset::new(inputs, (0..n as i64).map(|i| i % 3).collect(), vec![2], 3).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn construction_checks_sizes_and_labels() {
        assert!(Dataset::new(vec![0.0; 5], vec![0, 1], vec![3], 2).is_err());
        let e = Dataset::new(vec![0.0; 6], vec![0, 2], vec![3], 2).unwrap_err();
        assert!(e.to_string().contains("label 2 of item 1"), "{e}");
        assert!(Dataset::new(vec![0.0; 6], vec![0, -1], vec![3], 2).is_err());
    }

    #[test]
    fn subset_and_tensors() {
        let d = toy(5);
        let s = d.subset(&[4, 1]);
        assert_eq!(s.inputs, vec![4.0, 4.5, 1.0, 1.5]);
        assert_eq!(s.labels, vec![1, 1]);
        let (x, y) = s.to_tensors();
        assert_eq!(x.shape().dims(), &[2, 2]);
        assert_eq!(y.as_i64().unwrap(), &[1, 1]);
        assert_eq!(d.class_counts(), vec![2, 2, 1]);
        assert_eq!(d.take(2).len(), 2);
        assert_eq!(d.concat(&s).unwrap().len(), 7);
    }

    #[test]
    fn mean_std_of_known_values() {
        let d = Dataset::new(vec![1.0, 3.0, 1.0, 3.0], vec![0, 0], vec![2], 1).unwrap();
        assert_eq!(d.mean_std(), (2.0, 1.0));
        assert!(d.clone().reshaped(&[1, 2]).is_ok());
        assert!(d.reshaped(&[3]).is_err());
    }
}
