//! The compiled program and its run loop.

use std::collections::BTreeMap;

use kiln_ir::{Executable, HostTensor, RunError, Signature, TensorType};

use super::buffers::{host_bytes, store, tensor_from_bytes, AlignedBuf};
use super::pool::Pool;
use super::rollback::Rollback;
use super::step::{LoopStep, Persistent, SlotSrc, Step};
use crate::kernels::program;
use crate::kernels;
use crate::lower::jit::KernelCode;

/// Keeps the JIT's code memory alive as long as the executable.
pub(crate) struct CodeHolder(#[allow(dead_code)] pub Option<cranelift_jit::JITModule>);
// The module is only kept to own the code pages; it is never used again.
unsafe impl Send for CodeHolder {}

/// A program compiled for the CPU.
pub struct CpuExecutable {
    pub(crate) sig: Signature,
    pub(crate) steps: Vec<Step>,
    pub(crate) slots: Vec<SlotSrc>,
    pub(crate) arena: AlignedBuf,
    pub(crate) persistent: Vec<Persistent>,
    pub(crate) constants: Vec<AlignedBuf>,
    pub(crate) outputs: Vec<(String, usize, TensorType)>,
    /// (persistent index, source slot, bytes).
    pub(crate) copied_updates: Vec<(usize, usize, usize)>,
    /// What a failing run restores so it changes no state.
    pub(crate) rollback: Rollback,
    pub(crate) ptrs: Vec<*mut u8>,
    pub(crate) pool: Pool,
    pub(crate) _code: CodeHolder,
    pub(crate) partition_text: String,
    pub(crate) memory_text: String,
    pub(crate) code: Vec<KernelCode>,
    /// (kernels run through Cranelift codegen, kernels installed from stored code).
    pub(crate) codegen_counts: (usize, usize),
    pub(crate) peak: usize,
    pub(crate) arena_bytes: usize,
    /// Per-step accumulated seconds and calls when profiling is on.
    pub(crate) profile: Option<Vec<(f64, usize)>>,
    pub(crate) step_names: Vec<String>,
    pub(crate) data_inputs: usize,
}

// Raw pointers in `ptrs` point into buffers this value owns (or, during a
// run only, into the caller's input tensors).
unsafe impl Send for CpuExecutable {}

struct SendPtrs(*const *mut u8);
unsafe impl Sync for SendPtrs {}
unsafe impl Send for SendPtrs {}

/// Below this many loop points a kernel runs on one thread.
const PARALLEL_GRAIN: usize = 32 * 1024;

impl CpuExecutable {
    /// Peak bytes of tensor storage (arena + params/state + constants).
    pub fn peak_bytes(&self) -> usize {
        self.peak
    }

    /// Bytes of the shared intermediate arena.
    pub fn arena_bytes(&self) -> usize {
        self.arena_bytes
    }

    /// The kernel list as text (the dump's partition file).
    pub fn partition_text(&self) -> &str {
        &self.partition_text
    }

    /// The buffer plan as text (the dump's memory plan file).
    pub fn memory_plan_text(&self) -> &str {
        &self.memory_text
    }

    /// Starts (or restarts) per-step timing.
    pub fn enable_profiling(&mut self) {
        self.profile = Some(vec![(0.0, 0); self.steps.len()]);
    }

    /// Time per step (mean microseconds per call), slowest first.
    pub fn profile_report(&self) -> String {
        let Some(p) = &self.profile else { return "profiling is off".into() };
        let mut rows: Vec<(f64, &str)> = p
            .iter()
            .zip(&self.step_names)
            .map(|((t, n), name)| (if *n > 0 { t / *n as f64 * 1e6 } else { 0.0 }, name.as_str()))
            .collect();
        let total: f64 = rows.iter().map(|r| r.0).sum();
        rows.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
        let mut s = format!("total {total:.1} us per run\n");
        for (t, n) in rows {
            s.push_str(&format!("{t:>9.1} us  {n}\n"));
        }
        s
    }

    /// The Cranelift IR of every JIT-compiled kernel.
    pub fn kernel_code(&self) -> &[KernelCode] {
        &self.code
    }

    /// How many JIT kernels went through Cranelift codegen and how many
    /// were installed from stored machine code
    /// ([`CpuBackend::compile_cpu_with_code`](crate::CpuBackend::compile_cpu_with_code)).
    pub fn codegen_counts(&self) -> (usize, usize) {
        self.codegen_counts
    }

    /// Partition, memory plan and code in one text (for `kiln inspect` and
    /// the on-disk format's plan section).
    pub fn plan_text(&self) -> String {
        let mut s = String::new();
        s.push_str(&self.partition_text);
        s.push_str(&self.memory_text);
        for k in &self.code {
            s.push_str(&format!("# k{} ({})\n{}\n", k.kernel, k.name, k.clif));
        }
        s
    }

    fn run_inner(&mut self, inputs: &BTreeMap<String, HostTensor>) -> Result<BTreeMap<String, HostTensor>, RunError> {
        // The signature's own check builds a TensorType per input; compare
        // in place first so a well-formed call allocates nothing here.
        let ok = inputs.len() == self.data_inputs
            && self.sig.inputs.iter().filter(|i| i.role == kiln_ir::InputRole::Input).all(|i| {
                inputs.get(&i.name).is_some_and(|t| t.dtype() == i.ty.dtype && t.shape().0 == i.ty.shape.0 && !t.has_non_finite())
            });
        if !ok {
            self.sig.check_inputs(inputs)?;
        }
        if let Some(p) = self.persistent.iter().find(|p| !p.set) {
            return Err(RunError::UnsetState(p.name.clone()));
        }
        for (i, s) in self.slots.iter().enumerate() {
            self.ptrs[i] = match s {
                SlotSrc::Arena(off) => unsafe { self.arena.ptr().add(*off) },
                SlotSrc::Persistent(p) => self.persistent[*p].buf.ptr(),
                SlotSrc::Constant(c) => self.constants[*c].ptr(),
                SlotSrc::Input(name) => host_bytes(&inputs[name]).as_ptr() as *mut u8,
                // Offset slots come after their base slot.
                SlotSrc::Offset { base, bytes } => self.ptrs[*base].wrapping_add(*bytes),
            };
        }
        self.rollback.save(&self.persistent);
        let arena = self.arena.ptr();
        let (steps, ptrs, pool) = (&mut self.steps, &self.ptrs, &self.pool);
        let mut prof = self.profile.take();
        let mut skip = false;
        let outcome = (|| -> Result<(), RunError> {
        for si in 0..steps.len() {
            if std::mem::take(&mut skip) {
                continue;
            }
            let t0 = prof.as_ref().map(|_| std::time::Instant::now());
            // A GEMM followed by its row-cuttable epilogue runs them block by block.
            let (head, tail) = steps.split_at_mut(si + 1);
            if let (Step::Native { op, .. }, Some(Step::Loop(l))) = (&head[si], tail.first_mut()) {
                if let (true, Some(f)) = (l.row_unit > 0, l.jit) {
                    l.set_args(ptrs);
                    let argv = SendPtrs(l.argv.as_ptr());
                    let unit = l.row_unit;
                    let epi = move |r0: usize, r1: usize| {
                        let p = &argv;
                        unsafe { f(p.0, (r0 * unit) as i64, (r1 * unit) as i64) };
                    };
                    if unsafe { kernels::gemm_with_epilogue(op, ptrs, pool, &epi) } {
                        skip = true;
                        if let (Some(p), Some(t0)) = (prof.as_mut(), t0) {
                            p[si].0 += t0.elapsed().as_secs_f64();
                            p[si].1 += 1;
                        }
                        continue;
                    }
                }
            }
            match &mut steps[si] {
                Step::Native { op, scratch } => {
                    let sp = scratch.map(|o| unsafe { arena.add(o) }).unwrap_or(std::ptr::null_mut());
                    unsafe { kernels::run(op, ptrs, sp, pool)? };
                }
                Step::Loop(l) => {
                    l.set_args(ptrs);
                    unsafe { run_loop(l, ptrs, pool)? }
                }
            }
            if let (Some(p), Some(t0)) = (prof.as_mut(), t0) {
                p[si].0 += t0.elapsed().as_secs_f64();
                p[si].1 += 1;
            }
        }
        Ok(())
        })();
        self.profile = prof;
        if let Err(e) = outcome {
            self.rollback.restore(&mut self.persistent);
            return Err(e);
        }
        let mut out = BTreeMap::new();
        for (name, slot, ty) in &self.outputs {
            let bytes = unsafe { std::slice::from_raw_parts(self.ptrs[*slot], ty.size_bytes()) };
            out.insert(name.clone(), tensor_from_bytes(ty, bytes));
        }
        for &(p, slot, bytes) in &self.copied_updates {
            let src = self.ptrs[slot];
            let dst = self.persistent[p].buf.ptr();
            if src == dst {
                continue;
            }
            let base = match self.slots[slot] {
                SlotSrc::Offset { base, .. } => base,
                _ => slot,
            };
            let from_persistent = matches!(self.slots[base], SlotSrc::Persistent(_));
            if from_persistent {
                // Another param's buffer may itself be overwritten by a later copy.
                let tmp = unsafe { std::slice::from_raw_parts(src, bytes) }.to_vec();
                unsafe { std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, bytes) };
            } else {
                unsafe { std::ptr::copy_nonoverlapping(src, dst, bytes) };
            }
        }
        Ok(out)
    }
}

unsafe fn run_loop(l: &mut LoopStep, ptrs: &[*mut u8], pool: &Pool) -> Result<(), RunError> {
    for &(slot, dt, n, ident, _) in &l.reduce_outs {
        for i in 0..n {
            unsafe { store(dt, ptrs[slot], i, ident) };
        }
    }
    match l.jit {
        Some(f) => {
            let outer = l.outer;
            let t = pool.threads();
            if l.parallel && t > 1 && l.work >= PARALLEL_GRAIN && outer >= t {
                // A few chunks per thread so a late worker still gets a share.
                let chunks = (t * 4).min(outer);
                let p = SendPtrs(l.argv.as_ptr());
                let align = l.align.max(1);
                // Fixed boundaries (not claimed by thread), so a chunk's
                // work is the same whichever thread runs it.
                let bound = move |part: usize| if part == chunks { outer } else { outer * part / chunks / align * align };
                let job = move |part: usize, _thread: usize| {
                    let p = &p;
                    let (lo, hi) = (bound(part), bound(part + 1));
                    if lo < hi {
                        unsafe { f(p.0, lo as i64, hi as i64) };
                    }
                };
                pool.run(chunks, &job);
            } else {
                unsafe { f(l.argv.as_ptr(), 0, outer as i64) };
            }
        }
        None => {
            let d0 = l.prog.dims.first().copied().unwrap_or(1);
            unsafe { program::eval(&l.prog, ptrs, 0, d0, &mut l.vals, &mut l.idx).map_err(RunError::from)? };
        }
    }
    for &(slot, dt, n, _, mean) in &l.reduce_outs {
        if let Some(div) = mean {
            for i in 0..n {
                unsafe {
                    let v = crate::runtime::buffers::load(dt, ptrs[slot], i);
                    store(dt, ptrs[slot], i, v / div);
                }
            }
        }
    }
    Ok(())
}

impl Executable for CpuExecutable {
    fn signature(&self) -> &Signature {
        &self.sig
    }

    fn set_state(&mut self, name: &str, value: HostTensor) -> Result<(), RunError> {
        self.sig.check_state(name, &value)?;
        let p = self.persistent.iter_mut().find(|p| p.name == name).ok_or_else(|| RunError::UnknownState(name.to_string()))?;
        p.buf.bytes_mut()[..p.ty.size_bytes()].copy_from_slice(host_bytes(&value));
        p.set = true;
        Ok(())
    }

    fn state(&self, name: &str) -> Option<HostTensor> {
        let p = self.persistent.iter().find(|p| p.name == name && p.set)?;
        Some(tensor_from_bytes(&p.ty, &p.buf.bytes()[..p.ty.size_bytes()]))
    }

    fn run(&mut self, inputs: &BTreeMap<String, HostTensor>) -> Result<BTreeMap<String, HostTensor>, RunError> {
        self.run_inner(inputs)
    }

    fn plan_text(&self) -> Option<String> {
        Some(CpuExecutable::plan_text(self))
    }

    fn peak_bytes(&self) -> Option<usize> {
        Some(self.peak)
    }
}
