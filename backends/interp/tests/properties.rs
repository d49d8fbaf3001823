//! Property tests: algebraic identities between ops over random shapes.

mod common;
use common::*;
use kiln_ir::{BinaryOp, DType, HostTensor, Op, ReduceOp, Shape, TensorType};
use proptest::prelude::*;

fn dims_strategy(max_rank: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..4, 1..=max_rank)
}

fn tensor(d: &[usize], seed: u64) -> HostTensor {
    t64(d, &noise(d.iter().product(), seed))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn permute_then_inverse_is_identity(d in dims_strategy(4), seed in 0u64..1000, rot in 0usize..4) {
        let r = d.len();
        let perm: Vec<usize> = (0..r).map(|i| (i + rot) % r).collect();
        let mut inv = vec![0; r];
        for (i, &p) in perm.iter().enumerate() {
            inv[p] = i;
        }
        let x = tensor(&d, seed);
        let y = ev64(Op::Permute(perm.clone()), &[&x]);
        prop_assert_eq!(dims(&y), perm.iter().map(|&p| d[p]).collect::<Vec<_>>());
        let z = ev64(Op::Permute(inv), &[&y]);
        prop_assert_eq!(vals(&z), vals(&x));
    }

    #[test]
    fn broadcast_add_reads_each_operand_modulo_its_extent(
        d in dims_strategy(3), mask_a in 0u8..8, mask_b in 0u8..8, drop_b in 0usize..2, seed in 0u64..1000
    ) {
        // Operand shapes: d with some axes set to 1; b may also lose its leading axis.
        let da: Vec<usize> = d.iter().enumerate().map(|(i, &n)| if mask_a >> i & 1 == 1 { 1 } else { n }).collect();
        let mut db: Vec<usize> = d.iter().enumerate().map(|(i, &n)| if mask_b >> i & 1 == 1 { 1 } else { n }).collect();
        let drop = drop_b.min(db.len() - 1);
        db.drain(..drop);
        let (a, b) = (tensor(&da, seed), tensor(&db, seed + 1));
        let out = ev64(Op::Binary(BinaryOp::Add), &[&a, &b]);
        let od = dims(&out);
        let (av, bv, ov) = (vals(&a), vals(&b), vals(&out));
        let r = od.len();
        for (flat, &got) in ov.iter().enumerate() {
            let mut idx = vec![0; r];
            let mut rem = flat;
            for k in (0..r).rev() {
                idx[k] = rem % od[k];
                rem /= od[k];
            }
            let lin = |sd: &[usize]| {
                let off = r - sd.len();
                sd.iter().enumerate().fold(0, |acc, (k, &n)| acc * n + idx[k + off] % n)
            };
            prop_assert_eq!(got, av[lin(&da)] + bv[lin(&db)]);
        }
    }

    #[test]
    fn concat_then_slice_recovers_the_parts(d in dims_strategy(3), extra in 1usize..4, axis_pick in 0usize..3, seed in 0u64..1000) {
        let axis = axis_pick % d.len();
        let mut d2 = d.clone();
        d2[axis] = extra;
        let (a, b) = (tensor(&d, seed), tensor(&d2, seed + 7));
        let c = ev64(Op::Concat { axis }, &[&a, &b]);
        let full = dims(&c);
        let r = d.len();
        let mut end = full.clone();
        end[axis] = d[axis];
        let first = ev64(Op::Slice { start: vec![0; r], end, step: vec![1; r] }, &[&c]);
        prop_assert_eq!(vals(&first), vals(&a));
        let mut start = vec![0; r];
        start[axis] = d[axis];
        let second = ev64(Op::Slice { start, end: full, step: vec![1; r] }, &[&c]);
        prop_assert_eq!(vals(&second), vals(&b));
    }

    #[test]
    fn pad_then_slice_is_identity(d in dims_strategy(3), lo in prop::collection::vec(0usize..3, 3), hi in prop::collection::vec(0usize..3, 3), seed in 0u64..1000) {
        let r = d.len();
        let (lo, hi) = (lo[..r].to_vec(), hi[..r].to_vec());
        let x = tensor(&d, seed);
        let p = ev64(Op::Pad { lo: lo.clone(), hi: hi.clone(), value: 7.5 }, &[&x]);
        let pv = vals(&p);
        prop_assert_eq!(pv.iter().filter(|&&v| v == 7.5).count(), p.numel() - x.numel());
        let end: Vec<usize> = (0..r).map(|i| lo[i] + d[i]).collect();
        let s = ev64(Op::Slice { start: lo, end, step: vec![1; r] }, &[&p]);
        prop_assert_eq!(vals(&s), vals(&x));
    }

    #[test]
    fn transpose_flags_agree_with_explicit_permutes(
        batch in prop::collection::vec(1usize..3, 0..3), m in 1usize..4, k in 1usize..4, n in 1usize..4,
        ta in any::<bool>(), tb in any::<bool>(), seed in 0u64..1000
    ) {
        let mk = |rows: usize, cols: usize, t: bool, s: u64| {
            let mut d = batch.clone();
            if t { d.extend([cols, rows]) } else { d.extend([rows, cols]) }
            tensor(&d, s)
        };
        let swap = |x: &HostTensor| {
            let r = x.shape().rank();
            let mut perm: Vec<usize> = (0..r).collect();
            perm.swap(r - 1, r - 2);
            ev64(Op::Permute(perm), &[x])
        };
        let (a, b) = (mk(m, k, ta, seed), mk(k, n, tb, seed + 3));
        let got = ev64(Op::MatMul { trans_a: ta, trans_b: tb }, &[&a, &b]);
        let a2 = if ta { swap(&a) } else { a.clone() };
        let b2 = if tb { swap(&b) } else { b.clone() };
        let want = ev64(Op::MatMul { trans_a: false, trans_b: false }, &[&a2, &b2]);
        prop_assert_eq!(dims(&got), dims(&want));
        close(&vals(&got), &vals(&want), 1e-14);
        // And one output element against a hand-rolled dot product.
        let (a2v, b2v) = (vals(&a2), vals(&b2));
        let dot0: f64 = (0..k).map(|p| a2v[p] * b2v[p * n]).sum();
        prop_assert!((vals(&got)[0] - dot0).abs() < 1e-14);
    }

    #[test]
    fn reducing_in_two_steps_equals_reducing_at_once(d in dims_strategy(4), first in 0usize..4, seed in 0u64..1000) {
        let r = d.len();
        let first = first % r;
        let x = tensor(&d, seed);
        let all: Vec<usize> = (0..r).collect();
        let once = ev64(Op::Reduce { op: ReduceOp::Max, axes: all.clone(), keepdims: false }, &[&x]);
        let step = ev64(Op::Reduce { op: ReduceOp::Max, axes: vec![first], keepdims: true }, &[&x]);
        let twice = ev64(Op::Reduce { op: ReduceOp::Max, axes: all.clone(), keepdims: false }, &[&step]);
        prop_assert_eq!(vals(&once), vals(&twice));
        let s = ev64(Op::Reduce { op: ReduceOp::Sum, axes: all, keepdims: false }, &[&x]);
        prop_assert!((vals(&s)[0] - vals(&x).iter().sum::<f64>()).abs() < 1e-12);
        let b = ev64(Op::BroadcastTo(Shape(d.clone())), &[&step]);
        prop_assert_eq!(dims(&b), d);
    }
}

#[test]
fn zero_sized_extents() {
    // K = 0: the product is all zeros (plus bias).
    let x = t32(&[2, 0], &[]);
    let w = t32(&[0, 3], &[]);
    exact(&ev(Op::MatMul { trans_a: false, trans_b: false }, &[&x, &w]), &[0.0; 6]);
    let b = t32(&[3], &[1.0, 2.0, 3.0]);
    let fd = ev(Op::FusedDense { trans_b: false, bias: true, act: kiln_ir::Activation::None }, &[&x, &w, &b]);
    exact(&fd, &[1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
    // Summing an empty axis gives 0; argmax over one has no answer: a type
    // error at build time, and eval_op (which re-checks types) refuses it too.
    exact(&ev(Op::Reduce { op: ReduceOp::Sum, axes: vec![1], keepdims: false }, &[&x]), &[0.0, 0.0]);
    let argmax = Op::ArgMax { axis: 1, keepdims: false };
    let e = kiln_ir::infer::infer_type(&argmax, &[x.ty()]).unwrap_err();
    assert!(e.contains("extent 0"), "{e}");
    let out = TensorType::new(DType::I64, [2]);
    let e = kiln_interp::eval_op(&argmax, &out, &[&x], kiln_interp::Precision::F32).unwrap_err();
    assert!(e.contains("extent 0"), "{e}");
}
