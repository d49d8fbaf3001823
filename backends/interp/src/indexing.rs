//! Ops driven by integer indices: gather (NumPy `take`), scatter_add (its
//! adjoint), one_hot, and softmax cross-entropy against integer labels.
//! Every index is range-checked; a bad one is `InterpError::IndexOutOfRange`.

use crate::value::{index_at, Val};
use crate::InterpError;

/// `data` viewed as [outer, extent, inner] around `axis`.
fn split(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    (dims[..axis].iter().product(), dims[axis], dims[axis + 1..].iter().product())
}

pub(crate) fn gather(data: &Val, idx: &Val, axis: usize) -> Result<Vec<f64>, InterpError> {
    let (outer, extent, inner) = split(data.dims(), axis);
    let cols: Vec<usize> = idx.data.iter().map(|&v| index_at(v, extent)).collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(outer * cols.len() * inner);
    for o in 0..outer {
        for &c in &cols {
            let start = (o * extent + c) * inner;
            out.extend_from_slice(&data.data[start..start + inner]);
        }
    }
    Ok(out)
}

pub(crate) fn scatter_add(idx: &Val, upd: &Val, axis: usize, size: usize) -> Result<Vec<f64>, InterpError> {
    let ni = idx.data.len();
    let outer: usize = upd.dims()[..axis].iter().product();
    let inner: usize = upd.dims()[axis + idx.ty.shape.rank()..].iter().product();
    let rows: Vec<usize> = idx.data.iter().map(|&v| index_at(v, size)).collect::<Result<_, _>>()?;
    let mut out = vec![0.0; outer * size * inner];
    for o in 0..outer {
        for (j, &r) in rows.iter().enumerate() {
            let src = (o * ni + j) * inner;
            let dst = (o * size + r) * inner;
            for (d, &s) in out[dst..dst + inner].iter_mut().zip(&upd.data[src..src + inner]) {
                *d += s;
            }
        }
    }
    Ok(out)
}

pub(crate) fn one_hot(idx: &Val, classes: usize) -> Result<Vec<f64>, InterpError> {
    let mut out = vec![0.0; idx.data.len() * classes];
    for (i, &v) in idx.data.iter().enumerate() {
        out[i * classes + index_at(v, classes)?] = 1.0;
    }
    Ok(out)
}

/// Per row: logsumexp(logits) - logits[label], with the row maximum
/// subtracted first so exp never overflows.
pub(crate) fn softmax_cross_entropy(logits: &Val, labels: &Val) -> Result<Vec<f64>, InterpError> {
    let c = logits.dims()[1];
    let mut out = Vec::with_capacity(labels.data.len());
    for (row, &l) in logits.data.chunks_exact(c.max(1)).zip(&labels.data) {
        let label = index_at(l, c)?;
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + row.iter().map(|&v| (v - m).exp()).sum::<f64>().ln();
        out.push(lse - row[label]);
    }
    if c == 0 && !labels.data.is_empty() {
        return Err(InterpError::IndexOutOfRange { index: labels.data[0] as i64, bound: 0 });
    }
    Ok(out)
}
