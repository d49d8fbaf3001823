//! kiln-cpu: the CPU backend.
//!
//! Its folders follow the pipeline, as the GPU backend's do. `compile.rs`
//! runs it: kernel partitioning and memory planning (kiln-passes), then
//! lowering, then the executable.
//! - `lower/`: kernel -> machine code, through Cranelift. `jit.rs` emits
//!   every f32 elementwise kernel, every f32 reduction (with its fused
//!   elementwise prologue) and every matmul/conv epilogue (bias,
//!   activation, residual add, optimizer updates), vectorized f32x4 with
//!   scalar tails. exp/sigmoid/tanh are inline (`vmath.rs`); other
//!   transcendentals call Rust per lane. Generated per concrete shape:
//!   around the conv GEMM (`conv.rs`: im2col, col2im, the moves in and out
//!   of each GEMM block with a fused conv's bias + activation), and max/avg
//!   pooling with their gradients (`pool.rs`).
//! - `kernels/`: what the steps call.
//!   - `mod.rs`: GEMM through the `gemm` crate (its AVX2/FMA kernels,
//!     picked at run time; the crate's AVX-512 kernels need a nightly
//!     compiler; on a Zen 4 its AVX2 path ran 94-106 GFLOP/s on one core,
//!     `examples/gemm_probe.rs`, against 87-90 for PyTorch's matmul) and
//!     `matrixmultiply` for narrow products, split across the pool, with
//!     the epilogue run per row block while hot. Also gather/scatter/
//!     one-hot, permute/slice/concat/pad/broadcast copies, softmax
//!     cross-entropy, argmax and Philox.
//!   - `gemv.rs`: a streaming kernel for 1-4 rows, and AVX2 dot products
//!     for a few rows or columns times a transposed weight.
//!   - `small_gemm.rs`: no-pack register tiles for 5-64 rows.
//!   - `conv.rs`: convolution and its gradients as GEMMs per block of
//!     images or of output rows (f64 also im2col/col2im there).
//!   - `pooling.rs`: pooling.
//!   - `program.rs`: the portable evaluator of loop programs that touch
//!     non-f32 data (i64 labels, f64, bool buffers).
//! - `runtime/`: the executable's steps and slots (`step.rs`), its buffers
//!   (`buffers.rs`) and its run loop (`exec.rs`).
//!   - Every buffer lives in one arena planned at compile time, or in
//!     persistent param/state buffers (updates are written in place where
//!     safe). So a run allocates nothing but the output tensors it returns,
//!     and the packing buffers the GEMM libraries allocate inside each call.
//!   - A persistent pool (`pool.rs`) runs parallel kernels on all cores.
//!   - A run that fails part-way (an index out of range) restores what it
//!     had already updated in place (`rollback.rs`), so a failed training
//!     step changes no state.
//!
//! ```
//! use kiln_ir::{Backend, Graph, HostTensor, f32_shape};
//! let mut g = Graph::new();
//! let x = g.input("x", f32_shape([5])).unwrap();
//! let y = g.relu(x).unwrap();
//! g.set_output("y", y).unwrap();
//! let mut exe = kiln_cpu::CpuBackend::new().compile(&g).unwrap();
//! let x = HostTensor::from_f32([5], vec![-2.0, -1.0, 0.0, 1.0, 2.0]).unwrap();
//! let out = exe.run(&[("x".to_string(), x)].into_iter().collect()).unwrap();
//! assert_eq!(out["y"].as_f32().unwrap(), &[0.0, 0.0, 0.0, 1.0, 2.0]);
//! ```

/// Calls the f32 or f64 instance of a generic native kernel by the dtype
/// `$float`; any other dtype is an unsupported-op error for native op `$n`.
macro_rules! by_float {
    ($float:expr, $n:expr, $f:ident ( $($arg:expr),* )) => {
        match $float {
            DType::F32 => unsafe { $f::<f32>($($arg),*) },
            DType::F64 => unsafe { $f::<f64>($($arg),*) },
            _ => return Err(crate::kernels::unsupported($n)),
        }
    };
}

mod compile;
mod kernels;
mod lower;
mod runtime;

#[doc(hidden)]
pub use kernels::{gemv, small_gemm};

use std::path::PathBuf;

use kiln_ir::{Backend, Executable, Graph, RunError};

pub use runtime::exec::CpuExecutable;
pub use lower::jit::{CodeReloc, KernelCode, MachineCode};

/// Errors of the CPU backend.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CpuError {
    #[error("planning: {0}")]
    Plan(String),
    #[error("code generation: {0}")]
    Codegen(String),
    #[error("dump: {0}")]
    Dump(String),
    #[error("{0}")]
    Run(String),
    #[error("internal: {0}")]
    Internal(String),
    /// The memory plan needs more bytes than [`CpuBackend::max_memory`] allows.
    #[error("the program needs {needed} bytes of memory, more than the limit of {limit}")]
    MemoryLimit { needed: u64, limit: u64 },
}

impl From<CpuError> for RunError {
    fn from(e: CpuError) -> RunError {
        RunError::Backend(e.to_string())
    }
}

/// The CPU backend and its options.
#[derive(Debug, Clone)]
pub struct CpuBackend {
    /// Where to write the kernel partition, memory plan and `.clif` per
    /// kernel (nothing is written when `None`).
    pub dump_dir: Option<PathBuf>,
    /// Threads used for elementwise/reduction kernels (the GEMM library
    /// threads itself); default: the machine's available parallelism.
    pub threads: usize,
    /// Lower loop kernels with Cranelift (default). `false` runs every loop
    /// with the portable scalar evaluator (for debugging and differential tests).
    pub jit: bool,
    /// Refuse, before allocating anything, a program whose memory plan
    /// (arena, per-thread scratch, params/state, constants) needs more
    /// bytes than this; `None`: no limit (a graph built in code).
    pub max_memory: Option<u64>,
}

impl Default for CpuBackend {
    fn default() -> Self {
        CpuBackend::new()
    }
}

impl CpuBackend {
    pub fn new() -> CpuBackend {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(8);
        CpuBackend { dump_dir: None, threads, jit: true, max_memory: None }
    }

    /// Writes the partition, the memory plan and the generated code to `dir`.
    pub fn with_dump(mut self, dir: impl Into<PathBuf>) -> CpuBackend {
        self.dump_dir = Some(dir.into());
        self
    }

    pub fn with_threads(mut self, threads: usize) -> CpuBackend {
        self.threads = threads.max(1);
        self
    }

    pub fn with_jit(mut self, jit: bool) -> CpuBackend {
        self.jit = jit;
        self
    }

    pub fn with_max_memory(mut self, bytes: u64) -> CpuBackend {
        self.max_memory = Some(bytes);
        self
    }

    /// Compiles an (already optimized) graph into a concrete executable. No
    /// graph rewriting happens here: partitioning, memory planning and
    /// lowering are deterministic functions of the graph, so a program
    /// loaded from disk is rebuilt with this call.
    pub fn compile_cpu(&self, graph: &Graph) -> Result<CpuExecutable, CpuError> {
        compile::compile(self, graph, &[])
    }

    /// [`compile_cpu`](Self::compile_cpu), but every kernel whose Cranelift
    /// IR equals the stored kernel's (same kernel id) and whose stored
    /// machine code was made for this exact ISA gets that code installed
    /// instead of running Cranelift codegen (the expensive part of a
    /// compile). Any other kernel is compiled as usual, so stale code is
    /// never run.
    ///
    /// # Safety
    ///
    /// The bytes of every `stored[i].machine` are executed as they are. Each
    /// must be what this backend's codegen produced from exactly
    /// `stored[i].clif` for the ISA it names: the CLIF and ISA checks above
    /// catch stale code, not forged code. Bytes from an untrusted source
    /// must be authenticated first (the `.kiln` loader accepts only code
    /// sealed with the user's own key, see `docs/format.md`).
    pub unsafe fn compile_cpu_with_code(&self, graph: &Graph, stored: &[KernelCode]) -> Result<CpuExecutable, CpuError> {
        compile::compile(self, graph, stored)
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn compile(&self, graph: &Graph) -> Result<Box<dyn Executable>, RunError> {
        Ok(Box::new(self.compile_cpu(graph)?))
    }
}
