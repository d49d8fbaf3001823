//! Reductions and data movement: hand-worked values.

mod common;
use common::*;
use kiln_ir::{DType, Op, ReduceOp, Shape};

fn red(op: ReduceOp, x: &kiln_ir::HostTensor, axes: &[usize], keepdims: bool) -> kiln_ir::HostTensor {
    ev(Op::Reduce { op, axes: axes.to_vec(), keepdims }, &[x])
}

#[test]
fn reductions_over_axis_lists_with_and_without_keepdims() {
    // [[1,2,3],[4,5,6]]
    let x = iota(&[2, 3]);
    let s0 = red(ReduceOp::Sum, &x, &[0], false);
    assert_eq!(dims(&s0), vec![3]);
    exact(&s0, &[5.0, 7.0, 9.0]);
    let s0k = red(ReduceOp::Sum, &x, &[0], true);
    assert_eq!(dims(&s0k), vec![1, 3]);
    exact(&s0k, &[5.0, 7.0, 9.0]);
    exact(&red(ReduceOp::Sum, &x, &[1], false), &[6.0, 15.0]);
    let all = red(ReduceOp::Sum, &x, &[0, 1], false);
    assert_eq!(dims(&all), Vec::<usize>::new());
    exact(&all, &[21.0]);
    assert_eq!(dims(&red(ReduceOp::Sum, &x, &[0, 1], true)), vec![1, 1]);
    let m1 = red(ReduceOp::Mean, &x, &[1], true);
    assert_eq!(dims(&m1), vec![2, 1]);
    exact(&m1, &[2.0, 5.0]);
    exact(&red(ReduceOp::Max, &x, &[1], false), &[3.0, 6.0]);
    exact(&red(ReduceOp::Min, &x, &[0], false), &[1.0, 2.0, 3.0]);
    // Empty axis list: identity.
    assert_eq!(red(ReduceOp::Sum, &x, &[], false), x);
}

#[test]
fn reduce_non_adjacent_axes_of_rank3() {
    // x[i,j,k] = 4i + 2j + k for a [2,2,2]; summing i and k leaves j.
    let x = t32(&[2, 2, 2], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    // j=0: 0+1+4+5 = 10, j=1: 2+3+6+7 = 18
    exact(&red(ReduceOp::Sum, &x, &[0, 2], false), &[10.0, 18.0]);
    let k = red(ReduceOp::Max, &x, &[0, 2], true);
    assert_eq!(dims(&k), vec![1, 2, 1]);
    exact(&k, &[5.0, 7.0]);
    exact(&red(ReduceOp::Mean, &x, &[1], false), &[1.0, 2.0, 5.0, 6.0]);
}

#[test]
fn reductions_of_negative_values_and_nan() {
    let x = t32(&[4], &[-5.0, -1.0, -3.0, 0.0]);
    exact(&red(ReduceOp::Max, &x, &[0], false), &[0.0]);
    exact(&red(ReduceOp::Min, &x, &[0], false), &[-5.0]);
    exact(&red(ReduceOp::Sum, &x, &[0], false), &[-9.0]);
    let n = t32(&[3], &[1.0, f32::NAN, 2.0]);
    exact(&red(ReduceOp::Max, &n, &[0], false), &[f64::NAN]);
    exact(&red(ReduceOp::Min, &n, &[0], false), &[f64::NAN]);
    // Integer sums stay integers.
    let i = red(ReduceOp::Sum, &ti64(&[3], &[4, -1, 7]), &[0], false);
    assert_eq!(i.as_i64().unwrap(), &[10]);
}

#[test]
fn argmax_picks_the_first_maximum() {
    // [[1,3,3],[5,2,5]]
    let x = t32(&[2, 3], &[1.0, 3.0, 3.0, 5.0, 2.0, 5.0]);
    let a1 = ev(Op::ArgMax { axis: 1, keepdims: false }, &[&x]);
    assert_eq!(a1.dtype(), DType::I64);
    assert_eq!(a1.as_i64().unwrap(), &[1, 0]);
    let a0 = ev(Op::ArgMax { axis: 0, keepdims: true }, &[&x]);
    assert_eq!(dims(&a0), vec![1, 3]);
    assert_eq!(a0.as_i64().unwrap(), &[1, 0, 1]);
    let neg = ev(Op::ArgMax { axis: 0, keepdims: false }, &[&t32(&[3], &[-4.0, -2.0, -3.0])]);
    assert_eq!(neg.as_i64().unwrap(), &[1]);
    // NaN counts as the maximum (torch.argmax).
    let n = ev(Op::ArgMax { axis: 0, keepdims: false }, &[&t32(&[3], &[1.0, f32::NAN, 5.0])]);
    assert_eq!(n.as_i64().unwrap(), &[1]);
}

#[test]
fn reshape_keeps_row_major_order() {
    let x = iota(&[2, 3]);
    let r = ev(Op::Reshape(Shape::from([3, 2])), &[&x]);
    assert_eq!(dims(&r), vec![3, 2]);
    assert_eq!(vals(&r), vals(&x));
}

#[test]
fn permute_moves_axes() {
    let x = iota(&[2, 3]);
    let t = ev(Op::Permute(vec![1, 0]), &[&x]);
    assert_eq!(dims(&t), vec![3, 2]);
    exact(&t, &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    // [2,3,4] -> perm [2,0,1]: out[k,i,j] = x[i,j,k] = 12i + 4j + k + 1.
    let x3 = iota(&[2, 3, 4]);
    let p = ev(Op::Permute(vec![2, 0, 1]), &[&x3]);
    assert_eq!(dims(&p), vec![4, 2, 3]);
    let v = vals(&p);
    for k in 0..4 {
        for i in 0..2 {
            for j in 0..3 {
                assert_eq!(v[(k * 2 + i) * 3 + j], (12 * i + 4 * j + k + 1) as f64);
            }
        }
    }
}

#[test]
fn broadcast_to_repeats_unit_and_missing_axes() {
    let r = ev(Op::BroadcastTo(Shape::from([2, 3])), &[&t32(&[3], &[1.0, 2.0, 3.0])]);
    exact(&r, &[1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
    let c = ev(Op::BroadcastTo(Shape::from([2, 3])), &[&t32(&[2, 1], &[7.0, 8.0])]);
    exact(&c, &[7.0, 7.0, 7.0, 8.0, 8.0, 8.0]);
    let s = ev(Op::BroadcastTo(Shape::from([2, 2])), &[&t32(&[], &[5.0])]);
    exact(&s, &[5.0; 4]);
}

#[test]
fn slice_with_start_end_step() {
    let x = iota(&[2, 3]);
    let s = ev(Op::Slice { start: vec![0, 1], end: vec![2, 3], step: vec![1, 1] }, &[&x]);
    assert_eq!(dims(&s), vec![2, 2]);
    exact(&s, &[2.0, 3.0, 5.0, 6.0]);
    let v = iota(&[5]);
    exact(&ev(Op::Slice { start: vec![0], end: vec![5], step: vec![2] }, &[&v]), &[1.0, 3.0, 5.0]);
    exact(&ev(Op::Slice { start: vec![1], end: vec![5], step: vec![3] }, &[&v]), &[2.0, 5.0]);
    // Row 1 only, every other column.
    exact(&ev(Op::Slice { start: vec![1, 0], end: vec![2, 3], step: vec![1, 2] }, &[&x]), &[4.0, 6.0]);
    // Empty slice.
    assert_eq!(ev(Op::Slice { start: vec![2], end: vec![2], step: vec![1] }, &[&v]).numel(), 0);
}

#[test]
fn concat_along_each_axis() {
    let a = t32(&[2, 1], &[1.0, 2.0]);
    let b = t32(&[2, 2], &[3.0, 4.0, 5.0, 6.0]);
    let c1 = ev(Op::Concat { axis: 1 }, &[&a, &b]);
    assert_eq!(dims(&c1), vec![2, 3]);
    exact(&c1, &[1.0, 3.0, 4.0, 2.0, 5.0, 6.0]);
    let c0 = ev(Op::Concat { axis: 0 }, &[&b, &t32(&[1, 2], &[7.0, 8.0]), &b]);
    assert_eq!(dims(&c0), vec![5, 2]);
    exact(&c0, &[3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 3.0, 4.0, 5.0, 6.0]);
}

#[test]
fn pad_with_a_constant() {
    // [[1,2],[3,4]] with one row before and one column after, value 9.
    let x = iota(&[2, 2]);
    let p = ev(Op::Pad { lo: vec![1, 0], hi: vec![0, 1], value: 9.0 }, &[&x]);
    assert_eq!(dims(&p), vec![3, 3]);
    exact(&p, &[9.0, 9.0, 9.0, 1.0, 2.0, 9.0, 3.0, 4.0, 9.0]);
    let q = ev(Op::Pad { lo: vec![2], hi: vec![1], value: -0.5 }, &[&t32(&[1], &[3.0])]);
    exact(&q, &[-0.5, -0.5, 3.0, -0.5]);
}
