//! Running whole graphs: the free functions `run_graph*` and the
//! `Interpreter` backend with its stateful executable.

use std::collections::BTreeMap;

use kiln_ir::{Backend, Executable, Graph, HostTensor, NodeId, Op, RunError, Signature, TensorType};

use crate::eval::eval;
use crate::value::Val;
use crate::{InterpError, Precision};

/// The result of one run: named outputs and the new values of updated
/// params/state (keyed by the param/state name).
#[derive(Debug, Clone, PartialEq)]
pub struct GraphRun {
    pub outputs: BTreeMap<String, HostTensor>,
    pub updates: BTreeMap<String, HostTensor>,
}

/// Whether a given tensor is acceptable for a declared type: exact match,
/// or in f64 mode any float dtype for a float declaration.
fn type_ok(want: &TensorType, got: &TensorType, precision: Precision) -> bool {
    want == got
        || (precision == Precision::F64 && want.dtype.is_float() && got.dtype.is_float() && want.shape == got.shape)
}

/// `sig` with each float input's declared dtype replaced by the dtype of the
/// float tensor actually given, so `Signature` checks accept f32 or f64 in
/// f64 mode. In f32 mode the signature is used as is.
fn relaxed<'a>(sig: &Signature, given: impl Fn(&str) -> Option<&'a HostTensor>, precision: Precision) -> Signature {
    let mut s = sig.clone();
    if precision == Precision::F64 {
        for i in &mut s.inputs {
            if let Some(t) = given(&i.name)
                && type_ok(&i.ty, &t.ty(), precision)
            {
                i.ty = t.ty();
            }
        }
    }
    s
}

fn node_error(id: NodeId, op: &Op, e: InterpError) -> RunError {
    match e {
        InterpError::IndexOutOfRange { index, bound } => RunError::IndexOutOfRange { node: id.to_string(), index, bound },
        InterpError::Invalid(m) => RunError::Backend(format!("{id} = {}: {m}", op.name())),
    }
}

/// Nodes needed for the outputs and updates, in topological order.
fn live_order(g: &Graph) -> Result<Vec<NodeId>, RunError> {
    let live = g.live_nodes();
    let order = g.topo_order().map_err(|e| RunError::Backend(e.to_string()))?;
    Ok(order.into_iter().filter(|id| live.contains(id)).collect())
}

/// Evaluates `order`; `lookup` supplies every named input's (already checked)
/// value. Values are dropped after their last use unless `keep_all`.
fn execute<'a>(
    g: &Graph,
    order: &[NodeId],
    lookup: impl Fn(&str) -> Option<&'a HostTensor>,
    precision: Precision,
    keep_all: bool,
) -> Result<Vec<Option<Val>>, RunError> {
    let slots = order.iter().map(|id| id.index() + 1).max().unwrap_or(0);
    let mut uses = vec![0usize; slots];
    for &id in order {
        for o in g.operands(id) {
            uses[o.index()] += 1;
        }
    }
    let mut pinned = vec![false; slots];
    for (_, id) in g.outputs().iter().chain(g.updates()) {
        pinned[id.index()] = true;
    }
    let mut vals: Vec<Option<Val>> = vec![None; slots];
    for &id in order {
        let node = g.node(id).map_err(|e| RunError::Backend(e.to_string()))?;
        let v = match &node.op {
            Op::Input { name, .. } => {
                let t = lookup(name).ok_or_else(|| RunError::MissingInput(name.clone()))?;
                Val { ty: node.ty.clone(), data: t.to_f64_vec() }
            }
            op => {
                let operands = g.operands(id);
                let args: Vec<&Val> = operands
                    .iter()
                    .map(|o| vals[o.index()].as_ref().expect("operands precede their users in topological order"))
                    .collect();
                let v = eval(op, &node.ty, &args, precision).map_err(|e| node_error(id, op, e))?;
                if !keep_all {
                    for o in &operands {
                        uses[o.index()] -= 1;
                        if uses[o.index()] == 0 && !pinned[o.index()] {
                            vals[o.index()] = None;
                        }
                    }
                }
                v
            }
        };
        vals[id.index()] = Some(v);
    }
    Ok(vals)
}

/// Checks `values` against every named input of `g` (all roles): each present
/// with an acceptable type and finite values, nothing unknown.
fn check_all(g: &Graph, values: &BTreeMap<String, HostTensor>, precision: Precision) -> Result<(), RunError> {
    let inputs = g.input_map();
    for name in values.keys() {
        if !inputs.contains_key(name) {
            let known = inputs.keys().cloned().collect::<Vec<_>>().join(", ");
            return Err(RunError::UnexpectedInput { name: name.clone(), known });
        }
    }
    for (name, (_, _, ty)) in &inputs {
        let t = values.get(name).ok_or_else(|| RunError::MissingInput(name.clone()))?;
        if !type_ok(ty, &t.ty(), precision) {
            return Err(RunError::InputType { name: name.clone(), expected: ty.clone(), got: t.ty() });
        }
        if t.has_non_finite() {
            return Err(RunError::NonFinite { name: name.clone() });
        }
    }
    Ok(())
}

fn verify(g: &Graph) -> Result<(), RunError> {
    kiln_ir::verify(g).map_err(|e| RunError::Backend(format!("graph does not verify: {e}")))
}

fn collect(g: &Graph, vals: &[Option<Val>], precision: Precision) -> GraphRun {
    let get = |id: &NodeId| vals[id.index()].as_ref().expect("outputs and updates are live").to_host(precision);
    GraphRun {
        outputs: g.outputs().iter().map(|(n, id)| (n.clone(), get(id))).collect(),
        updates: g.updates().iter().map(|(n, id)| (n.clone(), get(id))).collect(),
    }
}

/// Runs `g` once. `values` holds every named input, params and state
/// included; returns the named outputs. Pending grad requests are ignored
/// (they do not affect outputs). See [`run_graph_full`] for the updates.
pub fn run_graph(g: &Graph, values: &BTreeMap<String, HostTensor>, precision: Precision) -> Result<BTreeMap<String, HostTensor>, RunError> {
    Ok(run_graph_full(g, values, precision)?.outputs)
}

/// Like [`run_graph`], also returning the new value of every updated
/// param/state under its own name (nothing is written anywhere).
pub fn run_graph_full(g: &Graph, values: &BTreeMap<String, HostTensor>, precision: Precision) -> Result<GraphRun, RunError> {
    verify(g)?;
    check_all(g, values, precision)?;
    let order = live_order(g)?;
    let vals = execute(g, &order, |n| values.get(n), precision, false)?;
    Ok(collect(g, &vals, precision))
}

/// Evaluates every node of `g` (live or not) and returns each value by id;
/// for debugging differences between backends node by node.
pub fn run_graph_nodes(g: &Graph, values: &BTreeMap<String, HostTensor>, precision: Precision) -> Result<BTreeMap<NodeId, HostTensor>, RunError> {
    verify(g)?;
    check_all(g, values, precision)?;
    let order = g.topo_order().map_err(|e| RunError::Backend(e.to_string()))?;
    let vals = execute(g, &order, |n| values.get(n), precision, true)?;
    Ok(order.iter().filter_map(|id| vals[id.index()].as_ref().map(|v| (*id, v.to_host(precision)))).collect())
}

/// The reference backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Interpreter {
    pub precision: Precision,
}

impl Interpreter {
    pub fn new(precision: Precision) -> Interpreter {
        Interpreter { precision }
    }

    /// The f32 interpreter (what other backends are compared against).
    pub fn f32() -> Interpreter {
        Interpreter { precision: Precision::F32 }
    }

    /// The f64 interpreter (for finite-difference gradient checks).
    pub fn f64() -> Interpreter {
        Interpreter { precision: Precision::F64 }
    }
}

impl Backend for Interpreter {
    fn name(&self) -> &'static str {
        "interp"
    }

    fn compile(&self, graph: &Graph) -> Result<Box<dyn Executable>, RunError> {
        Ok(Box::new(InterpExecutable::new(graph, self.precision)?))
    }
}

/// A graph ready to run on the interpreter, holding params/state between
/// runs.
#[derive(Debug, Clone)]
pub struct InterpExecutable {
    graph: Graph,
    order: Vec<NodeId>,
    sig: Signature,
    state: BTreeMap<String, HostTensor>,
    precision: Precision,
}

impl InterpExecutable {
    /// Verifies the graph and rejects pending grad requests (run the autodiff
    /// pass first: the interpreter cannot compute what is not in the graph).
    pub fn new(graph: &Graph, precision: Precision) -> Result<InterpExecutable, RunError> {
        verify(graph)?;
        if let Some(r) = graph.grad_requests().first() {
            return Err(RunError::Backend(format!(
                "the graph has {} pending grad request(s) (first: d{}/d[{}]); run the autodiff pass before compiling",
                graph.grad_requests().len(),
                r.loss,
                r.wrt.iter().map(|w| w.to_string()).collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(InterpExecutable {
            order: live_order(graph)?,
            sig: Signature::of(graph),
            graph: graph.clone(),
            state: BTreeMap::new(),
            precision,
        })
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }
}

impl Executable for InterpExecutable {
    fn signature(&self) -> &Signature {
        &self.sig
    }

    fn set_state(&mut self, name: &str, value: HostTensor) -> Result<(), RunError> {
        relaxed(&self.sig, |n| (n == name).then_some(&value), self.precision).check_state(name, &value)?;
        self.state.insert(name.to_string(), value);
        Ok(())
    }

    fn state(&self, name: &str) -> Option<HostTensor> {
        self.state.get(name).cloned()
    }

    fn run(&mut self, inputs: &BTreeMap<String, HostTensor>) -> Result<BTreeMap<String, HostTensor>, RunError> {
        relaxed(&self.sig, |n| inputs.get(n), self.precision).check_inputs(inputs)?;
        for i in self.sig.inputs.iter().filter(|i| i.role.is_persistent()) {
            if !self.state.contains_key(&i.name) {
                return Err(RunError::UnsetState(i.name.clone()));
            }
        }
        let state = &self.state;
        let vals = execute(&self.graph, &self.order, |n| inputs.get(n).or_else(|| state.get(n)), self.precision, false)?;
        let GraphRun { outputs, updates } = collect(&self.graph, &vals, self.precision);
        // Written back only after the whole run succeeded.
        self.state.extend(updates);
        Ok(outputs)
    }
}
