//! The value of each elementwise op on one float, in f64. This is the single
//! definition the interpreter, the CPU backend's portable evaluator and JIT
//! helpers, and constant folding all call, so a folded constant can never
//! disagree with what a backend computes at run time. Formulas follow
//! PyTorch, NaN included.

use crate::{Activation, BinaryOp, CompareOp, DType, ReduceOp, UnaryOp};

pub fn unary(op: UnaryOp, x: f64) -> f64 {
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
        // libm is a faithful port of fdlibm's erf, better than any series we
        // would hand-roll.
        UnaryOp::Erf => libm::erf(x),
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
    }
}

/// `0 > x ? 0 : x`, as torch.relu (`clamp_min(x, 0)`) computes it: NaN
/// passes through and so does -0 (only negative numbers become +0). This is
/// also exactly x86's `maxps 0, x`, the one instruction backends lower it to.
pub fn relu(x: f64) -> f64 {
    if x < 0.0 { 0.0 } else { x }
}

/// The logistic function, without overflow in exp for large |x|.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// A fused op's epilogue activation.
pub fn activate(act: Activation, x: f64) -> f64 {
    match act {
        Activation::None => x,
        Activation::Relu => relu(x),
        Activation::Sigmoid => sigmoid(x),
        Activation::Tanh => x.tanh(),
    }
}

/// torch.maximum: NaN in either operand gives NaN (f64::max would drop it).
pub fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}

/// torch.minimum: NaN in either operand gives NaN.
pub fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) }
}

/// Float binary arithmetic.
pub fn binary(op: BinaryOp, a: f64, b: f64) -> f64 {
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

/// Why an integer binary op has no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IntArithError {
    #[error("integer division by zero")]
    DivisionByZero,
    #[error("integer pow with negative exponent {0}")]
    NegativeExponent(i64),
}

/// Integer binary arithmetic: overflow wraps, division truncates toward zero
/// (like Rust and C); division by zero and negative exponents are errors
/// rather than garbage.
pub fn binary_int(op: BinaryOp, x: i64, y: i64) -> Result<i64, IntArithError> {
    Ok(match op {
        BinaryOp::Add => x.wrapping_add(y),
        BinaryOp::Sub => x.wrapping_sub(y),
        BinaryOp::Mul => x.wrapping_mul(y),
        BinaryOp::Div => {
            if y == 0 {
                return Err(IntArithError::DivisionByZero);
            }
            x.wrapping_div(y)
        }
        BinaryOp::Pow => {
            if y < 0 {
                return Err(IntArithError::NegativeExponent(y));
            }
            x.wrapping_pow(y.min(u32::MAX as i64) as u32)
        }
        BinaryOp::Max => x.max(y),
        BinaryOp::Min => x.min(y),
    })
}

/// IEEE comparison: every comparison with NaN is false except `ne`.
pub fn compare(op: CompareOp, a: f64, b: f64) -> bool {
    match op {
        CompareOp::Lt => a < b,
        CompareOp::Le => a <= b,
        CompareOp::Gt => a > b,
        CompareOp::Ge => a >= b,
        CompareOp::Eq => a == b,
        CompareOp::Ne => a != b,
    }
}

/// Folds one more float into a reduction's accumulator (a mean accumulates
/// the sum; dividing by the count is the caller's job). Max and min
/// propagate NaN, as torch.amax/amin do.
pub fn reduce_combine(op: ReduceOp, acc: f64, v: f64) -> f64 {
    match op {
        ReduceOp::Sum | ReduceOp::Mean => acc + v,
        ReduceOp::Max => nan_max(acc, v),
        ReduceOp::Min => nan_min(acc, v),
    }
}

/// A cast's value before `round_to`: to an integer type a float truncates
/// toward zero and NaN becomes 0 (out-of-range values then saturate, as
/// Rust's `as` does); to anything else the value is kept (`round_to` makes
/// bools `v != 0`).
pub fn cast(to: DType, v: f64) -> f64 {
    if !to.is_int() {
        v
    } else if v.is_nan() {
        0.0
    } else {
        v.trunc()
    }
}

/// Brings a freshly computed value into the domain of `d`, as the IR's rules
/// say: f32 rounds, integers truncate toward zero and wrap to their width,
/// bools become 0/1 (NaN counts as true).
pub fn round_to(d: DType, v: f64) -> f64 {
    match d {
        DType::F32 => v as f32 as f64,
        DType::F64 => v,
        DType::I64 => v as i64 as f64,
        DType::I32 => v as i64 as i32 as f64,
        DType::Bool => (v != 0.0) as u8 as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_and_signed_zero_follow_torch() {
        assert!(unary(UnaryOp::Relu, f64::NAN).is_nan());
        assert_eq!(unary(UnaryOp::Relu, -2.0), 0.0);
        assert!(unary(UnaryOp::Relu, -2.0).is_sign_positive());
        assert!(unary(UnaryOp::Relu, -0.0).is_sign_negative());
        assert_eq!(unary(UnaryOp::Relu, 3.5), 3.5);
        assert_eq!(unary(UnaryOp::Relu, f64::NEG_INFINITY), 0.0);
        assert!(unary(UnaryOp::Sign, -0.0).is_sign_negative());
        assert!(unary(UnaryOp::Sign, f64::NAN).is_nan());
        assert!(binary(BinaryOp::Max, 1.0, f64::NAN).is_nan());
        assert!(binary(BinaryOp::Min, f64::NAN, 1.0).is_nan());
        assert!(reduce_combine(ReduceOp::Max, f64::NAN, 3.0).is_nan());
        assert!(compare(CompareOp::Ne, f64::NAN, f64::NAN));
        assert!(!compare(CompareOp::Eq, f64::NAN, f64::NAN));
    }

    #[test]
    fn integer_arithmetic_wraps_and_refuses_what_has_no_value() {
        assert_eq!(binary_int(BinaryOp::Add, i64::MAX, 1), Ok(i64::MIN));
        assert_eq!(binary_int(BinaryOp::Div, -7, 2), Ok(-3));
        assert_eq!(binary_int(BinaryOp::Div, 1, 0), Err(IntArithError::DivisionByZero));
        assert_eq!(binary_int(BinaryOp::Pow, 2, -1).unwrap_err().to_string(), "integer pow with negative exponent -1");
    }

    #[test]
    fn round_to_wraps_integers_and_makes_bools_0_or_1() {
        assert_eq!(round_to(DType::I32, 2_147_483_648.0), -2_147_483_648.0);
        assert_eq!(round_to(DType::I64, -2.7), -2.0);
        assert_eq!(round_to(DType::Bool, f64::NAN), 1.0);
        assert_eq!(round_to(DType::F32, 0.1), 0.1f32 as f64);
        assert_eq!(cast(DType::I32, -2.7), -2.0);
        assert_eq!(cast(DType::I64, f64::NAN), 0.0);
        assert_eq!(cast(DType::F32, -2.7), -2.7);
    }

    #[test]
    fn sigmoid_is_stable_at_the_extremes() {
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-15);
        assert!((unary(UnaryOp::Erf, 1.0) - 0.842_700_792_949_714_9).abs() < 1e-15);
    }
}
