//! The verifier: structural and type invariants every pass must keep.

use std::collections::{HashMap, HashSet};

use crate::infer::infer_type;
use crate::{Graph, IrError, NodeId, Op};

/// Checks: acyclic; operand slots dense; every node's type equals what
/// inference gives for its operands; input names unique; outputs, updates and
/// grad requests point at live nodes; updates match their input's type.
pub fn verify(g: &Graph) -> Result<(), IrError> {
    let order = g.topo_order()?;
    // Input name -> node, for the update checks below (one lookup each
    // instead of a scan of the graph per update).
    let mut names: HashMap<&str, NodeId> = HashMap::new();
    let (mut edges, mut tys) = (Vec::new(), Vec::new());
    for &id in &order {
        let node = g.node(id)?;
        if let Op::Input { name, .. } = &node.op {
            if names.insert(name.as_str(), id).is_some() {
                return Err(IrError::Verify(format!("{id}: input name `{name}` is used twice")));
            }
            if g.petgraph().edges_directed(id.ix(), petgraph::Direction::Incoming).next().is_some() {
                return Err(IrError::Verify(format!("{id}: input `{name}` has operands")));
            }
            crate::infer::check_addressable(&node.ty).map_err(|r| IrError::Verify(format!("{id}: input `{name}`: {r}")))?;
            continue;
        }
        // Buffers reused across nodes: a pass verifies graphs of tens of
        // thousands of nodes.
        g.operand_slots_into(id, &mut edges);
        if edges.iter().enumerate().any(|(i, &(s, _))| s as usize != i) {
            let slots: Vec<u32> = edges.iter().map(|&(s, _)| s).collect();
            return Err(IrError::Verify(format!("{id}: operand slots {slots:?} are not 0..{}", slots.len())));
        }
        tys.clear();
        tys.extend(edges.iter().map(|&(_, o)| g.ty(o).clone()));
        let want = infer_type(&node.op, &tys).map_err(|r| IrError::Verify(format!("{id} = {}: {r}", node.op.name())))?;
        if want != node.ty {
            return Err(IrError::Verify(format!("{id} = {}: declared type {} but operands give {want}", node.op.name(), node.ty)));
        }
    }
    let mut out_names = HashSet::new();
    for (name, id) in g.outputs() {
        if !g.contains(*id) {
            return Err(IrError::Verify(format!("output `{name}` refers to missing node {id}")));
        }
        if !out_names.insert(name) {
            return Err(IrError::Verify(format!("output name `{name}` is used twice")));
        }
    }
    let mut upd_names = HashSet::new();
    for (name, id) in g.updates() {
        if !g.contains(*id) {
            return Err(IrError::Verify(format!("update of `{name}` refers to missing node {id}")));
        }
        if !upd_names.insert(name) {
            return Err(IrError::Verify(format!("`{name}` is updated twice")));
        }
        let input = names.get(name.as_str()).copied().ok_or_else(|| IrError::Verify(format!("update of unknown input `{name}`")))?;
        if g.ty(input) != g.ty(*id) {
            return Err(IrError::Verify(format!("update of `{name}`: {id} is {} but the input is {}", g.ty(*id), g.ty(input))));
        }
    }
    for r in g.grad_requests() {
        for id in std::iter::once(&r.loss).chain(r.wrt.iter()) {
            if !g.contains(*id) {
                return Err(IrError::Verify(format!("grad request refers to missing node {id}")));
            }
        }
    }
    Ok(())
}
