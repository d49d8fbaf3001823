//! Lowering: one kernel of the partition -> the WGSL compute shaders that
//! run it, in order. Every shader binds one storage buffer, `mem`, holding
//! every value of the program as 32-bit words at the offsets of the
//! [`Layout`] (f32 as its bits, i64/i32 as i32, bool as 0/1), so any kernel
//! can read and write any value without a bind group per kernel, and
//! reading and writing the same buffer in one dispatch is no usage
//! conflict.
//!
//! Shaders are launched with one invocation per work item (`invocations`),
//! in workgroups of [`WORKGROUP_SIZE`]; the runtime folds the grid into
//! x/y when it exceeds the per-dimension limit, and every shader computes
//! its linear index as `gid.x + gid.y * nwg.x * WORKGROUP_SIZE`.
//!
//! No shader uses atomics or races on a value: each output element is
//! computed by exactly one invocation, reductions run in a fixed order, so
//! results are bit-identical run to run.

pub mod conv;
pub mod dense;
pub mod indexing;
pub mod loops;
pub mod movement;
pub mod pool;
pub mod validate;
pub mod wgsl;

use kiln_ir::{Graph, NodeId, Op};
use kiln_passes::partition::{Kernel, KernelKind};

use crate::layout::Layout;
use crate::WgpuError;

pub use wgsl::{Shader, WORKGROUP_SIZE};

/// What a lowering function needs: the graph and where values live.
pub struct Cx<'a> {
    pub g: &'a Graph,
    pub layout: &'a Layout,
}

impl Cx<'_> {
    /// Word offset of element 0 of `n`'s value.
    pub fn word(&self, n: NodeId) -> Result<u64, WgpuError> {
        self.layout.word(n)
    }

    /// The module text of a shader whose `main` body is `body` (run for
    /// `idx` in `0..invocations`), with `fns` (helper functions) before it.
    pub fn shader(&self, name: String, fns: &str, body: &str, invocations: u64) -> Result<Shader, WgpuError> {
        wgsl::shader(name, self.layout.err_word(), fns, body, invocations)
    }
}

/// The shaders of one kernel, in dispatch order: the anchor op (if any,
/// except a reduction, which is part of its loop) then the fused loop.
pub fn lower_kernel(cx: &Cx, k: &Kernel) -> Result<Vec<Shader>, WgpuError> {
    let mut out = Vec::new();
    if let Some(a) = k.anchor.filter(|_| k.kind != KernelKind::Reduce) {
        out.extend(lower_anchor(cx, a)?);
    }
    if !k.fused.is_empty() || k.kind == KernelKind::Reduce {
        out.push(loops::lower(cx, k)?);
    }
    Ok(out)
}

/// The shaders of one non-loop op. One arm per op, so a new op does not
/// compile until the GPU lowers it.
pub fn lower_anchor(cx: &Cx, n: NodeId) -> Result<Vec<Shader>, WgpuError> {
    let not_a_kernel = |what: &str| Err(WgpuError::Internal(format!("{n}: {what} is not a kernel of its own")));
    match cx.g.op(n) {
        Op::Input { .. } | Op::Constant(_) => not_a_kernel("a source"),
        Op::Reshape(_) | Op::StopGradient => not_a_kernel("a view"),
        Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Select | Op::Cast(_) | Op::BroadcastTo(_) | Op::Reduce { .. } => {
            not_a_kernel("a loop node")
        }
        Op::Slice { .. } | Op::Permute(_) | Op::Concat { .. } | Op::Pad { .. } => movement::lower(cx, n),
        Op::ArgMax { .. } | Op::MatMul { .. } | Op::FusedDense { .. } | Op::SoftmaxCrossEntropy => dense::lower(cx, n),
        Op::Gather { .. } | Op::ScatterAdd { .. } | Op::OneHot { .. } | Op::RandomUniform { .. } => indexing::lower(cx, n),
        Op::Conv2d(_) | Op::FusedConv2d { .. } | Op::Conv1d(_) | Op::Conv2dGradInput { .. } | Op::Conv2dGradWeight { .. } => {
            conv::lower(cx, n)
        }
        Op::MaxPool2d(_) | Op::MaxPool2dGrad(_) | Op::AvgPool2d { .. } | Op::AvgPool2dGrad { .. } => pool::lower(cx, n),
    }
}

/// `n` words from `src` to `dst` (an update copied into its param after the
/// step: a buffer cannot be copied into itself by the encoder).
pub fn copy(cx: &Cx, name: String, src: u64, dst: u64, n: u64) -> Result<Shader, WgpuError> {
    let (src, dst) = (wgsl::u32_word(src)?, wgsl::u32_word(dst)?);
    cx.shader(name, "", &format!("    mem[{dst}u + idx] = mem[{src}u + idx];\n"), n)
}
