//! Finite-difference checks of the neural-network ops: matmul (batch
//! broadcasting, transposes), conv2d/conv1d (stride, padding, dilation,
//! groups), max/avg pooling (overlapping, padded windows), the gradient ops
//! themselves (their VJPs give second-order gradients), the fused ops,
//! softmax cross-entropy and random_uniform.

#[path = "gradcheck/support.rs"]
mod support;

use kiln_ir::infer::{conv2d_type, pool_type};
use kiln_ir::{Activation, Conv1dAttrs, Conv2dAttrs, Graph, Op, Pool2dAttrs, TensorType};
use proptest::prelude::*;
use support::{stress, check, f32t, input, Inputs, Rng};

fn cfg(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn fail(what: String) -> impl FnOnce(String) -> TestCaseError {
    move |e| TestCaseError::fail(format!("{what}: {e}"))
}

/// A random conv2d setup: (x shape, w shape, attrs).
fn conv_case(rng: &mut Rng) -> (Vec<usize>, Vec<usize>, Conv2dAttrs) {
    let groups = 1 + rng.below(2);
    let (c, o) = (groups * (1 + rng.below(2)), groups * (1 + rng.below(2)));
    let n = 1 + rng.below(2);
    let k = [1 + rng.below(3), 1 + rng.below(3)];
    let attrs = Conv2dAttrs {
        stride: [1 + rng.below(2), 1 + rng.below(2)],
        padding: [rng.below(2), rng.below(2)],
        dilation: [1 + rng.below(2), 1 + rng.below(2)],
        groups,
    };
    let hw: Vec<usize> = (0..2)
        .map(|a| {
            let span = attrs.dilation[a] * (k[a] - 1) + 1;
            span.saturating_sub(2 * attrs.padding[a]).max(1) + rng.below(3)
        })
        .collect();
    (vec![n, c, hw[0], hw[1]], vec![o, c / groups, k[0], k[1]], attrs)
}

fn pool_case(rng: &mut Rng) -> (Vec<usize>, Pool2dAttrs) {
    let kernel = [1 + rng.below(3), 1 + rng.below(3)];
    let p = Pool2dAttrs {
        kernel,
        // Stride below the kernel makes windows overlap.
        stride: [1 + rng.below(2), 1 + rng.below(2)],
        padding: [rng.below(kernel[0] / 2 + 1), rng.below(kernel[1] / 2 + 1)],
    };
    let hw: Vec<usize> = (0..2).map(|a| kernel[a].saturating_sub(2 * p.padding[a]).max(1) + rng.below(3)).collect();
    (vec![1 + rng.below(2), 1 + rng.below(2), hw[0], hw[1]], p)
}

const ACTS: [Activation; 4] = Activation::ALL;

proptest! {
    #![proptest_config(cfg(12 * stress()))]

    #[test]
    fn matmul_batch_broadcast_and_transposes(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let batch: Vec<usize> = (0..rng.below(3)).map(|_| 1 + rng.below(3)).collect();
        let src = |rng: &mut Rng| -> Vec<usize> {
            let drop = rng.below(batch.len() + 1);
            batch[drop..].iter().map(|&d| if rng.below(3) == 0 { 1 } else { d }).collect()
        };
        let (ba, bb) = (src(&mut rng), src(&mut rng));
        let (m, k, n) = (1 + rng.below(3), 1 + rng.below(3), 1 + rng.below(3));
        let (ta, tb) = (rng.below(2) == 1, rng.below(2) == 1);
        let sa: Vec<usize> = ba.iter().copied().chain(if ta { [k, m] } else { [m, k] }).collect();
        let sb: Vec<usize> = bb.iter().copied().chain(if tb { [n, k] } else { [k, n] }).collect();
        let mut g = Graph::new();
        let mut vals = Inputs::new();
        let a = input(&mut g, &mut vals, &mut rng, "a", &sa, -1.0, 1.0);
        let b = input(&mut g, &mut vals, &mut rng, "b", &sb, -1.0, 1.0);
        let y = g.matmul_t(a, b, ta, tb).unwrap();
        check(g, y, &vals, &["a", "b"], seed).map_err(fail(format!("{sa:?} @ {sb:?} ta={ta} tb={tb}")))?;
    }

    #[test]
    fn conv2d_stride_padding_dilation_groups(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (sx, sw, attrs) = conv_case(&mut rng);
        let mut g = Graph::new();
        let mut vals = Inputs::new();
        let x = input(&mut g, &mut vals, &mut rng, "x", &sx, -1.0, 1.0);
        let w = input(&mut g, &mut vals, &mut rng, "w", &sw, -1.0, 1.0);
        let y = g.conv2d(x, w, attrs).unwrap();
        check(g, y, &vals, &["x", "w"], seed).map_err(fail(format!("x {sx:?} w {sw:?} {attrs:?}")))?;
    }

    #[test]
    fn conv1d(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (sx, sw, a2) = conv_case(&mut rng);
        let attrs = Conv1dAttrs { stride: a2.stride[1], padding: a2.padding[1], dilation: a2.dilation[1], groups: a2.groups };
        let (sx, sw) = (vec![sx[0], sx[1], sx[3]], vec![sw[0], sw[1], sw[3]]);
        let mut g = Graph::new();
        let mut vals = Inputs::new();
        let x = input(&mut g, &mut vals, &mut rng, "x", &sx, -1.0, 1.0);
        let w = input(&mut g, &mut vals, &mut rng, "w", &sw, -1.0, 1.0);
        let y = g.conv1d(x, w, attrs).unwrap();
        check(g, y, &vals, &["x", "w"], seed).map_err(fail(format!("x {sx:?} w {sw:?} {attrs:?}")))?;
    }

    /// Distinct random values, so no window has a tie within h.
    #[test]
    fn max_pool2d_overlapping_padded(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (sx, p) = pool_case(&mut rng);
        let mut g = Graph::new();
        let mut vals = Inputs::new();
        let x = input(&mut g, &mut vals, &mut rng, "x", &sx, -2.0, 2.0);
        let y = g.max_pool2d(x, p).unwrap();
        check(g, y, &vals, &["x"], seed).map_err(fail(format!("x {sx:?} {p:?}")))?;
    }

    #[test]
    fn avg_pool2d_overlapping_padded(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (sx, p) = pool_case(&mut rng);
        let cip = rng.below(2) == 1;
        let mut g = Graph::new();
        let mut vals = Inputs::new();
        let x = input(&mut g, &mut vals, &mut rng, "x", &sx, -2.0, 2.0);
        let y = g.avg_pool2d(x, p, cip).unwrap();
        check(g, y, &vals, &["x"], seed).map_err(fail(format!("x {sx:?} {p:?} count_include_pad={cip}")))?;
    }

    /// The gradient ops are ordinary ops too; checking their VJPs is what
    /// makes second-order gradients through conv and pooling right.
    #[test]
    fn conv2d_grad_ops(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (sx, sw, attrs) = conv_case(&mut rng);
        let sy = conv2d_type(&f32t(&sx), &f32t(&sw), &attrs).unwrap().shape.0;
        let mut g = Graph::new();
        let mut vals = Inputs::new();
        let dy = input(&mut g, &mut vals, &mut rng, "dy", &sy, -1.0, 1.0);
        let w = input(&mut g, &mut vals, &mut rng, "w", &sw, -1.0, 1.0);
        let x = input(&mut g, &mut vals, &mut rng, "x", &sx, -1.0, 1.0);
        let gi = g.apply(Op::Conv2dGradInput { attrs, input_hw: [sx[2], sx[3]] }, &[dy, w]).unwrap();
        let gw = g.apply(Op::Conv2dGradWeight { attrs, kernel_hw: [sw[2], sw[3]] }, &[x, dy]).unwrap();
        // One loss over both: sum(gi * R1) + sum(gw * R2) via a flat concat.
        let fi = g.reshape(gi, vec![numel(&sx)]).unwrap();
        let fw = g.reshape(gw, vec![numel(&sw)]).unwrap();
        let y = g.concat(&[fi, fw], 0).unwrap();
        check(g, y, &vals, &["dy", "w", "x"], seed).map_err(fail(format!("x {sx:?} w {sw:?} {attrs:?}")))?;
    }

    #[test]
    fn pool_grad_ops(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (sx, p) = pool_case(&mut rng);
        let cip = rng.below(2) == 1;
        let sy = pool_type(&f32t(&sx), &p).unwrap().shape.0;
        let mut g = Graph::new();
        let mut vals = Inputs::new();
        let x = input(&mut g, &mut vals, &mut rng, "x", &sx, -2.0, 2.0);
        let dy = input(&mut g, &mut vals, &mut rng, "dy", &sy, -1.0, 1.0);
        let mg = g.apply(Op::MaxPool2dGrad(p), &[x, dy]).unwrap();
        let ag = g.apply(Op::AvgPool2dGrad { pool: p, count_include_pad: cip, input_hw: [sx[2], sx[3]] }, &[dy]).unwrap();
        let y = g.concat(&[mg, ag], 0).unwrap();
        // x only routes max_pool2d_grad: zero gradient, matching zero differences.
        check(g, y, &vals, &["x", "dy"], seed).map_err(fail(format!("x {sx:?} {p:?} cip={cip}")))?;
    }

    #[test]
    fn fused_dense_every_activation(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        for act in ACTS {
            let (k, n) = (1 + rng.below(3), 1 + rng.below(3));
            let lead: Vec<usize> = (0..1 + rng.below(2)).map(|_| 1 + rng.below(3)).collect();
            let sx: Vec<usize> = lead.iter().copied().chain([k]).collect();
            let trans_b = rng.below(2) == 1;
            let bias = rng.below(2) == 1;
            let sw = if trans_b { vec![n, k] } else { vec![k, n] };
            let mut g = Graph::new();
            let mut vals = Inputs::new();
            let x = input(&mut g, &mut vals, &mut rng, "x", &sx, -1.0, 1.0);
            let w = input(&mut g, &mut vals, &mut rng, "w", &sw, -1.0, 1.0);
            let mut ops = vec![x, w];
            let mut wrt = vec!["x", "w"];
            if bias {
                ops.push(input(&mut g, &mut vals, &mut rng, "b", &[n], -0.5, 0.5));
                wrt.push("b");
            }
            let y = g.apply(Op::FusedDense { trans_b, bias, act }, &ops).unwrap();
            check(g, y, &vals, &wrt, seed)
                .map_err(fail(format!("fused_dense act={} x {sx:?} w {sw:?} bias={bias}", act.name())))?;
        }
    }

    #[test]
    fn fused_conv2d_every_activation(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        for act in ACTS {
            let (sx, sw, attrs) = conv_case(&mut rng);
            let bias = rng.below(2) == 1;
            let mut g = Graph::new();
            let mut vals = Inputs::new();
            let x = input(&mut g, &mut vals, &mut rng, "x", &sx, -1.0, 1.0);
            let w = input(&mut g, &mut vals, &mut rng, "w", &sw, -1.0, 1.0);
            let mut ops = vec![x, w];
            let mut wrt = vec!["x", "w"];
            if bias {
                ops.push(input(&mut g, &mut vals, &mut rng, "b", &[sw[0]], -0.5, 0.5));
                wrt.push("b");
            }
            let y = g.apply(Op::FusedConv2d { attrs, bias, act }, &ops).unwrap();
            check(g, y, &vals, &wrt, seed)
                .map_err(fail(format!("fused_conv2d act={} x {sx:?} w {sw:?} {attrs:?} bias={bias}", act.name())))?;
        }
    }

    #[test]
    fn softmax_cross_entropy(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (n, c) = (1 + rng.below(4), 1 + rng.below(5));
        let mut g = Graph::new();
        let mut vals = Inputs::new();
        let l = input(&mut g, &mut vals, &mut rng, "logits", &[n, c], -3.0, 3.0);
        let t = g.input("labels", TensorType::i64([n])).unwrap();
        vals.i("labels", [n], (0..n).map(|_| rng.below(c) as i64).collect());
        let y = g.apply(Op::SoftmaxCrossEntropy, &[l, t]).unwrap();
        check(g, y, &vals, &["logits"], seed).map_err(fail(format!("logits [{n},{c}]")))?;
    }

    /// random_uniform is a constant of the counter: x * u has gradient u.
    #[test]
    fn random_uniform_is_a_constant(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let s = [1 + rng.below(3), 1 + rng.below(3)];
        let mut g = Graph::new();
        let mut vals = Inputs::new();
        let x = input(&mut g, &mut vals, &mut rng, "x", &s, -1.0, 1.0);
        let ctr = g.input("step", TensorType::i64([])).unwrap();
        vals.i("step", [], vec![seed as i64 & 0xffff]);
        let u = g.random_uniform(ctr, s.to_vec(), seed, -1.0, 1.0).unwrap();
        let y = g.mul(x, u).unwrap();
        check(g, y, &vals, &["x"], seed).map_err(TestCaseError::fail)?;
    }
}

fn numel(s: &[usize]) -> usize {
    s.iter().product()
}
