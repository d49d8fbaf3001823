//! Matrix products: batched matmul with broadcasting and transposed operands,
//! and the fused dense layer.

use kiln_ir::Activation;

use kiln_ir::scalar::activate;
use crate::value::{broadcast_strides, strided_indices, Val};

/// `c[m,n] += a[m,k] @ b[k,n]`, all contiguous, in i-k-j order so the
/// innermost loop streams rows of `b` and `c`.
pub(crate) fn gemm_acc(a: &[f64], b: &[f64], c: &mut [f64], m: usize, k: usize, n: usize) {
    for i in 0..m {
        let crow = &mut c[i * n..(i + 1) * n];
        for p in 0..k {
            let av = a[i * k + p];
            let brow = &b[p * n..(p + 1) * n];
            for (cv, &bv) in crow.iter_mut().zip(brow) {
                *cv += av * bv;
            }
        }
    }
}

/// The last two axes of a [.., r, c] block at `off`, copied out transposed
/// (or straight) into a contiguous matrix.
fn matrix(data: &[f64], off: usize, rows: usize, cols: usize, trans: bool) -> Vec<f64> {
    let block = &data[off..off + rows * cols];
    if !trans {
        return block.to_vec();
    }
    let mut t = vec![0.0; rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = block[i * cols + j];
        }
    }
    t
}

/// Offsets of each broadcast batch matrix of an operand with batch dims
/// `bd` inside a batch of shape `out_batch`.
fn batch_offsets(bd: &[usize], out_batch: &[usize], mat: usize) -> Vec<usize> {
    let s = broadcast_strides(bd, out_batch);
    strided_indices(out_batch, &s, 0).into_iter().map(|i| i * mat).collect()
}

pub(crate) fn matmul(a: &Val, b: &Val, trans_a: bool, trans_b: bool, out_dims: &[usize]) -> Vec<f64> {
    let (ad, bd) = (a.dims(), b.dims());
    let (ra, rb, ro) = (ad.len(), bd.len(), out_dims.len());
    let (m, n) = (out_dims[ro - 2], out_dims[ro - 1]);
    let k = if trans_a { ad[ra - 2] } else { ad[ra - 1] };
    let out_batch = &out_dims[..ro - 2];
    let a_off = batch_offsets(&ad[..ra - 2], out_batch, ad[ra - 2] * ad[ra - 1]);
    let b_off = batch_offsets(&bd[..rb - 2], out_batch, bd[rb - 2] * bd[rb - 1]);
    let mut out = vec![0.0; out_dims.iter().product()];
    for (bi, (&ao, &bo)) in a_off.iter().zip(&b_off).enumerate() {
        let am = matrix(&a.data, ao, ad[ra - 2], ad[ra - 1], trans_a);
        let bm = matrix(&b.data, bo, bd[rb - 2], bd[rb - 1], trans_b);
        gemm_acc(&am, &bm, &mut out[bi * m * n..(bi + 1) * m * n], m, k, n);
    }
    out
}

/// act(x[..,K] @ w + bias): x's leading axes are flattened into rows.
pub(crate) fn fused_dense(x: &Val, w: &Val, bias: Option<&Val>, trans_b: bool, act: Activation, out_dims: &[usize]) -> Vec<f64> {
    let (n, k) = (out_dims[out_dims.len() - 1], x.dims()[x.dims().len() - 1]);
    let rows: usize = out_dims[..out_dims.len() - 1].iter().product();
    let wm = matrix(&w.data, 0, w.dims()[0], w.dims()[1], trans_b);
    let mut out = vec![0.0; rows * n];
    gemm_acc(&x.data, &wm, &mut out, rows, k, n);
    for row in out.chunks_exact_mut(n.max(1)) {
        for (j, v) in row.iter_mut().enumerate() {
            let b = bias.map_or(0.0, |b| b.data[j]);
            *v = activate(act, *v + b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_small() {
        // [1 2; 3 4] @ [5 6; 7 8] = [19 22; 43 50]
        let mut c = vec![0.0; 4];
        gemm_acc(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0], &mut c, 2, 2, 2);
        assert_eq!(c, vec![19.0, 22.0, 43.0, 50.0]);
    }

    #[test]
    fn zero_times_inf_is_nan() {
        let mut c = vec![0.0; 1];
        gemm_acc(&[0.0], &[f64::INFINITY], &mut c, 1, 1, 1);
        assert!(c[0].is_nan());
    }
}
