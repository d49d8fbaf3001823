//! Elementwise ops: binary arithmetic with NumPy broadcasting, comparisons,
//! select, cast. The float formulas (unary math included) are
//! `kiln_ir::scalar`'s, which follow PyTorch, NaN included.

use kiln_ir::scalar;
use kiln_ir::{BinaryOp, CompareOp, DType};

use crate::value::{broadcast_data, Val};
use crate::InterpError;

fn binary_int(op: BinaryOp, a: f64, b: f64) -> Result<f64, InterpError> {
    scalar::binary_int(op, a as i64, b as i64).map(|v| v as f64).map_err(|e| InterpError::Invalid(e.to_string()))
}

pub(crate) fn binary(op: BinaryOp, a: &Val, b: &Val, out_dims: &[usize]) -> Result<Vec<f64>, InterpError> {
    let av = broadcast_data(&a.data, a.dims(), out_dims);
    let bv = broadcast_data(&b.data, b.dims(), out_dims);
    if a.ty.dtype.is_float() {
        Ok(av.iter().zip(bv.iter()).map(|(&x, &y)| scalar::binary(op, x, y)).collect())
    } else {
        av.iter().zip(bv.iter()).map(|(&x, &y)| binary_int(op, x, y)).collect()
    }
}

pub(crate) fn compare(op: CompareOp, a: &Val, b: &Val, out_dims: &[usize]) -> Vec<f64> {
    let av = broadcast_data(&a.data, a.dims(), out_dims);
    let bv = broadcast_data(&b.data, b.dims(), out_dims);
    av.iter()
        .zip(bv.iter())
        .map(|(&x, &y)| scalar::compare(op, x, y) as u8 as f64)
        .collect()
}

pub(crate) fn select(m: &Val, a: &Val, b: &Val, out_dims: &[usize]) -> Vec<f64> {
    let mv = broadcast_data(&m.data, m.dims(), out_dims);
    let av = broadcast_data(&a.data, a.dims(), out_dims);
    let bv = broadcast_data(&b.data, b.dims(), out_dims);
    mv.iter().zip(av.iter()).zip(bv.iter()).map(|((&m, &x), &y)| if m != 0.0 { x } else { y }).collect()
}

/// `scalar::cast` per element; the final rounding/wrapping to the target
/// dtype is done by `finish`.
pub(crate) fn cast(x: &Val, to: DType) -> Vec<f64> {
    x.data.iter().map(|&v| scalar::cast(to, v)).collect()
}
