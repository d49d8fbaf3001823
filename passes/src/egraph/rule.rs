//! Rules: a pattern, a topic group, and a checked applier.
//!
//! Appliers build their right-hand side through [`Ctx::add`], which runs
//! `kiln_ir::infer::infer_type` on every new node and refuses (returns
//! `None`) on a type error, so an applier can never add an ill-typed node.
//! The saturation loop then unions the result with the match only when the
//! types are equal. Appliers return `None` for "does not apply" and never
//! panic.

use std::fmt;

use egg::Id;
use kiln_ir::infer::infer_type;
use kiln_ir::{DType, HostTensor, Op, Shape, TensorType};

use super::lang::{Data, ENode, OpId, EG};
use super::pattern::{Match, Pattern};

/// The topic a rule belongs to; each can be switched off in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    Algebra,
    Fusion,
    Layout,
}

impl Group {
    pub const ALL: [Group; 3] = [Group::Algebra, Group::Fusion, Group::Layout];
    pub fn name(self) -> &'static str {
        match self {
            Group::Algebra => "algebra",
            Group::Fusion => "fusion",
            Group::Layout => "layout",
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

pub type ApplyFn = fn(&mut Ctx<'_>, &Bind<'_>) -> Option<Id>;

pub struct Rule {
    pub name: &'static str,
    pub group: Group,
    pub pattern: Pattern,
    pub apply: ApplyFn,
}

impl Rule {
    /// Builds a rule from static pattern text.
    pub fn new(name: &'static str, group: Group, pattern: &str, apply: ApplyFn) -> Result<Rule, String> {
        let pattern = Pattern::parse(pattern).map_err(|e| format!("rule `{name}`: {e}"))?;
        Ok(Rule { name, group, pattern, apply })
    }
}

/// A match seen through its rule's variable and capture names.
pub struct Bind<'a> {
    pub pat: &'a Pattern,
    pub m: &'a Match,
}

impl Bind<'_> {
    /// The class bound to `?name`.
    pub fn v(&self, name: &str) -> Option<Id> {
        self.m.var_at(self.pat.var_index(name)?)
    }
    /// The e-node captured as `@name`.
    pub fn cap(&self, name: &str) -> Option<&ENode> {
        self.m.cap_at(self.pat.cap_index(name)?).map(|(n, _)| n)
    }
    pub fn root(&self) -> Id {
        self.m.root
    }
}

/// Where a rule-created e-node came from: the rule, and the matched e-nodes
/// (op and class) that were themselves created by rules or are fused ops.
#[derive(Debug, Clone)]
pub struct ProvEntry {
    pub class: Id,
    pub op: OpId,
    pub rule: &'static str,
    pub from: Vec<(OpId, Id)>,
}

#[derive(Debug, Default)]
pub struct Provenance {
    pub entries: Vec<ProvEntry>,
}

impl Provenance {
    /// Entries for an e-node of op `op` in `class` (classes canonicalized).
    pub fn find(&self, eg: &EG, op: OpId, class: Id) -> Vec<&ProvEntry> {
        let c = eg.find(class);
        self.entries.iter().filter(|e| e.op == op && eg.find(e.class) == c).collect()
    }
}

/// What an applier works with.
pub struct Ctx<'a> {
    pub eg: &'a mut EG,
    pub prov: &'a mut Provenance,
    pub rule: &'static str,
    pub matched: &'a [(ENode, Id)],
}

impl Ctx<'_> {
    pub fn data(&self, id: Id) -> &Data {
        &self.eg[id].data
    }

    pub fn ty(&self, id: Id) -> Option<TensorType> {
        self.eg[id].data.ty.clone()
    }

    pub fn shape(&self, id: Id) -> Option<Vec<usize>> {
        self.eg[id].data.ty.as_ref().map(|t| t.shape.0.clone())
    }

    pub fn op(&self, n: &ENode) -> &Op {
        self.eg.analysis.ops.op(n.op)
    }

    pub fn splat(&self, id: Id) -> Option<f64> {
        self.eg[id].data.splat
    }

    /// The constant tensor in `id`'s class, if any.
    pub fn konst(&self, id: Id) -> Option<&HostTensor> {
        match self.eg.analysis.ops.op(self.eg[id].data.konst?) {
            Op::Constant(t) => Some(t),
            _ => None,
        }
    }

    /// Adds `op(children)` after type-checking it; `None` on a type error.
    pub fn add(&mut self, op: Op, children: &[Id]) -> Option<Id> {
        if matches!(op, Op::Input { .. }) {
            return None;
        }
        let children: Vec<Id> = children.iter().map(|&c| self.eg.find(c)).collect();
        let tys: Option<Vec<TensorType>> = children.iter().map(|&c| self.eg[c].data.ty.clone()).collect();
        infer_type(&op, &tys?).ok()?;
        let op_id = self.eg.analysis.ops.intern(op, None);
        let node = ENode { op: op_id, children };
        if let Some(existing) = self.eg.lookup(node.clone()) {
            return Some(existing);
        }
        let class = self.eg.add(node);
        let from = self
            .matched
            .iter()
            .filter(|(n, _)| !self.eg.analysis.ops.op(n.op).is_source())
            .map(|(n, c)| (n.op, *c))
            .collect();
        self.prov.entries.push(ProvEntry { class, op: op_id, rule: self.rule, from });
        Some(class)
    }

    /// A scalar constant of the given dtype.
    pub fn scalar(&mut self, v: f64, dtype: DType) -> Option<Id> {
        let t = HostTensor::from_f64_values(&TensorType::new(dtype, Shape::scalar()), &[v]);
        self.add(Op::Constant(t), &[])
    }

    /// `x` reshaped to `dims` (`x` itself when it already has that shape).
    pub fn reshape(&mut self, x: Id, dims: &[usize]) -> Option<Id> {
        if self.shape(x)? == dims {
            return Some(x);
        }
        self.add(Op::Reshape(Shape(dims.to_vec())), &[x])
    }

    /// `x` broadcast to `dims` (`x` itself when it already has that shape).
    pub fn broadcast(&mut self, x: Id, dims: &[usize]) -> Option<Id> {
        if self.shape(x)? == dims {
            return Some(x);
        }
        self.add(Op::BroadcastTo(Shape(dims.to_vec())), &[x])
    }
}
