//! Algebraic simplification.
//!
//! Rules: `add-zero` (x+0, 0+x, x-0), `mul-one` (x*1, 1*x, x/1), `mul-zero`
//! (x*0, 0*x), `neg-neg`, `relu-relu`, `log-exp`, `exp-log`,
//! `permute-permute`, `permute-identity`, `reshape-reshape`,
//! `reshape-identity`, `broadcast-broadcast`, `broadcast-identity`,
//! `broadcast-implicit`, `bias-reassociate`, `scalar-mul-mul`, `matmul-scalar-hoist`,
//! `reduce-scalar-hoist`, `div-static-to-mul`; plus `const-fold` (in
//! `saturate`).
//!
//! Float semantics, chosen deliberately:
//! - `x*0 -> 0` only when the analysis proves `x` finite (constants with
//!   finite elements, sigmoid/tanh/sin/cos/sign/erf outputs, one-hot, casts
//!   from integers, and relu/neg/abs/views of finite values): IEEE gives
//!   `inf*0 = NaN` and `NaN*0 = NaN`, and a training step that produces a
//!   NaN must keep producing it.
//! - `x+0 -> x` and `x*1 -> x` are exact except for the sign of a zero
//!   (`-0 + 0 = +0`); kiln does not preserve signed zeros.
//! - `log(exp(x)) -> x` always: exact for finite x up to rounding, and it
//!   removes the overflow to inf for x > 88 (a strictly better answer).
//!   `exp(log(x)) -> x` only when `x` is known non-negative (exp, sigmoid,
//!   relu, abs outputs, non-negative constants): log of a negative is NaN.
//! - Rewrites that reassociate (scalar hoisting, folding scalar products)
//!   change results by rounding only.
//!
//! Every rule's result is type-checked; one that would change the type of
//! the matched value (e.g. `x + zeros[4,3]` with `x: [3]`, which broadcasts)
//! does not apply.

use kiln_ir::{Op, ReduceOp, UnaryOp};

use super::super::rule::{Group, Rule};

fn r(name: &'static str, pat: &str, f: super::super::rule::ApplyFn) -> Result<Rule, String> {
    Rule::new(name, Group::Algebra, pat, f)
}

fn numel1(cx: &super::super::rule::Ctx<'_>, id: egg::Id) -> bool {
    cx.ty(id).is_some_and(|t| t.numel() == 1)
}

pub fn rules() -> Result<Vec<Rule>, String> {
    let mut v = implicit_broadcast()?;
    v.extend(vec![
        r("add-zero", "(add ?x ?z:splat)", |cx, b| (cx.splat(b.v("z")?) == Some(0.0)).then_some(b.v("x")?))?,
        r("add-zero", "(add ?z:splat ?x)", |cx, b| (cx.splat(b.v("z")?) == Some(0.0)).then_some(b.v("x")?))?,
        r("add-zero", "(sub ?x ?z:splat)", |cx, b| (cx.splat(b.v("z")?) == Some(0.0)).then_some(b.v("x")?))?,
        r("mul-one", "(mul ?x ?o:splat)", |cx, b| (cx.splat(b.v("o")?) == Some(1.0)).then_some(b.v("x")?))?,
        r("mul-one", "(mul ?o:splat ?x)", |cx, b| (cx.splat(b.v("o")?) == Some(1.0)).then_some(b.v("x")?))?,
        r("mul-one", "(div ?x ?o:splat)", |cx, b| (cx.splat(b.v("o")?) == Some(1.0)).then_some(b.v("x")?))?,
        r("mul-zero", "(mul ?x ?z:splat)", mul_zero)?,
        r("mul-zero", "(mul ?z:splat ?x)", mul_zero)?,
        r("neg-neg", "(neg (neg ?x))", |_, b| b.v("x"))?,
        r("relu-relu", "(relu (relu ?x))", |cx, b| cx.add(Op::Unary(UnaryOp::Relu), &[b.v("x")?]))?,
        r("log-exp", "(log (exp ?x))", |_, b| b.v("x"))?,
        r("exp-log", "(exp (log ?x))", |cx, b| {
            let x = b.v("x")?;
            cx.data(x).nonneg.then_some(x)
        })?,
        r("permute-permute", "(permute@a (permute@b ?x))", |cx, b| {
            let (Op::Permute(pa), Op::Permute(pb)) = (cx.op(b.cap("a")?), cx.op(b.cap("b")?)) else { return None };
            // Output axis i of the outer reads inner axis pa[i], which reads
            // x's axis pb[pa[i]].
            let c: Vec<usize> = pa.iter().map(|&i| pb.get(i).copied()).collect::<Option<_>>()?;
            let x = b.v("x")?;
            if c.iter().enumerate().all(|(i, &p)| i == p) {
                Some(x)
            } else {
                cx.add(Op::Permute(c), &[x])
            }
        })?,
        r("permute-identity", "(permute@a ?x)", |cx, b| {
            let Op::Permute(p) = cx.op(b.cap("a")?) else { return None };
            p.iter().enumerate().all(|(i, &q)| i == q).then_some(b.v("x")?)
        })?,
        r("reshape-reshape", "(reshape@a (reshape ?x))", |cx, b| {
            let Op::Reshape(s) = cx.op(b.cap("a")?) else { return None };
            let s = s.0.clone();
            cx.reshape(b.v("x")?, &s)
        })?,
        r("reshape-identity", "(reshape ?x)", |cx, b| {
            let x = b.v("x")?;
            (cx.shape(x)? == cx.shape(b.root())?).then_some(x)
        })?,
        r("broadcast-broadcast", "(broadcast_to@a (broadcast_to ?x))", |cx, b| {
            let Op::BroadcastTo(s) = cx.op(b.cap("a")?) else { return None };
            let s = s.0.clone();
            cx.broadcast(b.v("x")?, &s)
        })?,
        r("broadcast-identity", "(broadcast_to ?x)", |cx, b| {
            let x = b.v("x")?;
            (cx.shape(x)? == cx.shape(b.root())?).then_some(x)
        })?,
        // (x*a)*b -> x*(a*b) for constant scalars: const-fold then makes it one multiply.
        r("scalar-mul-mul", "(mul (mul ?x ?a:const) ?b:const)", |cx, b| {
            let (x, a, c) = (b.v("x")?, b.v("a")?, b.v("b")?);
            if cx.data(a).konst.is_none() || cx.data(c).konst.is_none() || !numel1(cx, a) || !numel1(cx, c) {
                return None;
            }
            let ac = cx.add(Op::Binary(kiln_ir::BinaryOp::Mul), &[a, c])?;
            cx.add(Op::Binary(kiln_ir::BinaryOp::Mul), &[x, ac])
        })?,
        r("matmul-scalar-hoist", "(matmul@m (mul ?a ?s:scalar) ?b)", |cx, b| hoist_mm(cx, b, true))?,
        r("matmul-scalar-hoist", "(matmul@m (mul ?s:scalar ?a) ?b)", |cx, b| hoist_mm(cx, b, true))?,
        r("matmul-scalar-hoist", "(matmul@m ?b (mul ?a ?s:scalar))", |cx, b| hoist_mm(cx, b, false))?,
        r("matmul-scalar-hoist", "(matmul@m ?b (mul ?s:scalar ?a))", |cx, b| hoist_mm(cx, b, false))?,
        r("reduce-scalar-hoist", "(reduce_sum@r (mul ?a ?s:scalar))", hoist_reduce)?,
        r("reduce-scalar-hoist", "(reduce_sum@r (mul ?s:scalar ?a))", hoist_reduce)?,
        r("reduce-scalar-hoist", "(reduce_mean@r (mul ?a ?s:scalar))", hoist_reduce)?,
        r("reduce-scalar-hoist", "(reduce_mean@r (mul ?s:scalar ?a))", hoist_reduce)?,
        // Lets a per-channel division by batch-norm statistics fold like a
        // multiply; only for divisors computable without per-call data.
        r("div-static-to-mul", "(div ?x ?s)", |cx, b| {
            let (x, s) = (b.v("x")?, b.v("s")?);
            let (tx, ts) = (cx.ty(x)?, cx.ty(s)?);
            if !cx.data(s).is_static || cx.data(x).is_static || !ts.dtype.is_float() || ts.numel() >= tx.numel() {
                return None;
            }
            let rs = cx.add(Op::Unary(UnaryOp::Recip), &[s])?;
            cx.add(Op::Binary(kiln_ir::BinaryOp::Mul), &[x, rs])
        })?,
        // (a + r) + b -> (a + b) + r for a small b (a bias): lets the bias
        // reach a product it could fuse into (LSTM gates: x@Wx + h@Wh + b).
        r("bias-reassociate", "(add (add ?a ?r) ?b)", reassociate)?,
        r("bias-reassociate", "(add (add ?r ?a) ?b)", reassociate)?,
        r("bias-reassociate", "(add ?b (add ?a ?r))", reassociate)?,
        r("bias-reassociate", "(add ?b (add ?r ?a))", reassociate)?,
    ]);
    Ok(v)
}

fn reassociate(cx: &mut super::super::rule::Ctx<'_>, b: &super::super::rule::Bind<'_>) -> Option<egg::Id> {
    let (a, r, bias) = (b.v("a")?, b.v("r")?, b.v("b")?);
    let out = cx.ty(b.root())?;
    if cx.ty(a)? != out || cx.ty(r)? != out || cx.ty(bias)?.numel() >= out.numel() {
        return None;
    }
    let ab = cx.add(Op::Binary(kiln_ir::BinaryOp::Add), &[a, bias])?;
    cx.add(Op::Binary(kiln_ir::BinaryOp::Add), &[ab, r])
}

/// `op(x, broadcast_to(b))` -> `op(x, b)`: binary ops broadcast their
/// operands themselves, so the explicit broadcast is dropped whenever the
/// result type stays the same (`broadcast-implicit`).
fn implicit_broadcast() -> Result<Vec<Rule>, String> {
    let mut v = Vec::new();
    for op in ["add", "sub", "mul", "div", "max", "min", "pow"] {
        v.push(r("broadcast-implicit", &format!("({op}@o ?x (broadcast_to ?b))"), |cx, b| {
            let op = cx.op(b.cap("o")?).clone();
            cx.add(op, &[b.v("x")?, b.v("b")?])
        })?);
        v.push(r("broadcast-implicit", &format!("({op}@o (broadcast_to ?b) ?x)"), |cx, b| {
            let op = cx.op(b.cap("o")?).clone();
            cx.add(op, &[b.v("b")?, b.v("x")?])
        })?);
    }
    Ok(v)
}

fn mul_zero(cx: &mut super::super::rule::Ctx<'_>, b: &super::super::rule::Bind<'_>) -> Option<egg::Id> {
    let (x, z) = (b.v("x")?, b.v("z")?);
    if cx.splat(z) != Some(0.0) || !cx.data(x).finite {
        return None;
    }
    let out = cx.shape(b.root())?;
    cx.broadcast(z, &out)
}

/// matmul(a*s, b) -> matmul(a, b)*s for a one-element s (either operand).
fn hoist_mm(cx: &mut super::super::rule::Ctx<'_>, b: &super::super::rule::Bind<'_>, lhs: bool) -> Option<egg::Id> {
    let op = cx.op(b.cap("m")?).clone();
    let (a, s, other) = (b.v("a")?, b.v("s")?, b.v("b")?);
    if !numel1(cx, s) || cx.shape(s)?.len() > cx.shape(a)?.len() {
        return None;
    }
    let mm = if lhs { cx.add(op, &[a, other])? } else { cx.add(op, &[other, a])? };
    cx.add(Op::Binary(kiln_ir::BinaryOp::Mul), &[mm, s])
}

/// sum(x*s) -> sum(x)*s for a one-element s.
fn hoist_reduce(cx: &mut super::super::rule::Ctx<'_>, b: &super::super::rule::Bind<'_>) -> Option<egg::Id> {
    let op = cx.op(b.cap("r")?).clone();
    let (a, s) = (b.v("a")?, b.v("s")?);
    if !matches!(op, Op::Reduce { op: ReduceOp::Sum | ReduceOp::Mean, .. }) || !numel1(cx, s) {
        return None;
    }
    if cx.shape(s)?.len() > cx.shape(a)?.len() {
        return None;
    }
    let red = cx.add(op, &[a])?;
    // s may have more axes than the reduced value; keep only a scalar view.
    let s0 = cx.reshape(s, &[])?;
    cx.add(Op::Binary(kiln_ir::BinaryOp::Mul), &[red, s0])
}
