//! kiln's GPU backend. The pipeline, as in the CPU backend:
//! - `compile`: partition and memory plan (kiln-passes), the buffer
//!   `layout`, and every kernel lowered to WGSL (`lower/`) and validated
//!   by naga, before and without any device;
//! - `runtime/`: the wgpu device, the one storage buffer, pipelines and the
//!   bind group built at compile time, and a step as one encoder and one
//!   submit.

pub mod compile;
mod error;
pub mod layout;
pub mod lower;
pub mod runtime;

use std::path::PathBuf;

use kiln_ir::{Backend, Executable, Graph, RunError, Signature};

pub use compile::{lower_graph, Lowered};
pub use error::WgpuError;
pub use runtime::program::WgpuExecutable;

/// The GPU backend and its options.
#[derive(Debug, Clone, Default)]
pub struct WgpuBackend {
    /// Where to write the partition, memory plan, dispatch list and one
    /// `.wgsl` per dispatch (nothing is written when `None`).
    pub dump_dir: Option<PathBuf>,
    /// Refuse, before any device buffer is created, a program whose one
    /// buffer needs more bytes than this (a loaded file's budget); `None`:
    /// only the adapter's limits.
    pub max_memory: Option<u64>,
}

impl WgpuBackend {
    pub fn new() -> WgpuBackend {
        WgpuBackend::default()
    }

    pub fn with_dump(mut self, dir: impl Into<PathBuf>) -> WgpuBackend {
        self.dump_dir = Some(dir.into());
        self
    }

    /// Compiles `g` for the GPU. When `stored` is given (a loaded file's
    /// shaders), it must equal what this build generates.
    pub fn compile_program(&self, g: &Graph, stored: Option<&[(String, String)]>) -> Result<WgpuExecutable, WgpuError> {
        let lowered = lower_graph(g)?;
        if let Some(limit) = self.max_memory.filter(|&l| lowered.layout.bytes() > l) {
            return Err(WgpuError::Limit(format!("the program needs {} bytes of device memory, more than the limit of {limit}", lowered.layout.bytes())));
        }
        if let Some(stored) = stored {
            check_stored(&lowered, stored)?;
        }
        if let Some(dir) = &self.dump_dir {
            dump(dir, &lowered)?;
        }
        WgpuExecutable::new(Signature::of(g), g.outputs().to_vec(), lowered)
    }
}

/// A stored program's shaders must be exactly this build's: stored WGSL is
/// never compiled on trust.
pub fn check_stored(lowered: &Lowered, stored: &[(String, String)]) -> Result<(), WgpuError> {
    let same = stored.len() == lowered.shaders.len()
        && stored.iter().zip(&lowered.shaders).all(|((n, w), s)| *n == s.name && *w == s.wgsl);
    if same {
        Ok(())
    } else {
        Err(WgpuError::Plan("the file's stored WGSL is not what this build generates for its graph".into()))
    }
}

fn dump(dir: &std::path::Path, l: &Lowered) -> Result<(), WgpuError> {
    let e = |e: kiln_passes::PassError| WgpuError::Dump(e.to_string());
    std::fs::create_dir_all(dir).map_err(|x| WgpuError::Dump(format!("{}: {x}", dir.display())))?;
    kiln_passes::write_dump_file(dir, "partition.txt", &l.partition_text).map_err(e)?;
    kiln_passes::write_dump_file(dir, "memory-plan.txt", &l.memory_text).map_err(e)?;
    kiln_passes::write_dump_file(dir, "dispatches.txt", &l.dispatch_text(65535)).map_err(e)?;
    let names: Vec<String> = l.shaders.iter().enumerate().map(|(i, s)| format!("{i:03}-{}.wgsl", s.name.replace('%', ""))).collect();
    let files: Vec<(&str, &str)> = names.iter().map(String::as_str).zip(l.shaders.iter().map(|s| s.wgsl.as_str())).collect();
    if !files.is_empty() {
        kiln_passes::write_dump_group(dir, &files).map_err(e)?;
    }
    Ok(())
}

impl Backend for WgpuBackend {
    fn name(&self) -> &'static str {
        "wgpu"
    }

    fn compile(&self, graph: &Graph) -> Result<Box<dyn Executable>, RunError> {
        Ok(Box::new(self.compile_program(graph, None)?))
    }
}
