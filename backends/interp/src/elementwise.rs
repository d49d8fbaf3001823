//! Elementwise ops: unary math, binary arithmetic with NumPy broadcasting,
//! comparisons, select, cast. Every formula follows PyTorch, NaN included.

use kiln_ir::{Activation, BinaryOp, CompareOp, DType, UnaryOp};

use crate::value::{broadcast_data, Val};
use crate::InterpError;

pub(crate) fn unary(op: UnaryOp, x: f64) -> f64 {
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Rsqrt => 1.0 / x.sqrt(),
        UnaryOp::Abs => x.abs(),
        UnaryOp::Sign => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                // 0 stays 0 (and -0 stays -0); NaN stays NaN.
                x
            }
        }
        UnaryOp::Recip => 1.0 / x,
        UnaryOp::Relu => relu(x),
        UnaryOp::Sigmoid => sigmoid(x),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Erf => libm::erf(x),
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
    }
}

/// max(x, 0) that lets NaN through, as torch.relu does.
pub(crate) fn relu(x: f64) -> f64 {
    if x.is_nan() || x > 0.0 { x } else { 0.0 }
}

/// The logistic function, without overflow in exp for large |x|.
pub(crate) fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

pub(crate) fn activate(act: Activation, x: f64) -> f64 {
    match act {
        Activation::None => x,
        Activation::Relu => relu(x),
        Activation::Sigmoid => sigmoid(x),
        Activation::Tanh => x.tanh(),
    }
}

/// torch.maximum / torch.minimum: NaN in either operand gives NaN.
fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}

fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) }
}

fn binary_float(op: BinaryOp, a: f64, b: f64) -> f64 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Pow => a.powf(b),
        BinaryOp::Max => nan_max(a, b),
        BinaryOp::Min => nan_min(a, b),
    }
}

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
        Ok(av.iter().zip(bv.iter()).map(|(&x, &y)| binary_float(op, x, y)).collect())
    } else {
        av.iter().zip(bv.iter()).map(|(&x, &y)| binary_int(op, x, y)).collect()
    }
}

pub(crate) fn compare(op: CompareOp, a: &Val, b: &Val, out_dims: &[usize]) -> Vec<f64> {
    let av = broadcast_data(&a.data, a.dims(), out_dims);
    let bv = broadcast_data(&b.data, b.dims(), out_dims);
    av.iter()
        .zip(bv.iter())
        .map(|(&x, &y)| {
            let r = match op {
                CompareOp::Lt => x < y,
                CompareOp::Le => x <= y,
                CompareOp::Gt => x > y,
                CompareOp::Ge => x >= y,
                CompareOp::Eq => x == y,
                CompareOp::Ne => x != y,
            };
            r as u8 as f64
        })
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
