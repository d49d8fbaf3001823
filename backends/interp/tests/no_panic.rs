//! The interpreter on edge graphs: any single op that shape inference
//! accepts, on small (often zero-size) operands with random data and
//! out-of-range or negative indices, runs to a value of the node's type or
//! to a typed `RunError`, never a panic. `eval_op` with operands that do
//! not match the op is an error too.

use std::collections::BTreeMap;

use kiln_interp::{eval_op, Interpreter, Precision};
use kiln_ir::*;
use proptest::prelude::*;

#[path = "../../../graph-ir/tests/support/mod.rs"]
mod support;
use support::{any_op, no_panic};

fn u() -> impl Strategy<Value = usize> + Clone {
    0usize..4
}

/// An operand: a base shape shared by all operands with some axes set to 1
/// (so broadcasting, matmul and conv combinations often type-check), or a
/// shape of its own.
fn operand(base: Vec<usize>) -> impl Strategy<Value = (DType, Vec<usize>)> {
    let dtype = prop_oneof![6 => Just(DType::F32), 2 => Just(DType::I64), 1 => Just(DType::Bool), 1 => Just(DType::F64)];
    let shape = prop_oneof![
        3 => (Just(base.clone()), any::<u8>())
            .prop_map(|(b, m)| b.iter().enumerate().map(|(i, &d)| if m >> i & 1 == 1 { 1 } else { d }).collect()),
        1 => prop::collection::vec(u(), 0..5),
    ];
    (dtype, shape)
}

fn operands() -> impl Strategy<Value = Vec<(DType, Vec<usize>)>> {
    prop::collection::vec(u(), 0..5).prop_flat_map(|base| prop::collection::vec(operand(base), 0..4))
}

/// Values for a tensor: floats in a small range with zeros (for log, div,
/// recip), ints from -2 to 5 so some indices are out of range.
fn tensor(ty: &TensorType, seed: u64) -> HostTensor {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let vals: Vec<f64> = (0..ty.numel())
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let r = (s >> 33) % 8;
            if ty.dtype.is_float() { r as f64 * 0.75 - 2.25 } else { r as f64 - 2.0 }
        })
        .collect();
    HostTensor::from_f64_values(ty, &vals)
}

/// Builds a one-op graph over inputs of `tys` filled with `tensor` data and
/// runs it in both precisions. Returns whether the op type-checked (and so
/// ran); fails on a panic, a wrongly typed output or an untyped error.
fn run_one(op: &Op, tys: &[TensorType], seed: u64) -> bool {
    let what = format!("{op:?} on {tys:?}");
    let mut g = Graph::new();
    let mut inputs = BTreeMap::new();
    let mut ids = Vec::new();
    for (i, ty) in tys.iter().enumerate() {
        let name = format!("x{i}");
        ids.push(g.input(&name, ty.clone()).unwrap());
        inputs.insert(name, tensor(ty, seed.wrapping_add(i as u64)));
    }
    let Ok(y) = g.apply(op.clone(), &ids) else { return false };
    g.set_output("y", y).unwrap();
    let want = g.ty(y).clone();
    for p in [Precision::F32, Precision::F64] {
        let result = no_panic(&what, || Interpreter::new(p).compile(&g).and_then(|mut exe| exe.run(&inputs)));
        match result {
            Ok(out) => {
                let got = out["y"].ty();
                let want = if p == Precision::F64 && want.dtype == DType::F32 { TensorType::new(DType::F64, want.shape.clone()) } else { want.clone() };
                assert_eq!(got, want, "{what}");
            }
            Err(RunError::IndexOutOfRange { node, index, bound }) => {
                assert_eq!(node, y.to_string());
                assert!(index < 0 || index as usize >= bound, "{what}: {index} is inside 0..{bound}");
            }
            Err(RunError::Backend(m)) => assert!(m.starts_with(&y.to_string()), "{what}: {m}"),
            Err(e) => panic!("{what}: unexpected error {e:?}"),
        }
    }
    true
}

/// A tiny generator for the targeted cases below: operand types built to
/// type-check, so every op actually runs (random attributes alone rarely do).
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    /// Uniform in `lo..=hi`.
    fn r(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.next() as usize % (hi - lo + 1)
    }
    fn b(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn dims(&mut self, rank: usize, lo: usize) -> Vec<usize> {
        (0..rank).map(|_| self.r(lo, 3)).collect()
    }
    fn conv(&mut self) -> Conv2dAttrs {
        Conv2dAttrs {
            stride: [self.r(1, 3), self.r(1, 3)],
            padding: [self.r(0, 2), self.r(0, 2)],
            dilation: [self.r(1, 2), self.r(1, 2)],
            groups: self.r(1, 2),
        }
    }
    fn pool(&mut self) -> Pool2dAttrs {
        let kernel = [self.r(1, 3), self.r(1, 3)];
        Pool2dAttrs { kernel, stride: [self.r(1, 3), self.r(1, 3)], padding: [self.r(0, kernel[0] / 2), self.r(0, kernel[1] / 2)] }
    }
}

fn f32t(d: Vec<usize>) -> TensorType {
    TensorType::f32(d)
}

/// One op of kind `kind` with operand types that (usually) type-check; the
/// zero extents that `Gen::dims(_, 0)` produces exercise empty tensors.
fn targeted(kind: usize, r: &mut Gen) -> (Op, Vec<TensorType>) {
    let rank = r.r(0, 4);
    let d = r.dims(rank, 0);
    match kind {
        0 => (Op::Unary(UnaryOp::ALL[r.r(0, 13)]), vec![f32t(d)]),
        1 => {
            let e: Vec<usize> = d.iter().map(|&n| if r.b() { 1 } else { n }).collect();
            (Op::Binary(BinaryOp::ALL[r.r(0, 6)]), vec![f32t(d), f32t(e)])
        }
        2 => (Op::Select, vec![TensorType::new(DType::Bool, d.clone()), f32t(d.clone()), f32t(vec![])]),
        3 => {
            let axes: Vec<usize> = (0..rank).filter(|_| r.b()).collect();
            (Op::Reduce { op: ReduceOp::ALL[r.r(0, 3)], axes, keepdims: r.b() }, vec![f32t(d)])
        }
        4 if rank > 0 => (Op::ArgMax { axis: r.r(0, rank - 1), keepdims: r.b() }, vec![f32t(d)]),
        5 => {
            let mut perm: Vec<usize> = (0..rank).collect();
            perm.rotate_left(if rank > 0 { r.r(0, rank - 1) } else { 0 });
            (Op::Permute(perm), vec![f32t(d)])
        }
        6 => {
            let start: Vec<usize> = d.iter().map(|&n| r.r(0, n)).collect();
            let end: Vec<usize> = d.iter().zip(&start).map(|(&n, &s)| r.r(s, n)).collect();
            let step = (0..rank).map(|_| r.r(1, 3)).collect();
            (Op::Slice { start, end, step }, vec![f32t(d)])
        }
        7 if rank > 0 => {
            let axis = r.r(0, rank - 1);
            let mut e = d.clone();
            e[axis] = r.r(0, 3);
            (Op::Concat { axis }, vec![f32t(d), f32t(e)])
        }
        8 => {
            let lo = (0..rank).map(|_| r.r(0, 2)).collect();
            let hi = (0..rank).map(|_| r.r(0, 2)).collect();
            (Op::Pad { lo, hi, value: 0.5 }, vec![f32t(d)])
        }
        9 => {
            let (m, k, n, b) = (r.r(0, 3), r.r(0, 3), r.r(0, 3), r.r(1, 2));
            let (ta, tb) = (r.b(), r.b());
            let a = if ta { vec![b, k, m] } else { vec![b, m, k] };
            let w = if tb { vec![n, k] } else { vec![k, n] };
            (Op::MatMul { trans_a: ta, trans_b: tb }, vec![f32t(a), f32t(w)])
        }
        10..=13 => {
            let a = r.conv();
            let (c, o) = (r.r(1, 2) * a.groups, r.r(1, 2) * a.groups);
            let x = vec![r.r(0, 2), c, r.r(1, 6), r.r(1, 6)];
            let w = vec![o, c / a.groups, r.r(1, 3), r.r(1, 3)];
            let y = kiln_ir::infer::conv2d_type(&f32t(x.clone()), &f32t(w.clone()), &a);
            let y = y.map(|t| t.shape.0).unwrap_or_else(|_| vec![0, 0, 0, 0]);
            match kind {
                10 => (Op::Conv2d(a), vec![f32t(x), f32t(w)]),
                11 => (Op::Conv2dGradInput { attrs: a, input_hw: [x[2], x[3]] }, vec![f32t(y), f32t(w)]),
                12 => (Op::Conv2dGradWeight { attrs: a, kernel_hw: [w[2], w[3]] }, vec![f32t(x), f32t(y)]),
                _ => {
                    let bias = r.b();
                    let mut ops = vec![f32t(x), f32t(w)];
                    if bias {
                        ops.push(f32t(vec![o]));
                    }
                    (Op::FusedConv2d { attrs: a, bias, act: Activation::ALL[r.r(0, 3)] }, ops)
                }
            }
        }
        14..=16 => {
            let p = r.pool();
            let x = vec![r.r(0, 2), r.r(0, 2), r.r(1, 6), r.r(1, 6)];
            let y = kiln_ir::infer::pool_type(&f32t(x.clone()), &p).map(|t| t.shape.0).unwrap_or_default();
            match kind {
                14 => (Op::MaxPool2d(p), vec![f32t(x)]),
                15 => (Op::MaxPool2dGrad(p), vec![f32t(x), f32t(y)]),
                _ => {
                    let cip = r.b();
                    if r.b() {
                        (Op::AvgPool2d { pool: p, count_include_pad: cip }, vec![f32t(x)])
                    } else {
                        (Op::AvgPool2dGrad { pool: p, count_include_pad: cip, input_hw: [x[2], x[3]] }, vec![f32t(y)])
                    }
                }
            }
        }
        17 if rank > 0 => {
            let (axis, irank) = (r.r(0, rank - 1), r.r(0, 2));
            (Op::Gather { axis }, vec![f32t(d), TensorType::i64(r.dims(irank, 0))])
        }
        18 if rank > 0 => {
            let axis = r.r(0, rank - 1);
            let idx = d[axis..axis + 1].to_vec();
            (Op::ScatterAdd { axis, size: r.r(0, 4) }, vec![TensorType::i64(idx), f32t(d)])
        }
        19 => (Op::OneHot { classes: r.r(1, 4) }, vec![TensorType::i64(d)]),
        20 => {
            let (n, c) = (r.r(0, 3), r.r(0, 4));
            (Op::SoftmaxCrossEntropy, vec![f32t(vec![n, c]), TensorType::i64(vec![n])])
        }
        21 => {
            let (n, k, o, tb, bias) = (r.r(0, 3), r.r(0, 3), r.r(0, 3), r.b(), r.b());
            let mut ops = vec![f32t(vec![n, k]), f32t(if tb { vec![o, k] } else { vec![k, o] })];
            if bias {
                ops.push(f32t(vec![o]));
            }
            (Op::FusedDense { trans_b: tb, bias, act: Activation::ALL[r.r(0, 3)] }, ops)
        }
        22 => (Op::RandomUniform { seed: r.next(), low: -1.0, high: 2.0, shape: Shape(d) }, vec![TensorType::i64(vec![])]),
        23 => {
            let l = r.r(1, 6);
            let a = Conv1dAttrs { stride: r.r(1, 2), padding: r.r(0, 2), dilation: r.r(1, 2), groups: 1 };
            (Op::Conv1d(a), vec![f32t(vec![r.r(0, 2), 2, l]), f32t(vec![r.r(0, 2), 2, r.r(1, 3)])])
        }
        24 => (Op::Cast([DType::I64, DType::I32, DType::Bool, DType::F64][r.r(0, 3)]), vec![f32t(d)]),
        _ => (Op::Reshape(Shape(vec![d.iter().product()])), vec![f32t(d)]),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn single_op_graphs_run_or_fail_with_a_typed_error(op in any_op(u()), operands in operands(), seed in any::<u64>()) {
        let tys = operands.into_iter().map(|(d, s)| TensorType::new(d, s)).collect::<Vec<_>>();
        run_one(&op, &tys, seed);
    }

    #[test]
    fn well_typed_ops_run_or_fail_with_a_typed_error(kind in 0usize..26, seed in any::<u64>()) {
        let (op, tys) = targeted(kind, &mut Gen(seed));
        let ran = run_one(&op, &tys, seed);
        // The generator builds valid operands except where a random conv or
        // pool geometry does not fit its input, or argmax picks an empty axis
        // (a build-time type error: it has no answer).
        let empty_argmax = matches!(op, Op::ArgMax { axis, .. } if tys[0].shape.0[axis] == 0);
        prop_assert!(ran || (10..=16).contains(&kind) || kind == 23 || empty_argmax, "{:?} on {:?} did not type-check", op, tys);
    }

    /// `eval_op` checks its operands against the op and the requested type.
    #[test]
    fn eval_op_with_mismatched_operands_is_an_error(op in any_op(u()), operands in operands(), want in operands(), seed in any::<u64>()) {
        let ts: Vec<HostTensor> = operands.iter().enumerate().map(|(i, (d, s))| tensor(&TensorType::new(*d, s.clone()), seed + i as u64)).collect();
        let refs: Vec<&HostTensor> = ts.iter().collect();
        let Some((d, s)) = want.first() else { return Ok(()) };
        let ty = TensorType::new(*d, s.clone());
        let what = format!("{op:?} on {operands:?} as {ty}");
        let inferred = kiln_ir::infer::infer_type(&op, &refs.iter().map(|t| t.ty()).collect::<Vec<_>>());
        let r = no_panic(&what, || eval_op(&op, &ty, &refs, Precision::F32));
        match inferred {
            Ok(t) if t == ty => {
                if let Ok(v) = r {
                    prop_assert_eq!(v.ty(), ty);
                }
            }
            _ => prop_assert!(r.is_err(), "{what}: accepted"),
        }
    }
}

/// A result that the IR accepts (4 bytes per f32 element fit) but that the
/// interpreter's one f64 per element cannot hold is a typed error, not an
/// abort in the allocator.
#[test]
fn a_result_too_large_for_the_interpreter_is_an_error() {
    let mut g = Graph::new();
    let c = g.input("c", TensorType::i64(Shape::scalar())).unwrap();
    let r = g.random_uniform(c, [1usize << 60], 0, 0.0, 1.0).unwrap();
    g.set_output("r", r).unwrap();
    let inputs = BTreeMap::from([("c".to_string(), HostTensor::scalar_i64(0))]);
    let e = no_panic("huge random_uniform", || Interpreter::f32().compile(&g).and_then(|mut exe| exe.run(&inputs))).unwrap_err();
    assert!(matches!(&e, RunError::Backend(m) if m.starts_with(&r.to_string()) && m.contains("does not fit in memory")), "{e:?}");
}
