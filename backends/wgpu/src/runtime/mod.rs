//! The device side: the adapter and device (`device.rs`), host <-> device
//! element conversion (`words.rs`), and the compiled program that owns the
//! buffers, pipelines and bind group and runs a step as one submit
//! (`program.rs`).

pub mod device;
pub mod program;
pub mod words;
