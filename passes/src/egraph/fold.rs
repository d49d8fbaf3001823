//! Constant folding of small subgraphs inside the e-graph.
//!
//! An e-node whose operands all have a constant in their class, and whose
//! result has at most `fold_limit` elements, is evaluated and its class gets
//! a constant. The pipeline's `ConstEvaluator` (the interpreter) is used when
//! present; otherwise a native evaluator covers elementwise ops and views,
//! computing in f64 and rounding once (correctly rounded for + - * / sqrt).

use kiln_ir::scalar;
use kiln_ir::{BinaryOp, HostTensor, Op, Shape, TensorType, UnaryOp};

use crate::ConstEvaluator;

/// Evaluates `op` on constant operands; `None` when it cannot.
/// Without an evaluator and with `inexact` false, only ops whose native
/// result is exactly the correctly rounded one are folded.
pub fn eval(op: &Op, ty: &TensorType, args: &[&HostTensor], ev: Option<&dyn ConstEvaluator>, inexact: bool) -> Option<HostTensor> {
    if let Some(Ok(t)) = ev.map(|ev| ev.eval(op, ty, args)) {
        return (t.ty() == *ty).then_some(t);
    }
    let exact = match op {
        Op::Unary(u) => matches!(u, UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sqrt | UnaryOp::Relu | UnaryOp::Sign),
        Op::Binary(b) => !matches!(b, BinaryOp::Pow),
        _ => true,
    };
    if !exact && !inexact {
        return None;
    }
    native(op, ty, args)
}

fn broadcast_index(out: &Shape, inp: &Shape, mut flat: usize) -> usize {
    let (ro, ri) = (out.rank(), inp.rank());
    let mut idx = 0;
    let mut stride = 1;
    for ax in (0..ro).rev() {
        let d = out.0[ax];
        let i = flat % d.max(1);
        flat /= d.max(1);
        if ax + ri >= ro {
            let ia = ax + ri - ro;
            let di = inp.0[ia];
            if di != 1 {
                idx += i * stride;
            }
            stride *= di;
        }
    }
    idx
}

fn native(op: &Op, ty: &TensorType, args: &[&HostTensor]) -> Option<HostTensor> {
    let n = ty.numel();
    let vals: Vec<f64> = match op {
        // Only float math natively: integer division and overflow rules are
        // the interpreter's business.
        Op::Unary(u) if ty.dtype.is_float() => {
            let x = args.first()?.to_f64_vec();
            x.iter().map(|&v| scalar::unary(*u, v)).collect()
        }
        Op::Binary(b) if ty.dtype.is_float() => {
            let (a, c) = (args.first()?, args.get(1)?);
            let (av, cv) = (a.to_f64_vec(), c.to_f64_vec());
            (0..n)
                .map(|i| scalar::binary(*b, av[broadcast_index(&ty.shape, a.shape(), i)], cv[broadcast_index(&ty.shape, c.shape(), i)]))
                .collect()
        }
        Op::Reshape(_) | Op::StopGradient => args.first()?.to_f64_vec(),
        Op::BroadcastTo(s) => {
            let a = args.first()?;
            let av = a.to_f64_vec();
            (0..n).map(|i| av[broadcast_index(s, a.shape(), i)]).collect()
        }
        Op::Cast(d) if d.is_float() => args.first()?.to_f64_vec(),
        _ => return None,
    };
    (vals.len() == n).then(|| HostTensor::from_f64_values(ty, &vals))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::f32_shape;

    #[test]
    fn broadcast_binary_matches_numpy() {
        let a = HostTensor::from_f32([2, 1], vec![1.0, 2.0]).unwrap();
        let b = HostTensor::from_f32([3], vec![10.0, 20.0, 30.0]).unwrap();
        let t = eval(&Op::Binary(BinaryOp::Add), &f32_shape([2, 3]), &[&a, &b], None, true).unwrap();
        assert_eq!(t.as_f32().unwrap(), &[11.0, 21.0, 31.0, 12.0, 22.0, 32.0]);
    }

    #[test]
    fn native_folding_agrees_with_the_backends_on_nan() {
        // relu lets NaN through at run time, so a folded relu must too.
        let x = HostTensor::from_f32([2], vec![f32::NAN, -1.0]).unwrap();
        let t = eval(&Op::Unary(UnaryOp::Relu), &f32_shape([2]), &[&x], None, false).unwrap();
        let v = t.as_f32().unwrap();
        assert!(v[0].is_nan());
        assert_eq!(v[1], 0.0);
    }

    #[test]
    fn unsupported_ops_are_not_folded() {
        let a = HostTensor::from_f32([2, 2], vec![1.0; 4]).unwrap();
        assert!(eval(&Op::MatMul { trans_a: false, trans_b: false }, &f32_shape([2, 2]), &[&a, &a], None, true).is_none());
        let x = HostTensor::scalar_f32(1.0);
        assert!(eval(&Op::Unary(UnaryOp::Exp), &f32_shape([]), &[&x], None, false).is_none());
        assert!(eval(&Op::Unary(UnaryOp::Exp), &f32_shape([]), &[&x], None, true).is_some());
    }
}
