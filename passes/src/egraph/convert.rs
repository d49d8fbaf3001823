//! Graph -> e-graph, and the extracted DAG -> nodes in the same graph.


use egg::Id;
use kiln_ir::{Graph, NodeId, Op};
use rustc_hash::FxHashMap;

use super::extract::Choice;
use super::lang::{ENode, KAnalysis, OpId, EG};

pub struct Built {
    pub eg: EG,
    pub class_of: FxHashMap<NodeId, Id>,
    /// The e-node each graph node became (children as added).
    pub original: FxHashMap<Id, ENode>,
    /// (op, operand node ids) -> the graph node already computing it, so
    /// unchanged parts of the graph keep their ids.
    existing: FxHashMap<(OpId, Vec<NodeId>), NodeId>,
    pub roots: Vec<NodeId>,
}

/// Builds the e-graph of `g`: inputs are leaves keyed by node id (name),
/// constants leaves keyed by value. Errors name the offending `%N`.
pub fn build(g: &Graph) -> Result<Built, String> {
    let mut eg = EG::new(KAnalysis::default());
    let mut class_of = FxHashMap::default();
    let mut original = FxHashMap::default();
    let mut existing = FxHashMap::default();
    for id in g.topo_order().map_err(|e| e.to_string())? {
        let node = g.node(id).map_err(|e| e.to_string())?;
        let declared = matches!(node.op, Op::Input { .. }).then(|| node.ty.clone());
        let op = eg.analysis.ops.intern(node.op.clone(), declared);
        let operands = g.operands(id);
        let children: Vec<Id> = operands.iter().map(|o| class_of[o]).collect();
        let enode = ENode { op, children };
        let c = eg.add(enode.clone());
        if eg[c].data.ty.as_ref() != Some(&node.ty) {
            return Err(format!("{id}: declared type {} differs from the inferred one", node.ty));
        }
        class_of.insert(id, c);
        original.entry(c).or_insert(enode);
        existing.entry((op, operands)).or_insert(id);
    }
    let mut roots: Vec<NodeId> = g.outputs().iter().chain(g.updates()).map(|(_, id)| *id).collect();
    for r in g.grad_requests() {
        roots.push(r.loss);
        roots.extend(r.wrt.iter().copied());
    }
    let mut seen = rustc_hash::FxHashSet::default();
    roots.retain(|r| seen.insert(*r));
    eg.rebuild();
    Ok(Built { eg, class_of, original, existing, roots })
}

impl Built {
    pub fn root_classes(&self) -> Vec<Id> {
        self.roots.iter().map(|r| self.eg.find(self.class_of[r])).collect()
    }
}

/// A node the write-back created, with the e-node and class it came from.
pub struct Created {
    pub id: NodeId,
    pub enode: ENode,
    pub class: Id,
}

/// Materializes the chosen DAG in `g` (reusing nodes that already compute
/// the same op on the same operands) and points every root use at it. The
/// replaced nodes are left for DCE. Returns the created nodes and whether
/// anything changed.
pub fn write_back(g: &mut Graph, b: &Built, choice: &Choice) -> Result<(Vec<Created>, bool), String> {
    let eg = &b.eg;
    let mut memo: FxHashMap<Id, NodeId> = FxHashMap::default();
    let mut created = Vec::new();
    for &root in &b.roots {
        let rc = eg.find(b.class_of[&root]);
        // Iterative post-order: deep unrolled graphs must not overflow.
        let mut stack = vec![(rc, false)];
        while let Some((c, ready)) = stack.pop() {
            if memo.contains_key(&c) {
                continue;
            }
            let node = choice.get(&c).ok_or_else(|| format!("no extraction choice for e-class {c}"))?;
            let kids: Vec<Id> = node.children.iter().map(|&k| eg.find(k)).collect();
            if !ready {
                stack.push((c, true));
                for &k in kids.iter().rev() {
                    if !memo.contains_key(&k) {
                        stack.push((k, false));
                    }
                }
                continue;
            }
            let operands: Option<Vec<NodeId>> = kids.iter().map(|k| memo.get(k).copied()).collect();
            let operands = operands.ok_or("extraction choice is cyclic")?;
            let id = match b.existing.get(&(node.op, operands.clone())) {
                Some(&id) => id,
                None => {
                    let ty = eg[c].data.ty.clone().ok_or("untyped e-class")?;
                    let id = g.add_typed(eg.analysis.ops.op(node.op).clone(), ty, &operands);
                    created.push(Created { id, enode: node.clone(), class: c });
                    id
                }
            };
            memo.insert(c, id);
        }
    }
    let mut changed = !created.is_empty();
    for &root in &b.roots {
        let new = memo[&eg.find(b.class_of[&root])];
        if new != root {
            g.replace_all_uses(root, new);
            changed = true;
        }
    }
    Ok((created, changed))
}
