//! The GPU backend's errors. Every failure the device or the driver can
//! report comes back as one of these, never as a panic.

/// Errors of the wgpu backend.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WgpuError {
    /// No adapter could be created (no GPU, no Vulkan/Metal/DX12 driver).
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    /// The graph uses something the device cannot run (f64, a value that
    /// does not fit in 32 bits).
    #[error("not supported on the GPU backend: {0}")]
    Unsupported(String),
    /// naga rejected a generated module: a kiln bug, reported with the text.
    #[error("naga rejected the generated WGSL of {kernel} (a kiln bug): {message}\n--- shader ---\n{wgsl}")]
    InvalidShader { kernel: String, message: String, wgsl: String },
    /// The program needs more than the adapter allows.
    #[error("device limit exceeded: {0}")]
    Limit(String),
    #[error("out of device memory: {0}")]
    OutOfMemory(String),
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    /// A validation or other error reported by wgpu.
    #[error("wgpu: {0}")]
    Device(String),
    /// Partitioning or memory planning failed.
    #[error("planning the program: {0}")]
    Plan(String),
    #[error("writing the dump: {0}")]
    Dump(String),
    /// A shader found an index out of range (the step was rolled back).
    #[error("{node}: index {index} out of range 0..{bound}")]
    IndexOutOfRange { node: String, index: i64, bound: usize },
    #[error("internal error in the wgpu backend: {0}")]
    Internal(String),
}

impl From<WgpuError> for kiln_ir::RunError {
    fn from(e: WgpuError) -> Self {
        kiln_ir::RunError::Backend(e.to_string())
    }
}
