//! Unary, binary, compare, select, cast: hand-worked values.

mod common;
use common::*;
use kiln_ir::{BinaryOp, CompareOp, DType, Op, UnaryOp};

fn un(u: UnaryOp, v: &[f32]) -> Vec<f64> {
    vals(&ev(Op::Unary(u), &[&t32(&[v.len()], v)]))
}

fn un64(u: UnaryOp, v: &[f64]) -> Vec<f64> {
    vals(&ev64(Op::Unary(u), &[&t64(&[v.len()], v)]))
}

#[test]
fn unary_values() {
    let e = std::f64::consts::E;
    close(&un(UnaryOp::Neg, &[1.0, -2.0, 0.0]), &[-1.0, 2.0, 0.0], 0.0);
    close(&un64(UnaryOp::Exp, &[0.0, 1.0, -1.0]), &[1.0, e, 1.0 / e], 1e-15);
    close(&un64(UnaryOp::Log, &[1.0, e, 0.0]), &[0.0, 1.0, f64::NEG_INFINITY], 1e-15);
    assert!(un(UnaryOp::Log, &[-1.0])[0].is_nan());
    close(&un(UnaryOp::Sqrt, &[4.0, 2.25, 0.0]), &[2.0, 1.5, 0.0], 0.0);
    close(&un(UnaryOp::Rsqrt, &[4.0, 0.25]), &[0.5, 2.0], 0.0);
    close(&un(UnaryOp::Abs, &[-3.0, 0.0, 2.0]), &[3.0, 0.0, 2.0], 0.0);
    close(&un(UnaryOp::Sign, &[-2.0, 0.0, 3.5, f32::NAN]), &[-1.0, 0.0, 1.0, f64::NAN], 0.0);
    close(&un(UnaryOp::Recip, &[2.0, -4.0]), &[0.5, -0.25], 0.0);
    close(&un(UnaryOp::Relu, &[-1.0, 0.0, 2.0, f32::NAN]), &[0.0, 0.0, 2.0, f64::NAN], 0.0);
    // sigmoid(ln 3) = 3/4, sigmoid(-ln 3) = 1/4; no overflow far out.
    let l3 = 3f64.ln();
    close(&un64(UnaryOp::Sigmoid, &[0.0, l3, -l3, -1000.0, 1000.0]), &[0.5, 0.75, 0.25, 0.0, 1.0], 1e-15);
    // tanh(ln 2) = (2 - 1/2) / (2 + 1/2) = 0.6
    close(&un64(UnaryOp::Tanh, &[0.0, 2f64.ln(), -(2f64.ln())]), &[0.0, 0.6, -0.6], 1e-15);
    let pi = std::f64::consts::PI;
    close(&un64(UnaryOp::Sin, &[0.0, pi / 2.0, pi / 6.0]), &[0.0, 1.0, 0.5], 1e-15);
    close(&un64(UnaryOp::Cos, &[0.0, pi, pi / 3.0]), &[1.0, -1.0, 0.5], 1e-15);
}

#[test]
fn erf_matches_tabulated_values() {
    // Abramowitz & Stegun table 7.1 / high-precision references.
    let got = un64(UnaryOp::Erf, &[0.0, 0.5, 1.0, 2.0, -1.0, 3.0, 1e-10]);
    let want = [0.0, 0.5204998778130465, 0.8427007929497149, 0.9953222650189527, -0.8427007929497149, 0.9999779095030014, 1.1283791670955126e-10];
    close(&got, &want, 1e-15);
}

#[test]
fn integer_unary_ops() {
    let x = ti64(&[3], &[-3, 0, 5]);
    let neg = ev(Op::Unary(UnaryOp::Neg), &[&x]);
    assert_eq!(neg.as_i64().unwrap(), &[3, 0, -5]);
    assert_eq!(ev(Op::Unary(UnaryOp::Abs), &[&x]).as_i64().unwrap(), &[3, 0, 5]);
    assert_eq!(ev(Op::Unary(UnaryOp::Sign), &[&x]).as_i64().unwrap(), &[-1, 0, 1]);
}

#[test]
fn binary_broadcasts_numpy_style() {
    // a: [2,1] = [[1],[2]], b: [3] = [10,20,30] -> [2,3]
    let a = t32(&[2, 1], &[1.0, 2.0]);
    let b = t32(&[3], &[10.0, 20.0, 30.0]);
    let add = ev(Op::Binary(BinaryOp::Add), &[&a, &b]);
    assert_eq!(dims(&add), vec![2, 3]);
    exact(&add, &[11.0, 21.0, 31.0, 12.0, 22.0, 32.0]);
    exact(&ev(Op::Binary(BinaryOp::Sub), &[&a, &b]), &[-9.0, -19.0, -29.0, -8.0, -18.0, -28.0]);
    exact(&ev(Op::Binary(BinaryOp::Mul), &[&b, &a]), &[10.0, 20.0, 30.0, 20.0, 40.0, 60.0]);
    exact(&ev(Op::Binary(BinaryOp::Div), &[&b, &a]), &[10.0, 20.0, 30.0, 5.0, 10.0, 15.0]);
    // Scalar against a matrix.
    let s = t32(&[], &[2.0]);
    let m = t32(&[2, 2], &[1.0, -2.0, 3.0, 0.5]);
    exact(&ev(Op::Binary(BinaryOp::Pow), &[&m, &s]), &[1.0, 4.0, 9.0, 0.25]);
    exact(&ev(Op::Binary(BinaryOp::Pow), &[&s, &m]), &[2.0, 0.25, 8.0, std::f64::consts::SQRT_2 as f32 as f64]);
    exact(&ev(Op::Binary(BinaryOp::Max), &[&m, &s]), &[2.0, 2.0, 3.0, 2.0]);
    exact(&ev(Op::Binary(BinaryOp::Min), &[&m, &s]), &[1.0, -2.0, 2.0, 0.5]);
    // [2,1,3] with [4,1] -> [2,4,3]
    let c = ev(Op::Binary(BinaryOp::Add), &[&t32(&[2, 1, 3], &[0.0; 6]), &t32(&[4, 1], &[1.0, 2.0, 3.0, 4.0])]);
    assert_eq!(dims(&c), vec![2, 4, 3]);
    assert_eq!(vals(&c)[3..6], [2.0, 2.0, 2.0]);
    assert_eq!(vals(&c)[12 + 9..], [4.0, 4.0, 4.0]);
}

#[test]
fn max_min_propagate_nan_and_div_by_zero_is_ieee() {
    let a = t32(&[3], &[f32::NAN, 1.0, -1.0]);
    let b = t32(&[3], &[0.0, f32::NAN, 0.0]);
    exact(&ev(Op::Binary(BinaryOp::Max), &[&a, &b]), &[f64::NAN, f64::NAN, 0.0]);
    exact(&ev(Op::Binary(BinaryOp::Min), &[&a, &b]), &[f64::NAN, f64::NAN, -1.0]);
    let one = t32(&[3], &[1.0, -1.0, 0.0]);
    let zero = t32(&[], &[0.0]);
    exact(&ev(Op::Binary(BinaryOp::Div), &[&one, &zero]), &[f64::INFINITY, f64::NEG_INFINITY, f64::NAN]);
}

#[test]
fn integer_binary_truncates_and_rejects_division_by_zero() {
    let a = ti64(&[4], &[7, -7, 7, -7]);
    let b = ti64(&[4], &[2, 2, -2, -2]);
    assert_eq!(ev(Op::Binary(BinaryOp::Div), &[&a, &b]).as_i64().unwrap(), &[3, -3, -3, 3]);
    assert_eq!(ev(Op::Binary(BinaryOp::Mul), &[&a, &b]).as_i64().unwrap(), &[14, -14, -14, 14]);
    assert_eq!(ev(Op::Binary(BinaryOp::Pow), &[&ti64(&[2], &[3, -2]), &ti64(&[], &[3])]).as_i64().unwrap(), &[27, -8]);
    let e = ev_err(Op::Binary(BinaryOp::Div), &[&a, &ti64(&[], &[0])]);
    assert!(e.contains("division by zero"), "{e}");
}

#[test]
fn compare_produces_bool_masks() {
    let x = t32(&[3], &[1.0, 2.0, 3.0]);
    let two = t32(&[], &[2.0]);
    let cases = [
        (CompareOp::Lt, [1.0, 0.0, 0.0]),
        (CompareOp::Le, [1.0, 1.0, 0.0]),
        (CompareOp::Gt, [0.0, 0.0, 1.0]),
        (CompareOp::Ge, [0.0, 1.0, 1.0]),
        (CompareOp::Eq, [0.0, 1.0, 0.0]),
        (CompareOp::Ne, [1.0, 0.0, 1.0]),
    ];
    for (c, want) in cases {
        let r = ev(Op::Compare(c), &[&x, &two]);
        assert_eq!(r.dtype(), DType::Bool, "{c:?}");
        exact(&r, &want);
    }
    // NaN is unordered: only `ne` holds.
    let n = t32(&[], &[f32::NAN]);
    for c in CompareOp::ALL {
        let r = vals(&ev(Op::Compare(c), &[&n, &n]))[0];
        assert_eq!(r, (c == CompareOp::Ne) as u8 as f64, "{c:?}");
    }
    // Broadcast [2,1] vs [2] -> [2,2].
    let r = ev(Op::Compare(CompareOp::Gt), &[&t32(&[2, 1], &[1.0, 3.0]), &t32(&[2], &[2.0, 0.0])]);
    assert_eq!(dims(&r), vec![2, 2]);
    exact(&r, &[0.0, 1.0, 1.0, 1.0]);
}

#[test]
fn select_broadcasts_all_three() {
    let m = tbool(&[2, 1], &[1, 0]);
    let a = t32(&[3], &[1.0, 2.0, 3.0]);
    let b = t32(&[], &[-1.0]);
    let r = ev(Op::Select, &[&m, &a, &b]);
    assert_eq!(dims(&r), vec![2, 3]);
    exact(&r, &[1.0, 2.0, 3.0, -1.0, -1.0, -1.0]);
}

#[test]
fn cast_truncates_toward_zero_and_masks_nonzero() {
    let x = t32(&[5], &[-2.7, 2.7, -0.5, 0.0, 3.0]);
    assert_eq!(ev(Op::Cast(DType::I64), &[&x]).as_i64().unwrap(), &[-2, 2, 0, 0, 3]);
    let i32s = ev(Op::Cast(DType::I32), &[&x]);
    assert_eq!(i32s.data(), &kiln_ir::TensorData::I32(vec![-2, 2, 0, 0, 3]));
    let b = ev(Op::Cast(DType::Bool), &[&x]);
    assert_eq!(b.data(), &kiln_ir::TensorData::Bool(vec![1, 1, 1, 0, 1]));
    let f = ev(Op::Cast(DType::F32), &[&ti64(&[2], &[-3, 16777217])]);
    // 2^24 + 1 is not representable in f32: rounds to 2^24.
    assert_eq!(f.as_f32().unwrap(), &[-3.0, 16777216.0]);
    let back = ev(Op::Cast(DType::F32), &[&tbool(&[2], &[1, 0])]);
    assert_eq!(back.as_f32().unwrap(), &[1.0, 0.0]);
    // f32 -> f64 is exact; f64 -> f32 rounds.
    let d = ev(Op::Cast(DType::F64), &[&t32(&[1], &[0.1])]);
    assert_eq!(vals(&d), vec![0.1f32 as f64]);
    let r = ev(Op::Cast(DType::F32), &[&t64(&[1], &[0.1])]);
    assert_eq!(r.as_f32().unwrap(), &[0.1f32]);
}

#[test]
fn stop_gradient_is_identity() {
    let x = t32(&[2], &[1.5, -2.0]);
    assert_eq!(ev(Op::StopGradient, &[&x]), x);
}

#[test]
fn f32_mode_rounds_every_op_and_f64_mode_does_not() {
    let one = t32(&[1], &[1.0]);
    let tiny = t32(&[1], &[1e-8]);
    let r32 = ev(Op::Binary(BinaryOp::Add), &[&one, &tiny]);
    assert_eq!(r32.dtype(), DType::F32);
    assert_eq!(r32.as_f32().unwrap(), &[1.0]);
    let r64 = ev64(Op::Binary(BinaryOp::Add), &[&one, &tiny]);
    assert_eq!(r64.dtype(), DType::F64);
    assert_eq!(vals(&r64), vec![1.0 + 1e-8f32 as f64]);
    // f64 operands may stand in for f32 ones in f64 mode.
    let r = ev64(Op::Binary(BinaryOp::Add), &[&t64(&[1], &[1.0]), &t64(&[1], &[1e-12])]);
    assert_eq!(vals(&r), vec![1.0 + 1e-12]);
    // exp(1) in f32 mode is exactly the f32 rounding of e.
    let e = ev(Op::Unary(UnaryOp::Exp), &[&t32(&[1], &[1.0])]);
    assert_eq!(e.as_f32().unwrap(), &[std::f64::consts::E as f32]);
}

#[test]
fn eval_op_rejects_bad_calls_instead_of_panicking() {
    let op = Op::Binary(BinaryOp::Add);
    let a = t32(&[2], &[1.0, 2.0]);
    let b = t32(&[3], &[1.0, 2.0, 3.0]);
    let e = kiln_interp::eval_op(&op, &a.ty(), &[&a, &b], kiln_interp::Precision::F32).unwrap_err();
    assert!(e.contains("do not broadcast"), "{e}");
    let e = kiln_interp::eval_op(&op, &b.ty(), &[&a, &a], kiln_interp::Precision::F32).unwrap_err();
    assert!(e.contains("requested"), "{e}");
    let e = kiln_interp::eval_op(&op, &a.ty(), &[&a], kiln_interp::Precision::F32).unwrap_err();
    assert!(e.contains("operand"), "{e}");
    // In f32 mode an f64 operand is not an f32 one.
    let e = kiln_interp::eval_op(&op, &a.ty(), &[&a, &t64(&[2], &[0.0, 0.0])], kiln_interp::Precision::F32).unwrap_err();
    assert!(e.contains("dtypes differ"), "{e}");
}
