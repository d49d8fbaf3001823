//! Lowering: a kernel of the partition -> machine code, through Cranelift.
//!
//! - `loops.rs`: every f32 loop kernel (elementwise, reductions with their
//!   fused prologue, GEMM epilogues) from its loop program, f32x4 with
//!   scalar tails.
//! - `jit.rs`: the JIT module that compiles and holds every function
//!   (stored code is reinstalled on an identical ISA).
//! - `vmath.rs`: exp, sigmoid and tanh inline in vector code.
//! - `conv.rs`, `pool.rs`, `maxgrad2.rs`: the code generated per concrete
//!   shape around the conv GEMM (im2col, col2im, the moves with a fused
//!   bias + activation) and for max/avg pooling and their gradients.
//! - `util.rs`: emission helpers they share.

pub(crate) mod conv;
pub(crate) mod jit;
mod loops;
pub(crate) mod maxgrad2;
pub(crate) mod pool;
pub(crate) mod util;
pub(crate) mod vmath;
