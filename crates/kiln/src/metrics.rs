//! Classification metrics over host tensors: accuracy, a confusion matrix,
//! and a running mean loss. Each takes an optional count of real rows so a
//! padded last batch (see [`data::LastBatch::Pad`](crate::data::LastBatch))
//! is measured correctly.

use std::fmt;

use kiln_ir::HostTensor;

/// Errors from metric inputs of the wrong shape or dtype.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    #[error("logits must be [batch, classes], got {0}")]
    LogitsShape(String),
    #[error("labels must be integer [batch] with batch {batch}, got {got}")]
    LabelsShape { batch: usize, got: String },
    #[error("label {label} at row {row} is outside 0..{classes}")]
    LabelRange { row: usize, label: i64, classes: usize },
    #[error("{real} real rows but the batch has {batch}")]
    RealRows { real: usize, batch: usize },
}

/// The arg-max class of each row of `logits: [batch, classes]` (ties: the
/// first maximum; NaN never wins).
pub fn argmax_rows(logits: &HostTensor) -> Result<Vec<usize>, MetricError> {
    let d = logits.shape().dims();
    if d.len() != 2 || d[1] == 0 {
        return Err(MetricError::LogitsShape(logits.ty().to_string()));
    }
    let v = logits.to_f32_vec();
    Ok(v.chunks(d[1])
        .map(|row| {
            let mut best = 0;
            for (j, &x) in row.iter().enumerate() {
                if x > row[best] || row[best].is_nan() && !x.is_nan() {
                    best = j;
                }
            }
            best
        })
        .collect())
}

fn labels_of(labels: &HostTensor, batch: usize) -> Result<Vec<i64>, MetricError> {
    if labels.shape().dims() != [batch] || labels.dtype().is_float() {
        return Err(MetricError::LabelsShape { batch, got: labels.ty().to_string() });
    }
    Ok(labels.to_f64_vec().into_iter().map(|v| v as i64).collect())
}

fn real_rows(real: Option<usize>, batch: usize) -> Result<usize, MetricError> {
    match real {
        Some(r) if r > batch => Err(MetricError::RealRows { real: r, batch }),
        Some(r) => Ok(r),
        None => Ok(batch),
    }
}

/// How many of the first `real` rows (all if `None`) are classified right.
pub fn correct(logits: &HostTensor, labels: &HostTensor, real: Option<usize>) -> Result<usize, MetricError> {
    let pred = argmax_rows(logits)?;
    let y = labels_of(labels, pred.len())?;
    let n = real_rows(real, pred.len())?;
    Ok((0..n).filter(|&i| pred[i] as i64 == y[i]).count())
}

/// Fraction of the first `real` rows classified right (0 for no rows).
pub fn accuracy(logits: &HostTensor, labels: &HostTensor, real: Option<usize>) -> Result<f64, MetricError> {
    let n = real_rows(real, logits.shape().dims().first().copied().unwrap_or(0))?;
    let c = correct(logits, labels, real)?;
    Ok(if n == 0 { 0.0 } else { c as f64 / n as f64 })
}

/// Accumulates correct/total over batches.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Accuracy {
    pub correct: usize,
    pub total: usize,
}

impl Accuracy {
    pub fn add(&mut self, logits: &HostTensor, labels: &HostTensor, real: Option<usize>) -> Result<(), MetricError> {
        self.correct += correct(logits, labels, real)?;
        self.total += real_rows(real, logits.shape().dims().first().copied().unwrap_or(0))?;
        Ok(())
    }

    pub fn value(&self) -> f64 {
        if self.total == 0 { 0.0 } else { self.correct as f64 / self.total as f64 }
    }
}

/// A running mean of per-batch mean losses, weighted by rows in the batch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MeanLoss {
    sum: f64,
    count: usize,
}

impl MeanLoss {
    /// `loss` is the batch's mean loss over `rows` rows.
    pub fn add(&mut self, loss: f64, rows: usize) {
        self.sum += loss * rows as f64;
        self.count += rows;
    }

    pub fn value(&self) -> f64 {
        if self.count == 0 { f64::NAN } else { self.sum / self.count as f64 }
    }

    pub fn count(&self) -> usize {
        self.count
    }
}

/// `counts[true][predicted]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    pub classes: usize,
    pub counts: Vec<Vec<usize>>,
}

impl ConfusionMatrix {
    pub fn new(classes: usize) -> ConfusionMatrix {
        ConfusionMatrix { classes, counts: vec![vec![0; classes]; classes] }
    }

    pub fn add(&mut self, logits: &HostTensor, labels: &HostTensor, real: Option<usize>) -> Result<(), MetricError> {
        let pred = argmax_rows(logits)?;
        let y = labels_of(labels, pred.len())?;
        let n = real_rows(real, pred.len())?;
        for i in 0..n {
            let (t, p) = (y[i], pred[i]);
            if t < 0 || t as usize >= self.classes || p >= self.classes {
                return Err(MetricError::LabelRange { row: i, label: t, classes: self.classes });
            }
            self.counts[t as usize][p] += 1;
        }
        Ok(())
    }

    pub fn total(&self) -> usize {
        self.counts.iter().flatten().sum()
    }

    pub fn accuracy(&self) -> f64 {
        let diag: usize = (0..self.classes).map(|i| self.counts[i][i]).sum();
        let t = self.total();
        if t == 0 { 0.0 } else { diag as f64 / t as f64 }
    }

    /// Per class: of the items of class c, the fraction predicted c.
    pub fn recall(&self) -> Vec<f64> {
        (0..self.classes)
            .map(|c| {
                let row: usize = self.counts[c].iter().sum();
                if row == 0 { 0.0 } else { self.counts[c][c] as f64 / row as f64 }
            })
            .collect()
    }

    /// Per class: of the items predicted c, the fraction that are c.
    pub fn precision(&self) -> Vec<f64> {
        (0..self.classes)
            .map(|c| {
                let col: usize = (0..self.classes).map(|t| self.counts[t][c]).sum();
                if col == 0 { 0.0 } else { self.counts[c][c] as f64 / col as f64 }
            })
            .collect()
    }
}

impl fmt::Display for ConfusionMatrix {
    /// Rows are true classes, columns predictions, plus recall per row.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.counts.iter().flatten().max().map_or(1, |m| m.to_string().len()).max(3);
        write!(f, "true\\pred")?;
        for c in 0..self.classes {
            write!(f, " {c:>w$}")?;
        }
        writeln!(f, "  recall")?;
        let recall = self.recall();
        for (t, row) in self.counts.iter().enumerate() {
            write!(f, "{t:>9}")?;
            for v in row {
                write!(f, " {v:>w$}")?;
            }
            writeln!(f, "  {:.3}", recall[t])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> HostTensor {
        // predictions: 1, 0, 2, 2
        HostTensor::from_f32([4, 3], vec![0.1, 0.9, 0.0, 3.0, 1.0, 2.0, 0.0, 0.0, 1.0, -1.0, -2.0, 5.0]).unwrap()
    }

    #[test]
    fn accuracy_and_real_rows() {
        let y = HostTensor::from_i64([4], vec![1, 0, 1, 0]).unwrap();
        assert_eq!(argmax_rows(&logits()).unwrap(), vec![1, 0, 2, 2]);
        assert_eq!(accuracy(&logits(), &y, None).unwrap(), 0.5);
        assert_eq!(accuracy(&logits(), &y, Some(2)).unwrap(), 1.0);
        assert!(accuracy(&logits(), &y, Some(5)).is_err());
        let mut a = Accuracy::default();
        a.add(&logits(), &y, None).unwrap();
        a.add(&logits(), &y, Some(1)).unwrap();
        assert_eq!((a.correct, a.total), (3, 5));
        assert!(accuracy(&logits(), &HostTensor::from_i64([3], vec![0, 0, 0]).unwrap(), None).is_err());
        assert!(argmax_rows(&HostTensor::from_f32([4], vec![0.0; 4]).unwrap()).is_err());
    }

    #[test]
    fn nan_never_wins_argmax() {
        let l = HostTensor::from_f32([1, 3], vec![f32::NAN, 1.0, 0.5]).unwrap();
        assert_eq!(argmax_rows(&l).unwrap(), vec![1]);
    }

    #[test]
    fn confusion_matrix_counts() {
        let y = HostTensor::from_i64([4], vec![1, 0, 1, 2]).unwrap();
        let mut m = ConfusionMatrix::new(3);
        m.add(&logits(), &y, None).unwrap();
        assert_eq!(m.counts, vec![vec![1, 0, 0], vec![0, 1, 1], vec![0, 0, 1]]);
        assert_eq!(m.accuracy(), 0.75);
        assert_eq!(m.recall(), vec![1.0, 0.5, 1.0]);
        assert_eq!(m.precision(), vec![1.0, 1.0, 0.5]);
        assert!(m.to_string().contains("recall"));
        let bad = HostTensor::from_i64([4], vec![1, 0, 7, 2]).unwrap();
        assert!(matches!(m.add(&logits(), &bad, None), Err(MetricError::LabelRange { row: 2, .. })));
    }

    #[test]
    fn mean_loss_weights_by_rows() {
        let mut m = MeanLoss::default();
        assert!(m.value().is_nan());
        m.add(1.0, 3);
        m.add(3.0, 1);
        assert_eq!(m.value(), 1.5);
        assert_eq!(m.count(), 4);
    }
}
