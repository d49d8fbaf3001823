//! The kernels a program's steps call, native Rust for the ops that are
//! not loops over elements: `run` dispatches each to its file. GEMM and
//! its epilogues (`gemm.rs`, over the `gemm` crate, `matrixmultiply` and
//! the no-pack kernels of `gemv.rs` and `small_gemm.rs`), convolution
//! (`conv.rs`), pooling (`pooling.rs`), indices and labels (`indexing.rs`),
//! data movement (`movement.rs`) and random numbers (here); `program.rs`
//! evaluates loop programs over non-f32 data. f32 elementwise and
//! reduction work is generated code (`lower/jit.rs`).

pub(crate) mod conv;
mod gemm;
// Public (hidden, re-exported at the crate root) only for
// `examples/small_m_probe.rs`, which times them against `matrixmultiply`.
pub mod gemv;
mod indexing;
mod movement;
pub(crate) mod pooling;
pub(crate) mod program;
pub mod small_gemm;

use kiln_ir::{DType, NodeId, Op, RunError, TensorType};

pub(crate) use gemm::{bias_act, gemm_with_epilogue, Float};
use gemm::{dense, matmul};
use indexing::{argmax, gather, one_hot, scatter_add, softmax_ce};
use movement::{broadcast, concat, pad, permute, slice};

use crate::runtime::pool::Pool;

/// One non-loop op with its operand and result slots.
#[derive(Debug, Clone)]
pub struct NativeOp {
    pub node: NodeId,
    pub op: Op,
    pub ins: Vec<(usize, TensorType)>,
    pub out: (usize, TensorType),
    /// Code generated for this op's shape (conv packing and epilogue,
    /// pooling; see `conv.rs`, `pooling.rs`); empty: the Rust path.
    pub code: Vec<crate::lower::jit::JitFn>,
}

pub(crate) fn unsupported(n: &NativeOp) -> RunError {
    RunError::Backend(format!("{}: {} on {} is not supported by the CPU backend", n.node, n.op.name(), n.ins[0].1.dtype))
}

/// Scratch elements (of the op's dtype) a native op needs when it runs on
/// `threads` threads (one region per thread).
pub fn scratch_elems(op: &Op, ins: &[TensorType], out: &TensorType, threads: usize) -> usize {
    crate::kernels::conv::scratch_elems(op, ins, out, threads)
}

/// Runs one native op.
///
/// # Safety
/// Slots must point at buffers of the types in `n`; `scratch` must hold
/// `scratch_elems` elements.
pub unsafe fn run(n: &NativeOp, slots: &[*mut u8], scratch: *mut u8, pool: &Pool) -> Result<(), RunError> {
    let p = |i: usize| slots[n.ins[i].0];
    let t = |i: usize| &n.ins[i].1;
    let out = slots[n.out.0];
    let oty = &n.out.1;
    let float = t(0).dtype;
    match &n.op {
        Op::MatMul { trans_a, trans_b } => by_float!(float, n, matmul(pool, p(0), t(0), p(1), t(1), *trans_a, *trans_b, out, oty)),
        Op::FusedDense { trans_b, bias, act } => {
            let x = t(0);
            let k = *x.shape.0.last().expect("rank >= 2");
            let m = x.numel() / k.max(1);
            let nn = *oty.shape.0.last().expect("rank >= 2");
            let bias_p = if *bias { Some(p(2)) } else { None };
            by_float!(float, n, dense(pool, p(0), p(1), m, k, nn, *trans_b, bias_p, *act, out))
        }
        Op::Conv2d(_) | Op::FusedConv2d { .. } | Op::Conv1d(_) | Op::Conv2dGradInput { .. } | Op::Conv2dGradWeight { .. } => unsafe { crate::kernels::conv::run(n, slots, scratch, pool)? },
        Op::MaxPool2d(_) | Op::MaxPool2dGrad(_) | Op::AvgPool2d { .. } | Op::AvgPool2dGrad { .. } => unsafe { crate::kernels::pooling::run(n, slots, pool)? },
        Op::SoftmaxCrossEntropy => unsafe { softmax_ce(n.node, p(0), t(0), p(1), t(1), out)? },
        Op::ArgMax { axis, .. } => unsafe { argmax(p(0), t(0), *axis, out) },
        Op::Permute(perm) => unsafe { permute(p(0), t(0), perm, out) },
        Op::Slice { start, step, .. } => unsafe { slice(p(0), t(0), start, step, out, oty) },
        Op::Concat { axis } => {
            let parts: Vec<(*mut u8, &TensorType)> = (0..n.ins.len()).map(|i| (p(i), t(i))).collect();
            unsafe { concat(&parts, *axis, out, oty) }
        }
        Op::Pad { lo, value, .. } => unsafe { pad(pool, p(0), t(0), lo, *value, out, oty) },
        Op::Gather { axis } => unsafe { gather(n.node, p(0), t(0), p(1), t(1), *axis, out)? },
        Op::ScatterAdd { axis, size } => unsafe { scatter_add(n.node, p(0), t(0), p(1), t(1), *axis, *size, out, oty)? },
        Op::OneHot { classes } => unsafe { one_hot(n.node, p(0), t(0), *classes, out)? },
        Op::RandomUniform { seed, low, high, .. } => unsafe {
            let step = *(p(0) as *const i64) as u64;
            let o = out as *mut f32;
            for i in 0..oty.numel() {
                *o.add(i) = kiln_ir::random::uniform(*seed, step, i as u64, *low, *high);
            }
        },
        Op::BroadcastTo(_) => unsafe { broadcast(p(0), t(0), out, oty) },
        other => return Err(RunError::Backend(format!("{}: {} has no native kernel", n.node, other.name()))),
    }
    Ok(())
}
