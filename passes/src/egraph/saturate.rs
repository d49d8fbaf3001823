//! The equality-saturation loop: search every rule, apply every match
//! (checked), fold constants, rebuild; stop on saturation or a limit.
//!
//! kiln drives egg's `EGraph` with its own loop rather than egg's `Runner`
//! so that rules can capture attribute-carrying e-nodes, the type check sits
//! between apply and union, and provenance is recorded per created node.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use egg::Id;
use kiln_ir::{HostTensor, Op};
use rustc_hash::{FxHashMap, FxHashSet};

use super::fold;
use super::lang::{Data, ENode, EG};
use super::rule::{Bind, Ctx, Provenance, Rule};
use super::EGraphConfig;
use crate::ConstEvaluator;

/// Why saturation stopped. Hitting a limit is normal: the best graph found
/// so far is extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// No rule changed the e-graph: every rewrite has been explored.
    Saturated,
    IterationLimit(usize),
    NodeLimit(usize),
    TimeLimit(Duration),
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Saturated => write!(f, "saturated"),
            StopReason::IterationLimit(n) => write!(f, "iteration limit ({n})"),
            StopReason::NodeLimit(n) => write!(f, "node limit ({n} e-nodes)"),
            StopReason::TimeLimit(d) => write!(f, "time limit ({} ms)", d.as_millis()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SatStats {
    pub iterations: usize,
    pub stop: StopReason,
    /// Unions made per rule name (`const-fold` for folding).
    pub fired: BTreeMap<&'static str, usize>,
    pub enodes: usize,
    pub eclasses: usize,
    pub time: Duration,
}

pub const CONST_FOLD: &str = "const-fold";

pub fn saturate(
    eg: &mut EG,
    rules: &[Rule],
    cfg: &EGraphConfig,
    ev: Option<&dyn ConstEvaluator>,
    prov: &mut Provenance,
) -> SatStats {
    let start = Instant::now();
    let mut fired: BTreeMap<&'static str, usize> = rules.iter().map(|r| (r.name, 0)).collect();
    if cfg.fold_limit > 0 {
        fired.insert(CONST_FOLD, 0);
    }
    let mut stop = None;
    let mut iterations = 0;
    eg.rebuild();
    // After the first round a rule is searched only where the e-graph
    // changed since the previous round's search (within the rule's depth):
    // elsewhere it would find the matches it already applied. A rule that
    // hit the match limit searches everywhere again.
    let mut searched: Option<FxHashMap<Id, usize>> = None;
    let mut capped = vec![true; rules.len()];
    while stop.is_none() {
        if iterations >= cfg.iter_limit {
            stop = Some(StopReason::IterationLimit(cfg.iter_limit));
            break;
        }
        if start.elapsed() > cfg.time_limit {
            stop = Some(StopReason::TimeLimit(cfg.time_limit));
            break;
        }
        iterations += 1;
        let before = if cfg.incremental { searched.replace(class_sizes(eg)) } else { None };
        // Every class by head, built only when some rule searches
        // everywhere (the first round, or a rule that hit the match limit);
        // otherwise each rule walks the changed region within its depth,
        // grouped by head the same way (same classes, same id order).
        let mut by_head: Option<FxHashMap<&'static str, Vec<Id>>> = None;
        let mut regions: FxHashMap<usize, FxHashMap<&'static str, Vec<Id>>> = FxHashMap::default();
        let mut matches = Vec::new();
        for (ri, rule) in rules.iter().enumerate() {
            let head = rule.pattern.root_head();
            let (classes, start): (&[Id], usize) = match (&before, capped[ri]) {
                (Some(before), false) => {
                    let depth = rule.pattern.depth() + 1;
                    let region = regions.entry(depth).or_insert_with(|| group_by_head(eg, changed_region(eg, before, depth).into_iter().map(|id| &eg[id])));
                    (region.get(head).map_or(&[][..], Vec::as_slice), 0)
                }
                _ => {
                    let all = by_head.get_or_insert_with(|| group_by_head(eg, eg.classes()));
                    let classes = all.get(head).map_or(&[][..], Vec::as_slice);
                    // Start where the previous round's search for this rule
                    // would have continued, so a capped rule still reaches
                    // every class.
                    (classes, (iterations - 1) * cfg.match_limit.max(1) % classes.len().max(1))
                }
            };
            let order = classes[start..].iter().chain(&classes[..start]);
            let mut found = Vec::new();
            rule.pattern.search_classes(eg, order.copied(), cfg.match_limit, &mut found);
            capped[ri] = found.len() >= cfg.match_limit;
            matches.extend(found.into_iter().map(|m| (ri, m)));
        }
        let mut changed = false;
        for (ri, m) in &matches {
            let rule = &rules[*ri];
            let bind = Bind { pat: &rule.pattern, m };
            let mut cx = Ctx { eg: &mut *eg, prov: &mut *prov, rule: rule.name, matched: &m.nodes };
            let Some(new) = (rule.apply)(&mut cx, &bind) else { continue };
            let (a, b) = (eg.find(m.root), eg.find(new));
            if a != b && eg[a].data.ty.is_some() && eg[a].data.ty == eg[b].data.ty && eg.union(a, b) {
                *fired.entry(rule.name).or_default() += 1;
                changed = true;
            }
            // memo size: O(1), unlike counting every class's nodes.
            if eg.total_size() > cfg.node_limit {
                stop = Some(StopReason::NodeLimit(cfg.node_limit));
                break;
            }
        }
        if cfg.fold_limit > 0 && stop.is_none() {
            let n = fold_constants(eg, cfg.fold_limit, ev, cfg.reassociate);
            *fired.entry(CONST_FOLD).or_default() += n;
            changed |= n > 0;
        }
        eg.rebuild();
        if stop.is_none() && !changed {
            stop = Some(StopReason::Saturated);
        }
    }
    SatStats {
        iterations,
        stop: stop.unwrap_or(StopReason::Saturated),
        fired,
        enodes: eg.total_number_of_nodes(),
        eclasses: eg.number_of_classes(),
        time: start.elapsed(),
    }
}

/// Each canonical class's e-node count: two snapshots tell which classes a
/// round created, merged or extended.
fn class_sizes(eg: &EG) -> FxHashMap<Id, usize> {
    eg.classes().map(|c| (c.id, c.nodes.len())).collect()
}

/// The classes within `depth` parent steps of one that changed since
/// `before`: new, grown, or the survivor of a merge.
fn changed_region(eg: &EG, before: &FxHashMap<Id, usize>, depth: usize) -> FxHashSet<Id> {
    let mut frontier: Vec<Id> = eg.classes().filter(|c| before.get(&c.id) != Some(&c.nodes.len())).map(|c| c.id).collect();
    frontier.extend(before.keys().filter(|&&id| eg.find(id) != id).map(|&id| eg.find(id)));
    let mut region: FxHashSet<Id> = frontier.iter().copied().collect();
    for _ in 0..depth {
        let mut next = Vec::new();
        for c in frontier {
            for p in eg[c].parents() {
                let p = eg.find(p);
                if region.insert(p) {
                    next.push(p);
                }
            }
        }
        frontier = next;
    }
    region
}

/// The given classes grouped by the op keywords of their e-nodes (a class
/// under each keyword it holds), each group in id order.
fn group_by_head<'a>(eg: &'a EG, classes: impl IntoIterator<Item = &'a egg::EClass<ENode, Data>>) -> FxHashMap<&'static str, Vec<Id>> {
    let mut by: FxHashMap<&'static str, Vec<Id>> = FxHashMap::default();
    let mut seen: Vec<&'static str> = Vec::new();
    for class in classes {
        let id = class.id;
        seen.clear();
        for n in &class.nodes {
            let h = eg.analysis.ops.name(n.op);
            if !seen.contains(&h) {
                seen.push(h);
                by.entry(h).or_default().push(id);
            }
        }
    }
    for ids in by.values_mut() {
        ids.sort_unstable();
    }
    by
}

/// Folds every small class whose operands are all constant; returns how
/// many classes got a constant.
fn fold_constants(eg: &mut EG, limit: usize, ev: Option<&dyn ConstEvaluator>, inexact_native: bool) -> usize {
    let mut ids: Vec<Id> = eg.classes().map(|c| c.id).collect();
    ids.sort();
    let mut todo: Vec<(Id, HostTensor)> = Vec::new();
    for id in ids {
        let class = &eg[id];
        let Some(ty) = class.data.ty.as_ref() else { continue };
        if class.data.konst.is_some() || ty.numel() > limit {
            continue;
        }
        for n in &class.nodes {
            let op = eg.analysis.ops.op(n.op);
            if op.is_source() || matches!(op, Op::RandomUniform { .. }) {
                continue;
            }
            let args: Option<Vec<&HostTensor>> = n
                .children
                .iter()
                .map(|&c| match eg.analysis.ops.op(eg[c].data.konst?) {
                    Op::Constant(t) => Some(t),
                    _ => None,
                })
                .collect();
            let Some(args) = args else { continue };
            if let Some(t) = fold::eval(op, ty, &args, ev, inexact_native) {
                todo.push((id, t));
                break;
            }
        }
    }
    let mut n = 0;
    for (id, t) in todo {
        let op = eg.analysis.ops.intern(Op::Constant(t), None);
        let c = eg.add(ENode { op, children: vec![] });
        if eg[c].data.ty == eg[id].data.ty && eg.union(id, c) {
            n += 1;
        }
    }
    n
}
