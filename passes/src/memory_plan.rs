//! Memory planning over a kernel partition: every intermediate value gets an
//! offset in one arena, reused once the value is dead (liveness over the
//! kernel order, best-fit free list); params and state keep persistent
//! buffers, and an update is written straight into its param's buffer when
//! that is safe (an elementwise kernel that reads the old value only at the
//! element it writes, after every other reader of the old value has run).
//! A concatenation whose pieces are contiguous runs of it (it joins along
//! its first axis of extent > 1) is planned first and its pieces are
//! computed straight into their runs: the concat kernel then has nothing
//! to do ([`MemoryPlan::concats_in_place`]).
//! The runtime therefore allocates nothing per step.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use kiln_ir::{DType, Graph, NodeId, Op};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::partition::{is_strided_read, Kernel, KernelKind, Partition};
use crate::PassError;

/// Arena offsets are aligned to a cache line (and to the widest vector).
pub const ALIGN: usize = 64;

/// Where a value lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// A per-call data input, read where the caller's tensor is.
    Input(String),
    /// The persistent buffer of a param/state (its input node, or an update
    /// computed in place).
    Persistent(String),
    /// A literal, materialized once at compile time.
    Constant,
    /// `bytes` at `offset` in the arena.
    Arena { offset: usize, bytes: usize },
    /// The buffer of another value (a view).
    View(NodeId),
}

/// The buffer plan of one compiled graph.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryPlan {
    /// Every value that has a buffer: sources, kernel outputs, views.
    pub values: BTreeMap<NodeId, Storage>,
    /// Per-kernel scratch (kernel id -> offset, bytes) inside the arena.
    pub scratch: BTreeMap<usize, (usize, usize)>,
    /// Updates computed straight into the param/state buffer.
    pub in_place: Vec<(String, NodeId)>,
    /// Updates copied into the param/state buffer at the end of a run.
    pub copied: Vec<(String, NodeId)>,
    /// Concat nodes whose operands are computed inside the concat's own
    /// buffer: no kernel needs to run for them.
    pub concats_in_place: BTreeSet<NodeId>,
    pub arena_bytes: usize,
    pub persistent_bytes: usize,
    pub constant_bytes: usize,
    /// What the arena would need without reuse (every value its own buffer).
    pub unshared_bytes: usize,
}

impl MemoryPlan {
    /// Peak bytes of tensor storage while running: arena + persistent
    /// buffers + constants (per-call inputs are the caller's).
    pub fn peak_bytes(&self) -> usize {
        self.arena_bytes + self.persistent_bytes + self.constant_bytes
    }

    pub fn arena_offset(&self, n: NodeId) -> Option<usize> {
        match self.values.get(&n)? {
            Storage::Arena { offset, .. } => Some(*offset),
            _ => None,
        }
    }

    /// The dump form.
    pub fn to_text(&self, g: &Graph) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# memory plan: peak {} bytes = arena {} + persistent {} + constants {} (arena without reuse: {})",
            self.peak_bytes(),
            self.arena_bytes,
            self.persistent_bytes,
            self.constant_bytes,
            self.unshared_bytes
        );
        for (n, st) in &self.values {
            let ty = g.ty(*n);
            let where_ = match st {
                Storage::Input(name) => format!("input `{name}`"),
                Storage::Persistent(name) => format!("persistent `{name}`"),
                Storage::Constant => "constant".to_string(),
                Storage::Arena { offset, bytes } => format!("arena [{offset}, {}) {bytes} bytes", offset + bytes),
                Storage::View(r) => format!("view of {r}"),
            };
            let _ = writeln!(s, "{n} : {ty} -> {where_}");
        }
        for (k, (off, bytes)) in &self.scratch {
            let _ = writeln!(s, "scratch k{k} -> arena [{off}, {}) {bytes} bytes", off + bytes);
        }
        for (name, n) in &self.in_place {
            let _ = writeln!(s, "update `{name}` <- {n} in place");
        }
        for (name, n) in &self.copied {
            let _ = writeln!(s, "update `{name}` <- {n} copied after the run");
        }
        for n in &self.concats_in_place {
            let _ = writeln!(s, "concat {n}: operands computed in place");
        }
        s
    }
}

fn align(x: usize) -> usize {
    x.div_ceil(ALIGN) * ALIGN
}

/// A best-fit allocator over one growing arena.
#[derive(Default)]
struct Arena {
    free: Vec<(usize, usize)>,
    end: usize,
}

impl Arena {
    fn alloc(&mut self, bytes: usize) -> usize {
        let bytes = align(bytes.max(1));
        let best = self.free.iter().enumerate().filter(|(_, (_, s))| *s >= bytes).min_by_key(|(_, (_, s))| *s).map(|(i, _)| i);
        if let Some(i) = best {
            let (off, size) = self.free[i];
            if size == bytes {
                self.free.remove(i);
            } else {
                self.free[i] = (off + bytes, size - bytes);
            }
            return off;
        }
        // Grow, reusing a free block that touches the end.
        if let Some(i) = self.free.iter().position(|(o, s)| o + s == self.end) {
            let (off, _) = self.free.remove(i);
            self.end = off + bytes;
            return off;
        }
        let off = self.end;
        self.end += bytes;
        off
    }

    fn release(&mut self, off: usize, bytes: usize) {
        let bytes = align(bytes.max(1));
        self.free.push((off, bytes));
        self.free.sort();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(self.free.len());
        for &(o, s) in &self.free {
            if let Some(last) = merged.last_mut() {
                if last.0 + last.1 == o {
                    last.1 += s;
                    continue;
                }
            }
            merged.push((o, s));
        }
        self.free = merged;
    }
}

/// Plans buffers for `p`; `scratch(k)` is the temporary byte count a kernel
/// needs while it runs (im2col buffers and the like).
pub fn plan_memory(g: &Graph, p: &Partition, scratch: &dyn Fn(&Kernel) -> usize) -> Result<MemoryPlan, PassError> {
    plan_memory_with(g, p, scratch, &DType::size_bytes)
}

/// [`plan_memory`] for a backend that stores elements at its own widths
/// (the GPU keeps every dtype in one 32-bit word): `elem_bytes(dtype)`
/// sizes every buffer, so offsets and byte counts are in that backend's
/// units.
pub fn plan_memory_with(
    g: &Graph,
    p: &Partition,
    scratch: &dyn Fn(&Kernel) -> usize,
    elem_bytes: &dyn Fn(DType) -> usize,
) -> Result<MemoryPlan, PassError> {
    let size = |n: NodeId| g.ty(n).numel() * elem_bytes(g.ty(n).dtype);
    let mut plan = MemoryPlan::default();
    let root = |n: NodeId| p.root(n);
    let nk = p.kernels.len();

    // Sources.
    for &n in &p.order {
        match g.op(n) {
            Op::Input { name, role } => {
                let st = if role.is_persistent() { Storage::Persistent(name.clone()) } else { Storage::Input(name.clone()) };
                if role.is_persistent() {
                    plan.persistent_bytes += align(size(n));
                }
                plan.values.insert(n, st);
            }
            Op::Constant(_) => {
                plan.constant_bytes += align(size(n));
                plan.values.insert(n, Storage::Constant);
            }
            _ => {}
        }
    }
    // Persistent inputs that are dead in this graph still own a buffer.
    for (id, name, role) in g.inputs() {
        if role.is_persistent() && !plan.values.contains_key(&id) {
            plan.persistent_bytes += align(size(id));
            plan.values.insert(id, Storage::Persistent(name.to_string()));
        }
    }

    // Readers of each buffer root, by kernel index.
    let mut readers: FxHashMap<NodeId, Vec<usize>> = FxHashMap::default();
    for k in &p.kernels {
        for &i in &k.inputs {
            readers.entry(root(i)).or_default().push(k.id);
        }
    }
    let producer: FxHashMap<NodeId, usize> =
        p.kernels.iter().flat_map(|k| k.outputs.iter().map(move |&o| (o, k.id))).collect();
    let output_roots: FxHashSet<NodeId> = g.outputs().iter().map(|(_, n)| root(*n)).collect();

    // Which updates can be computed in place.
    let mut in_place_nodes: FxHashMap<NodeId, String> = FxHashMap::default();
    for (name, u) in g.updates() {
        let pid = g.find_input(name).ok_or_else(|| PassError::Failed {
            pass: "memory_plan".into(),
            message: format!("update of unknown input `{name}`"),
        })?;
        let ok = (|| {
            if root(*u) != *u || in_place_nodes.contains_key(u) || output_roots.contains(&pid) {
                return false;
            }
            let Some(&kid) = producer.get(u) else { return false };
            let k = &p.kernels[kid];
            // An elementwise loop, or a contraction's elementwise epilogue
            // when the GEMM itself does not read the old value.
            let elementwise = match k.kind {
                KernelKind::Elementwise => true,
                KernelKind::Contraction => {
                    k.fused.contains(u) && k.anchor.is_some_and(|a| g.operands(a).iter().all(|&o| root(o) != pid))
                }
                _ => false,
            };
            if !elementwise {
                return false;
            }
            let others_before = readers.get(&pid).map(|rs| rs.iter().all(|&r| r < kid || r == kid)).unwrap_or(true);
            if !others_before {
                return false;
            }
            // Within the kernel the old value must be read elementwise (a
            // fused slice reads it at other positions).
            let sliced = k.fused.iter().any(|&n| is_strided_read(g, n) && root(g.operands(n)[0]) == pid);
            !sliced && k.inputs.iter().filter(|&&i| root(i) == pid).all(|&i| g.ty(i).shape == k.shape)
        })();
        if ok {
            in_place_nodes.insert(*u, name.clone());
            plan.in_place.push((name.clone(), *u));
        } else {
            plan.copied.push((name.clone(), *u));
        }
    }
    let copied_roots: FxHashSet<NodeId> = plan.copied.iter().map(|(_, n)| root(*n)).collect();

    // Liveness of arena values: last kernel that reads them (end of run for
    // outputs and copied updates).
    let mut last_use: FxHashMap<NodeId, usize> = FxHashMap::default();
    for k in &p.kernels {
        for &o in &k.outputs {
            let mut l = readers.get(&o).and_then(|r| r.iter().max().copied()).unwrap_or(k.id).max(k.id);
            if output_roots.contains(&o) || copied_roots.contains(&o) {
                l = nk;
            }
            last_use.insert(o, l);
        }
    }

    // Pieces computed inside their concat: piece -> (concat, byte offset).
    let pieces = concat_pieces(g, p, &producer, &in_place_nodes, &size);
    for (&piece, &(c, _)) in &pieces {
        let l = last_use[&piece].max(last_use[&c]);
        last_use.insert(c, l);
        plan.concats_in_place.insert(c);
    }

    let mut arena = Arena::default();
    let mut dying: BTreeMap<usize, Vec<(usize, usize)>> = BTreeMap::new();
    for k in &p.kernels {
        for &o in &k.outputs {
            if let Some(name) = in_place_nodes.get(&o) {
                plan.values.insert(o, Storage::Persistent(name.clone()));
                continue;
            }
            // The concat's buffer is allocated when its first piece is.
            let (owner, within) = pieces.get(&o).copied().unwrap_or((o, 0));
            if !plan.values.contains_key(&owner) {
                let bytes = size(owner);
                plan.unshared_bytes += align(bytes.max(1));
                let offset = arena.alloc(bytes);
                plan.values.insert(owner, Storage::Arena { offset, bytes });
                dying.entry(last_use[&owner]).or_default().push((offset, bytes));
            }
            if owner != o {
                let Some(&Storage::Arena { offset, .. }) = plan.values.get(&owner) else { unreachable!("concats are arena values") };
                plan.values.insert(o, Storage::Arena { offset: offset + within, bytes: size(o) });
            }
        }
        let sb = scratch(k);
        if sb > 0 {
            plan.unshared_bytes += align(sb);
            let off = arena.alloc(sb);
            plan.scratch.insert(k.id, (off, sb));
            arena.release(off, sb);
        }
        if let Some(d) = dying.remove(&k.id) {
            for (off, b) in d {
                arena.release(off, b);
            }
        }
    }
    plan.arena_bytes = arena.end;
    debug_assert!(plan.concats_in_place.iter().all(|c| plan.values.contains_key(c)));
    for (v, r) in &p.views {
        plan.values.insert(*v, Storage::View(*r));
    }
    Ok(plan)
}

/// The concats whose operands can be computed straight into them, as
/// `operand root -> (concat, byte offset)`: a concat joining along its first
/// axis of extent > 1 (so each operand is one contiguous run of it) whose
/// every operand is, through plain views, a distinct arena value some
/// kernel produces that is no piece of another concat and has no pieces
/// of its own (no nesting: a piece's offset is final when placed). All or none of a
/// concat's operands are placed, so the concat itself never runs.
fn concat_pieces(
    g: &Graph,
    p: &Partition,
    producer: &FxHashMap<NodeId, usize>,
    in_place: &FxHashMap<NodeId, String>,
    size: &dyn Fn(NodeId) -> usize,
) -> FxHashMap<NodeId, (NodeId, usize)> {
    let mut pieces: FxHashMap<NodeId, (NodeId, usize)> = FxHashMap::default();
    let mut placed: FxHashSet<NodeId> = FxHashSet::default();
    for k in &p.kernels {
        let Some(c) = k.anchor else { continue };
        let Op::Concat { axis } = g.op(c) else { continue };
        let shape = &g.ty(c).shape.0;
        if shape[..*axis].iter().any(|&d| d != 1) || !k.fused.is_empty() || producer.get(&c) != Some(&k.id) || in_place.contains_key(&c) {
            continue;
        }
        let mut mine: Vec<(NodeId, usize)> = Vec::new();
        let mut at = 0;
        let ok = g.operands(c).into_iter().all(|o| {
            let r = p.root(o);
            let bytes = size(o);
            let fits = p.offset(o) == 0
                && size(r) == bytes
                && producer.contains_key(&r)
                && !in_place.contains_key(&r)
                && !pieces.contains_key(&r)
                && !mine.iter().any(|(m, _)| *m == r)
                && !placed.contains(&r);
            mine.push((r, at));
            at += bytes;
            fits
        });
        if ok {
            placed.insert(c);
            pieces.extend(mine.into_iter().map(|(r, off)| (r, (c, off))));
        }
    }
    pieces
}
