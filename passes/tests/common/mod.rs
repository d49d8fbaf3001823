//! Shared helpers for kiln-passes integration tests: the golden-file
//! harness and a constant evaluator backed by the reference interpreter.
//!
//! Use from a test target with `mod common;`.
#![allow(dead_code, unused_imports)]

pub mod golden;
pub mod interp_eval;
pub mod rng;

pub use golden::{run_dir, run_file, GoldenCase};
pub use interp_eval::InterpEvaluator;
pub use rng::Rng;
