//! The rule sets, one file per topic. Every rule is listed by name in the
//! module docs of its file, and `rule_names()` lists them all.

use egg::Id;
use kiln_ir::Op;

use super::rule::{Ctx, Group, Rule};

pub mod algebra;
pub mod fusion;
pub mod layout;

/// Rules whose result can differ from the original by more than the one
/// skipped intermediate rounding of a fusion: reassociation, scalar
/// hoisting, reciprocal for division, BN folding (scales the weights before
/// the product), log/exp cancellation, and the signed zero of `x+0`/`x*0`.
/// `EGraphConfig::reassociate = false` turns them off.
pub const VALUE_CHANGING: &[&str] = &[
    "add-zero",
    "mul-zero",
    "log-exp",
    "exp-log",
    "scalar-mul-mul",
    "matmul-scalar-hoist",
    "reduce-scalar-hoist",
    "div-static-to-mul",
    "bias-reassociate",
    "dense-scale-fold",
    "conv-scale-fold",
    "dense-sub-fold",
    "conv-sub-fold",
    "softmax-cross-entropy",
];

/// Every rule of the enabled groups, in a fixed order.
pub fn rules(groups: &[Group]) -> Result<Vec<Rule>, String> {
    let mut out = Vec::new();
    for g in Group::ALL {
        if !groups.contains(&g) {
            continue;
        }
        out.extend(match g {
            Group::Algebra => algebra::rules()?,
            Group::Fusion => fusion::rules()?,
            Group::Layout => layout::rules()?,
        });
    }
    Ok(out)
}

/// (group, rule name) of every rule, without duplicates (several patterns
/// may share a name: commuted operands, arities).
pub fn rule_names() -> Vec<(Group, &'static str)> {
    let mut v: Vec<(Group, &'static str)> = Vec::new();
    for r in rules(&Group::ALL).unwrap_or_default() {
        if !v.iter().any(|(_, n)| *n == r.name) {
            v.push((r.group, r.name));
        }
    }
    v
}

/// Whether `perm` swaps the last two axes and keeps the others.
pub(crate) fn is_last2_swap(perm: &[usize]) -> bool {
    let r = perm.len();
    r >= 2 && perm[r - 1] == r - 2 && perm[r - 2] == r - 1 && (0..r - 2).all(|i| perm[i] == i)
}

/// The class as a vector `[n]` to add along `axis` of an output of shape
/// `out`, if its values vary along that axis only (a bias or a per-channel
/// statistic like `b[1,C,1,1]` or `b[C,1,1]`). Looks through broadcast_to.
pub(crate) fn per_axis_vector(cx: &mut Ctx<'_>, id: Id, out: &[usize], axis: usize) -> Option<Id> {
    if let Some(v) = per_axis_direct(cx, id, out, axis) {
        return Some(v);
    }
    let inner: Vec<Id> = cx.eg[id]
        .nodes
        .iter()
        .filter(|n| matches!(cx.eg.analysis.ops.op(n.op), Op::BroadcastTo(_)))
        .map(|n| n.children[0])
        .collect();
    inner.into_iter().find_map(|k| per_axis_direct(cx, k, out, axis))
}

fn per_axis_direct(cx: &mut Ctx<'_>, id: Id, out: &[usize], axis: usize) -> Option<Id> {
    let s = cx.shape(id)?;
    let n = *out.get(axis)?;
    if s.len() > out.len() {
        return None;
    }
    let off = out.len() - s.len();
    for (i, &d) in s.iter().enumerate() {
        let ax = i + off;
        let ok = if ax == axis { d == n || d == 1 } else { d == 1 };
        if !ok {
            return None;
        }
    }
    let numel: usize = s.iter().product();
    if numel == n {
        cx.reshape(id, &[n])
    } else {
        let one = cx.reshape(id, &[1])?;
        cx.broadcast(one, &[n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_parses_and_names_are_grouped() {
        let all = rules(&Group::ALL).expect("rule patterns parse");
        assert!(all.len() > 30);
        let names = rule_names();
        for must in ["add-zero", "mul-one", "neg-neg", "permute-permute", "conv-bias", "dense-relu", "matmul-trans-b", "softmax-cross-entropy", "conv-scale-fold"] {
            assert!(names.iter().any(|(_, n)| *n == must), "missing rule {must}");
        }
    }

    #[test]
    fn last2_swap() {
        assert!(is_last2_swap(&[1, 0]));
        assert!(is_last2_swap(&[0, 2, 1]));
        assert!(!is_last2_swap(&[2, 1, 0]));
        assert!(!is_last2_swap(&[0]));
    }
}
