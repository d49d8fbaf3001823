//! The e-graph language: one e-node per IR op, attributes included.
//!
//! An e-node is an interned op (the full `kiln_ir::Op`, attributes and all,
//! stored once in an [`OpTable`]) plus its operand e-classes. Interning keeps
//! e-nodes small, cheap to hash and totally ordered, which egg needs, while
//! rules still read every attribute (`conv2d` stride, `permute` perm, the
//! constant's data) through the table. Inputs are leaves keyed by their graph
//! id; constants are leaves keyed by their value (equal constants share one
//! e-class, which is CSE for free).

use std::collections::HashMap;
use std::fmt;

use egg::{Analysis, DidMerge, Id, Language};
use kiln_ir::infer::infer_type;
use kiln_ir::{DType, HostTensor, InputRole, Op, TensorType, UnaryOp};

/// An op handle into the [`OpTable`].
pub type OpId = u32;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ENode {
    pub op: OpId,
    pub children: Vec<Id>,
}

impl Language for ENode {
    type Discriminant = OpId;

    fn discriminant(&self) -> OpId {
        self.op
    }

    fn matches(&self, other: &Self) -> bool {
        self.op == other.op && self.children.len() == other.children.len()
    }

    fn children(&self) -> &[Id] {
        &self.children
    }

    fn children_mut(&mut self) -> &mut [Id] {
        &mut self.children
    }
}

impl fmt::Display for ENode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op{}", self.op)
    }
}

/// What the analysis knows about a constant, computed once at interning.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ConstFacts {
    splat: Option<f64>,
    finite: bool,
    nonneg: bool,
}

fn const_facts(t: &HostTensor) -> ConstFacts {
    let v = t.to_f64_vec();
    let splat = match v.first() {
        Some(&f) if v.iter().all(|&x| x.to_bits() == f.to_bits()) => Some(f),
        _ => None,
    };
    ConstFacts { splat, finite: v.iter().all(|x| x.is_finite()), nonneg: v.iter().all(|&x| x >= 0.0) }
}

/// Interned ops. Inputs keep their declared type (it cannot be inferred).
#[derive(Debug, Default)]
pub struct OpTable {
    ops: Vec<Op>,
    declared: Vec<Option<TensorType>>,
    facts: Vec<Option<ConstFacts>>,
    index: HashMap<String, OpId>,
}

impl OpTable {
    /// Interns an op; `declared` is the type of an `Input`.
    pub fn intern(&mut self, op: Op, declared: Option<TensorType>) -> OpId {
        // Debug output is injective on everything an op holds (f32/f64 print
        // round-trippably), so it serves as the hash key without requiring
        // `Hash` on `Op`, which holds floats and tensors.
        let key = match &op {
            Op::Input { name, role } => format!("input {name} {role:?}"),
            other => format!("{other:?}"),
        };
        if let Some(&id) = self.index.get(&key) {
            return id;
        }
        let id = self.ops.len() as OpId;
        let facts = match &op {
            Op::Constant(t) => Some(const_facts(t)),
            _ => None,
        };
        self.ops.push(op);
        self.declared.push(declared);
        self.facts.push(facts);
        self.index.insert(key, id);
        id
    }

    pub fn op(&self, id: OpId) -> &Op {
        &self.ops[id as usize]
    }

    pub fn name(&self, id: OpId) -> &'static str {
        match &self.ops[id as usize] {
            Op::Constant(_) => "const",
            Op::Input { .. } => "input",
            op => op.name(),
        }
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Per-class facts. Every e-class holds values of one type; a rewrite whose
/// result would have another type is never unioned (see `saturate`).
#[derive(Debug, Clone)]
pub struct Data {
    /// `None` only if an ill-typed node slipped in; such classes are never
    /// matched or extracted.
    pub ty: Option<TensorType>,
    /// Every element equals this value (constants and views of them).
    pub splat: Option<f64>,
    /// A constant op in this class.
    pub konst: Option<OpId>,
    /// No element can be inf or NaN.
    pub finite: bool,
    /// No element is negative (NaN excluded too).
    pub nonneg: bool,
    /// Computable from constants, parameters and state only (no per-call
    /// data): what batch-norm folding needs.
    pub is_static: bool,
}

impl PartialEq for Data {
    // Bitwise on the splat so a NaN splat compares equal to itself; egg's
    // rebuild loops on "changed" merges otherwise.
    fn eq(&self, o: &Data) -> bool {
        self.ty == o.ty
            && self.splat.map(f64::to_bits) == o.splat.map(f64::to_bits)
            && self.konst == o.konst
            && self.finite == o.finite
            && self.nonneg == o.nonneg
            && self.is_static == o.is_static
    }
}

/// The analysis: the op table plus per-class [`Data`].
#[derive(Debug, Default)]
pub struct KAnalysis {
    pub ops: OpTable,
}

pub type EG = egg::EGraph<ENode, KAnalysis>;

impl Analysis<ENode> for KAnalysis {
    type Data = Data;

    fn make(eg: &mut EG, enode: &ENode, _id: Id) -> Data {
        let table = &eg.analysis.ops;
        let op = table.op(enode.op);
        let kids: Vec<&Data> = enode.children.iter().map(|&c| &eg[c].data).collect();
        let ty = match op {
            Op::Input { .. } => table.declared[enode.op as usize].clone(),
            _ => {
                let tys: Option<Vec<TensorType>> = kids.iter().map(|d| d.ty.clone()).collect();
                tys.and_then(|t| infer_type(op, &t).ok())
            }
        };
        let int_like = ty.as_ref().is_some_and(|t| !t.dtype.is_float());
        let all = |f: fn(&Data) -> bool| kids.iter().all(|d| f(d));
        let first = kids.first().copied();
        let mut data = Data {
            ty,
            splat: None,
            konst: None,
            finite: int_like,
            nonneg: false,
            is_static: false,
        };
        match op {
            Op::Constant(_) => {
                let f = table.facts[enode.op as usize].unwrap_or(ConstFacts { splat: None, finite: false, nonneg: false });
                data.splat = f.splat;
                data.finite |= f.finite;
                data.nonneg = f.nonneg;
                data.konst = Some(enode.op);
                data.is_static = true;
            }
            Op::Input { role, .. } => {
                data.is_static = matches!(role, InputRole::Param | InputRole::State);
            }
            _ => {
                data.is_static = all(|d| d.is_static);
                let view = matches!(op, Op::Reshape(_) | Op::Permute(_) | Op::BroadcastTo(_) | Op::StopGradient);
                if let (true, Some(k)) = (view, first) {
                    data.splat = k.splat;
                    data.finite |= k.finite;
                    data.nonneg = k.nonneg;
                }
                match op {
                    Op::Unary(u) => {
                        let kf = first.is_some_and(|k| k.finite);
                        let kn = first.is_some_and(|k| k.nonneg);
                        data.finite |= match u {
                            UnaryOp::Sigmoid | UnaryOp::Tanh | UnaryOp::Sin | UnaryOp::Cos | UnaryOp::Sign | UnaryOp::Erf => true,
                            UnaryOp::Relu | UnaryOp::Neg | UnaryOp::Abs => kf,
                            _ => false,
                        };
                        data.nonneg = match u {
                            UnaryOp::Exp | UnaryOp::Sigmoid | UnaryOp::Relu | UnaryOp::Abs => true,
                            UnaryOp::Sqrt | UnaryOp::Rsqrt | UnaryOp::Recip => kn,
                            _ => false,
                        };
                    }
                    Op::OneHot { .. } => {
                        data.finite = true;
                        data.nonneg = true;
                    }
                    Op::Cast(d) if d.is_float() => {
                        data.finite |= first.is_some_and(|k| k.ty.as_ref().is_some_and(|t| !t.dtype.is_float()));
                    }
                    Op::Slice { .. } | Op::Gather { .. } | Op::MaxPool2d(_) | Op::Concat { .. } => {
                        data.finite |= all(|d| d.finite);
                        data.nonneg = all(|d| d.nonneg);
                    }
                    Op::Binary(kiln_ir::BinaryOp::Mul | kiln_ir::BinaryOp::Add | kiln_ir::BinaryOp::Max) => {
                        data.nonneg = all(|d| d.nonneg);
                    }
                    Op::Select => {
                        data.finite |= kids.len() == 3 && kids[1].finite && kids[2].finite;
                        data.nonneg = kids.len() == 3 && kids[1].nonneg && kids[2].nonneg;
                    }
                    _ => {}
                }
            }
        }
        if data.ty.as_ref().is_some_and(|t| t.dtype == DType::Bool) {
            data.finite = true;
        }
        data
    }

    fn merge(&mut self, to: &mut Data, from: Data) -> DidMerge {
        let before = to.clone();
        if to.ty.is_none() {
            to.ty = from.ty.clone();
        }
        if to.splat.is_none() {
            to.splat = from.splat;
        }
        if to.konst.is_none() {
            to.konst = from.konst;
        }
        to.finite |= from.finite;
        to.nonneg |= from.nonneg;
        to.is_static |= from.is_static;
        DidMerge(*to != before, *to != from)
    }
}
