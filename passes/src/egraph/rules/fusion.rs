//! Fusion into the IR's fused ops, which every backend implements.
//!
//! Rules:
//! - `dense-from-matmul`: `matmul(x, w)` with a rank-2 `w` (and `x` not
//!   transposed) is a `fused_dense` with no epilogue; the cost model charges
//!   it one unit more than the matmul, so it survives extraction only when
//!   something got fused into it. `conv-from-conv2d` likewise.
//! - `dense-bias`, `conv-bias`: `add(fused, b)` (either order) where `b`
//!   varies only along the output feature axis (dense: last axis, conv:
//!   axis 1), e.g. `b[N]`, `b[1,N]`, `b[1,O,1,1]`, `b[O,1,1]`, or a
//!   `broadcast_to` of one of those. An existing bias is summed with it.
//! - `dense-sub-fold`, `conv-sub-fold`: `sub(fused, m)` with the same shape
//!   rule: the bias becomes `bias - m` (`neg(m)` without one).
//! - `dense-scale-fold`, `conv-scale-fold` (batch-norm folding):
//!   `mul(fused, s)` (either order) with a per-feature `s` computable from
//!   constants/params/state only (not from per-call data) scales the
//!   weights (`w * s` per output channel) and the bias. Inference
//!   batch-norm as the facade emits it (`kiln::nn::batch_norm` in eval
//!   mode): `((z - mean) * rsqrt(var + eps)) * gamma + beta` with `mean`,
//!   `var`, `gamma`, `beta` reshaped to `[C,1,1]` (any per-channel shape
//!   works: `[1,C,1,1]`, `[C]` for dense), and the variants
//!   `(z - mean) * (gamma * rsqrt(var + eps)) + beta` and
//!   `(z - mean) / sqrt(var + eps) * gamma + beta` (via
//!   `div-static-to-mul`), all fold by chaining sub-fold, scale-fold and
//!   bias into one `fused_conv2d`/`fused_dense`. Only done before an
//!   activation is fused (act none), and only in graphs where the
//!   statistics are state/params/constants (eval mode): training-mode
//!   statistics come from the batch and are not static.
//! - `dense-relu`, `dense-sigmoid`, `dense-tanh`, `conv-relu`,
//!   `conv-sigmoid`, `conv-tanh`: the activation becomes the epilogue.
//! - `relu-mask-from-output` (backward counterpart): autodiff writes
//!   relu's gradient as `select(gt(z, 0), dy, 0)`; since `relu(z) > 0` iff
//!   `z > 0`, the mask is also `gt(relu(z), 0)`. Offered only when `relu(z)`
//!   exists, it lets the backward pass read the activation instead of the
//!   pre-activation, so the forward conv/dense + bias + ReLU can fuse in a
//!   training step (otherwise `z` would still be needed and fusing would not
//!   pay).
//! - `softmax-cross-entropy`: `neg(reduce_sum[1](mul(lsm, one_hot(y, C))))`
//!   or, as the facade's `nll` writes it,
//!   `reduce_sum[1](mul(one_hot(y, C), neg(lsm)))` (mul in either order in
//!   both), where `lsm` is log-softmax over axis 1 of
//!   `x[N,C]` written as `(x - m) - log(reduce_sum[1,keepdims](exp(x - m)))`
//!   or `x - (m + log(reduce_sum[1,keepdims](exp(x - m))))`, with any `m`
//!   constant along axis 1 (usually `reduce_max[1,keepdims](x)`, maybe under
//!   `stop_gradient`; the identity holds for any finite m), becomes
//!   `softmax_cross_entropy(x, y)` of type `[N]`.

use egg::Id;
use kiln_ir::{Activation, BinaryOp, CompareOp, Op, ReduceOp, UnaryOp};

use super::super::lang::ENode;
use super::super::rule::{ApplyFn, Bind, Ctx, Group, Rule};
use super::per_axis_vector;

fn r(name: &'static str, pat: &str, f: ApplyFn) -> Result<Rule, String> {
    Rule::new(name, Group::Fusion, pat, f)
}

/// The parts of a captured fused op: (is_conv, x, w, bias, act).
struct Fused {
    conv: bool,
    op: Op,
    x: Id,
    w: Id,
    bias: Option<Id>,
    act: Activation,
}

fn fused(cx: &Ctx<'_>, n: &ENode) -> Option<Fused> {
    let op = cx.op(n).clone();
    let (conv, has_bias, act) = match &op {
        Op::FusedDense { bias, act, .. } => (false, *bias, *act),
        Op::FusedConv2d { bias, act, .. } => (true, *bias, *act),
        _ => return None,
    };
    if n.children.len() != 2 + has_bias as usize {
        return None;
    }
    Some(Fused { conv, op, x: n.children[0], w: n.children[1], bias: has_bias.then(|| n.children[2]), act })
}

fn with(op: &Op, bias: bool, act: Activation) -> Op {
    match op {
        Op::FusedDense { trans_b, .. } => Op::FusedDense { trans_b: *trans_b, bias, act },
        Op::FusedConv2d { attrs, .. } => Op::FusedConv2d { attrs: *attrs, bias, act },
        other => other.clone(),
    }
}

fn rebuild(cx: &mut Ctx<'_>, f: &Fused, w: Id, bias: Option<Id>, act: Activation) -> Option<Id> {
    let op = with(&f.op, bias.is_some(), act);
    let mut kids = vec![f.x, w];
    kids.extend(bias);
    cx.add(op, &kids)
}

/// The output axis a per-feature vector runs along.
fn feature_axis(f: &Fused, out_rank: usize) -> usize {
    if f.conv { 1 } else { out_rank.saturating_sub(1) }
}

/// add/sub of a per-feature vector into the bias.
fn shift(cx: &mut Ctx<'_>, b: &Bind<'_>, subtract: bool) -> Option<Id> {
    let f = fused(cx, b.cap("d")?)?;
    if f.act != Activation::None {
        return None;
    }
    let out = cx.shape(b.root())?;
    let t = per_axis_vector(cx, b.v("b")?, &out, feature_axis(&f, out.len()))?;
    let bias = match (f.bias, subtract) {
        (Some(old), false) => cx.add(Op::Binary(BinaryOp::Add), &[old, t])?,
        (Some(old), true) => cx.add(Op::Binary(BinaryOp::Sub), &[old, t])?,
        (None, false) => t,
        (None, true) => cx.add(Op::Unary(UnaryOp::Neg), &[t])?,
    };
    rebuild(cx, &f, f.w, Some(bias), Activation::None)
}

/// mul by a static per-feature vector folded into weights and bias.
fn scale(cx: &mut Ctx<'_>, b: &Bind<'_>) -> Option<Id> {
    let f = fused(cx, b.cap("d")?)?;
    let s = b.v("s")?;
    if f.act != Activation::None || !cx.data(s).is_static {
        return None;
    }
    let out = cx.shape(b.root())?;
    let sv = per_axis_vector(cx, s, &out, feature_axis(&f, out.len()))?;
    let n = *cx.shape(sv)?.first()?;
    let wshape = cx.shape(f.w)?;
    let sdims: Vec<usize> = match &f.op {
        Op::FusedConv2d { .. } => vec![n, 1, 1, 1],
        Op::FusedDense { trans_b: false, .. } => vec![1, n],
        Op::FusedDense { trans_b: true, .. } => vec![n, 1],
        _ => return None,
    };
    if wshape.len() != sdims.len() {
        return None;
    }
    let sw = cx.reshape(sv, &sdims)?;
    let w = cx.add(Op::Binary(BinaryOp::Mul), &[f.w, sw])?;
    let bias = match f.bias {
        Some(old) => Some(cx.add(Op::Binary(BinaryOp::Mul), &[old, sv])?),
        None => None,
    };
    rebuild(cx, &f, w, bias, Activation::None)
}

fn activate(cx: &mut Ctx<'_>, b: &Bind<'_>, act: Activation) -> Option<Id> {
    let f = fused(cx, b.cap("d")?)?;
    if f.act != Activation::None {
        return None;
    }
    rebuild(cx, &f, f.w, f.bias, act)
}

pub fn rules() -> Result<Vec<Rule>, String> {
    let mut v = vec![
        r("dense-from-matmul", "(matmul@m ?x ?w)", |cx, b| {
            let Op::MatMul { trans_a: false, trans_b } = *cx.op(b.cap("m")?) else { return None };
            let (x, w) = (b.v("x")?, b.v("w")?);
            if cx.shape(w)?.len() != 2 {
                return None;
            }
            cx.add(Op::FusedDense { trans_b, bias: false, act: Activation::None }, &[x, w])
        })?,
        r("conv-from-conv2d", "(conv2d@c ?x ?w)", |cx, b| {
            let Op::Conv2d(attrs) = *cx.op(b.cap("c")?) else { return None };
            cx.add(Op::FusedConv2d { attrs, bias: false, act: Activation::None }, &[b.v("x")?, b.v("w")?])
        })?,
        r("relu-mask-from-output", "(gt ?z ?zero)", |cx, b| {
            let (z, zero) = (b.v("z")?, b.v("zero")?);
            if cx.splat(zero) != Some(0.0) {
                return None;
            }
            let relu = cx.eg.analysis.ops.intern(Op::Unary(UnaryOp::Relu), None);
            let y = cx.eg.lookup(ENode { op: relu, children: vec![cx.eg.find(z)] })?;
            if cx.eg.find(y) == cx.eg.find(z) {
                return None;
            }
            cx.add(Op::Compare(CompareOp::Gt), &[y, zero])
        })?,
    ];
    for (kind, fused_head) in [("dense", "fused_dense"), ("conv", "fused_conv2d")] {
        let bias_name: &'static str = if kind == "dense" { "dense-bias" } else { "conv-bias" };
        let sub_name: &'static str = if kind == "dense" { "dense-sub-fold" } else { "conv-sub-fold" };
        let scale_name: &'static str = if kind == "dense" { "dense-scale-fold" } else { "conv-scale-fold" };
        v.push(r(bias_name, &"(add (%@d ...) ?b)".replace('%', fused_head), |cx, b| shift(cx, b, false))?);
        v.push(r(bias_name, &"(add ?b (%@d ...))".replace('%', fused_head), |cx, b| shift(cx, b, false))?);
        v.push(r(sub_name, &"(sub (%@d ...) ?b)".replace('%', fused_head), |cx, b| shift(cx, b, true))?);
        v.push(r(scale_name, &"(mul (%@d ...) ?s)".replace('%', fused_head), scale)?);
        v.push(r(scale_name, &"(mul ?s (%@d ...))".replace('%', fused_head), scale)?);
        let acts: [(&'static str, &'static str, ApplyFn); 3] = if kind == "dense" {
            [
                ("relu", "dense-relu", |cx, b| activate(cx, b, Activation::Relu)),
                ("sigmoid", "dense-sigmoid", |cx, b| activate(cx, b, Activation::Sigmoid)),
                ("tanh", "dense-tanh", |cx, b| activate(cx, b, Activation::Tanh)),
            ]
        } else {
            [
                ("relu", "conv-relu", |cx, b| activate(cx, b, Activation::Relu)),
                ("sigmoid", "conv-sigmoid", |cx, b| activate(cx, b, Activation::Sigmoid)),
                ("tanh", "conv-tanh", |cx, b| activate(cx, b, Activation::Tanh)),
            ]
        };
        for (head, name, f) in acts {
            v.push(r(name, &format!("({head} ({fused_head}@d ...))"), f)?);
        }
    }
    let lsm = [
        "(sub (sub ?x ?m) (log (reduce_sum@s (exp (sub ?x ?m)))))",
        "(sub ?x (add ?m (log (reduce_sum@s (exp (sub ?x ?m))))))",
    ];
    for l in lsm {
        v.push(r("softmax-cross-entropy", &format!("(neg (reduce_sum@r (mul {l} (one_hot@o ?y))))"), sce)?);
        v.push(r("softmax-cross-entropy", &format!("(neg (reduce_sum@r (mul (one_hot@o ?y) {l})))"), sce)?);
        // The facade's nll: sum(one_hot * neg(logp)).
        v.push(r("softmax-cross-entropy", &format!("(reduce_sum@r (mul (one_hot@o ?y) (neg {l})))"), sce)?);
        v.push(r("softmax-cross-entropy", &format!("(reduce_sum@r (mul (neg {l}) (one_hot@o ?y)))"), sce)?);
    }
    Ok(v)
}

fn sce(cx: &mut Ctx<'_>, b: &Bind<'_>) -> Option<Id> {
    let (x, m, y) = (b.v("x")?, b.v("m")?, b.v("y")?);
    let xs = cx.shape(x)?;
    if xs.len() != 2 {
        return None;
    }
    let sum_ok = matches!(cx.op(b.cap("s")?), Op::Reduce { op: ReduceOp::Sum, axes, keepdims: true } if axes == &[1]);
    let pick_ok = matches!(cx.op(b.cap("r")?), Op::Reduce { op: ReduceOp::Sum, axes, keepdims: false } if axes == &[1]);
    let classes_ok = matches!(cx.op(b.cap("o")?), Op::OneHot { classes } if *classes == xs[1]);
    // m must be constant along the class axis so it cancels.
    let ms = cx.shape(m)?;
    let m_ok = ms.len() <= 2 && ms.last().is_none_or(|&d| d == 1);
    if !(sum_ok && pick_ok && classes_ok && m_ok) {
        return None;
    }
    cx.add(Op::SoftmaxCrossEntropy, &[x, y])
}
