//! DAG-aware extraction: pick one e-node per needed class so that the total
//! cost of the resulting DAG (each class counted once, however many users)
//! is low.
//!
//! Two phases: a greedy bottom-up pass where a class's cost is the cost of
//! the *set* of classes its choice reaches (bitsets, so shared sub-DAGs are
//! counted once within a class), then a local search over the whole graph:
//! switch one class's choice at a time and keep the switch when the cost of
//! everything the roots reach goes down (priced by what the switch adds and
//! drops, `live_dag.rs`, so a sweep is about linear in the graph). The
//! second phase is what sees sharing across roots, e.g. that a fused
//! conv+ReLU does not pay while the un-activated conv output is still
//! needed by the backward pass.

use std::time::Instant;

use egg::Id;
use kiln_ir::{Op, TensorType};
use rustc_hash::FxHashMap;

use super::lang::{ENode, EG};
use super::live_dag::LiveDag;

/// Estimated cost of one e-node: FLOPs plus bytes read and written. Every
/// node costs at least 1, so a tree of nodes always costs more than any
/// sub-tree and the tree fallback extraction is acyclic.
pub fn node_cost(op: &Op, out: &TensorType, ins: &[&TensorType]) -> f64 {
    let bytes = ins.iter().map(|t| t.size_bytes()).sum::<usize>() as f64 + out.size_bytes() as f64;
    let n = out.numel() as f64;
    let matmul_flops = |a: &TensorType, ta: bool| {
        let ra = a.shape.rank();
        let k = if ta { a.shape.0.get(ra.wrapping_sub(2)) } else { a.shape.0.last() };
        2.0 * n * k.copied().unwrap_or(1) as f64
    };
    let conv_flops = |w: &TensorType| {
        // Each output element is a dot product over C/g * kh * kw.
        let per: usize = w.shape.0.iter().skip(1).product();
        2.0 * n * per as f64
    };
    let c = match op {
        Op::Input { .. } | Op::Constant(_) => 0.0,
        // Views: a backend reindexes instead of copying.
        Op::Reshape(_) | Op::StopGradient => 0.0,
        Op::MatMul { trans_a, .. } if ins.len() == 2 => matmul_flops(ins[0], *trans_a) + bytes,
        Op::FusedDense { bias, act, .. } if ins.len() >= 2 => {
            let epi = n * (*bias as u8 as f64 + (*act != kiln_ir::Activation::None) as u8 as f64);
            // A fused op that fuses nothing is not better than the plain op.
            let nothing = if !*bias && *act == kiln_ir::Activation::None { 1.0 } else { 0.0 };
            matmul_flops(ins[0], false) + epi + bytes + nothing
        }
        Op::Conv2d(_) if ins.len() == 2 => conv_flops(ins[1]) + bytes,
        Op::FusedConv2d { bias, act, .. } if ins.len() >= 2 => {
            let epi = n * (*bias as u8 as f64 + (*act != kiln_ir::Activation::None) as u8 as f64);
            let nothing = if !*bias && *act == kiln_ir::Activation::None { 1.0 } else { 0.0 };
            conv_flops(ins[1]) + epi + bytes + nothing
        }
        Op::Conv2dGradInput { .. } if ins.len() == 2 => {
            2.0 * ins[0].numel() as f64 * ins[1].shape.0.iter().skip(1).product::<usize>() as f64 + bytes
        }
        Op::Conv2dGradWeight { .. } => 2.0 * ins.get(1).map_or(0, |t| t.numel()) as f64 * out.shape.0.iter().skip(1).product::<usize>() as f64 + bytes,
        Op::SoftmaxCrossEntropy => 4.0 * ins.first().map_or(0, |t| t.numel()) as f64 + bytes,
        Op::Reduce { .. } => ins.first().map_or(0, |t| t.numel()) as f64 + bytes,
        Op::Unary(u) => {
            let w = match u {
                kiln_ir::UnaryOp::Neg | kiln_ir::UnaryOp::Abs | kiln_ir::UnaryOp::Relu | kiln_ir::UnaryOp::Sign => 1.0,
                _ => 4.0,
            };
            w * n + bytes
        }
        _ => n + bytes,
    };
    c.max(1.0)
}

/// The chosen e-node per class (by canonical class id).
pub type Choice = FxHashMap<Id, ENode>;

pub(super) struct Ix {
    pub(super) classes: Vec<Id>,
    pub(super) pos: FxHashMap<Id, usize>,
    /// Per class: (node, its own cost, children positions).
    pub(super) nodes: Vec<Vec<(ENode, f64, Vec<usize>)>>,
    /// The same, flattened for the hot DAG-cost walk: class -> first global
    /// node; global node -> cost and children range in `kids`.
    pub(super) start: Vec<usize>,
    pub(super) cost: Vec<f64>,
    pub(super) kid_start: Vec<usize>,
    pub(super) kids: Vec<usize>,
}

fn index(eg: &EG) -> Ix {
    let mut classes: Vec<Id> = eg.classes().map(|c| c.id).collect();
    classes.sort();
    let pos: FxHashMap<Id, usize> = classes.iter().enumerate().map(|(i, &c)| (c, i)).collect();
    let mut nodes = Vec::with_capacity(classes.len());
    for &c in &classes {
        let class = &eg[c];
        let mut v = Vec::new();
        if let Some(out) = class.data.ty.as_ref() {
            for n in &class.nodes {
                let kids: Option<Vec<&TensorType>> = n.children.iter().map(|&k| eg[k].data.ty.as_ref()).collect();
                let Some(kids) = kids else { continue };
                let cost = node_cost(eg.analysis.ops.op(n.op), out, &kids);
                let ch: Vec<usize> = n.children.iter().map(|&k| pos[&eg.find(k)]).collect();
                v.push((n.clone(), cost, ch));
            }
        }
        nodes.push(v);
    }
    let (mut start, mut cost, mut kid_start, mut kids) = (Vec::new(), Vec::new(), vec![0], Vec::new());
    for v in &nodes {
        start.push(cost.len());
        for (_, c, ch) in v {
            cost.push(*c);
            kids.extend_from_slice(ch);
            kid_start.push(kids.len());
        }
    }
    Ix { classes, pos, nodes, start, cost, kid_start, kids }
}

/// Above this many e-classes the bitset greedy (quadratic time and memory)
/// is skipped and the local search starts from the input graph's own nodes.
pub const DAG_GREEDY_MAX_CLASSES: usize = 6000;

/// The result of [`extract`].
pub struct Extracted {
    pub choice: Choice,
    pub cost: f64,
    /// The local search stopped at the deadline.
    pub truncated: bool,
}

/// Extracts the roots' DAG; `None` only if some root has no acyclic choice.
/// `original` is each class's e-node from the input graph (the fallback
/// start); the local search stops at `deadline`.
pub fn extract(eg: &EG, roots: &[Id], original: &FxHashMap<Id, ENode>, deadline: Instant) -> Option<Extracted> {
    extract_with(eg, roots, original, deadline, DAG_GREEDY_MAX_CLASSES)
}

pub(super) fn extract_with(
    eg: &EG,
    roots: &[Id],
    original: &FxHashMap<Id, ENode>,
    deadline: Instant,
    greedy_max: usize,
) -> Option<Extracted> {
    let ix = index(eg);
    let n = ix.classes.len();
    let root_pos: Vec<usize> = roots.iter().map(|r| ix.pos.get(&eg.find(*r)).copied()).collect::<Option<_>>()?;
    let choice = if n <= greedy_max { greedy_dag(&ix) } else { from_original(eg, &ix, original) };
    if root_pos.iter().any(|&r| choice[r].is_none()) {
        return None;
    }
    let mut truncated = false;
    // Checks the start is acyclic (and that every reached class has a choice).
    dag_cost(&ix, &choice, &root_pos)?;

    // Phase 2: local search on the true DAG cost. Equal-cost moves are
    // accepted once per class: two classes often have to switch together
    // (the backward mask reading the activation, then the forward fusing),
    // and the first switch alone gains nothing.
    let base = choice.clone();
    let mut dag = LiveDag::new(&ix, choice, &root_pos);
    let eps = |c: f64| 1e-9 * c.abs().max(1.0);
    for _sweep in 0..4 {
        let mut moved = false;
        for c in reached(&ix, &dag.choice, &root_pos) {
            if Instant::now() > deadline {
                truncated = true;
                break;
            }
            for ni in 0..ix.nodes[c].len() {
                if dag.refs[c] == 0 || Some(ni) == dag.choice[c] || ix.nodes[c][ni].2.iter().any(|&k| dag.choice[k].is_none()) {
                    continue;
                }
                let old = dag.choice[c];
                let Some(delta) = dag.try_switch(c, ni) else { continue };
                if delta < -eps(dag.total) || (delta <= eps(dag.total) && old == base[c]) {
                    dag.keep(c);
                    moved = true;
                } else {
                    dag.switch_back(c, old);
                }
            }
        }
        if !moved || truncated {
            break;
        }
    }
    // Undo equal-cost moves that unlocked nothing, so ties keep the
    // greedy (usually original) form.
    // An unreached class goes back at no cost (nothing reads it), but its
    // new children may break the order, which is renumbered before the next
    // reached class is tried.
    let mut stale = false;
    for c in 0..n {
        let (cur, Some(b)) = (dag.choice[c], base[c]) else { continue };
        if cur == Some(b) {
            continue;
        }
        if dag.refs[c] == 0 {
            dag.choice[c] = Some(b);
            stale = true;
            continue;
        }
        if std::mem::take(&mut stale) {
            dag.order();
        }
        match dag.try_switch(c, b) {
            Some(d) if d <= eps(dag.total) => dag.keep(c),
            Some(_) => dag.switch_back(c, cur),
            None => {}
        }
    }
    let choice = dag.choice;
    // The exact total (the running one is a sum of deltas).
    let cost = dag_cost(&ix, &choice, &root_pos)?;
    let mut out = Choice::default();
    for c in reached(&ix, &choice, &root_pos) {
        let ni = choice[c]?;
        out.insert(ix.classes[c], ix.nodes[c][ni].0.clone());
    }
    Some(Extracted { choice: out, cost, truncated })
}

/// Greedy bottom-up on class sets: a class's cost is the cost of the set of
/// classes its choice reaches (bitsets), so sharing inside it counts once.
fn greedy_dag(ix: &Ix) -> Vec<Option<usize>> {
    let n = ix.classes.len();
    let words = n.div_ceil(64);
    let mut best: Vec<Option<(usize, f64, Vec<u64>)>> = vec![None; n];
    let mut self_cost = vec![0.0f64; n];
    let mut changed = true;
    let mut rounds = 0;
    while changed && rounds < 64 {
        changed = false;
        rounds += 1;
        for c in 0..n {
            for (ni, (_, cost, ch)) in ix.nodes[c].iter().enumerate() {
                if ch.iter().any(|&k| best[k].is_none()) {
                    continue;
                }
                let mut set = vec![0u64; words];
                for &k in ch {
                    if let Some((_, _, s)) = &best[k] {
                        for (w, x) in set.iter_mut().zip(s) {
                            *w |= *x;
                        }
                    }
                }
                if set[c / 64] >> (c % 64) & 1 == 1 {
                    continue; // would be a cycle
                }
                let mut total = *cost;
                for (wi, &w) in set.iter().enumerate() {
                    let mut bits = w;
                    while bits != 0 {
                        let b = bits.trailing_zeros() as usize;
                        total += self_cost[wi * 64 + b];
                        bits &= bits - 1;
                    }
                }
                let better = match &best[c] {
                    None => true,
                    Some((_, t, _)) => total < *t - 1e-9 * t.abs().max(1.0),
                };
                if better {
                    set[c / 64] |= 1 << (c % 64);
                    best[c] = Some((ni, total, set));
                    self_cost[c] = *cost;
                    changed = true;
                }
            }
        }
    }
    best.iter().map(|b| b.as_ref().map(|b| b.0)).collect()
}

/// Each class's node from the input graph, where it has one. Rules can
/// merge classes of the input graph (`x + 0` with `x`), so a class may hold
/// several input nodes, and one of them may now read the class itself. Each
/// class keeps its earliest input node (the build added them in
/// topological order, so ids follow it): its children were built before
/// it, so by induction the choice is the input graph's order, acyclic.
/// (The map's iteration order could pick `add(x, 0)` for x's own class, a
/// cycle that made the extraction of every graph past the greedy's limit
/// give up.)
fn input_nodes(eg: &EG, ix: &Ix, original: &FxHashMap<Id, ENode>) -> Vec<Option<usize>> {
    let mut choice: Vec<Option<usize>> = vec![None; ix.classes.len()];
    let mut by_id: Vec<(&Id, &ENode)> = original.iter().collect();
    by_id.sort_by_key(|(c, _)| **c);
    for (c, node) in by_id {
        let Some(&p) = ix.pos.get(&eg.find(*c)) else { continue };
        if choice[p].is_some() {
            continue;
        }
        let canon = ENode { op: node.op, children: node.children.iter().map(|&k| eg.find(k)).collect() };
        choice[p] = ix.nodes[p].iter().position(|(m, _, _)| *m == canon);
    }
    choice
}

/// Each class with an input-graph node keeps it (acyclic: it is the input
/// graph); classes that rules created pick by tree cost, which is acyclic
/// among them because every node costs at least 1 and they cannot be
/// reached from the input graph's nodes.
fn from_original(eg: &EG, ix: &Ix, original: &FxHashMap<Id, ENode>) -> Vec<Option<usize>> {
    let n = ix.classes.len();
    let mut choice = input_nodes(eg, ix, original);
    let fixed: Vec<bool> = choice.iter().map(Option::is_some).collect();
    let mut tree = vec![f64::INFINITY; n];
    let mut changed = true;
    let mut rounds = 0;
    while changed && rounds < 64 {
        changed = false;
        rounds += 1;
        for c in 0..n {
            if fixed[c] {
                tree[c] = 0.0;
                continue;
            }
            for (ni, (_, cost, ch)) in ix.nodes[c].iter().enumerate() {
                let t = cost + ch.iter().map(|&k| tree[k]).sum::<f64>();
                if t < tree[c] {
                    tree[c] = t;
                    choice[c] = Some(ni);
                    changed = true;
                }
            }
        }
    }
    choice
}

/// Classes reachable from the roots under `choice`, roots first.
fn reached(ix: &Ix, choice: &[Option<usize>], roots: &[usize]) -> Vec<usize> {
    let mut seen = vec![false; ix.classes.len()];
    let mut order = Vec::new();
    let mut stack: Vec<usize> = roots.to_vec();
    while let Some(c) = stack.pop() {
        if std::mem::replace(&mut seen[c], true) {
            continue;
        }
        order.push(c);
        if let Some(ni) = choice[c] {
            stack.extend(ix.nodes[c][ni].2.iter().copied());
        }
    }
    order
}

/// Sum of node costs over the classes the roots reach; `None` on a cycle or
/// a missing choice.
fn dag_cost(ix: &Ix, choice: &[Option<usize>], roots: &[usize]) -> Option<f64> {
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut state = vec![0u8; ix.classes.len()];
    let mut total = 0.0;
    let mut stack: Vec<(usize, bool)> = roots.iter().map(|&r| (r, false)).collect();
    while let Some((c, exiting)) = stack.pop() {
        if exiting {
            state[c] = 2;
            continue;
        }
        match state[c] {
            2 => continue,
            1 => return None,
            _ => {}
        }
        let gnode = ix.start[c] + choice[c]?;
        state[c] = 1;
        total += ix.cost[gnode];
        stack.push((c, true));
        for &k in &ix.kids[ix.kid_start[gnode]..ix.kid_start[gnode + 1]] {
            match state[k] {
                1 => return None,
                2 => {}
                _ => stack.push((k, false)),
            }
        }
    }
    Some(total)
}

/// The DAG cost of the e-graph as built from the graph, before any rewrite:
/// each class keeps its earliest input node (`input_nodes`).
pub fn original_cost(eg: &EG, original: &FxHashMap<Id, ENode>, roots: &[Id]) -> Option<f64> {
    let ix = index(eg);
    let choice = input_nodes(eg, &ix, original);
    let roots: Vec<usize> = roots.iter().map(|r| ix.pos.get(&eg.find(*r)).copied()).collect::<Option<_>>()?;
    dag_cost(&ix, &choice, &roots)
}
