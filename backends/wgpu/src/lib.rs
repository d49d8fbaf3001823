//! kiln's GPU backend. The pipeline, as in the CPU backend:
//! - `layout`: where each value lives in the program's one device buffer;
//! - `lower/`: kernel -> WGSL (one module per dispatch), validated by naga
//!   at compile time, before and without any device;
//! - `runtime/`: the wgpu device, the buffer, pipelines and bind group built
//!   at compile time, and a step as one encoder and one submit.

mod error;
pub mod layout;
pub mod lower;

pub use error::WgpuError;
