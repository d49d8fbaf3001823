//! The loop program of an elementwise or reduction kernel: a DAG of scalar
//! instructions evaluated at every point of a loop nest, reading leaves
//! through per-dimension strides (0 where a leaf broadcasts) and storing or
//! accumulating results. Every backend lowers loops from this one form (the
//! CPU to Cranelift, the GPU to WGSL), so fusion means the same everywhere.
//! A leaf's `slot` is whatever the backend's `slot` function says a buffer
//! is (a slot index on the CPU, a word offset on the GPU).

use kiln_ir::{BinaryOp, CompareOp, DType, Graph, NodeId, Op, ReduceOp, UnaryOp};
use rustc_hash::FxHashMap;

use crate::partition::{Kernel, KernelKind};
use crate::PassError;

fn internal(message: String) -> PassError {
    PassError::Failed { pass: "loop_program".into(), message }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Leaf {
    pub node: NodeId,
    pub slot: usize,
    pub dtype: DType,
    /// Element strides per loop dimension (0 = broadcast).
    pub strides: Vec<isize>,
    /// Elements from the buffer start to the first read: a fused slice's
    /// start. Added to the pointer handed to compiled code, so kernels that
    /// differ only in where they read share one function.
    pub offset: usize,
    /// A one-element f32/f64 constant, folded into the code.
    pub constant: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ins {
    Leaf(usize),
    Unary(UnaryOp, usize),
    Binary(BinaryOp, usize, usize),
    Compare(CompareOp, usize, usize),
    Select(usize, usize, usize),
    /// Converts the operand to this instruction's dtype.
    Cast(usize),
    /// `broadcast_to`: the leaf strides already broadcast.
    Copy(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Instr {
    pub ins: Ins,
    pub dtype: DType,
    pub node: Option<NodeId>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Store {
    pub instr: usize,
    pub node: NodeId,
    pub slot: usize,
    pub dtype: DType,
    pub strides: Vec<isize>,
    /// `Some` for a reduction: combine into the (pre-initialized) output.
    pub reduce: Option<ReduceOp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    pub dims: Vec<usize>,
    pub leaves: Vec<Leaf>,
    pub instrs: Vec<Instr>,
    pub stores: Vec<Store>,
}

pub fn row_major(dims: &[usize]) -> Vec<isize> {
    kiln_ir::row_major_strides(dims).into_iter().map(|s| s as isize).collect()
}

/// Strides of a value of shape `s` read at the points of loop `dims`.
pub fn broadcast_strides(s: &[usize], dims: &[usize]) -> Vec<isize> {
    kiln_ir::broadcast_strides(s, dims).into_iter().map(|s| s as isize).collect()
}

pub fn reduce_identity(op: ReduceOp) -> f64 {
    match op {
        ReduceOp::Sum | ReduceOp::Mean => 0.0,
        ReduceOp::Max => f64::NEG_INFINITY,
        ReduceOp::Min => f64::INFINITY,
    }
}

/// Builds the program of an elementwise, reduction, or contraction-epilogue
/// kernel. `slot` maps a value to its buffer slot, `scalar_const` gives the
/// value of one-element float constants.
pub fn build(
    g: &Graph,
    k: &Kernel,
    slot: &dyn Fn(NodeId) -> usize,
    scalar_const: &dyn Fn(NodeId) -> Option<f64>,
) -> Result<Program, PassError> {
    let dims = k.shape.0.clone();
    let mut leaves: Vec<Leaf> = Vec::new();
    let mut instrs: Vec<Instr> = Vec::new();
    let mut at: FxHashMap<NodeId, usize> = FxHashMap::default();
    let fused: rustc_hash::FxHashSet<NodeId> = k.fused.iter().copied().collect();
    let value = |n: NodeId, leaves: &mut Vec<Leaf>, instrs: &mut Vec<Instr>, at: &mut FxHashMap<NodeId, usize>| -> usize {
        if let Some(&i) = at.get(&n) {
            return i;
        }
        debug_assert!(!fused.contains(&n));
        let ty = g.ty(n);
        let li = leaves.len();
        leaves.push(Leaf {
            node: n,
            slot: slot(n),
            dtype: ty.dtype,
            strides: broadcast_strides(&ty.shape.0, &dims),
            offset: 0,
            constant: if ty.dtype.is_float() { scalar_const(n) } else { None },
        });
        instrs.push(Instr { ins: Ins::Leaf(li), dtype: ty.dtype, node: Some(n) });
        at.insert(n, instrs.len() - 1);
        instrs.len() - 1
    };
    for &n in &k.fused {
        if let Op::Slice { start, step, .. } = g.op(n) {
            let leaf = slice_leaf(g, n, start, step, &dims, slot, scalar_const)?;
            leaves.push(leaf);
            instrs.push(Instr { ins: Ins::Leaf(leaves.len() - 1), dtype: g.ty(n).dtype, node: Some(n) });
            at.insert(n, instrs.len() - 1);
            continue;
        }
        let ops = g.operands(n);
        let mut v: Vec<usize> = Vec::new();
        for &o in &ops {
            v.push(value(o, &mut leaves, &mut instrs, &mut at));
        }
        let ins = match g.op(n) {
            Op::Unary(u) => Ins::Unary(*u, v[0]),
            Op::Binary(b) => Ins::Binary(*b, v[0], v[1]),
            Op::Compare(c) => Ins::Compare(*c, v[0], v[1]),
            Op::Select => Ins::Select(v[0], v[1], v[2]),
            Op::Cast(_) => Ins::Cast(v[0]),
            Op::BroadcastTo(_) | Op::StopGradient | Op::Reshape(_) => Ins::Copy(v[0]),
            other => return Err(internal(format!("{n}: {} in an elementwise loop", other.name()))),
        };
        instrs.push(Instr { ins, dtype: g.ty(n).dtype, node: Some(n) });
        at.insert(n, instrs.len() - 1);
    }
    let contiguous = row_major(&dims);
    let mut stores: Vec<Store> = Vec::new();
    for &o in &k.outputs {
        if fused.contains(&o) {
            stores.push(Store { instr: at[&o], node: o, slot: slot(o), dtype: g.ty(o).dtype, strides: contiguous.clone(), reduce: None });
        }
    }
    if k.kind == KernelKind::Reduce {
        let r = k.anchor.expect("a reduce kernel has an anchor");
        let Op::Reduce { op, axes, .. } = g.op(r) else { return Err(internal(format!("{r} is not a reduction"))) };
        let src = g.operands(r)[0];
        let vi = value(src, &mut leaves, &mut instrs, &mut at);
        // Output strides over the input's loop: 0 on reduced axes.
        let kept: Vec<usize> = (0..dims.len()).filter(|d| !axes.contains(d)).map(|d| dims[d]).collect();
        let krm = row_major(&kept);
        let mut strides = vec![0isize; dims.len()];
        let mut j = 0;
        for (d, s) in strides.iter_mut().enumerate() {
            if !axes.contains(&d) {
                *s = if dims[d] == 1 { 0 } else { krm[j] };
                j += 1;
            }
        }
        stores.push(Store { instr: vi, node: r, slot: slot(r), dtype: g.ty(r).dtype, strides, reduce: Some(*op) });
    }
    Ok(Program { dims, leaves, instrs, stores })
}

/// A fused slice as a strided read of its operand's buffer (the partition
/// only fuses a slice into a loop of the slice's own shape).
fn slice_leaf(
    g: &Graph,
    n: NodeId,
    start: &[usize],
    step: &[usize],
    dims: &[usize],
    slot: &dyn Fn(NodeId) -> usize,
    scalar_const: &dyn Fn(NodeId) -> Option<f64>,
) -> Result<Leaf, PassError> {
    let src = g.operands(n)[0];
    let ty = g.ty(n);
    if ty.shape.0 != dims {
        return Err(internal(format!("{n}: slice of shape {} fused into a loop over {:?}", ty.shape, dims)));
    }
    let rm = kiln_ir::row_major_strides(&g.ty(src).shape.0);
    let offset: usize = start.iter().zip(&rm).map(|(&s, &r)| s * r).sum();
    let strides = (0..dims.len()).map(|d| if dims[d] == 1 { 0 } else { (rm[d] * step[d]) as isize }).collect();
    // A one-element float constant sliced is that same element.
    let constant = if ty.dtype.is_float() && ty.numel() == 1 { scalar_const(src) } else { None };
    Ok(Leaf { node: src, slot: slot(src), dtype: ty.dtype, strides, offset, constant })
}

impl Program {
    /// The loop nest after dropping unit dimensions and merging dimensions
    /// every access walks contiguously: (dims, strides per leaf, per store).
    pub fn collapsed(&self) -> (Vec<usize>, Vec<Vec<isize>>, Vec<Vec<isize>>) {
        let keep: Vec<usize> = (0..self.dims.len()).filter(|&d| self.dims[d] != 1).collect();
        let mut dims: Vec<usize> = keep.iter().map(|&d| self.dims[d]).collect();
        let pick = |s: &Vec<isize>| keep.iter().map(|&d| s[d]).collect::<Vec<isize>>();
        let mut ls: Vec<Vec<isize>> = self.leaves.iter().map(|l| pick(&l.strides)).collect();
        let mut ss: Vec<Vec<isize>> = self.stores.iter().map(|s| pick(&s.strides)).collect();
        let mut d = dims.len();
        while d >= 2 {
            let i = d - 2;
            let ok = ls.iter().chain(ss.iter()).all(|s| s[i] == s[i + 1] * dims[i + 1] as isize);
            if ok {
                dims[i] *= dims[i + 1];
                dims.remove(i + 1);
                for s in ls.iter_mut().chain(ss.iter_mut()) {
                    s[i] = s[i + 1];
                    s.remove(i + 1);
                }
            }
            d -= 1;
        }
        if dims.is_empty() {
            dims.push(1);
            for s in ls.iter_mut().chain(ss.iter_mut()) {
                s.push(0);
            }
        }
        (dims, ls, ss)
    }

    pub fn reduces(&self) -> bool {
        self.stores.iter().any(|s| s.reduce.is_some())
    }

    /// The collapsed loop dimension a compiled kernel's `[lo, hi)` range
    /// walks, and whether that range may be cut into chunks run on different
    /// threads.
    ///
    /// Dimension 0 when no reduction accumulates across it. Otherwise the
    /// first dimension every reduction keeps (BatchNorm statistics and bias
    /// gradients sum over the batch, dimension 0, but keep the channels): an
    /// index there owns its output elements, so each output element is
    /// accumulated by exactly one chunk, in the same order as the serial
    /// loop, and the result is bitwise the same however the range is cut.
    /// A reduction that keeps no dimension (a full sum) runs on one thread.
    pub fn split(&self) -> (usize, bool) {
        let (dims, _, ss) = self.collapsed();
        let keeps = |d: usize| self.stores.iter().zip(&ss).all(|(s, st)| s.reduce.is_none() || st[d] != 0);
        match (0..dims.len()).find(|&d| keeps(d)) {
            Some(d) => (d, true),
            None => (0, false),
        }
    }
}

