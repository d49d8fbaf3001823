//! The vector-Jacobian product of every op: one arm per `Op` variant, no
//! wildcard, so adding an op to kiln-ir does not compile until it has a
//! gradient rule here.
//!
//! A rule receives the node's operands `xs`, its output `y` and the gradient
//! `gy` flowing into `y`, and returns one optional contribution per operand,
//! already shaped like that operand. `need[i]` says whether operand `i` lies
//! on a path to a differentiated node; rules skip building the others.
//! Every rule is built from kiln-ir ops only, so the gradient graph is an
//! ordinary graph that can be differentiated again (second order).

use kiln_ir::{Activation, BinaryOp, CompareOp, NodeId, Op, ReduceOp, UnaryOp};

use super::emit::Emit;
use super::linear;
use crate::PassError;

pub(crate) type Contribs = Vec<Option<NodeId>>;

pub(crate) fn vjp(
    e: &mut Emit,
    id: NodeId,
    op: &Op,
    xs: &[NodeId],
    y: NodeId,
    gy: NodeId,
    need: &[bool],
) -> Result<Contribs, PassError> {
    let n = xs.len();
    let none = || vec![None; n];
    let out = match op {
        // Sources have no operands.
        Op::Input { .. } | Op::Constant(_) => none(),
        Op::Unary(u) => vec![unary(e, *u, xs[0], y, gy)?],
        Op::Binary(b) => binary(e, *b, xs[0], xs[1], y, gy, need)?,
        // Masks, casts to integers, argmax, one-hot, and random draws are
        // piecewise constant (or not functions of a float at all).
        Op::Compare(_) | Op::ArgMax { .. } | Op::OneHot { .. } | Op::RandomUniform { .. } => none(),
        Op::StopGradient => none(),
        Op::Select => {
            let (mask, a, b) = (xs[0], xs[1], xs[2]);
            let ga = if need[1] {
                let t = e.where_or_zero(mask, gy)?;
                Some(e.unbroadcast(t, &e.shape(a))?)
            } else {
                None
            };
            let gb = if need[2] {
                let t = e.zero_where(mask, gy)?;
                Some(e.unbroadcast(t, &e.shape(b))?)
            } else {
                None
            };
            vec![None, ga, gb]
        }
        Op::Cast(d) => {
            let from = e.dtype(xs[0]);
            if d.is_float() && from.is_float() { vec![Some(e.cast(gy, from)?)] } else { none() }
        }
        Op::Reduce { op: r, axes, keepdims } => vec![Some(reduce(e, *r, axes, *keepdims, xs[0], y, gy)?)],
        Op::Reshape(_) => {
            let s = e.shape(xs[0]);
            vec![Some(e.reshape(gy, s)?)]
        }
        Op::Permute(perm) => {
            let mut inv = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inv[p] = i;
            }
            vec![Some(e.apply(Op::Permute(inv), &[gy])?)]
        }
        Op::BroadcastTo(_) => {
            let s = e.shape(xs[0]);
            vec![Some(e.unbroadcast(gy, &s)?)]
        }
        Op::Slice { start, step, .. } => {
            let s = e.shape(xs[0]);
            vec![Some(linear::slice_vjp(e, gy, &s, start, step)?)]
        }
        Op::Pad { lo, .. } => {
            let s = e.shape(xs[0]);
            let end: Vec<usize> = lo.iter().zip(&s.0).map(|(l, d)| l + d).collect();
            let ones = vec![1; lo.len()];
            vec![Some(e.apply(Op::Slice { start: lo.clone(), end, step: ones }, &[gy])?)]
        }
        Op::Concat { axis } => {
            let mut out = Vec::with_capacity(n);
            let mut off = 0;
            let full = e.shape(y);
            for (k, &x) in xs.iter().enumerate() {
                let len = e.shape(x).0[*axis];
                if need[k] {
                    let mut start = vec![0; full.rank()];
                    let mut end = full.0.clone();
                    start[*axis] = off;
                    end[*axis] = off + len;
                    let step = vec![1; full.rank()];
                    out.push(Some(e.apply(Op::Slice { start, end, step }, &[gy])?));
                } else {
                    out.push(None);
                }
                off += len;
            }
            out
        }
        Op::MatMul { trans_a, trans_b } => {
            let (ga, gb) = linear::matmul_vjp(e, xs[0], xs[1], *trans_a, *trans_b, gy, need[0], need[1])?;
            vec![ga, gb]
        }
        Op::Conv2d(attrs) => {
            let (gx, gw) = linear::conv2d_vjp(e, xs[0], xs[1], attrs, gy, need[0], need[1])?;
            vec![gx, gw]
        }
        // dx = conv2d_grad_input(dy, w) is bilinear: its adjoint in dy is the
        // forward conv, in w the weight gradient of (G conv w) against dy.
        Op::Conv2dGradInput { attrs, .. } => {
            let (dy, w) = (xs[0], xs[1]);
            let gdy = if need[0] { Some(e.apply(Op::Conv2d(*attrs), &[gy, w])?) } else { None };
            let gw = if need[1] {
                let ws = e.shape(w);
                let kernel_hw = [ws.0[2], ws.0[3]];
                Some(e.apply(Op::Conv2dGradWeight { attrs: *attrs, kernel_hw }, &[gy, dy])?)
            } else {
                None
            };
            vec![gdy, gw]
        }
        // dw = conv2d_grad_weight(x, dy): <G, dw> = <conv2d(x, G), dy>.
        Op::Conv2dGradWeight { attrs, .. } => {
            let (x, dy) = (xs[0], xs[1]);
            let gx = if need[0] {
                let s = e.shape(x);
                let input_hw = [s.0[2], s.0[3]];
                Some(e.apply(Op::Conv2dGradInput { attrs: *attrs, input_hw }, &[dy, gy])?)
            } else {
                None
            };
            let gdy = if need[1] { Some(e.apply(Op::Conv2d(*attrs), &[x, gy])?) } else { None };
            vec![gx, gdy]
        }
        Op::Conv1d(attrs) => {
            let (gx, gw) = linear::conv1d_vjp(e, xs[0], xs[1], attrs, gy, need[0], need[1])?;
            vec![gx, gw]
        }
        Op::MaxPool2d(p) => {
            vec![Some(e.apply(Op::MaxPool2dGrad(*p), &[xs[0], gy])?)]
        }
        // Piecewise constant in x (the routing only changes at ties), linear
        // in dy: the adjoint reads G at each window's first maximum.
        Op::MaxPool2dGrad(p) => {
            let gdy = if need[1] { Some(linear::max_pool_grad_adjoint(e, xs[0], p, gy)?) } else { None };
            vec![None, gdy]
        }
        Op::AvgPool2d { pool, count_include_pad } => {
            let s = e.shape(xs[0]);
            let input_hw = [s.0[2], s.0[3]];
            let op = Op::AvgPool2dGrad { pool: *pool, count_include_pad: *count_include_pad, input_hw };
            vec![Some(e.apply(op, &[gy])?)]
        }
        // Linear, and its adjoint is average pooling with the same counts.
        Op::AvgPool2dGrad { pool, count_include_pad, .. } => {
            let op = Op::AvgPool2d { pool: *pool, count_include_pad: *count_include_pad };
            vec![Some(e.apply(op, &[gy])?)]
        }
        Op::Gather { axis } => {
            let size = e.shape(xs[0]).0[*axis];
            vec![Some(e.apply(Op::ScatterAdd { axis: *axis, size }, &[xs[1], gy])?), None]
        }
        Op::ScatterAdd { axis, .. } => {
            vec![None, Some(e.apply(Op::Gather { axis: *axis }, &[gy, xs[0]])?)]
        }
        Op::FusedDense { trans_b, bias, act } => {
            let dz = activation(e, *act, y, gy)?;
            let (gx, gw) = linear::matmul_vjp(e, xs[0], xs[1], false, *trans_b, dz, need[0], need[1])?;
            let mut out = vec![gx, gw];
            if *bias {
                let r = e.shape(dz).rank();
                let axes: Vec<usize> = (0..r - 1).collect();
                out.push(if need[2] { Some(e.sum(dz, &axes, false)?) } else { None });
            }
            out
        }
        Op::FusedConv2d { attrs, bias, act } => {
            let dz = activation(e, *act, y, gy)?;
            let (gx, gw) = linear::conv2d_vjp(e, xs[0], xs[1], attrs, dz, need[0], need[1])?;
            let mut out = vec![gx, gw];
            if *bias {
                out.push(if need[2] { Some(e.sum(dz, &[0, 2, 3], false)?) } else { None });
            }
            out
        }
        Op::SoftmaxCrossEntropy => vec![Some(softmax_xent(e, xs[0], xs[1], gy)?), None],
    };
    debug_assert_eq!(out.len(), n, "{id}: rule returned the wrong number of operand gradients");
    Ok(out)
}

fn unary(e: &mut Emit, u: UnaryOp, x: NodeId, y: NodeId, g: NodeId) -> Result<Option<NodeId>, PassError> {
    let gx = match u {
        UnaryOp::Neg => e.neg(g)?,
        UnaryOp::Exp => e.mul(g, y)?,
        UnaryOp::Log => e.div(g, x)?,
        // d sqrt(x) = 1 / (2 sqrt(x)), from the output.
        UnaryOp::Sqrt => {
            let h = e.mul_scalar(g, 0.5)?;
            e.div(h, y)?
        }
        // d x^-1/2 = -1/2 x^-3/2 = -1/2 y / x.
        UnaryOp::Rsqrt => {
            let t = e.mul(g, y)?;
            let t = e.div(t, x)?;
            e.mul_scalar(t, -0.5)?
        }
        // sign(0) = 0, as PyTorch does.
        UnaryOp::Abs => {
            let s = e.unary(UnaryOp::Sign, x)?;
            e.mul(g, s)?
        }
        UnaryOp::Sign => return Ok(None),
        UnaryOp::Recip => {
            let t = e.mul(g, y)?;
            let t = e.mul(t, y)?;
            e.neg(t)?
        }
        // Subgradient 0 at x = 0.
        UnaryOp::Relu => {
            let m = e.compare_scalar(CompareOp::Gt, x, 0.0)?;
            e.where_or_zero(m, g)?
        }
        UnaryOp::Sigmoid => activation(e, Activation::Sigmoid, y, g)?,
        UnaryOp::Tanh => activation(e, Activation::Tanh, y, g)?,
        // d erf(x) = 2/sqrt(pi) exp(-x^2).
        UnaryOp::Erf => {
            let x2 = e.mul(x, x)?;
            let nx2 = e.neg(x2)?;
            let ex = e.unary(UnaryOp::Exp, nx2)?;
            let t = e.mul(g, ex)?;
            e.mul_scalar(t, std::f64::consts::FRAC_2_SQRT_PI)?
        }
        UnaryOp::Sin => {
            let c = e.unary(UnaryOp::Cos, x)?;
            e.mul(g, c)?
        }
        UnaryOp::Cos => {
            let s = e.unary(UnaryOp::Sin, x)?;
            let t = e.mul(g, s)?;
            e.neg(t)?
        }
    };
    Ok(Some(gx))
}

/// The derivative of a fused epilogue, from the op's output `y` alone.
fn activation(e: &mut Emit, act: Activation, y: NodeId, g: NodeId) -> Result<NodeId, PassError> {
    match act {
        Activation::None => Ok(g),
        Activation::Relu => {
            let m = e.compare_scalar(CompareOp::Gt, y, 0.0)?;
            e.where_or_zero(m, g)
        }
        // sigmoid' = y (1 - y)
        Activation::Sigmoid => {
            let one_minus = e.rsub_scalar(1.0, y)?;
            let d = e.mul(y, one_minus)?;
            e.mul(g, d)
        }
        // tanh' = 1 - y^2
        Activation::Tanh => {
            let y2 = e.mul(y, y)?;
            let d = e.rsub_scalar(1.0, y2)?;
            e.mul(g, d)
        }
    }
}

fn binary(
    e: &mut Emit,
    op: BinaryOp,
    a: NodeId,
    b: NodeId,
    y: NodeId,
    g: NodeId,
    need: &[bool],
) -> Result<Contribs, PassError> {
    let (sa, sb) = (e.shape(a), e.shape(b));
    // Unreduced (output-shaped) contributions, reduced to operand shapes below.
    let (ra, rb): (Option<NodeId>, Option<NodeId>) = match op {
        BinaryOp::Add => (Some(g), Some(g)),
        BinaryOp::Sub => (Some(g), if need[1] { Some(e.neg(g)?) } else { None }),
        BinaryOp::Mul => (
            if need[0] { Some(e.mul(g, b)?) } else { None },
            if need[1] { Some(e.mul(g, a)?) } else { None },
        ),
        // y = a / b: da = g / b, db = -g y / b.
        BinaryOp::Div => {
            let ga = if need[0] { Some(e.div(g, b)?) } else { None };
            let gb = if need[1] {
                let t = e.mul(g, y)?;
                let t = e.div(t, b)?;
                Some(e.neg(t)?)
            } else {
                None
            };
            (ga, gb)
        }
        // y = a^b: da = g b a^(b-1); db = g y ln(a), taken as 0 where a <= 0
        // (there a^b is not real-differentiable in b; PyTorch does the same
        // at a = 0).
        BinaryOp::Pow => {
            let ga = if need[0] {
                let one = e.scalar(1.0, b)?;
                let bm1 = e.sub(b, one)?;
                let p = e.bin(BinaryOp::Pow, a, bm1)?;
                let t = e.mul(p, b)?;
                Some(e.mul(g, t)?)
            } else {
                None
            };
            let gb = if need[1] {
                let ln = e.unary(UnaryOp::Log, a)?;
                let t = e.mul(y, ln)?;
                let t = e.mul(g, t)?;
                let pos = e.compare_scalar(CompareOp::Gt, a, 0.0)?;
                Some(e.where_or_zero(pos, t)?)
            } else {
                None
            };
            (ga, gb)
        }
        // Ties split the gradient evenly between the operands (as PyTorch's
        // maximum/minimum do).
        BinaryOp::Max | BinaryOp::Min => {
            let wins = if op == BinaryOp::Max { CompareOp::Gt } else { CompareOp::Lt };
            let half = e.mul_scalar(g, 0.5)?;
            let tie = e.compare(CompareOp::Eq, a, b)?;
            let side = |e: &mut Emit, p: NodeId, q: NodeId| -> Result<NodeId, PassError> {
                let w = e.compare(wins, p, q)?;
                let t = e.where_or_zero(tie, half)?;
                e.apply(Op::Select, &[w, g, t])
            };
            let ga = if need[0] { Some(side(e, a, b)?) } else { None };
            let gb = if need[1] { Some(side(e, b, a)?) } else { None };
            (ga, gb)
        }
    };
    let ga = match ra {
        Some(t) if need[0] => Some(e.unbroadcast(t, &sa)?),
        _ => None,
    };
    let gb = match rb {
        Some(t) if need[1] => Some(e.unbroadcast(t, &sb)?),
        _ => None,
    };
    Ok(vec![ga, gb])
}

/// Reductions. Max/min send the gradient to every element equal to the
/// result, split evenly among ties (PyTorch's amax/amin convention), so the
/// rule is symmetric and needs no argmax.
fn reduce(
    e: &mut Emit,
    r: ReduceOp,
    axes: &[usize],
    keepdims: bool,
    x: NodeId,
    y: NodeId,
    g: NodeId,
) -> Result<NodeId, PassError> {
    let xs = e.shape(x);
    let keep: Vec<usize> =
        xs.0.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect();
    let gk = if keepdims { g } else { e.reshape(g, keep.clone())? };
    match r {
        ReduceOp::Sum => e.broadcast_to(gk, xs),
        ReduceOp::Mean => {
            let count: usize = axes.iter().map(|&a| xs.0[a]).product();
            let t = e.mul_scalar(gk, 1.0 / count as f64)?;
            e.broadcast_to(t, xs)
        }
        ReduceOp::Max | ReduceOp::Min => {
            let yk = if keepdims { y } else { e.reshape(y, keep)? };
            let hit = e.compare(CompareOp::Eq, x, yk)?;
            let hitf = e.cast(hit, e.dtype(x))?;
            let count = e.sum(hitf, axes, true)?;
            let share = e.div(gk, count)?;
            e.mul(hitf, share)
        }
    }
}

/// d/dlogits of -log_softmax(logits)[i, label_i], times g[i]:
/// (softmax(logits) - one_hot(labels)) * g[:, None].
fn softmax_xent(e: &mut Emit, logits: NodeId, labels: NodeId, g: NodeId) -> Result<NodeId, PassError> {
    let s = e.shape(logits);
    let (n, c) = (s.0[0], s.0[1]);
    // The shift only guards exp against overflow; it cancels mathematically,
    // so it carries no gradient.
    let m = e.apply(Op::Reduce { op: ReduceOp::Max, axes: vec![1], keepdims: true }, &[logits])?;
    let m = e.apply(Op::StopGradient, &[m])?;
    let z = e.sub(logits, m)?;
    let ex = e.unary(UnaryOp::Exp, z)?;
    let den = e.sum(ex, &[1], true)?;
    let p = e.div(ex, den)?;
    let oh = e.apply(Op::OneHot { classes: c }, &[labels])?;
    let oh = e.cast(oh, e.dtype(logits))?;
    let d = e.sub(p, oh)?;
    let gk = e.reshape(g, [n, 1])?;
    e.mul(d, gk)
}
