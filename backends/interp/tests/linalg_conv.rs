//! matmul, fused dense, conv2d (all attributes), its gradients, conv1d,
//! fused conv: hand-worked values plus the adjoint identities that tie the
//! gradient kernels to the forward one.

mod common;
use common::*;
use kiln_ir::{Activation, Conv1dAttrs, Conv2dAttrs, Op};

fn mm(a: &kiln_ir::HostTensor, b: &kiln_ir::HostTensor, ta: bool, tb: bool) -> kiln_ir::HostTensor {
    ev(Op::MatMul { trans_a: ta, trans_b: tb }, &[a, b])
}

#[test]
fn matmul_plain_and_transposed() {
    // [[1,2,3],[4,5,6]] @ [[7,8],[9,10],[11,12]] = [[58,64],[139,154]]
    let a = iota(&[2, 3]);
    let b = t32(&[3, 2], &[7.0, 8.0, 9.0, 10.0, 11.0, 12.0]);
    let want = [58.0, 64.0, 139.0, 154.0];
    let r = mm(&a, &b, false, false);
    assert_eq!(dims(&r), vec![2, 2]);
    exact(&r, &want);
    let at = t32(&[3, 2], &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    let bt = t32(&[2, 3], &[7.0, 9.0, 11.0, 8.0, 10.0, 12.0]);
    exact(&mm(&at, &b, true, false), &want);
    exact(&mm(&a, &bt, false, true), &want);
    exact(&mm(&at, &bt, true, true), &want);
}

#[test]
fn matmul_broadcasts_batch_axes() {
    // a: two 1x2 rows [1,2], [3,4]; b: one 2x1 column [5,6] shared.
    let r = mm(&t32(&[2, 1, 2], &[1.0, 2.0, 3.0, 4.0]), &t32(&[2, 1], &[5.0, 6.0]), false, false);
    assert_eq!(dims(&r), vec![2, 1, 1]);
    exact(&r, &[17.0, 39.0]);
    // a: [2,1,1,2] (a0=[1,2], a1=[3,4]); b: [3,2,1] (b0=e0, b1=e1, b2=[1,1]).
    let a = t32(&[2, 1, 1, 2], &[1.0, 2.0, 3.0, 4.0]);
    let b = t32(&[3, 2, 1], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    let r = mm(&a, &b, false, false);
    assert_eq!(dims(&r), vec![2, 3, 1, 1]);
    exact(&r, &[1.0, 2.0, 3.0, 3.0, 4.0, 7.0]);
    // Transposed with a batch: a^T stored per batch.
    let r = mm(&t32(&[2, 2, 1], &[1.0, 2.0, 3.0, 4.0]), &t32(&[2, 1], &[5.0, 6.0]), true, false);
    exact(&r, &[17.0, 39.0]);
}

#[test]
fn fused_dense_bias_and_activations() {
    // x = [[1,2],[3,4]], w = [[1,-1],[1,1]] -> x@w = [[3,1],[7,1]]
    let x = iota(&[2, 2]);
    let w = t32(&[2, 2], &[1.0, -1.0, 1.0, 1.0]);
    let bias = t32(&[2], &[-5.0, 0.0]);
    let fd = |tb: bool, w: &kiln_ir::HostTensor, act: Activation, b: Option<&kiln_ir::HostTensor>| {
        let mut args = vec![&x, w];
        args.extend(b);
        ev(Op::FusedDense { trans_b: tb, bias: b.is_some(), act }, &args)
    };
    exact(&fd(false, &w, Activation::None, None), &[3.0, 1.0, 7.0, 1.0]);
    exact(&fd(false, &w, Activation::None, Some(&bias)), &[-2.0, 1.0, 2.0, 1.0]);
    exact(&fd(false, &w, Activation::Relu, Some(&bias)), &[0.0, 1.0, 2.0, 1.0]);
    let wt = t32(&[2, 2], &[1.0, 1.0, -1.0, 1.0]);
    exact(&fd(true, &wt, Activation::Relu, Some(&bias)), &[0.0, 1.0, 2.0, 1.0]);
    let s = fd(false, &w, Activation::Sigmoid, Some(&bias));
    close(&vals(&s), &[1.0 / (1.0 + 2f64.exp()), 1.0 / (1.0 + (-1f64).exp()), 1.0 / (1.0 + (-2f64).exp()), 1.0 / (1.0 + (-1f64).exp())], 1e-7);
    let t = fd(false, &w, Activation::Tanh, Some(&bias));
    close(&vals(&t), &[(-2f64).tanh(), 1f64.tanh(), 2f64.tanh(), 1f64.tanh()], 1e-7);
    // Leading batch axes of x are flattened: [2,1,2] x [2,2].
    let r = ev(Op::FusedDense { trans_b: false, bias: false, act: Activation::None }, &[&t32(&[2, 1, 2], &[1.0, 2.0, 3.0, 4.0]), &w]);
    assert_eq!(dims(&r), vec![2, 1, 2]);
    exact(&r, &[3.0, 1.0, 7.0, 1.0]);
}

fn conv(x: &kiln_ir::HostTensor, w: &kiln_ir::HostTensor, attrs: Conv2dAttrs) -> kiln_ir::HostTensor {
    ev(Op::Conv2d(attrs), &[x, w])
}

fn attrs(stride: usize, pad: usize, dil: usize, groups: usize) -> Conv2dAttrs {
    Conv2dAttrs { stride: [stride; 2], padding: [pad; 2], dilation: [dil; 2], groups }
}

#[test]
fn conv2d_valid_padded_strided() {
    // x = [[1,2,3],[4,5,6],[7,8,9]]; w = [[1,0],[0,1]] sums the diagonal pair.
    let x = iota(&[1, 1, 3, 3]);
    let r = conv(&x, &t32(&[1, 1, 2, 2], &[1.0, 0.0, 0.0, 1.0]), Conv2dAttrs::default());
    assert_eq!(dims(&r), vec![1, 1, 2, 2]);
    exact(&r, &[6.0, 8.0, 12.0, 14.0]);
    // 3x3 ones, padding 1: each output sums its in-bounds neighbourhood.
    let ones = t32(&[1, 1, 3, 3], &[1.0; 9]);
    let p = conv(&x, &ones, attrs(1, 1, 1, 1));
    assert_eq!(dims(&p), vec![1, 1, 3, 3]);
    exact(&p, &[12.0, 21.0, 16.0, 27.0, 45.0, 33.0, 24.0, 39.0, 28.0]);
    // Stride 2 keeps the four corners of that.
    exact(&conv(&x, &ones, attrs(2, 1, 1, 1)), &[12.0, 16.0, 24.0, 28.0]);
    // Non-square stride/padding: stride [1,2], pad [0,1].
    let a = Conv2dAttrs { stride: [1, 2], padding: [0, 1], dilation: [1, 1], groups: 1 };
    let r = conv(&x, &t32(&[1, 1, 1, 1], &[2.0]), a);
    // width padded to 5 ([0,1,2,3,0] per row), taking columns 0,2,4.
    assert_eq!(dims(&r), vec![1, 1, 3, 3]);
    exact(&r, &[0.0, 4.0, 0.0, 0.0, 10.0, 0.0, 0.0, 16.0, 0.0]);
}

#[test]
fn conv2d_dilation() {
    // 4x4 iota, 2x2 kernel [1,2,3,4] dilated by 2 reads x[i,j], x[i,j+2], x[i+2,j], x[i+2,j+2].
    let x = iota(&[1, 1, 4, 4]);
    let r = conv(&x, &t32(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]), attrs(1, 0, 2, 1));
    assert_eq!(dims(&r), vec![1, 1, 2, 2]);
    // 1*1+2*3+3*9+4*11 = 78, 2+8+30+48 = 88, 5+14+39+60 = 118, 6+16+42+64 = 128
    exact(&r, &[78.0, 88.0, 118.0, 128.0]);
}

#[test]
fn conv2d_channels_batch_and_groups() {
    // Two input channels, three output channels, 1x1 kernels: a channel mix.
    let x = t32(&[2, 2, 1, 1], &[1.0, 2.0, -1.0, 0.5]);
    let w = t32(&[3, 2, 1, 1], &[1.0, 1.0, 1.0, -1.0, 2.0, 0.0]);
    exact(&conv(&x, &w, Conv2dAttrs::default()), &[3.0, -1.0, 2.0, -0.5, -1.5, -2.0]);
    // groups = 2 with one channel each: depthwise scaling.
    let x = t32(&[1, 2, 2, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    let w = t32(&[2, 1, 1, 1], &[2.0, -1.0]);
    exact(&conv(&x, &w, attrs(1, 0, 1, 2)), &[2.0, 4.0, 6.0, 8.0, -5.0, -6.0, -7.0, -8.0]);
    // groups = 2, four input channels: out0 sees x0,x1 and out1 sees x2,x3.
    let x = t32(&[1, 4, 1, 1], &[1.0, 2.0, 3.0, 4.0]);
    let w = t32(&[2, 2, 1, 1], &[1.0, 10.0, 100.0, 1000.0]);
    exact(&conv(&x, &w, attrs(1, 0, 1, 2)), &[21.0, 4300.0]);
}

#[test]
fn conv2d_grad_input_hand_worked() {
    // dy = [[1,2],[3,4]], w = [[1,0],[0,1]] onto a 3x3 input:
    // tap (0,0) adds dy at [0..2,0..2], tap (1,1) adds dy at [1..3,1..3].
    let dy = iota(&[1, 1, 2, 2]);
    let w = t32(&[1, 1, 2, 2], &[1.0, 0.0, 0.0, 1.0]);
    let dx = ev(Op::Conv2dGradInput { attrs: Conv2dAttrs::default(), input_hw: [3, 3] }, &[&dy, &w]);
    assert_eq!(dims(&dx), vec![1, 1, 3, 3]);
    exact(&dx, &[1.0, 2.0, 0.0, 3.0, 5.0, 2.0, 0.0, 3.0, 4.0]);
}

#[test]
fn conv2d_grad_weight_hand_worked() {
    let x = iota(&[1, 1, 3, 3]);
    // dy selecting output (0,0) only: dw is the top-left 2x2 window of x.
    let dy = t32(&[1, 1, 2, 2], &[1.0, 0.0, 0.0, 0.0]);
    let op = Op::Conv2dGradWeight { attrs: Conv2dAttrs::default(), kernel_hw: [2, 2] };
    let dw = ev(op.clone(), &[&x, &dy]);
    assert_eq!(dims(&dw), vec![1, 1, 2, 2]);
    exact(&dw, &[1.0, 2.0, 4.0, 5.0]);
    // dy of ones: dw[ky,kx] sums the window shifted by (ky,kx).
    exact(&ev(op, &[&x, &t32(&[1, 1, 2, 2], &[1.0; 4])]), &[12.0, 16.0, 24.0, 28.0]);
}

/// <conv(x,w), dy> = <x, grad_input(dy,w)> = <w, grad_weight(x,dy)> for
/// every attribute combination: the gradient kernels are the adjoints.
#[test]
fn conv2d_gradients_are_adjoint_to_the_forward() {
    let cases = [
        (attrs(1, 0, 1, 1), 1, 1, 2, 5, 5, 3, 3),
        (attrs(2, 1, 1, 1), 2, 3, 4, 7, 6, 3, 2),
        (attrs(1, 2, 2, 1), 1, 2, 3, 6, 6, 3, 3),
        (attrs(2, 1, 2, 2), 2, 4, 6, 8, 7, 2, 3),
        (Conv2dAttrs { stride: [3, 1], padding: [1, 0], dilation: [1, 2], groups: 3 }, 1, 3, 3, 7, 8, 2, 2),
    ];
    for (k, (a, n, c, o, h, w, kh, kw)) in cases.into_iter().enumerate() {
        let x = t64(&[n, c, h, w], &noise(n * c * h * w, 1 + k as u64));
        let wt = t64(&[o, c / a.groups, kh, kw], &noise(o * c / a.groups * kh * kw, 100 + k as u64));
        let y = ev64(Op::Conv2d(a), &[&x, &wt]);
        let yd = dims(&y);
        let dy = t64(&yd, &noise(y.numel(), 200 + k as u64));
        let dx = ev64(Op::Conv2dGradInput { attrs: a, input_hw: [h, w] }, &[&dy, &wt]);
        let dw = ev64(Op::Conv2dGradWeight { attrs: a, kernel_hw: [kh, kw] }, &[&x, &dy]);
        let lhs = dot(&vals(&y), &vals(&dy));
        assert!((lhs - dot(&vals(&x), &vals(&dx))).abs() < 1e-12, "case {k}: grad_input");
        assert!((lhs - dot(&vals(&wt), &vals(&dw))).abs() < 1e-12, "case {k}: grad_weight");
    }
}

#[test]
fn conv1d_stride_padding_dilation() {
    let x = iota(&[1, 1, 5]);
    let w = t32(&[1, 1, 2], &[1.0, 2.0]);
    // padded [0,1,2,3,4,5,0], stride 2 -> windows at 0,2,4: [0+2, 2+6, 4+10]
    let a = Conv1dAttrs { stride: 2, padding: 1, dilation: 1, groups: 1 };
    let r = ev(Op::Conv1d(a), &[&x, &w]);
    assert_eq!(dims(&r), vec![1, 1, 3]);
    exact(&r, &[2.0, 8.0, 14.0]);
    // dilation 2: x[i] + 2 x[i+2]
    let a = Conv1dAttrs { stride: 1, padding: 0, dilation: 2, groups: 1 };
    exact(&ev(Op::Conv1d(a), &[&x, &w]), &[7.0, 10.0, 13.0]);
    // Two channels, groups 2.
    let x2 = t32(&[1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let a = Conv1dAttrs { stride: 1, padding: 0, dilation: 1, groups: 2 };
    exact(&ev(Op::Conv1d(a), &[&x2, &t32(&[2, 1, 1], &[10.0, -1.0])]), &[10.0, 20.0, -3.0, -4.0]);
}

#[test]
fn fused_conv2d_adds_bias_per_channel_then_activates() {
    let x = iota(&[1, 1, 3, 3]);
    let w = t32(&[2, 1, 2, 2], &[1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
    // channel 0: [6,8,12,14] - 10; channel 1: [5,6,8,9] + 1
    let b = t32(&[2], &[-10.0, 1.0]);
    let r = ev(Op::FusedConv2d { attrs: Conv2dAttrs::default(), bias: true, act: Activation::Relu }, &[&x, &w, &b]);
    exact(&r, &[0.0, 0.0, 2.0, 4.0, 6.0, 7.0, 9.0, 10.0]);
    let r = ev(Op::FusedConv2d { attrs: Conv2dAttrs::default(), bias: false, act: Activation::None }, &[&x, &w]);
    exact(&r, &[6.0, 8.0, 12.0, 14.0, 5.0, 6.0, 8.0, 9.0]);
}

/// conv2d straight from its definition, one output element at a time.
fn conv_by_definition(x: &[f64], xd: [usize; 4], w: &[f64], wd: [usize; 4], a: Conv2dAttrs, yd: &[usize]) -> Vec<f64> {
    let [n, c, h, wi] = xd;
    let [o, cg, kh, kw] = wd;
    let og = o / a.groups;
    let mut y = Vec::new();
    for b in 0..n {
        for oc in 0..o {
            for oh in 0..yd[2] {
                for ow in 0..yd[3] {
                    let mut acc = 0.0;
                    for ci in 0..cg {
                        let ch = (oc / og) * cg + ci;
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let ih = (oh * a.stride[0] + ky * a.dilation[0]) as isize - a.padding[0] as isize;
                                let iw = (ow * a.stride[1] + kx * a.dilation[1]) as isize - a.padding[1] as isize;
                                if ih < 0 || iw < 0 || ih >= h as isize || iw >= wi as isize {
                                    continue;
                                }
                                acc += x[((b * c + ch) * h + ih as usize) * wi + iw as usize] * w[((oc * cg + ci) * kh + ky) * kw + kx];
                            }
                        }
                    }
                    y.push(acc);
                }
            }
        }
    }
    y
}

#[test]
fn conv2d_matches_its_definition_across_attributes() {
    let mut k = 0;
    for stride in [[1, 1], [2, 1], [3, 2]] {
        for padding in [[0, 0], [1, 2], [3, 0]] {
            for dilation in [[1, 1], [2, 3]] {
                for (groups, c, o) in [(1, 2, 3), (2, 4, 2), (3, 3, 6)] {
                    let a = Conv2dAttrs { stride, padding, dilation, groups };
                    let (xd, wd) = ([2, c, 7, 8], [o, c / groups, 3, 2]);
                    let x = noise(xd.iter().product(), k);
                    let w = noise(wd.iter().product(), 1000 + k);
                    k += 1;
                    let y = ev64(Op::Conv2d(a), &[&t64(&xd, &x), &t64(&wd, &w)]);
                    let want = conv_by_definition(&x, xd, &w, wd, a, &dims(&y));
                    close(&vals(&y), &want, 1e-12);
                }
            }
        }
    }
}
