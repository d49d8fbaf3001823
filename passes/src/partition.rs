//! Kernel partitioning: groups a graph's live nodes into kernels, the unit a
//! backend compiles and launches.
//!
//! Rules (shared by the CPU and GPU backends):
//! - Views (`reshape`, `stop_gradient`, a cast to the same dtype, a slice
//!   whose selected elements are one contiguous run of its operand) are no
//!   kernel at all: they alias their operand's buffer (a contiguous slice at
//!   a byte offset into it).
//! - An elementwise node (unary/binary/compare/select/cast/broadcast_to)
//!   joins the kernel of its users when every user is in one elementwise or
//!   reduction kernel whose loop has the node's shape; its value then lives
//!   in registers (it is also stored when it is a graph output or update).
//!   Otherwise it starts a new elementwise kernel. Leaves may broadcast.
//! - A `slice` fuses by the same rule, as a strided read: the loop reads
//!   the slice's operand from memory at the selected positions (an offset
//!   plus per-axis strides), so the slice is never materialized. Its
//!   operand therefore never fuses into the same loop, and a kernel never
//!   merges with the kernel producing a value it slices (the slice may read
//!   positions the loop has not computed yet).
//! - A reduction starts a kernel whose loop runs over its input shape; its
//!   elementwise producers fuse in by the rule above (a fused prologue).
//! - A matmul/dense/conv whose only user is an elementwise kernel of the
//!   same shape takes that kernel as its epilogue (bias, activation,
//!   residual add run on the GEMM output while it is hot).
//! - Everything else is one kernel per node.
//!
//! Fusing only into same-shape loops means no value is recomputed per
//! broadcast element (an `exp` of a scalar is not evaluated per output).

use std::fmt::Write as _;

use kiln_ir::{Graph, NodeId, Op, Shape};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::{Changed, Pass, PassCx, PassError};

/// What a kernel computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelKind {
    /// One loop over `shape` evaluating a DAG of elementwise nodes.
    Elementwise,
    /// A reduction (`anchor`) over `shape` = its input's shape, with a fused
    /// elementwise prologue.
    Reduce,
    /// A matmul/dense/conv (`anchor`) plus an optional elementwise epilogue.
    Contraction,
    /// Any other op (`anchor`), run by itself.
    Single,
}

impl KernelKind {
    pub fn name(self) -> &'static str {
        match self {
            KernelKind::Elementwise => "elementwise",
            KernelKind::Reduce => "reduce",
            KernelKind::Contraction => "contraction",
            KernelKind::Single => "single",
        }
    }
}

/// One kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct Kernel {
    pub id: usize,
    pub kind: KernelKind,
    /// The non-elementwise node the kernel is built around, if any.
    pub anchor: Option<NodeId>,
    /// The elementwise nodes evaluated in the kernel's loop, in topological
    /// order (for a contraction: its epilogue).
    pub fused: Vec<NodeId>,
    /// Values the kernel writes to memory, in id order.
    pub outputs: Vec<NodeId>,
    /// Values the kernel reads from memory (other kernels' outputs, graph
    /// inputs, constants, views), in id order.
    pub inputs: Vec<NodeId>,
    /// The loop shape of the fused elementwise part (the anchor's output
    /// shape for contractions and singles, the input shape for reductions).
    pub shape: Shape,
}

impl Kernel {
    /// Every node the kernel computes: the anchor then the fused nodes.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.anchor.iter().copied().chain(self.fused.iter().copied()).collect()
    }
}

/// The kernels of a graph in a valid execution order, plus the views.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Partition {
    pub kernels: Vec<Kernel>,
    /// `view -> the node whose buffer it aliases` (resolved through chains
    /// of views to a kernel output, input or constant).
    pub views: Vec<(NodeId, NodeId)>,
    /// `view -> byte offset into its root's buffer`, for the views that do
    /// not start at the root's first byte (contiguous slices).
    pub offsets: Vec<(NodeId, usize)>,
    /// The graph's live nodes in topological order.
    pub order: Vec<NodeId>,
    /// `views` and `offsets` by node, so that `root` and `offset` are
    /// constant-time (planning asks for every kernel input).
    root_index: FxHashMap<NodeId, NodeId>,
    offset_index: FxHashMap<NodeId, usize>,
}

/// Whether `op` is a pure view of its first operand given the types.
pub fn is_view(g: &Graph, id: NodeId) -> bool {
    match g.op(id) {
        Op::Reshape(_) | Op::StopGradient => true,
        Op::Cast(d) => {
            let src = g.operands(id)[0];
            g.ty(src).dtype == *d
        }
        Op::Slice { .. } => contiguous_slice_offset(g, id).is_some(),
        _ => false,
    }
}

/// For a slice whose elements are one contiguous run of its operand's
/// buffer (unit-size axes, then at most one partial axis read with step 1,
/// then whole axes), the element offset of that run; `None` otherwise.
pub fn contiguous_slice_offset(g: &Graph, id: NodeId) -> Option<usize> {
    let Op::Slice { start, step, .. } = g.op(id) else { return None };
    let src = &g.ty(g.operands(id)[0]).shape.0;
    let out = &g.ty(id).shape.0;
    if out.contains(&0) {
        return None;
    }
    // Axes after the first one selecting more than one element must be whole.
    let first = (0..out.len()).find(|&d| out[d] > 1).unwrap_or(out.len());
    if first < out.len() && step[first] != 1 {
        return None;
    }
    if (first + 1..out.len()).any(|d| out[d] != src[d] || start[d] != 0 || (src[d] > 1 && step[d] != 1)) {
        return None;
    }
    let rm = kiln_ir::row_major_strides(src);
    Some(start.iter().zip(&rm).map(|(&s, &r)| s * r).sum())
}

/// Whether `id` can be fused into an elementwise loop.
pub fn is_fusable(g: &Graph, id: NodeId) -> bool {
    let op = g.op(id);
    (op.is_elementwise() || matches!(op, Op::BroadcastTo(_) | Op::Slice { .. })) && !is_view(g, id)
}

/// Whether `id` is a slice a loop reads as a strided leaf of its operand's
/// buffer (a slice that is not a view).
pub fn is_strided_read(g: &Graph, id: NodeId) -> bool {
    matches!(g.op(id), Op::Slice { .. }) && !is_view(g, id)
}

fn is_contraction(op: &Op) -> bool {
    matches!(op, Op::MatMul { .. } | Op::FusedDense { .. } | Op::Conv2d(_) | Op::FusedConv2d { .. })
}

/// Partitions the live part of `g` into kernels.
pub fn partition(g: &Graph) -> Result<Partition, PassError> {
    let err = |e| PassError::Ir { pass: "partition".into(), source: e };
    let live = g.live_nodes();
    let order: Vec<NodeId> = g.topo_order().map_err(err)?.into_iter().filter(|n| live.contains(n)).collect();
    let pos: FxHashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let stored_roots: FxHashSet<NodeId> = g.outputs().iter().chain(g.updates().iter()).map(|(_, n)| *n).collect();
    let live_users = |n: NodeId| -> Vec<NodeId> { g.users(n).into_iter().filter(|u| live.contains(u)).collect() };

    // Build kernels walking backwards so consumers exist before producers.
    let mut kernel_of: FxHashMap<NodeId, usize> = FxHashMap::default();
    let mut kernels: Vec<Kernel> = Vec::new();
    let mut views: Vec<(NodeId, NodeId)> = Vec::new();
    for &n in order.iter().rev() {
        let op = g.op(n);
        if op.is_source() {
            continue;
        }
        if is_view(g, n) {
            continue;
        }
        if is_fusable(g, n) {
            let users = live_users(n);
            let ks: FxHashSet<Option<usize>> = users.iter().map(|u| kernel_of.get(u).copied()).collect();
            // A slice reads its operand from memory, so the operand is stored.
            let sliced = users.iter().any(|&u| is_strided_read(g, u));
            if ks.len() == 1 && !sliced {
                if let Some(Some(k)) = ks.into_iter().next() {
                    let kk = &mut kernels[k];
                    let joinable = matches!(kk.kind, KernelKind::Elementwise | KernelKind::Reduce)
                        && kk.shape == g.ty(n).shape;
                    if joinable {
                        kk.fused.push(n);
                        if stored_roots.contains(&n) {
                            kk.outputs.push(n);
                        }
                        kernel_of.insert(n, k);
                        continue;
                    }
                }
            }
            let k = kernels.len();
            kernels.push(Kernel {
                id: k,
                kind: KernelKind::Elementwise,
                anchor: None,
                fused: vec![n],
                outputs: vec![n],
                inputs: vec![],
                shape: g.ty(n).shape.clone(),
            });
            kernel_of.insert(n, k);
            continue;
        }
        let (kind, shape) = match op {
            Op::Reduce { .. } => (KernelKind::Reduce, g.ty(g.operands(n)[0]).shape.clone()),
            o if is_contraction(o) => (KernelKind::Contraction, g.ty(n).shape.clone()),
            _ => (KernelKind::Single, g.ty(n).shape.clone()),
        };
        let k = kernels.len();
        kernels.push(Kernel { id: k, kind, anchor: Some(n), fused: vec![], outputs: vec![n], inputs: vec![], shape });
        kernel_of.insert(n, k);
    }

    // Contractions take a same-shape elementwise consumer as their epilogue.
    let mut merged_into: FxHashMap<usize, usize> = FxHashMap::default();
    for k in 0..kernels.len() {
        if kernels[k].kind != KernelKind::Contraction {
            continue;
        }
        let m = kernels[k].anchor.expect("contractions have an anchor");
        if stored_roots.contains(&m) {
            continue;
        }
        let users = live_users(m);
        if users.len() != 1 || is_strided_read(g, users[0]) {
            continue;
        }
        let Some(&e) = kernel_of.get(&users[0]) else { continue };
        let ek = &kernels[e];
        if ek.kind != KernelKind::Elementwise || ek.shape != g.ty(m).shape || merged_into.contains_key(&e) {
            continue;
        }
        merged_into.insert(e, k);
    }
    for (&e, &k) in &merged_into {
        let ek = std::mem::replace(&mut kernels[e].fused, vec![]);
        let eo = std::mem::take(&mut kernels[e].outputs);
        for &n in &ek {
            kernel_of.insert(n, k);
        }
        kernels[k].fused = ek;
        // The GEMM result is still written (the epilogue reads it back while hot).
        kernels[k].outputs.extend(eo);
    }
    let mut kernels: Vec<Kernel> =
        kernels.into_iter().enumerate().filter(|(i, _)| !merged_into.contains_key(i)).map(|(_, k)| k).collect();

    // Views alias the buffer of their (resolved) source.
    let mut offsets: Vec<(NodeId, usize)> = Vec::new();
    let mut view_root: FxHashMap<NodeId, NodeId> = FxHashMap::default();
    let mut view_offset: FxHashMap<NodeId, usize> = FxHashMap::default();
    for &n in &order {
        if is_view(g, n) {
            let src = g.operands(n)[0];
            let root = view_root.get(&src).copied().unwrap_or(src);
            views.push((n, root));
            view_root.insert(n, root);
            let base = view_offset.get(&src).copied().unwrap_or(0);
            let own = contiguous_slice_offset(g, n).unwrap_or(0) * g.ty(n).dtype.size_bytes();
            if base + own > 0 {
                offsets.push((n, base + own));
                view_offset.insert(n, base + own);
            }
        }
    }

    // Inputs, ordering and ids.
    for k in &mut kernels {
        k.fused.sort_by_key(|n| pos[n]);
        k.outputs.sort();
        k.outputs.dedup();
        let inside: FxHashSet<NodeId> = k.nodes().into_iter().collect();
        let mut ins: Vec<NodeId> = Vec::new();
        for n in k.nodes() {
            for o in g.operands(n) {
                if !inside.contains(&o) {
                    ins.push(o);
                }
            }
        }
        ins.sort();
        ins.dedup();
        k.inputs = ins;
    }
    let key = |k: &Kernel| k.nodes().iter().map(|n| pos[n]).max().unwrap_or(0);
    kernels.sort_by_key(key);
    for (i, k) in kernels.iter_mut().enumerate() {
        k.id = i;
    }
    // Producer fusion: an elementwise kernel whose loop has the shape of a
    // kernel producing one of its inputs joins that kernel (as more stored
    // outputs) when everything else it reads is ready by then. This puts
    // e.g. the ReLU after a bias add into the GEMM epilogue even though the
    // pre-activation is also kept for the backward pass.
    //
    // One forward pass: a merge only changes the producer kernel (earlier
    // than `e`) and removes `e`, and no kernel before `e` reads `e`'s
    // values, so the other kernels already passed over stay as they were
    // decided. The grown producer may now join a kernel before it (it took
    // `e`'s inputs), so it is tried again at once.
    // Merged kernels leave a hole (`None`) so indices stay put, and the
    // producer map is updated in place: rebuilding it per merge made this
    // quadratic in the graph (thousands of merges on an unrolled LSTM).
    let mut slots: Vec<Option<Kernel>> = kernels.into_iter().map(Some).collect();
    let mut producer: FxHashMap<NodeId, usize> =
        slots.iter().enumerate().flat_map(|(i, k)| k.iter().flat_map(move |k| k.outputs.iter().map(move |&o| (o, i)))).collect();
    for first in 0..slots.len() {
        let mut next = Some(first);
        while let Some(e) = next.take() {
            let Some(ek) = slots[e].as_ref() else { continue };
            if ek.kind != KernelKind::Elementwise {
                continue;
            }
            let ready_by = |n: NodeId, at: usize| -> bool {
                let r = view_root.get(&n).copied().unwrap_or(n);
                g.op(r).is_source() || producer.get(&r).is_some_and(|&i| i <= at)
            };
            let mut cands: Vec<usize> = ek.inputs.iter().filter_map(|i| producer.get(i).copied()).collect();
            cands.sort();
            cands.dedup();
            let mut target = None;
            for &pi in cands.iter().rev() {
                let Some(pk) = slots[pi].as_ref() else { continue };
                if pi >= e || !matches!(pk.kind, KernelKind::Elementwise | KernelKind::Contraction) || pk.shape != ek.shape {
                    continue;
                }
                // Reads of `pk`'s outputs through memory (slices, views)
                // may be at positions its loop has not computed yet.
                let reads_pk_memory = ek
                    .fused
                    .iter()
                    .any(|&n| is_strided_read(g, n) && pk.outputs.contains(&view_root.get(&g.operands(n)[0]).copied().unwrap_or(g.operands(n)[0])))
                    || ek.inputs.iter().any(|i| view_root.get(i).is_some_and(|r| pk.outputs.contains(r)));
                if reads_pk_memory {
                    continue;
                }
                if ek.inputs.iter().all(|&i| ready_by(i, pi)) {
                    target = Some(pi);
                    break;
                }
            }
            let Some(pi) = target else { continue };
            let ek = slots[e].take().expect("checked above");
            let pk = slots[pi].as_mut().expect("a candidate is a live kernel");
            for o in pk.outputs.iter().chain(&ek.outputs) {
                producer.remove(o);
            }
            pk.fused.extend(ek.fused);
            pk.fused.sort_by_key(|n| pos[n]);
            let inside: FxHashSet<NodeId> = pk.nodes().into_iter().collect();
            let mut outs: Vec<NodeId> = pk
                .nodes()
                .into_iter()
                .filter(|&n| Some(n) == pk.anchor || stored_roots.contains(&n) || live_users(n).iter().any(|u| !inside.contains(u)))
                .collect();
            outs.sort();
            for &o in &outs {
                producer.insert(o, pi);
            }
            pk.outputs = outs;
            let mut ins: Vec<NodeId> = pk.nodes().iter().flat_map(|&n| g.operands(n)).filter(|o| !inside.contains(o)).collect();
            ins.sort();
            ins.dedup();
            pk.inputs = ins;
            next = Some(pi);
        }
    }
    let mut kernels: Vec<Kernel> = slots.into_iter().flatten().collect();
    for (i, k) in kernels.iter_mut().enumerate() {
        k.id = i;
    }

    // A kernel's inputs must be produced by earlier kernels.
    let mut done: FxHashSet<NodeId> = FxHashSet::default();
    for k in &kernels {
        for i in &k.inputs {
            let r = view_root.get(i).copied().unwrap_or(*i);
            if !(g.op(r).is_source() || done.contains(&r)) {
                return Err(PassError::Failed {
                    pass: "partition".into(),
                    message: format!("kernel {} reads {i} before it is computed", k.id),
                });
            }
        }
        done.extend(k.outputs.iter().copied());
    }
    Ok(Partition { kernels, views, offsets, order, root_index: view_root, offset_index: view_offset })
}

impl Partition {
    /// The resolved buffer owner of a value (itself unless it is a view).
    pub fn root(&self, n: NodeId) -> NodeId {
        self.root_index.get(&n).copied().unwrap_or(n)
    }

    /// Byte offset of a value into its root's buffer (0 unless it is a
    /// view into the middle of it).
    pub fn offset(&self, n: NodeId) -> usize {
        self.offset_index.get(&n).copied().unwrap_or(0)
    }

    /// The dump form: one block per kernel.
    pub fn to_text(&self, g: &Graph) -> String {
        let mut s = String::new();
        let list = |v: &[NodeId]| v.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ");
        let _ = writeln!(s, "# kernel partition: {} kernels, {} views", self.kernels.len(), self.views.len());
        for k in &self.kernels {
            let _ = write!(s, "kernel k{} {} loop {}", k.id, k.kind.name(), k.shape);
            if let Some(a) = k.anchor {
                let _ = write!(s, " anchor {a} ({})", g.op(a).name());
            }
            let _ = writeln!(s);
            if !k.fused.is_empty() {
                let names: Vec<String> = k.fused.iter().map(|n| format!("{n}:{}", g.op(*n).name())).collect();
                let _ = writeln!(s, "  fused   {}", names.join(" "));
            }
            let _ = writeln!(s, "  inputs  {}", list(&k.inputs));
            let _ = writeln!(s, "  outputs {}", list(&k.outputs));
        }
        for (v, r) in &self.views {
            let _ = write!(s, "view {v} ({}) aliases {r}", g.op(*v).name());
            match self.offset(*v) {
                0 => {
                    let _ = writeln!(s);
                }
                o => {
                    let _ = writeln!(s, " at byte {o}");
                }
            }
        }
        s
    }
}

/// The partition as a pass: leaves the graph alone and adds the kernel list
/// to the dump reports.
pub struct PartitionReport;

impl Pass for PartitionReport {
    fn name(&self) -> &str {
        "partition"
    }
    fn run(&self, g: &mut Graph, cx: &mut PassCx) -> Result<Changed, PassError> {
        let p = partition(g)?;
        cx.reports.push(("partition.txt".into(), p.to_text(g)));
        Ok(Changed::No)
    }
}
