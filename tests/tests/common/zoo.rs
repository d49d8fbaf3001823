//! Shared helpers for the PyTorch model-zoo golden cases in
//! `tests/golden-zoo/` (format: `tests/golden-zoo/README.md`, same rules as
//! `tests/golden/README.md`). Used by `golden_zoo_layers.rs` and
//! `golden_zoo_models.rs` as `#[path = "common/zoo.rs"] mod zoo;`.
//!
//! A test builds a case's forward graph into a [`Forward`] (builder, store,
//! named outputs) and hands it to [`run_forward_case`], which loads the
//! case's `param.*`/`buffer.*` into the store, adds J = sum(out * upstream),
//! takes the gradients of J with autodiff, compiles for the backend, runs,
//! and compares every `output.*`, `grad.input.*`, `grad.param.*` and
//! `buffer_after.*` of the file. [`run_manifest`] runs a set of cases and
//! panics listing every case that failed or could not be built.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use kiln::{BackendKind, CompileOptions};
use serde_json::Value;

#[path = "golden.rs"]
mod golden;
pub use golden::*;

/// `tests/golden-zoo/`.
pub fn zoo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden-zoo")
}

/// Every case of `manifest.json`.
pub fn manifest() -> Vec<Value> {
    let text = std::fs::read_to_string(zoo_dir().join("manifest.json")).expect("tests/golden-zoo/manifest.json");
    let v: Value = serde_json::from_str(&text).expect("manifest.json is JSON");
    v.as_array().expect("manifest.json is an array").clone()
}

/// The tensors of `<case>.safetensors`.
pub fn load_case(name: &str) -> Res<Tensors> {
    kiln::ir::read_safetensors(&zoo_dir().join(format!("{name}.safetensors"))).map_err(|err| format!("{name}.safetensors: {err}"))
}

/// The case's `tolerance`.
pub fn tolerance(case: &Value) -> Res<Tol> {
    Ok(Tol { rtol: cfg_f64(&case["tolerance"], "rtol")?, atol: cfg_f64(&case["tolerance"], "atol")? })
}

/// Whether a tensor of a case file is a reference value to check (the
/// others are given data).
pub fn is_reference(k: &str) -> bool {
    ["output.", "grad.input.", "grad.param.", "buffer_after.", "param_after.", "state.", "loss."].iter().any(|p| k.starts_with(p))
}

/// [`golden::run_forward`] on `backend`, then every reference tensor of the
/// file must have been compared (one it does not produce is a failure).
pub fn run_forward_case(fwd: Forward, t: &Tensors, tol: &Tol, backend: BackendKind) -> Res<Vec<String>> {
    let mut fails = Vec::new();
    let compared = golden::run_forward(fwd, t, tol, CompileOptions::default().backend(backend), &mut fails)?;
    for k in t.keys().filter(|k| is_reference(k)) {
        if !compared.contains(k) {
            fails.push(format!("{k}: reference tensor not compared"));
        }
    }
    Ok(fails)
}

/// Runs every manifest case whose kind is in `kinds` on `backend` with
/// `run(case, tensors, backend)` (which returns the mismatches);
/// `KILN_ZOO_CASE=substring` selects cases. Panics listing every case
/// that differs, errors or panics; returns the number that passed.
pub fn run_manifest(kinds: &[&str], backend: BackendKind, run: impl Fn(&Value, &Tensors, BackendKind) -> Res<Vec<String>>) -> usize {
    let only = std::env::var("KILN_ZOO_CASE").ok();
    let mut passed = 0;
    let mut problems = Vec::new();
    for case in manifest() {
        let name = case["case"].as_str().unwrap_or("?").to_string();
        if !kinds.contains(&case["kind"].as_str().unwrap_or("")) || only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let t = load_case(&name)?;
            run(&case, &t, backend)
        }));
        match result {
            Ok(Ok(f)) if f.is_empty() => passed += 1,
            Ok(Ok(f)) => problems.push(format!("{name}:\n    {}", f.join("\n    "))),
            Ok(Err(m)) => problems.push(format!("{name}: could not run: {m}")),
            Err(p) => {
                let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
                problems.push(format!("{name}: panicked: {}", msg.unwrap_or_default()))
            }
        }
    }
    eprintln!("golden zoo {kinds:?} ({backend:?}): {passed} passed, {} failed", problems.len());
    assert!(passed + problems.len() > 0, "KILN_ZOO_CASE={only:?} selects no case of kinds {kinds:?}");
    assert!(problems.is_empty(), "golden-zoo cases that do not match PyTorch on {backend:?}:\n{}", problems.join("\n"));
    passed
}
