//! Helpers shared by the interpreter's op tests.
#![allow(dead_code)]

use kiln_interp::{eval_op, Precision};
use kiln_ir::{HostTensor, Op, TensorData, TensorType};

pub fn t32(shape: &[usize], v: &[f32]) -> HostTensor {
    HostTensor::from_f32(shape.to_vec(), v.to_vec()).unwrap()
}

pub fn t64(shape: &[usize], v: &[f64]) -> HostTensor {
    HostTensor::from_f64(shape.to_vec(), v.to_vec()).unwrap()
}

pub fn ti64(shape: &[usize], v: &[i64]) -> HostTensor {
    HostTensor::from_i64(shape.to_vec(), v.to_vec()).unwrap()
}

pub fn tbool(shape: &[usize], v: &[u8]) -> HostTensor {
    HostTensor::new(shape.to_vec(), TensorData::Bool(v.to_vec())).unwrap()
}

/// 1, 2, ..., n as f32 in the given shape.
pub fn iota(shape: &[usize]) -> HostTensor {
    let n: usize = shape.iter().product();
    t32(shape, &(1..=n).map(|i| i as f32).collect::<Vec<_>>())
}

fn infer(op: &Op, args: &[&HostTensor]) -> TensorType {
    let tys: Vec<TensorType> = args.iter().map(|t| t.ty()).collect();
    kiln_ir::infer::infer_type(op, &tys).unwrap()
}

/// Evaluates one op in f32 mode; the result type comes from shape inference.
pub fn ev(op: Op, args: &[&HostTensor]) -> HostTensor {
    let ty = infer(&op, args);
    eval_op(&op, &ty, args, Precision::F32).unwrap()
}

/// Evaluates one op in f64 mode.
pub fn ev64(op: Op, args: &[&HostTensor]) -> HostTensor {
    let tys: Vec<TensorType> = args
        .iter()
        .map(|t| {
            let mut ty = t.ty();
            if ty.dtype == kiln_ir::DType::F64 {
                ty.dtype = kiln_ir::DType::F32;
            }
            ty
        })
        .collect();
    let ty = kiln_ir::infer::infer_type(&op, &tys).unwrap();
    eval_op(&op, &ty, args, Precision::F64).unwrap()
}

/// The error message of a failing evaluation in f32 mode.
pub fn ev_err(op: Op, args: &[&HostTensor]) -> String {
    let ty = infer(&op, args);
    eval_op(&op, &ty, args, Precision::F32).unwrap_err()
}

pub fn vals(t: &HostTensor) -> Vec<f64> {
    t.to_f64_vec()
}

pub fn dims(t: &HostTensor) -> Vec<usize> {
    t.shape().0.clone()
}

/// Element-wise |got - want| <= tol, NaN matching NaN.
#[track_caller]
pub fn close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "length: got {got:?}, want {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= tol;
        assert!(ok, "element {i}: got {g}, want {w} (tol {tol})\n got {got:?}\nwant {want:?}");
    }
}

/// Exact equality, NaN matching NaN.
#[track_caller]
pub fn exact(got: &HostTensor, want: &[f64]) {
    close(&vals(got), want, 0.0);
}

/// A deterministic pseudo-random f64 sequence in [-1, 1).
pub fn noise(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
