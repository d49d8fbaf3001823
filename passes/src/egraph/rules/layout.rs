//! Layout: fold transposes into the transposed-operand forms of matmul and
//! fused dense instead of materializing them.
//!
//! Rules: `matmul-trans-a`, `matmul-trans-b` (matmul of a last-two-axes
//! permute reads the operand transposed), `dense-trans-b` (the same for a
//! fused dense weight), `transpose-matmul` (`(A B)^T = B^T A^T`, which
//! cancels a transpose of a matmul result against the operands' flags).
//! Transpose pairs `permute(permute(x))` cancel through the algebra group's
//! `permute-permute` and `permute-identity`.

use kiln_ir::Op;

use super::super::rule::{Bind, Ctx, Group, Rule};
use super::is_last2_swap;

fn r(name: &'static str, pat: &str, f: super::super::rule::ApplyFn) -> Result<Rule, String> {
    Rule::new(name, Group::Layout, pat, f)
}

fn swap_cap(cx: &Ctx<'_>, b: &Bind<'_>, cap: &str) -> bool {
    matches!(b.cap(cap).map(|n| cx.op(n)), Some(Op::Permute(p)) if is_last2_swap(p))
}

pub fn rules() -> Result<Vec<Rule>, String> {
    Ok(vec![
        r("matmul-trans-b", "(matmul@m ?a (permute@p ?b))", |cx, b| {
            let Op::MatMul { trans_a, trans_b } = *cx.op(b.cap("m")?) else { return None };
            if !swap_cap(cx, b, "p") {
                return None;
            }
            cx.add(Op::MatMul { trans_a, trans_b: !trans_b }, &[b.v("a")?, b.v("b")?])
        })?,
        r("matmul-trans-a", "(matmul@m (permute@p ?a) ?b)", |cx, b| {
            let Op::MatMul { trans_a, trans_b } = *cx.op(b.cap("m")?) else { return None };
            if !swap_cap(cx, b, "p") {
                return None;
            }
            cx.add(Op::MatMul { trans_a: !trans_a, trans_b }, &[b.v("a")?, b.v("b")?])
        })?,
        r("dense-trans-b", "(fused_dense@d ?x (permute@p ?w))", |cx, b| dense_trans(cx, b, false))?,
        r("dense-trans-b", "(fused_dense@d ?x (permute@p ?w) ?bias)", |cx, b| dense_trans(cx, b, true))?,
        r("transpose-matmul", "(permute@p (matmul@m ?a ?b))", |cx, b| {
            let Op::MatMul { trans_a, trans_b } = *cx.op(b.cap("m")?) else { return None };
            if !swap_cap(cx, b, "p") {
                return None;
            }
            cx.add(Op::MatMul { trans_a: !trans_b, trans_b: !trans_a }, &[b.v("b")?, b.v("a")?])
        })?,
    ])
}

fn dense_trans(cx: &mut Ctx<'_>, b: &Bind<'_>, has_bias: bool) -> Option<egg::Id> {
    let Op::FusedDense { trans_b, bias, act } = *cx.op(b.cap("d")?) else { return None };
    if !swap_cap(cx, b, "p") || bias != has_bias {
        return None;
    }
    let mut kids = vec![b.v("x")?, b.v("w")?];
    if has_bias {
        kids.push(b.v("bias")?);
    }
    cx.add(Op::FusedDense { trans_b: !trans_b, bias, act }, &kids)
}
