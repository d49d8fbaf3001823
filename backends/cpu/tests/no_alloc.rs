//! A training step allocates nothing after the first call except the
//! output tensors `run` returns (its signature hands back owned tensors)
//! and the packing buffers the GEMM libraries (`matrixmultiply`, `gemm`)
//! allocate inside each call (small, served from the allocator's free
//! lists). The allocator below tells those apart by their backtrace.

#[path = "common/models.rs"]
mod models;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use kiln_cpu::CpuBackend;
use kiln_ir::Executable;
use models::*;

struct Counting;
static COUNT: AtomicUsize = AtomicUsize::new(0);
static ON: AtomicBool = AtomicBool::new(false);
static GEMM: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if ON.load(Ordering::Relaxed) && !INSIDE.with(|c| c.replace(true)) {
            let bt = std::backtrace::Backtrace::force_capture().to_string();
            if bt.contains("matrixmultiply") || bt.contains("gemm_common") || bt.contains("gemm_f32") {
                GEMM.fetch_add(1, Ordering::Relaxed);
            } else {
                COUNT.fetch_add(1, Ordering::Relaxed);
            }
            INSIDE.with(|c| c.set(false));
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn steady_state_training_step_allocates_only_its_outputs() {
    for g in [
        mlp_train(16, &[80, 70, 10], Optim::Adam { lr: 1e-3, b1: 0.9, b2: 0.999, eps: 1e-8 }),
        lenet_train(9, Optim::Sgd { lr: 0.01, momentum: 0.9 }),
    ] {
        let mut exe = CpuBackend::new().compile_cpu(&g).unwrap();
        for (k, v) in init_state(&g, 1) {
            exe.set_state(&k, v).unwrap();
        }
        let data = batch(&g, 10, 2);
        exe.run(&data).unwrap();
        ON.store(true, Ordering::SeqCst);
        let out = exe.run(&data).unwrap();
        ON.store(false, Ordering::SeqCst);
        let n = COUNT.swap(0, Ordering::SeqCst);
        // One output ("loss"): its name, its data, its shape and the map node.
        assert!(n <= 4, "{n} allocations in a steady-state step (besides {} in the GEMM libraries)", GEMM.swap(0, Ordering::SeqCst));
        assert_eq!(out.len(), 1);
    }
}
