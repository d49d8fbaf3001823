//! What a compiled program is made of: its steps (a generated loop or a
//! native kernel), where each buffer slot points, and the persistent
//! param/state buffers.

use kiln_ir::{DType, TensorType};

use super::buffers::AlignedBuf;
use crate::kernels::program::Program;
use crate::kernels::NativeOp;
use crate::lower::jit::JitFn;

/// Where a buffer slot points.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SlotSrc {
    Arena(usize),
    Persistent(usize),
    Constant(usize),
    /// Index into the signature's data inputs, filled per run.
    Input(String),
    /// `bytes` past the start of an earlier slot (a view into its middle).
    Offset { base: usize, bytes: usize },
}

/// One step of the program.
pub(crate) enum Step {
    Loop(LoopStep),
    Native { op: NativeOp, scratch: Option<usize> },
}

pub(crate) struct LoopStep {
    pub kernel: usize,
    pub prog: Program,
    pub jit: Option<JitFn>,
    /// Slots of the leaves then the stores: the JIT function's arguments.
    pub args: Vec<usize>,
    /// Byte offsets added to those slots' pointers (fused slices).
    pub arg_offsets: Vec<usize>,
    pub argv: Vec<*mut u8>,
    /// Scratch of the portable evaluator, kept so a run allocates nothing.
    pub vals: Vec<f64>,
    pub idx: Vec<usize>,
    /// Extent of the collapsed dimension the kernel's range walks
    /// ([`Program::split`]) and whether it may be cut across threads.
    pub outer: usize,
    pub parallel: bool,
    /// Chunk boundaries are multiples of this (the vector width times the
    /// unroll when the range walks the innermost, vectorized dimension).
    pub align: usize,
    pub work: usize,
    /// For a contraction's epilogue: collapsed dim-0 units per GEMM output
    /// row (0 when the loop cannot be cut at row boundaries).
    pub row_unit: usize,
    /// Reduction outputs: (slot, dtype, numel, identity, mean divisor).
    pub reduce_outs: Vec<(usize, DType, usize, f64, Option<f64>)>,
}

impl LoopStep {
    /// Points the compiled function's arguments at this run's buffers.
    pub(crate) fn set_args(&mut self, ptrs: &[*mut u8]) {
        for ((a, &s), &o) in self.argv.iter_mut().zip(&self.args).zip(&self.arg_offsets) {
            *a = ptrs[s].wrapping_add(o);
        }
    }
}

pub(crate) struct Persistent {
    pub name: String,
    pub ty: TensorType,
    pub buf: AlignedBuf,
    pub set: bool,
}
