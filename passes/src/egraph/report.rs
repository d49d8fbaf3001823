//! The e-graph report written with the dump flag: what ran, why it stopped,
//! what it bought, and why each fusion happened (or did not).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use egg::Id;
use kiln_ir::{BinaryOp, Graph, NodeId, Op, UnaryOp};

use super::convert::Created;
use super::lang::{OpId, EG};
use super::rule::{Group, Provenance};
use super::saturate::{StopReason, CONST_FOLD};

#[derive(Debug, Clone)]
pub struct Report {
    pub iterations: usize,
    pub stop: StopReason,
    /// Unions per rule (`const-fold` included).
    pub fired: BTreeMap<&'static str, usize>,
    pub enodes: usize,
    pub eclasses: usize,
    /// Estimated cost (FLOPs + bytes) of the live graph before and after.
    pub cost_before: f64,
    pub cost_after: f64,
    /// Live node counts before and after (replaced nodes await DCE).
    pub nodes_before: usize,
    pub nodes_after: usize,
    pub saturation_time: Duration,
    pub total_time: Duration,
    /// One line per fused/transposed op in the result: the node and the
    /// chain of rules that produced it.
    pub fused: Vec<String>,
    /// One line per conv2d/matmul left unfused, with the reason.
    pub unfused: Vec<String>,
    pub changed: bool,
    /// Extraction's local search hit its time budget (the result is valid,
    /// maybe not the cheapest).
    pub extraction_truncated: bool,
    pub group_of: BTreeMap<&'static str, Group>,
}

impl Report {
    /// How often the named rule made a union.
    pub fn fired(&self, rule: &str) -> usize {
        self.fired.get(rule).copied().unwrap_or(0)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "e-graph report")?;
        writeln!(f, "  stop reason:  {}", self.stop)?;
        writeln!(f, "  iterations:   {}", self.iterations)?;
        if self.extraction_truncated {
            writeln!(f, "  extraction:   stopped at its time budget (valid, maybe not the cheapest)")?;
        }
        writeln!(f, "  e-graph size: {} e-nodes in {} e-classes", self.enodes, self.eclasses)?;
        writeln!(f, "  live nodes:   {} -> {}", self.nodes_before, self.nodes_after)?;
        let pct = if self.cost_before > 0.0 { 100.0 * (self.cost_after - self.cost_before) / self.cost_before } else { 0.0 };
        writeln!(f, "  est. cost:    {:.0} -> {:.0} ({pct:+.1}%) (FLOPs + bytes moved)", self.cost_before, self.cost_after)?;
        writeln!(
            f,
            "  time:         {:.1} ms saturating, {:.1} ms total",
            self.saturation_time.as_secs_f64() * 1e3,
            self.total_time.as_secs_f64() * 1e3
        )?;
        writeln!(f, "\nrules fired (unions made), by group:")?;
        for g in Group::ALL {
            let rows: Vec<_> = self.fired.iter().filter(|(n, _)| self.group_of.get(*n) == Some(&g)).collect();
            writeln!(f, "  [{g}]")?;
            for (name, n) in rows {
                writeln!(f, "    {name:<26} {n}")?;
            }
        }
        if let Some(n) = self.fired.get(CONST_FOLD) {
            writeln!(f, "  [constants]\n    {CONST_FOLD:<26} {n}")?;
        }
        writeln!(f, "\nfused ops in the result (node <- rule chain, outermost first):")?;
        if self.fused.is_empty() {
            writeln!(f, "  none")?;
        }
        for l in &self.fused {
            writeln!(f, "  {l}")?;
        }
        writeln!(f, "\nproducts left without a fused epilogue (why not):")?;
        if self.unfused.is_empty() {
            writeln!(f, "  none")?;
        }
        for l in &self.unfused {
            writeln!(f, "  {l}")?;
        }
        Ok(())
    }
}

fn is_fused(op: &Op) -> bool {
    matches!(
        op,
        Op::FusedDense { .. } | Op::FusedConv2d { .. } | Op::SoftmaxCrossEntropy | Op::MatMul { trans_a: true, .. } | Op::MatMul { trans_b: true, .. }
    )
}

fn describe(op: &Op) -> String {
    match op {
        Op::FusedDense { trans_b, bias, act } => format!("fused_dense trans_b={trans_b} bias={bias} act={}", act.name()),
        Op::FusedConv2d { bias, act, .. } => format!("fused_conv2d bias={bias} act={}", act.name()),
        Op::MatMul { trans_a, trans_b } => format!("matmul trans_a={trans_a} trans_b={trans_b}"),
        other => other.name().to_string(),
    }
}

/// The rule chain that produced an e-node: its rule, then (recursively) the
/// rules that produced the rule-made nodes it matched.
fn chain(eg: &EG, prov: &Provenance, op: OpId, class: Id, depth: usize, out: &mut Vec<&'static str>) {
    if depth > 12 {
        return;
    }
    let Some(e) = prov.find(eg, op, class).into_iter().next() else { return };
    out.push(e.rule);
    for &(o, c) in &e.from {
        if !prov.find(eg, o, c).is_empty() && (o, eg.find(c)) != (op, eg.find(class)) {
            chain(eg, prov, o, c, depth + 1, out);
        }
    }
}

pub(super) fn explain(r: &mut Report, g: &Graph, eg: &EG, prov: &Provenance, created: &[Created]) {
    for c in created {
        let op = eg.analysis.ops.op(c.enode.op);
        if !is_fused(op) {
            continue;
        }
        let mut rules = Vec::new();
        chain(eg, prov, c.enode.op, c.class, 0, &mut rules);
        // A transposed matmul the input graph already had (autodiff writes
        // them) is not news; only list it when a layout rule made it.
        if rules.is_empty() && matches!(op, Op::MatMul { .. }) {
            continue;
        }
        let mut dedup: Vec<&str> = Vec::new();
        for x in rules {
            if !dedup.contains(&x) {
                dedup.push(x);
            }
        }
        r.fused.push(format!("{} = {} <- {}", c.id, describe(op), if dedup.is_empty() { "(as in the input graph, operands rewritten)".to_string() } else { dedup.join(" <- ") }));
    }
    // Why not: a product that survived with an epilogue-looking consumer
    // (activation, add, sub, mul) that did not get fused into it.
    let roots: Vec<NodeId> = g.outputs().iter().chain(g.updates()).map(|(_, id)| *id).collect();
    let mut ids: Vec<NodeId> = g.live_nodes().into_iter().collect();
    ids.sort();
    for id in ids {
        let op = g.op(id);
        let product = match op {
            Op::Conv2d(_) | Op::MatMul { .. } => true,
            Op::FusedConv2d { act, .. } | Op::FusedDense { act, .. } => *act == kiln_ir::Activation::None,
            _ => false,
        };
        if !product {
            continue;
        }
        let users = g.users(id);
        let epilogue: Vec<NodeId> = users
            .iter()
            .copied()
            .filter(|&u| {
                matches!(
                    g.op(u),
                    Op::Unary(UnaryOp::Relu | UnaryOp::Sigmoid | UnaryOp::Tanh) | Op::Binary(BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul)
                )
            })
            .collect();
        let Some(&first) = epilogue.first() else { continue };
        let mut needed: Vec<String> = users.iter().map(|u| format!("{u} {}", g.op(*u).name())).collect();
        if roots.contains(&id) {
            needed.push("a graph output/update".into());
        }
        let other = |u: NodeId| g.operands(u).into_iter().find(|&o| o != id);
        let reason = match (op, g.op(first)) {
            (Op::MatMul { trans_a: true, .. }, _) => "fused_dense has no transposed-input form".to_string(),
            (Op::MatMul { .. }, _) if g.operands(id).get(1).is_none_or(|w| g.ty(*w).shape.rank() != 2) => {
                "fused_dense needs a rank-2 weight".to_string()
            }
            _ if needed.len() > 1 => format!(
                "its value is also needed by {}, so it stays materialized (fusing {first} {} into it would compute the product twice)",
                needed.join(", "),
                g.op(first).name()
            ),
            (_, Op::Binary(BinaryOp::Add | BinaryOp::Sub)) => match other(first) {
                Some(o) => format!("{first} {} adds {o}: {}, which does not vary along the feature axis only, so it is not a bias", g.op(first).name(), g.ty(o)),
                None => format!("{first} adds the value to itself"),
            },
            (_, Op::Binary(BinaryOp::Mul)) => match other(first) {
                Some(o) => format!(
                    "{first} mul scales by {o}: {}, not a per-feature value computable from params/state/constants (batch-norm folds only in eval mode)",
                    g.ty(o)
                ),
                None => format!("{first} squares the value"),
            },
            (Op::FusedConv2d { .. } | Op::FusedDense { .. }, _) => {
                format!("a fused epilogue for {first} {} was not cheaper under the cost model", g.op(first).name())
            }
            _ => format!("no fusion rule matched {first} {}", g.op(first).name()),
        };
        r.unfused.push(format!("{id} = {}: {reason}", op.name()));
    }
}
