//! Elementwise ops: binary arithmetic with NumPy broadcasting, comparisons,
//! select, cast. The float formulas (unary math included) are
//! `kiln_ir::scalar`'s, which follow PyTorch, NaN included.

use kiln_ir::scalar;
use kiln_ir::{BinaryOp, CompareOp, DType};

use crate::value::{broadcast_data, Val};
use crate::InterpError;

/// Integer arithmetic: division truncates toward zero (like Rust and C);
/// division by zero and negative exponents are errors rather than garbage.
fn binary_int(op: BinaryOp, a: f64, b: f64) -> Result<f64, InterpError> {
    let (x, y) = (a as i64, b as i64);
    Ok(match op {
        BinaryOp::Add => x.wrapping_add(y) as f64,
        BinaryOp::Sub => x.wrapping_sub(y) as f64,
        BinaryOp::Mul => x.wrapping_mul(y) as f64,
        BinaryOp::Div => {
            if y == 0 {
                return Err(InterpError::Invalid("integer division by zero".into()));
            }
            x.wrapping_div(y) as f64
        }
        BinaryOp::Pow => {
            if y < 0 {
                return Err(InterpError::Invalid(format!("integer pow with negative exponent {y}")));
            }
            x.wrapping_pow(y.min(u32::MAX as i64) as u32) as f64
        }
        BinaryOp::Max => x.max(y) as f64,
        BinaryOp::Min => x.min(y) as f64,
    })
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

/// Float -> int truncates toward zero (NaN becomes 0, out-of-range values
/// saturate, as Rust's `as` does); anything -> bool is `v != 0`. The final
/// rounding/wrapping to the target dtype is done by `finish`.
pub(crate) fn cast(x: &Val, to: DType) -> Vec<f64> {
    match to {
        DType::I64 | DType::I32 if x.ty.dtype.is_float() => {
            x.data.iter().map(|&v| if v.is_nan() { 0.0 } else { v.trunc() }).collect()
        }
        _ => x.data.clone(),
    }
}
