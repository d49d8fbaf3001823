//! Graph -> `CpuExecutable`: partition, plan memory, lower each kernel.

use std::collections::HashMap;

use kiln_ir::{verify, Graph, NodeId, Op, ReduceOp, Signature};
use kiln_passes::memory_plan::{plan_memory, Storage};
use kiln_passes::partition::{partition, Kernel, KernelKind};

use crate::kernels::program::{self, reduce_identity};
use crate::kernels::{scratch_elems, NativeOp};
use crate::lower::jit::{Jit, KernelCode};
use crate::runtime::buffers::{host_bytes, AlignedBuf};
use crate::runtime::exec::{CodeHolder, CpuExecutable};
use crate::runtime::pool::Pool;
use crate::runtime::rollback::Rollback;
use crate::runtime::step::{LoopStep, Persistent, SlotSrc, Step};
use crate::{CpuBackend, CpuError};

fn native_of(g: &Graph, n: NodeId, slot: &dyn Fn(NodeId) -> usize) -> NativeOp {
    NativeOp {
        node: n,
        op: g.op(n).clone(),
        ins: g.operands(n).into_iter().map(|o| (slot(o), g.ty(o).clone())).collect(),
        out: (slot(n), g.ty(n).clone()),
        code: Vec::new(),
    }
}

fn scratch_bytes(g: &Graph, k: &Kernel, threads: usize) -> usize {
    match k.anchor {
        Some(a) if matches!(k.kind, KernelKind::Contraction | KernelKind::Single) => {
            let ins: Vec<_> = g.operands(a).into_iter().map(|o| g.ty(o).clone()).collect();
            let out = g.ty(a);
            scratch_elems(g.op(a), &ins, out, threads).saturating_mul(out.dtype.size_bytes())
        }
        _ => 0,
    }
}

pub fn compile(be: &CpuBackend, g: &Graph, stored: &[KernelCode]) -> Result<CpuExecutable, CpuError> {
    verify(g).map_err(|e| CpuError::Plan(e.to_string()))?;
    if !g.grad_requests().is_empty() {
        return Err(CpuError::Plan("the graph still has grad requests; run the autodiff pass first".into()));
    }
    let part = partition(g).map_err(|e| CpuError::Plan(e.to_string()))?;
    if let Some(limit) = be.max_memory {
        // Checked one kernel at a time first, so that the plan's sums of
        // (saturated) scratch sizes cannot overflow.
        for k in &part.kernels {
            let needed = scratch_bytes(g, k, be.threads) as u64;
            if needed > limit {
                return Err(CpuError::MemoryLimit { needed, limit });
            }
        }
    }
    let plan = plan_memory(g, &part, &|k| scratch_bytes(g, k, be.threads)).map_err(|e| CpuError::Plan(e.to_string()))?;
    if let Some(limit) = be.max_memory.filter(|&l| plan.peak_bytes() as u64 > l) {
        return Err(CpuError::MemoryLimit { needed: plan.peak_bytes() as u64, limit });
    }

    // Slots: one per buffer root.
    let sig = Signature::of(g);
    let mut slots: Vec<SlotSrc> = Vec::new();
    let mut slot_of: HashMap<NodeId, usize> = HashMap::new();
    let mut persistent: Vec<Persistent> = Vec::new();
    let mut pers_index: HashMap<String, usize> = HashMap::new();
    for i in sig.inputs.iter().filter(|i| i.role.is_persistent()) {
        pers_index.insert(i.name.clone(), persistent.len());
        persistent.push(Persistent { name: i.name.clone(), ty: i.ty.clone(), buf: AlignedBuf::zeroed(i.ty.size_bytes()), set: false });
    }
    let mut constants: Vec<AlignedBuf> = Vec::new();
    let mut scalar_consts: HashMap<NodeId, f64> = HashMap::new();
    let mut persistent_slot: HashMap<usize, usize> = HashMap::new();
    for (&n, st) in &plan.values {
        let src = match st {
            Storage::View(_) => continue,
            Storage::Input(name) => SlotSrc::Input(name.clone()),
            Storage::Persistent(name) => SlotSrc::Persistent(pers_index[name]),
            Storage::Arena { offset, .. } => SlotSrc::Arena(*offset),
            Storage::Constant => {
                let Op::Constant(t) = g.op(n) else { return Err(CpuError::Internal(format!("{n} planned as a constant"))) };
                let mut b = AlignedBuf::zeroed(t.ty().size_bytes());
                b.bytes_mut()[..t.ty().size_bytes()].copy_from_slice(host_bytes(t));
                if t.numel() == 1 && t.dtype().is_float() {
                    scalar_consts.insert(n, t.to_f64_vec()[0]);
                }
                constants.push(b);
                SlotSrc::Constant(constants.len() - 1)
            }
        };
        // Persistent sources share one slot per buffer.
        let idx = match src {
            SlotSrc::Persistent(p) => *persistent_slot.entry(p).or_insert_with(|| {
                slots.push(src);
                slots.len() - 1
            }),
            _ => {
                slots.push(src);
                slots.len() - 1
            }
        };
        slot_of.insert(n, idx);
    }
    // Views share their root's slot; a view into the middle of it (a
    // contiguous slice) gets its own slot at a byte offset from that one,
    // so native kernels and loops read it like any buffer.
    let mut offset_slots: HashMap<(usize, usize), usize> = HashMap::new();
    for (v, r) in &part.views {
        let s = *slot_of.get(r).ok_or_else(|| CpuError::Internal(format!("view {v} of unplanned {r}")))?;
        let s = match part.offset(*v) {
            0 => s,
            bytes => *offset_slots.entry((s, bytes)).or_insert_with(|| {
                slots.push(SlotSrc::Offset { base: s, bytes });
                slots.len() - 1
            }),
        };
        slot_of.insert(*v, s);
    }
    let slot = |n: NodeId| -> usize { slot_of[&n] };
    let sconst = |n: NodeId| scalar_consts.get(&n).copied();

    let mut jit = if be.jit { Some(Jit::new(stored)?) } else { None };
    if let Some(j) = jit.as_mut() {
        j.disasm = be.dump_dir.is_some();
    }
    let mut steps: Vec<Step> = Vec::new();
    let mut pending: Vec<(usize, usize)> = Vec::new(); // (step index, jit kernel index)
    let mut pending_native: Vec<(usize, Vec<usize>)> = Vec::new(); // (step index, jit function indices)
    for k in &part.kernels {
        // Its operands were computed in place inside its buffer.
        if k.anchor.is_some_and(|a| plan.concats_in_place.contains(&a)) {
            continue;
        }
        if let Some(a) = k.anchor.filter(|_| k.kind != KernelKind::Reduce) {
            let scratch = plan.scratch.get(&k.id).map(|&(off, _)| off);
            let op = native_of(g, a, &slot);
            if let Some(j) = jit.as_mut() {
                // Generated code for conv packing/epilogues and pooling.
                let mut fns = crate::lower::conv::declare(j, k.id, &op)?;
                if fns.is_empty() {
                    fns = crate::lower::pool::declare(j, k.id, &op)?;
                }
                if !fns.is_empty() {
                    pending_native.push((steps.len(), fns));
                }
            }
            steps.push(Step::Native { op, scratch });
        }
        if k.fused.is_empty() && k.kind != KernelKind::Reduce {
            continue;
        }
        let prog = program::build(g, k, &slot, &sconst).map_err(|e| CpuError::Internal(e.to_string()))?;
        let (cd, _, _) = prog.collapsed();
        let mut reduce_outs = Vec::new();
        if k.kind == KernelKind::Reduce {
            let r = k.anchor.expect("reduce anchor");
            let Op::Reduce { op, axes, .. } = g.op(r) else { unreachable!("reduce kernels are anchored on reductions") };
            let count: usize = axes.iter().map(|&a| k.shape.0[a]).product();
            let mean = (*op == ReduceOp::Mean).then_some(count as f64);
            reduce_outs.push((slot(r), g.ty(r).dtype, g.ty(r).numel(), reduce_identity(*op), mean));
        }
        let (split, parallel) = prog.split();
        let work = prog.dims.iter().product::<usize>() * prog.instrs.len().max(1);
        if let Some(j) = jit.as_mut() {
            if let Some(idx) = j.declare(k.id, &prog, g)? {
                pending.push((steps.len(), idx));
            }
        }
        let args: Vec<usize> = prog.leaves.iter().map(|l| l.slot).chain(prog.stores.iter().map(|s| s.slot)).collect();
        let arg_offsets: Vec<usize> =
            prog.leaves.iter().map(|l| l.offset * l.dtype.size_bytes()).chain(prog.stores.iter().map(|_| 0)).collect();
        let argv = vec![std::ptr::null_mut(); args.len()];
        // Epilogue loops cut at GEMM row boundaries: [rows, cols] or flat.
        let row_unit = match (k.kind, k.shape.rank()) {
            (KernelKind::Contraction, 2) => {
                let (m, n) = (k.shape.0[0], k.shape.0[1]);
                if cd.len() == 2 && cd[0] == m {
                    1
                } else if cd.len() == 1 && cd[0] == m * n {
                    n
                } else {
                    0
                }
            }
            _ => 0,
        };
        let (vals, idx) = (vec![0.0; prog.instrs.len()], vec![0; prog.dims.len()]);
        steps.push(Step::Loop(LoopStep { kernel: k.id, prog, jit: None, args, arg_offsets, argv, vals, idx, outer: cd[split], parallel, align: if split + 1 == cd.len() { 8 } else { 1 }, work, row_unit, reduce_outs }));
    }
    let mut codegen_counts = (0, 0);
    let mut listings = Vec::new();
    let (module, code) = match jit {
        Some(mut j) => {
            codegen_counts = (j.compiled, j.installed);
            listings = std::mem::take(&mut j.listings);
            let (m, fns, code) = j.finish()?;
            for (si, fis) in pending_native {
                if let Step::Native { op, .. } = &mut steps[si] {
                    op.code = fis.iter().map(|&fi| fns[fi]).collect();
                }
            }
            for (si, fi) in pending {
                if let Step::Loop(l) = &mut steps[si] {
                    l.jit = Some(fns[fi]);
                }
            }
            (Some(m), code)
        }
        None => (None, Vec::new()),
    };

    let outputs = g.outputs().iter().map(|(name, n)| (name.clone(), slot(*n), g.ty(*n).clone())).collect();
    let copied_updates = plan
        .copied
        .iter()
        .map(|(name, n)| (pers_index[name], slot(*n), g.ty(*n).size_bytes()))
        .collect();
    let partition_text = part.to_text(g);
    let rollback = Rollback::plan(&steps, &slots, &persistent);
    let mut memory_text = plan.to_text(g);
    let restored = rollback.names(&persistent);
    if !restored.is_empty() {
        // Written in place before a step that can still fail.
        memory_text.push_str(&format!("saved before each run, restored if it fails: {}\n", restored.join(", ")));
    }
    if let Some(dir) = &be.dump_dir {
        let e = |e: kiln_passes::PassError| CpuError::Dump(e.to_string());
        std::fs::create_dir_all(dir).map_err(|x| CpuError::Dump(format!("{}: {x}", dir.display())))?;
        kiln_passes::write_dump_file(dir, "partition.txt", &partition_text).map_err(e)?;
        kiln_passes::write_dump_file(dir, "memory-plan.txt", &memory_text).map_err(e)?;
        let mut names: Vec<String> = code.iter().map(|c| format!("k{}-{}.clif", c.kernel, c.name)).collect();
        let mut texts: Vec<&str> = code.iter().map(|c| c.clif.as_str()).collect();
        // Cranelift's disassembly of each function it compiled here.
        for (name, asm) in &listings {
            names.push(format!("{name}.s"));
            texts.push(asm);
        }
        let files: Vec<(&str, &str)> = names.iter().map(String::as_str).zip(texts).collect();
        if !files.is_empty() {
            kiln_passes::write_dump_group(dir, &files).map_err(e)?;
        }
    }
    let n_slots = slots.len();
    let step_names = steps
        .iter()
        .map(|s| match s {
            Step::Native { op, .. } => format!("{} {} -> {}", op.node, op.op.name(), op.out.1),
            Step::Loop(l) => format!("k{} loop {:?} ({} instrs, {} stores{})", l.kernel, l.prog.dims, l.prog.instrs.len(), l.prog.stores.len(), if l.jit.is_some() { "" } else { ", portable" }),
        })
        .collect();
    let data_inputs = sig.inputs.iter().filter(|i| i.role == kiln_ir::InputRole::Input).count();
    Ok(CpuExecutable {
        sig,
        steps,
        slots,
        arena: AlignedBuf::zeroed(plan.arena_bytes),
        persistent,
        constants,
        outputs,
        copied_updates,
        rollback,
        ptrs: vec![std::ptr::null_mut(); n_slots],
        pool: Pool::new(be.threads),
        _code: CodeHolder(module),
        partition_text,
        memory_text,
        code,
        codegen_counts,
        peak: plan.peak_bytes(),
        arena_bytes: plan.arena_bytes,
        profile: None,
        step_names,
        data_inputs,
    })
}
