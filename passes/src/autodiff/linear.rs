//! VJPs of the structured linear ops (strided slice, matmul, convolution,
//! max-pool routing) that take more than a line or two of graph building.

use kiln_ir::{CompareOp, Conv1dAttrs, Conv2dAttrs, NodeId, Op, Pool2dAttrs, Shape};

use super::emit::Emit;
use crate::PassError;

/// The adjoint of `x[start:end:step]`: `g` placed back at the sliced
/// positions of a zero tensor of shape `xs`. Strided axes are first spread
/// out by interleaving zeros (reshape to `[n, 1]`, pad to `[n, step]`,
/// reshape to `[n * step]`), then one slice trims the spread axes and one
/// pad puts the block at `start`.
pub(crate) fn slice_vjp(
    e: &mut Emit,
    g: NodeId,
    xs: &Shape,
    start: &[usize],
    step: &[usize],
) -> Result<NodeId, PassError> {
    let gs = e.shape(g);
    let r = gs.rank();
    let mut g = g;
    if step.iter().any(|&s| s > 1) {
        let mut split = Vec::new();
        let (mut lo, mut hi) = (Vec::new(), Vec::new());
        let mut spread = Vec::with_capacity(r);
        for (&n, &st) in gs.0.iter().zip(step) {
            split.push(n);
            lo.push(0);
            hi.push(0);
            if st > 1 {
                split.push(1);
                lo.push(0);
                hi.push(st - 1);
            }
            spread.push(n * st);
        }
        let t = e.reshape(g, split)?;
        let t = e.apply(Op::Pad { lo, hi, value: 0.0 }, &[t])?;
        g = e.reshape(t, spread)?;
    }
    // Along a strided axis the spread block may run past the end of x; its
    // tail is padding, so trim it.
    let cur = e.shape(g);
    let keep: Vec<usize> = (0..r).map(|i| cur.0[i].min(xs.0[i] - start[i])).collect();
    if keep != cur.0 {
        let op = Op::Slice { start: vec![0; r], end: keep.clone(), step: vec![1; r] };
        g = e.apply(op, &[g])?;
    }
    let hi: Vec<usize> = (0..r).map(|i| xs.0[i] - start[i] - keep[i]).collect();
    if start.iter().chain(&hi).all(|&p| p == 0) {
        return Ok(g);
    }
    e.apply(Op::Pad { lo: start.to_vec(), hi, value: 0.0 }, &[g])
}

/// Gradients of `y = op_a(a) @ op_b(b)` (batch axes broadcast), each summed
/// back over the batch axes its operand was broadcast along.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_vjp(
    e: &mut Emit,
    a: NodeId,
    b: NodeId,
    trans_a: bool,
    trans_b: bool,
    g: NodeId,
    need_a: bool,
    need_b: bool,
) -> Result<(Option<NodeId>, Option<NodeId>), PassError> {
    let ga = if need_a {
        // y = A B with A = op(a), B = op(b): dA = G B^T, and da = dA or dA^T.
        let t = match (trans_a, trans_b) {
            (false, false) => e.matmul(g, b, false, true)?,
            (false, true) => e.matmul(g, b, false, false)?,
            (true, false) => e.matmul(b, g, false, true)?,
            (true, true) => e.matmul(b, g, true, true)?,
        };
        let s = e.shape(a);
        Some(e.unbroadcast(t, &s)?)
    } else {
        None
    };
    let gb = if need_b {
        if let Some(gb) = flat_weight_grad(e, a, b, trans_a, trans_b, g)? {
            return Ok((ga, Some(gb)));
        }
        // dB = A^T G, and db = dB or dB^T.
        let t = match (trans_a, trans_b) {
            (false, false) => e.matmul(a, g, true, false)?,
            (false, true) => e.matmul(g, a, true, false)?,
            (true, false) => e.matmul(a, g, false, false)?,
            (true, true) => e.matmul(g, a, true, true)?,
        };
        let s = e.shape(b);
        Some(e.unbroadcast(t, &s)?)
    } else {
        None
    };
    Ok((ga, gb))
}

/// The gradient of a rank-2 `b` shared by every batch of an untransposed
/// `a` (`x[T,B,in] @ w^T`, a linear layer over a sequence), as one product
/// over the flattened batch rows: sum_i a_i^T g_i = a_flat^T g_flat. The
/// general rule computes a [batch.., k, n] product per batch and then sums
/// it, which writes and reads batch-times the weight's size.
fn flat_weight_grad(e: &mut Emit, a: NodeId, b: NodeId, trans_a: bool, trans_b: bool, g: NodeId) -> Result<Option<NodeId>, PassError> {
    let (sa, sg) = (e.shape(a), e.shape(g));
    if trans_a || e.shape(b).rank() != 2 || sa.rank() <= 2 {
        return Ok(None);
    }
    let r = sa.rank();
    let rows: usize = sa.0[..r - 1].iter().product();
    let a2 = e.reshape(a, [rows, sa.0[r - 1]])?;
    let g2 = e.reshape(g, [rows, sg.0[r - 1]])?;
    // db = dB = a^T g, or db = dB^T = g^T a.
    Ok(Some(if trans_b { e.matmul(g2, a2, true, false)? } else { e.matmul(a2, g2, true, false)? }))
}

pub(crate) fn conv2d_vjp(
    e: &mut Emit,
    x: NodeId,
    w: NodeId,
    attrs: &Conv2dAttrs,
    g: NodeId,
    need_x: bool,
    need_w: bool,
) -> Result<(Option<NodeId>, Option<NodeId>), PassError> {
    let gx: Option<NodeId> = if need_x {
        let s = e.shape(x);
        let input_hw = [s.0[2], s.0[3]];
        Some(e.apply(Op::Conv2dGradInput { attrs: *attrs, input_hw }, &[g, w])?)
    } else {
        None
    };
    let gw: Option<NodeId> = if need_w {
        let s = e.shape(w);
        let kernel_hw = [s.0[2], s.0[3]];
        Some(e.apply(Op::Conv2dGradWeight { attrs: *attrs, kernel_hw }, &[x, g])?)
    } else {
        None
    };
    Ok((gx, gw))
}

/// conv1d is conv2d over a height-1 image: reshape, use the conv2d gradient
/// ops, reshape back.
pub(crate) fn conv1d_vjp(
    e: &mut Emit,
    x: NodeId,
    w: NodeId,
    attrs: &Conv1dAttrs,
    g: NodeId,
    need_x: bool,
    need_w: bool,
) -> Result<(Option<NodeId>, Option<NodeId>), PassError> {
    let (xs, ws, gs) = (e.shape(x), e.shape(w), e.shape(g));
    let a2 = attrs.as_conv2d();
    let g4 = e.reshape(g, [gs.0[0], gs.0[1], 1, gs.0[2]])?;
    let w4 = if need_x { Some(e.reshape(w, [ws.0[0], ws.0[1], 1, ws.0[2]])?) } else { None };
    let x4 = if need_w { Some(e.reshape(x, [xs.0[0], xs.0[1], 1, xs.0[2]])?) } else { None };
    let gx: Option<NodeId> = match w4 {
        Some(w4) => {
            let t = e.apply(Op::Conv2dGradInput { attrs: a2, input_hw: [1, xs.0[2]] }, &[g4, w4])?;
            Some(e.reshape(t, xs)?)
        }
        None => None,
    };
    let gw: Option<NodeId> = match x4 {
        Some(x4) => {
            let t = e.apply(Op::Conv2dGradWeight { attrs: a2, kernel_hw: [1, ws.0[2]] }, &[x4, g4])?;
            Some(e.reshape(t, ws)?)
        }
        None => None,
    };
    Ok((gx, gw))
}

/// The `kh * kw` strided views of `t` (padded with `pad_value`) whose element
/// `[n, c, i, j]` is window `(i, j)`'s element at offset `(ki, kj)`, in
/// row-major offset order.
fn windows(e: &mut Emit, t: NodeId, p: &Pool2dAttrs, out_hw: [usize; 2], pad_value: f64) -> Result<Vec<NodeId>, PassError> {
    let s = e.shape(t);
    let (n, c) = (s.0[0], s.0[1]);
    let padded = if p.padding == [0, 0] {
        t
    } else {
        let pad = vec![0, 0, p.padding[0], p.padding[1]];
        e.apply(Op::Pad { lo: pad.clone(), hi: pad, value: pad_value }, &[t])?
    };
    let mut out = Vec::with_capacity(p.kernel[0] * p.kernel[1]);
    for ki in 0..p.kernel[0] {
        for kj in 0..p.kernel[1] {
            let start = vec![0, 0, ki, kj];
            let end = vec![n, c, ki + (out_hw[0] - 1) * p.stride[0] + 1, kj + (out_hw[1] - 1) * p.stride[1] + 1];
            let step = vec![1, 1, p.stride[0], p.stride[1]];
            out.push(e.apply(Op::Slice { start, end, step }, &[padded])?);
        }
    }
    Ok(out)
}

/// The adjoint of `max_pool2d_grad(x, .)` applied to `gx` (shaped like x):
/// each window reads `gx` at its first maximum (row-major within the
/// window, matching the routing of `max_pool2d_grad`).
pub(crate) fn max_pool_grad_adjoint(e: &mut Emit, x: NodeId, p: &Pool2dAttrs, gx: NodeId) -> Result<NodeId, PassError> {
    let y = e.apply(Op::MaxPool2d(*p), &[x])?;
    let ys = e.shape(y);
    let out_hw = [ys.0[2], ys.0[3]];
    let xw = windows(e, x, p, out_hw, f64::NEG_INFINITY)?;
    let gw = windows(e, gx, p, out_hw, 0.0)?;
    let dt = e.dtype(x);
    let mut taken: Option<NodeId> = None;
    let mut acc: Option<NodeId> = None;
    for (xk, gk) in xw.into_iter().zip(gw) {
        let hit = e.compare(CompareOp::Eq, xk, y)?;
        let hit = e.cast(hit, dt)?;
        // First maximum only: drop hits of windows already routed.
        let first = match taken {
            None => hit,
            Some(t) => {
                let free = e.rsub_scalar(1.0, t)?;
                e.mul(hit, free)?
            }
        };
        taken = Some(match taken {
            None => first,
            Some(t) => e.add(t, first)?,
        });
        let part = e.mul(first, gk)?;
        acc = Some(match acc {
            None => part,
            Some(a) => e.add(a, part)?,
        });
    }
    acc.ok_or_else(|| PassError::Autodiff(format!("max_pool2d_grad of {x}: empty pooling window")))
}
