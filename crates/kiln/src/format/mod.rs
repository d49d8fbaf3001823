//! The on-disk format of a compiled program (`.kiln`), documented byte by
//! byte in `docs/format.md`.
//!
//! One file holds everything needed to run a program without re-optimizing
//! it: the signature, backend and options, the optimized graph (`.kir`
//! text), the backend's plan (kernels with their generated code, buffer plan,
//! dispatch order), the params and optimizer state (safetensors), the pass
//! report (for `kiln inspect`), and checksums over all of it.
//!
//! Two levels of API:
//!
//! - [`save`] / [`load`] (and [`Program::save`](crate::Program) if the
//!   facade forwards to them) go from a compiled [`Program`](crate::Program)
//!   to a file and back. Loading parses the stored optimized graph and hands
//!   it to the backend; no optimization pass runs.
//! - [`ProgramFile`] is the decoded content, for tools (`kiln inspect`,
//!   `kiln run`): [`ProgramFile::read`] checks and decodes a file without
//!   compiling anything; [`ProgramFile::instantiate`] compiles it.
//!
//! Every failure is a typed [`FormatError`]: a truncated, bit-flipped,
//! wrong-version, wrong-backend or non-kiln file never panics and never
//! loads.
//!
//! A hostile file (checksums made to match) cannot make kiln run code from
//! it: stored machine code is installed only when sealed with this user's
//! [`CodeKey`] (kept outside any file), and is compiled from the graph
//! otherwise; nor allocate without bound: sizes are checked against the
//! file's own bytes or [`LoadOptions::max_memory`] first. The threat model
//! is in `docs/format.md`.
//!
//! ```no_run
//! # fn demo(step: &kiln::Program) -> Result<(), kiln::format::FormatError> {
//! kiln::format::save(step, "lenet-train.kiln")?;
//! let mut again = kiln::format::load("lenet-train.kiln")?;          // no passes run
//! let info = kiln::format::ProgramFile::read("lenet-train.kiln")?;  // decode only
//! println!("{} on {}, {} weights", info.signature.inputs.len(), info.backend, info.state.len());
//! # Ok(()) }
//! ```

mod code_key;
mod container;
mod file;
mod limits;
mod program_io;
mod seal;

pub use code_key::{CodeKey, KeyChoice, KEY_ENV};
pub use container::{boundaries, MAGIC, VERSION};
pub use file::{PlanEntry, ProgramFile};
pub use limits::{LoadOptions, DEFAULT_MAX_MEMORY, MAX_THREADS};
pub use program_io::{backend_name, load, load_expecting, load_with, parse_backend, save, save_with, to_file, to_file_with};
pub use seal::{EXECUTABLE, SEAL};

use kiln_ir::RunError;

/// Everything that can go wrong writing or reading a `.kiln` file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FormatError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("not a kiln program file (wrong magic number)")]
    NotKiln,
    #[error("format version {found} is not supported by this kiln (it reads version {supported})")]
    Version { found: u32, supported: u32 },
    #[error("truncated file: {at} needs {needed} bytes, the file has {available}")]
    Truncated { at: String, needed: usize, available: usize },
    #[error("corrupted file: checksum mismatch in {section} (section at byte {offset})")]
    Checksum { section: String, offset: usize },
    #[error("corrupted file: section {section}: {reason}")]
    Corrupt { section: String, reason: String },
    #[error("section {0} is required but this kiln does not know it (written by a newer kiln?)")]
    UnknownSection(String),
    #[error("section {0} is missing")]
    MissingSection(String),
    #[error("the program was compiled for backend `{found}`, expected `{expected}`")]
    WrongBackend { found: String, expected: String },
    #[error("backend `{0}` is not available in this build")]
    UnknownBackend(String),
    #[error("the {backend} backend's plan for the stored graph differs from the stored plan (file written by a different {backend} build); recompile it")]
    PlanMismatch { backend: String },
    #[error("cannot encode: {0}")]
    Encode(String),
    /// The program needs more memory than the file backs plus the load's
    /// limit ([`LoadOptions::max_memory`]); checked before allocating it.
    #[error("the program needs {needed} bytes for {what}, over the load limit of {limit} (LoadOptions::max_memory, plus the stored weights)")]
    TooLarge { what: String, needed: u64, limit: u64 },
    /// The user's code key file cannot be used (see `docs/format.md`).
    #[error("code key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("backend: {0}")]
    Backend(#[from] RunError),
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod hostile_tests;
