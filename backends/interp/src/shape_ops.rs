//! Reductions and data movement: reduce, argmax, permute, broadcast_to,
//! slice, concat, pad. All of them are index arithmetic over `Val::data`.

use kiln_ir::scalar::{nan_max, nan_min};
use kiln_ir::ReduceOp;

use crate::value::{broadcast_strides, strided_indices, strides, Val};
use crate::InterpError;

/// Reads `x` with the reduced axes moved last, so each output element
/// reduces one contiguous run of `group` values, in row-major order of the
/// reduced axes (a fixed summation order).
fn grouped(x: &Val, axes: &[usize]) -> (Vec<f64>, usize) {
    let dims = x.dims();
    let s = strides(dims);
    let kept: Vec<usize> = (0..dims.len()).filter(|a| !axes.contains(a)).collect();
    let order: Vec<usize> = kept.iter().chain(axes.iter()).copied().collect();
    let pdims: Vec<usize> = order.iter().map(|&a| dims[a]).collect();
    let pstrides: Vec<usize> = order.iter().map(|&a| s[a]).collect();
    let group: usize = axes.iter().map(|&a| dims[a]).product();
    let data = strided_indices(&pdims, &pstrides, 0).into_iter().map(|i| x.data[i]).collect();
    (data, group)
}

pub(crate) fn reduce(op: ReduceOp, x: &Val, axes: &[usize], out_len: usize) -> Vec<f64> {
    let (data, group) = grouped(x, axes);
    if group == 0 {
        // Reducing an empty extent: the identity of the reduction.
        let id = match op {
            ReduceOp::Sum => 0.0,
            ReduceOp::Mean => f64::NAN,
            ReduceOp::Max => f64::NEG_INFINITY,
            ReduceOp::Min => f64::INFINITY,
        };
        return vec![id; out_len];
    }
    data.chunks_exact(group)
        .map(|c| match op {
            ReduceOp::Sum => c.iter().sum(),
            ReduceOp::Mean => c.iter().sum::<f64>() / group as f64,
            // torch.amax/amin propagate NaN.
            ReduceOp::Max => c.iter().copied().fold(f64::NEG_INFINITY, nan_max),
            ReduceOp::Min => c.iter().copied().fold(f64::INFINITY, nan_min),
        })
        .collect()
}

/// Index of the first maximum; a NaN counts as the maximum (torch.argmax).
pub(crate) fn argmax(x: &Val, axis: usize) -> Result<Vec<f64>, InterpError> {
    let (data, group) = grouped(x, &[axis]);
    if group == 0 {
        return Err(InterpError::Invalid(format!("argmax over axis {axis} of extent 0")));
    }
    Ok(data
        .chunks_exact(group)
        .map(|c| {
            let mut best = 0;
            for (i, &v) in c.iter().enumerate() {
                let b = c[best];
                if b.is_nan() {
                    break;
                }
                if v.is_nan() || v > b {
                    best = i;
                }
            }
            best as f64
        })
        .collect())
}

pub(crate) fn permute(x: &Val, perm: &[usize]) -> Vec<f64> {
    let s = strides(x.dims());
    let odims: Vec<usize> = perm.iter().map(|&p| x.dims()[p]).collect();
    let ostrides: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
    strided_indices(&odims, &ostrides, 0).into_iter().map(|i| x.data[i]).collect()
}

pub(crate) fn broadcast_to(x: &Val, out_dims: &[usize]) -> Vec<f64> {
    strided_indices(out_dims, &broadcast_strides(x.dims(), out_dims), 0).into_iter().map(|i| x.data[i]).collect()
}

pub(crate) fn slice(x: &Val, start: &[usize], step: &[usize], out_dims: &[usize]) -> Vec<f64> {
    let s = strides(x.dims());
    let offset = start.iter().zip(&s).map(|(a, b)| a * b).sum();
    let st: Vec<usize> = s.iter().zip(step).map(|(a, b)| a * b).collect();
    strided_indices(out_dims, &st, offset).into_iter().map(|i| x.data[i]).collect()
}

pub(crate) fn concat(xs: &[&Val], axis: usize, out_dims: &[usize]) -> Vec<f64> {
    let outer: usize = out_dims[..axis].iter().product();
    let inner: usize = out_dims[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(out_dims.iter().product());
    for o in 0..outer {
        for x in xs {
            let run = x.dims()[axis] * inner;
            out.extend_from_slice(&x.data[o * run..(o + 1) * run]);
        }
    }
    out
}

pub(crate) fn pad(x: &Val, lo: &[usize], value: f64, out_dims: &[usize]) -> Vec<f64> {
    let mut out = vec![value; out_dims.iter().product()];
    let os = strides(out_dims);
    let offset: usize = lo.iter().zip(&os).map(|(a, b)| a * b).sum();
    // Walk the input in order and write each element at its padded place.
    for (src, dst) in strided_indices(x.dims(), &os, offset).into_iter().enumerate() {
        out[dst] = x.data[src];
    }
    out
}
