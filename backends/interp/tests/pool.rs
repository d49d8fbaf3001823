//! Max/avg pooling and their gradients: hand-worked values.

mod common;
use common::*;
use kiln_ir::{Op, Pool2dAttrs};

fn p(k: usize, s: usize, pad: usize) -> Pool2dAttrs {
    Pool2dAttrs { kernel: [k; 2], stride: [s; 2], padding: [pad; 2] }
}

#[test]
fn max_pool_plain_and_overlapping() {
    let x = iota(&[1, 1, 4, 4]);
    let r = ev(Op::MaxPool2d(p(2, 2, 0)), &[&x]);
    assert_eq!(dims(&r), vec![1, 1, 2, 2]);
    exact(&r, &[6.0, 8.0, 14.0, 16.0]);
    // 3x3 windows with stride 1 overlap.
    exact(&ev(Op::MaxPool2d(p(3, 1, 0)), &[&x]), &[11.0, 12.0, 15.0, 16.0]);
    // Two planes (batch 2) pool independently.
    let x2 = t32(&[2, 1, 2, 2], &[1.0, 4.0, 3.0, 2.0, -1.0, -4.0, -3.0, -2.0]);
    exact(&ev(Op::MaxPool2d(p(2, 2, 0)), &[&x2]), &[4.0, -1.0]);
}

#[test]
fn max_pool_padding_acts_as_minus_infinity() {
    // All-negative 3x3, kernel 2, stride 2, padding 1: windows see {x00},
    // {x01,x02}, {x10,x20}, {x11,x12,x21,x22}. A zero pad would win everywhere.
    let x = t32(&[1, 1, 3, 3], &[-1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0, -9.0]);
    let r = ev(Op::MaxPool2d(p(2, 2, 1)), &[&x]);
    assert_eq!(dims(&r), vec![1, 1, 2, 2]);
    exact(&r, &[-1.0, -2.0, -4.0, -5.0]);
    // Non-square attributes: kernel [1,3], stride [1,2], padding [0,1].
    let a = Pool2dAttrs { kernel: [1, 3], stride: [1, 2], padding: [0, 1] };
    let r = ev(Op::MaxPool2d(a), &[&t32(&[1, 1, 1, 4], &[-5.0, -7.0, -1.0, -9.0])]);
    // windows over columns {0,1}, {1,2,3}
    exact(&r, &[-5.0, -1.0]);
}

#[test]
fn max_pool_grad_routes_to_the_first_maximum() {
    let op = Op::MaxPool2dGrad(p(2, 2, 0));
    // Maxima of the 4x4 iota sit at flat indices 5, 7, 13, 15.
    let x = iota(&[1, 1, 4, 4]);
    let dx = ev(op.clone(), &[&x, &t32(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0])]);
    let mut want = [0.0; 16];
    want[5] = 1.0;
    want[7] = 2.0;
    want[13] = 3.0;
    want[15] = 4.0;
    exact(&dx, &want);
    // Ties: [[0,3],[3,0]] -> the first 3 (row-major) gets it; all equal -> index 0.
    let t = ev(op.clone(), &[&t32(&[1, 1, 2, 2], &[0.0, 3.0, 3.0, 0.0]), &t32(&[1, 1, 1, 1], &[5.0])]);
    exact(&t, &[0.0, 5.0, 0.0, 0.0]);
    let t = ev(op, &[&t32(&[1, 1, 2, 2], &[1.0; 4]), &t32(&[1, 1, 1, 1], &[5.0])]);
    exact(&t, &[5.0, 0.0, 0.0, 0.0]);
    // Overlapping windows all choosing the centre accumulate there.
    let x = t32(&[1, 1, 3, 3], &[0.0, 0.0, 0.0, 0.0, 9.0, 0.0, 0.0, 0.0, 0.0]);
    let dx = ev(Op::MaxPool2dGrad(p(2, 1, 0)), &[&x, &t32(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0])]);
    exact(&dx, &[0.0, 0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 0.0, 0.0]);
    // With padding, the gradient never lands in the padding.
    let x = t32(&[1, 1, 3, 3], &[-1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0, -9.0]);
    let dx = ev(Op::MaxPool2dGrad(p(2, 2, 1)), &[&x, &t32(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0])]);
    exact(&dx, &[1.0, 2.0, 0.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0]);
}

#[test]
fn avg_pool_count_include_pad_both_ways() {
    let x = iota(&[1, 1, 4, 4]);
    let r = ev(Op::AvgPool2d { pool: p(2, 2, 0), count_include_pad: true }, &[&x]);
    exact(&r, &[3.5, 5.5, 11.5, 13.5]);
    // 3x3 iota, kernel 2, stride 2, padding 1: windows {1}, {2,3}, {4,7}, {5,6,8,9}.
    let x = iota(&[1, 1, 3, 3]);
    let inc = ev(Op::AvgPool2d { pool: p(2, 2, 1), count_include_pad: true }, &[&x]);
    exact(&inc, &[0.25, 1.25, 2.75, 7.0]);
    let exc = ev(Op::AvgPool2d { pool: p(2, 2, 1), count_include_pad: false }, &[&x]);
    exact(&exc, &[1.0, 2.5, 5.5, 7.0]);
    // Overlapping 2x2 windows, stride 1.
    let o = ev(Op::AvgPool2d { pool: p(2, 1, 0), count_include_pad: false }, &[&x]);
    exact(&o, &[3.0, 4.0, 6.0, 7.0]);
}

#[test]
fn avg_pool_grad_spreads_over_each_window() {
    let dy = t32(&[1, 1, 2, 2], &[1.0; 4]);
    // Same geometry as above: every input cell lies in exactly one window.
    let inc = ev(Op::AvgPool2dGrad { pool: p(2, 2, 1), count_include_pad: true, input_hw: [3, 3] }, &[&dy]);
    assert_eq!(dims(&inc), vec![1, 1, 3, 3]);
    exact(&inc, &[0.25; 9]);
    let exc = ev(Op::AvgPool2dGrad { pool: p(2, 2, 1), count_include_pad: false, input_hw: [3, 3] }, &[&dy]);
    exact(&exc, &[1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.5, 0.25, 0.25]);
    // Overlapping windows add up: the centre of a 3x3 is in all four.
    let o = ev(Op::AvgPool2dGrad { pool: p(2, 1, 0), count_include_pad: true, input_hw: [3, 3] }, &[&t32(&[1, 1, 2, 2], &[4.0, 8.0, 12.0, 16.0])]);
    exact(&o, &[1.0, 3.0, 2.0, 4.0, 10.0, 6.0, 3.0, 7.0, 4.0]);
}

/// <pool(x), dy> = <x, pool_grad(dy)> for average pooling (it is linear).
#[test]
fn avg_pool_grad_is_adjoint() {
    for (k, (a, inc)) in [(p(3, 2, 1), true), (p(3, 2, 1), false), (p(2, 1, 1), false), (Pool2dAttrs { kernel: [2, 3], stride: [2, 1], padding: [1, 0] }, true)]
        .into_iter()
        .enumerate()
    {
        let x = t64(&[2, 3, 5, 6], &noise(180, k as u64));
        let y = ev64(Op::AvgPool2d { pool: a, count_include_pad: inc }, &[&x]);
        let dy = t64(&dims(&y), &noise(y.numel(), 50 + k as u64));
        let dx = ev64(Op::AvgPool2dGrad { pool: a, count_include_pad: inc, input_hw: [5, 6] }, &[&dy]);
        assert!((dot(&vals(&y), &vals(&dy)) - dot(&vals(&x), &vals(&dx))).abs() < 1e-12, "case {k}");
    }
}
