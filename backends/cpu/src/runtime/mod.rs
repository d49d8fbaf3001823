//! The runtime: what a compiled program is (`step.rs`), its buffers
//! (`buffers.rs`: one planned arena, persistent params/state), the thread
//! pool that runs parallel kernels (`pool.rs`), the run loop (`exec.rs`)
//! and the restore of in-place updates when a run fails (`rollback.rs`).

pub(crate) mod buffers;
pub(crate) mod exec;
pub(crate) mod pool;
pub(crate) mod rollback;
pub(crate) mod step;
