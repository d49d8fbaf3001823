//! The graph: nodes on a petgraph `StableGraph`, edges carry operand slots.

use std::collections::BTreeMap;
use std::fmt;

use petgraph::stable_graph::{NodeIndex, StableGraph};
use petgraph::visit::{EdgeRef, NodeIndexable};
use petgraph::Direction;
use rustc_hash::FxHashSet;

use crate::error::OperandInfo;
use crate::infer::infer_type;
use crate::{InputRole, IrError, Op, TensorType};

/// A node handle, printed `%N` everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl NodeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
    pub(crate) fn ix(self) -> NodeIndex<u32> {
        NodeIndex::new(self.0 as usize)
    }
}

impl From<NodeIndex<u32>> for NodeId {
    fn from(i: NodeIndex<u32>) -> NodeId {
        NodeId(i.index() as u32)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

/// One node: an op and its (inferred or declared) result type.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub op: Op,
    pub ty: TensorType,
}

/// A request to differentiate `loss` with respect to `wrt`, written `grad` in
/// the text format; the autodiff pass replaces it with gradient nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GradRequest {
    pub loss: NodeId,
    pub wrt: Vec<NodeId>,
}

/// A static computation graph.
///
/// Operands are edges `operand -> user` whose weight is the operand slot.
/// Named outputs are what a run returns; `updates` name a persistent input
/// (param/state) and the node holding its value after the run, which the
/// runtime writes back in place.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    g: StableGraph<Node, u32, petgraph::Directed, u32>,
    outputs: Vec<(String, NodeId)>,
    updates: Vec<(String, NodeId)>,
    grads: Vec<GradRequest>,
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    // ---- reading -------------------------------------------------------

    pub fn node(&self, id: NodeId) -> Result<&Node, IrError> {
        self.g.node_weight(id.ix()).ok_or(IrError::UnknownNode(id))
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.g.contains_node(id.ix())
    }

    /// The node's op. Panics on a stale id; use `node` for untrusted ids.
    pub fn op(&self, id: NodeId) -> &Op {
        &self.g[id.ix()].op
    }

    /// The node's type. Panics on a stale id; use `node` for untrusted ids.
    pub fn ty(&self, id: NodeId) -> &TensorType {
        &self.g[id.ix()].ty
    }

    pub fn node_count(&self) -> usize {
        self.g.node_count()
    }

    /// All node ids in increasing id order.
    pub fn node_ids(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.g.node_indices().map(NodeId::from).collect();
        v.sort();
        v
    }

    /// Operands in slot order.
    pub fn operands(&self, id: NodeId) -> Vec<NodeId> {
        let mut v = Vec::new();
        self.operand_slots_into(id, &mut v);
        v.into_iter().map(|(_, n)| n).collect()
    }

    /// `(slot, operand)` pairs in slot order, into `out` (cleared first):
    /// `operands` with the slots and without an allocation per call, for
    /// the verifier's walk over every node.
    pub(crate) fn operand_slots_into(&self, id: NodeId, out: &mut Vec<(u32, NodeId)>) {
        out.clear();
        out.extend(self.g.edges_directed(id.ix(), Direction::Incoming).map(|e| (*e.weight(), NodeId::from(e.source()))));
        out.sort_unstable();
    }

    /// Distinct users of a node, sorted by id.
    pub fn users(&self, id: NodeId) -> Vec<NodeId> {
        let mut v: Vec<NodeId> =
            self.g.neighbors_directed(id.ix(), Direction::Outgoing).map(NodeId::from).collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn outputs(&self) -> &[(String, NodeId)] {
        &self.outputs
    }

    pub fn updates(&self) -> &[(String, NodeId)] {
        &self.updates
    }

    pub fn grad_requests(&self) -> &[GradRequest] {
        &self.grads
    }

    pub fn take_grad_requests(&mut self) -> Vec<GradRequest> {
        std::mem::take(&mut self.grads)
    }

    pub fn output(&self, name: &str) -> Option<NodeId> {
        self.outputs.iter().find(|(n, _)| n == name).map(|&(_, id)| id)
    }

    /// Named inputs of every role, sorted by id.
    pub fn inputs(&self) -> Vec<(NodeId, &str, InputRole)> {
        self.node_ids()
            .into_iter()
            .filter_map(|id| match &self.g[id.ix()].op {
                Op::Input { name, role } => Some((id, name.as_str(), *role)),
                _ => None,
            })
            .collect()
    }

    /// The input named `name` (the lowest id if a malformed graph has two).
    pub fn find_input(&self, name: &str) -> Option<NodeId> {
        // Indices come in ascending order: no collecting and sorting every id.
        self.g.node_indices().find(|&ix| matches!(&self.g[ix].op, Op::Input { name: n, .. } if n == name)).map(NodeId::from)
    }

    /// Nodes in a topological order; ties broken by smallest id, so the order
    /// is deterministic.
    pub fn topo_order(&self) -> Result<Vec<NodeId>, IrError> {
        // In-degrees by node index (a StableGraph's indices are below
        // `node_bound`; vacant ones stay unused) and a min-heap of ready
        // ids: the same order as a sorted ready set, without hashing.
        let mut indeg = vec![0usize; self.g.node_bound()];
        let mut ready = std::collections::BinaryHeap::new();
        for ix in self.g.node_indices() {
            let d = self.g.edges_directed(ix, Direction::Incoming).count();
            indeg[ix.index()] = d;
            if d == 0 {
                ready.push(std::cmp::Reverse(NodeId::from(ix)));
            }
        }
        let mut order = Vec::with_capacity(self.g.node_count());
        while let Some(std::cmp::Reverse(id)) = ready.pop() {
            order.push(id);
            for e in self.g.edges_directed(id.ix(), Direction::Outgoing) {
                let d = &mut indeg[e.target().index()];
                *d -= 1;
                if *d == 0 {
                    ready.push(std::cmp::Reverse(NodeId::from(e.target())));
                }
            }
        }
        if order.len() != self.g.node_count() {
            return Err(IrError::Verify("the graph has a cycle".into()));
        }
        Ok(order)
    }

    // ---- building ------------------------------------------------------

    fn operand_info(&self, operands: &[NodeId]) -> Result<Vec<OperandInfo>, IrError> {
        operands.iter().map(|&id| Ok(OperandInfo { id, ty: self.node(id)?.ty.clone() })).collect()
    }

    /// Adds a named input of the given role and declared type.
    pub fn add_input(&mut self, name: &str, role: InputRole, ty: TensorType) -> Result<NodeId, IrError> {
        if self.find_input(name).is_some() {
            return Err(IrError::DuplicateName(name.to_string()));
        }
        crate::infer::check_addressable(&ty).map_err(|reason| IrError::Type {
            op: role.name(),
            operands: vec![],
            reason: format!("`{name}`: {reason}"),
        })?;
        Ok(self.g.add_node(Node { op: Op::Input { name: name.to_string(), role }, ty }).into())
    }

    /// Adds an op node after checking operand types; the error names the op,
    /// each operand's `%N` and type, and the reason.
    pub fn apply(&mut self, op: Op, operands: &[NodeId]) -> Result<NodeId, IrError> {
        let infos = self.operand_info(operands)?;
        let tys: Vec<TensorType> = infos.iter().map(|o| o.ty.clone()).collect();
        let ty = infer_type(&op, &tys).map_err(|reason| IrError::Type { op: op.name(), operands: infos, reason })?;
        Ok(self.add_typed(op, ty, operands))
    }

    /// Adds a node with a type the caller has already checked (the parser and
    /// passes use this; the verifier re-checks it).
    pub fn add_typed(&mut self, op: Op, ty: TensorType, operands: &[NodeId]) -> NodeId {
        let id = self.g.add_node(Node { op, ty });
        for (slot, &o) in operands.iter().enumerate() {
            self.g.add_edge(o.ix(), id, slot as u32);
        }
        id.into()
    }

    /// Names `id` as an output. Names are unique among outputs.
    pub fn set_output(&mut self, name: &str, id: NodeId) -> Result<(), IrError> {
        self.node(id)?;
        if self.outputs.iter().any(|(n, _)| n == name) {
            return Err(IrError::DuplicateName(name.to_string()));
        }
        self.outputs.push((name.to_string(), id));
        Ok(())
    }

    pub fn remove_output(&mut self, name: &str) -> Option<NodeId> {
        let i = self.outputs.iter().position(|(n, _)| n == name)?;
        Some(self.outputs.remove(i).1)
    }

    /// Declares that persistent input `name` takes the value of `id` after a
    /// run (written back in place by the runtime).
    pub fn set_update(&mut self, name: &str, id: NodeId) -> Result<(), IrError> {
        let input = self.find_input(name).ok_or_else(|| IrError::UnknownName(name.to_string()))?;
        match self.op(input) {
            Op::Input { role, .. } if role.is_persistent() => {}
            _ => return Err(IrError::Verify(format!("update target `{name}` is not a param or state input"))),
        }
        if self.ty(input) != &self.node(id)?.ty {
            return Err(IrError::Verify(format!(
                "update of `{name}` has type {} but the input is {}",
                self.ty(id),
                self.ty(input)
            )));
        }
        if self.updates.iter().any(|(n, _)| n == name) {
            return Err(IrError::DuplicateName(name.to_string()));
        }
        self.updates.push((name.to_string(), id));
        Ok(())
    }

    pub fn add_grad_request(&mut self, loss: NodeId, wrt: Vec<NodeId>) -> Result<(), IrError> {
        self.node(loss)?;
        for &w in &wrt {
            self.node(w)?;
        }
        self.grads.push(GradRequest { loss, wrt });
        Ok(())
    }

    // ---- rewriting -----------------------------------------------------

    /// Points every use of `old` (operands, outputs, updates, grad requests) at `new`.
    pub fn replace_all_uses(&mut self, old: NodeId, new: NodeId) {
        if old == new {
            return;
        }
        let uses: Vec<(NodeId, u32, petgraph::stable_graph::EdgeIndex<u32>)> = self
            .g
            .edges_directed(old.ix(), Direction::Outgoing)
            .map(|e| (NodeId::from(e.target()), *e.weight(), e.id()))
            .collect();
        for (user, slot, eid) in uses {
            self.g.remove_edge(eid);
            self.g.add_edge(new.ix(), user.ix(), slot);
        }
        for (_, id) in self.outputs.iter_mut().chain(self.updates.iter_mut()) {
            if *id == old {
                *id = new;
            }
        }
        for r in &mut self.grads {
            if r.loss == old {
                r.loss = new;
            }
            for w in &mut r.wrt {
                if *w == old {
                    *w = new;
                }
            }
        }
    }

    /// Replaces a node's op, type and operands in place (same id).
    pub fn rewrite(&mut self, id: NodeId, op: Op, ty: TensorType, operands: &[NodeId]) {
        let old: Vec<_> = self.g.edges_directed(id.ix(), Direction::Incoming).map(|e| e.id()).collect();
        for e in old {
            self.g.remove_edge(e);
        }
        self.g[id.ix()] = Node { op, ty };
        for (slot, &o) in operands.iter().enumerate() {
            self.g.add_edge(o.ix(), id.ix(), slot as u32);
        }
    }

    /// Removes a node and its edges. The caller keeps the graph consistent
    /// (DCE removes only unused nodes).
    pub fn remove_node(&mut self, id: NodeId) -> Option<Node> {
        self.g.remove_node(id.ix())
    }

    /// Removes every node `remove` picks, with its edges, in one rebuild
    /// (O(nodes + edges)) that keeps every other node's and edge's index;
    /// returns how many were removed. Removing nodes one at a time walks
    /// each operand's edge list to unlink the edge, which is quadratic for
    /// a weight read by a thousand steps of an unrolled LSTM.
    pub fn remove_nodes_where(&mut self, mut remove: impl FnMut(NodeId) -> bool) -> usize {
        let before = self.g.node_count();
        let g = std::mem::take(&mut self.g);
        self.g = g.filter_map_owned(|ix, n| (!remove(NodeId::from(ix))).then_some(n), |_, e| Some(e));
        before - self.g.node_count()
    }

    /// Nodes that outputs, updates and grad requests depend on.
    pub fn live_nodes(&self) -> FxHashSet<NodeId> {
        let mut live = FxHashSet::default();
        let mut stack: Vec<NodeId> = self.outputs.iter().chain(self.updates.iter()).map(|(_, id)| *id).collect();
        for r in &self.grads {
            stack.push(r.loss);
            stack.extend(r.wrt.iter().copied());
        }
        while let Some(id) = stack.pop() {
            if live.insert(id) {
                stack.extend(self.operands(id));
            }
        }
        live
    }

    /// The underlying petgraph (for Graphviz output and algorithms).
    pub fn petgraph(&self) -> &StableGraph<Node, u32, petgraph::Directed, u32> {
        &self.g
    }

    /// Reserves `n` placeholder slots so ids from a text file can be kept; the
    /// parser fills them with `fill_placeholder` and drops the rest.
    pub(crate) fn raw_add_node(&mut self, node: Node) -> NodeId {
        self.g.add_node(node).into()
    }

    pub(crate) fn raw_set_node(&mut self, id: NodeId, node: Node) {
        self.g[id.ix()] = node;
    }

    pub(crate) fn raw_add_edge(&mut self, from: NodeId, to: NodeId, slot: u32) {
        self.g.add_edge(from.ix(), to.ix(), slot);
    }

    pub(crate) fn raw_outputs_mut(&mut self) -> &mut Vec<(String, NodeId)> {
        &mut self.outputs
    }

    pub(crate) fn raw_updates_mut(&mut self) -> &mut Vec<(String, NodeId)> {
        &mut self.updates
    }

    pub(crate) fn raw_grads_mut(&mut self) -> &mut Vec<GradRequest> {
        &mut self.grads
    }

    /// Named inputs by name.
    pub fn input_map(&self) -> BTreeMap<String, (NodeId, InputRole, TensorType)> {
        self.inputs()
            .into_iter()
            .map(|(id, n, r)| (n.to_string(), (id, r, self.ty(id).clone())))
            .collect()
    }
}
