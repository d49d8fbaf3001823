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

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use kiln::{BackendKind, Builder, CompileOptions, Graph, HostTensor, NodeId, ParamStore, Spec};
use serde_json::Value;

pub type Tensors = BTreeMap<String, HostTensor>;
pub type Res<T> = Result<T, String>;

/// `e(err)`: any displayable error as the `String` the helpers return.
pub fn e<E: std::fmt::Display>(x: E) -> String {
    x.to_string()
}

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

#[derive(Debug, Clone, Copy)]
pub struct Tol {
    pub rtol: f64,
    pub atol: f64,
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

/// numpy.allclose with the file's value as `want`; shapes must match. The
/// worst element is reported.
pub fn compare(name: &str, got: &HostTensor, want: &HostTensor, tol: &Tol, fails: &mut Vec<String>) {
    if got.shape() != want.shape() {
        fails.push(format!("{name}: shape {} vs expected {}", got.shape(), want.shape()));
        return;
    }
    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
    let mut worst: Option<(usize, f64)> = None;
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let excess = (a - b).abs() - (tol.atol + tol.rtol * b.abs());
        let bad = excess > 0.0 || excess.is_nan();
        if bad && worst.is_none_or(|(_, x)| excess > x || excess.is_nan()) {
            worst = Some((i, excess));
        }
    }
    if let Some((i, _)) = worst {
        fails.push(format!("{name}: element {i}: got {} expected {} (shape {})", g[i], w[i], want.shape()));
    }
}

pub fn get<'a>(t: &'a Tensors, k: &str) -> Res<&'a HostTensor> {
    t.get(k).ok_or_else(|| format!("missing tensor `{k}`"))
}

pub fn cfg_usize(c: &Value, k: &str) -> Res<usize> {
    c[k].as_u64().map(|v| v as usize).ok_or_else(|| format!("config `{k}` is not an integer: {}", c[k]))
}
pub fn cfg_f64(c: &Value, k: &str) -> Res<f64> {
    c[k].as_f64().ok_or_else(|| format!("config `{k}` is not a number: {}", c[k]))
}
pub fn cfg_bool(c: &Value, k: &str) -> Res<bool> {
    c[k].as_bool().ok_or_else(|| format!("config `{k}` is not a bool: {}", c[k]))
}
pub fn cfg_str<'a>(c: &'a Value, k: &str) -> Res<&'a str> {
    c[k].as_str().ok_or_else(|| format!("config `{k}` is not a string: {}", c[k]))
}
/// An int or a list of ints, as `n` values (an int is repeated).
pub fn cfg_ints<const N: usize>(c: &Value, k: &str) -> Res<[usize; N]> {
    match &c[k] {
        Value::Number(n) => Ok([n.as_u64().ok_or_else(|| format!("config `{k}`: bad int"))? as usize; N]),
        Value::Array(a) if a.len() == N => {
            let mut out = [0; N];
            for (o, v) in out.iter_mut().zip(a) {
                *o = v.as_u64().ok_or_else(|| format!("config `{k}`: bad int"))? as usize;
            }
            Ok(out)
        }
        v => Err(format!("config `{k}`: expected an int or {N} ints, got {v}")),
    }
}
/// An int or a list of two ints.
pub fn cfg_pair(c: &Value, k: &str) -> Res<[usize; 2]> {
    cfg_ints::<2>(c, k)
}

/// The forward graph of one case: builder, store, and named outputs
/// (`"y"` is compared with `output.y`).
pub struct Forward {
    pub b: Builder,
    pub store: ParamStore,
    pub outputs: Vec<(String, NodeId)>,
}

/// The names `n` of the file's `input.<n>` tensors.
pub fn input_names(t: &Tensors) -> Vec<String> {
    t.keys().filter_map(|k| k.strip_prefix("input.")).map(str::to_string).collect()
}

/// Adds every `input.<n>` of the file as a graph input `<n>` of its type.
pub fn add_inputs(b: &mut Builder, t: &Tensors) -> Res<BTreeMap<String, NodeId>> {
    let mut inputs = BTreeMap::new();
    for n in input_names(t) {
        let v = get(t, &format!("input.{n}"))?;
        inputs.insert(n.clone(), b.input(&n, v.ty()).map_err(e)?);
    }
    Ok(inputs)
}

/// Sets `param.*` and `buffer.*` values into the store (names must exist
/// there, with the same shapes).
pub fn load_store(store: &mut ParamStore, t: &Tensors) -> Res<()> {
    for (k, v) in t {
        if let Some(n) = k.strip_prefix("param.").or_else(|| k.strip_prefix("buffer.")) {
            store.set(n, v.clone()).map_err(|err| format!("{k}: {err}"))?;
        }
    }
    Ok(())
}

/// Forward, J = sum(out * upstream), gradients of J by autodiff, compile
/// for `backend`, run, compare every reference tensor of the file (one it
/// does not produce is a failure).
pub fn run_forward_case(fwd: Forward, t: &Tensors, tol: &Tol, backend: BackendKind) -> Res<Vec<String>> {
    let Forward { mut b, mut store, outputs } = fwd;
    let mut fails = Vec::new();
    load_store(&mut store, t)?;
    let mut terms = Vec::new();
    let mut feed: Tensors = BTreeMap::new();
    for n in input_names(t) {
        feed.insert(n.clone(), t[&format!("input.{n}")].clone());
    }
    for (n, id) in &outputs {
        b.output(&format!("output.{n}"), *id).map_err(e)?;
        if let Some(up) = t.get(&format!("upstream.{n}")) {
            let u = b.input(&format!("upstream.{n}"), up.ty()).map_err(e)?;
            let p = b.mul(*id, u).map_err(e)?;
            terms.push(b.sum_all(p).map_err(e)?);
            feed.insert(format!("upstream.{n}"), up.clone());
        }
    }
    let mut wrt = Vec::new();
    for k in t.keys() {
        let Some(rest) = k.strip_prefix("grad.") else { continue };
        let Some(name) = rest.strip_prefix("input.").or_else(|| rest.strip_prefix("param.")) else { continue };
        let id = b.find_input(name).ok_or_else(|| format!("{k}: the graph has no input `{name}`"))?;
        wrt.push((k.clone(), id));
    }
    let mut g: Graph = b.graph().clone();
    if !wrt.is_empty() {
        let mut j = *terms.first().ok_or("gradients expected but no upstream")?;
        for &tm in &terms[1..] {
            j = g.add(j, tm).map_err(e)?;
        }
        let ids: Vec<NodeId> = wrt.iter().map(|(_, id)| *id).collect();
        let grads = kiln::grad(&mut g, j, &ids).map_err(e)?;
        for ((k, _), gid) in wrt.iter().zip(grads) {
            g.set_output(k, gid).map_err(e)?;
        }
    }
    let spec = Spec::from_parts(g, &store, b.init_values()).map_err(e)?;
    let mut prog = kiln::compile(&spec, CompileOptions::default().backend(backend)).map_err(e)?;
    let out = prog.run_map(&feed).map_err(e)?;
    let mut compared = BTreeSet::new();
    for (k, want) in t {
        if k.starts_with("output.") || k.starts_with("grad.input.") || k.starts_with("grad.param.") {
            let got = out.get(k).ok_or_else(|| format!("program has no output {k}"))?;
            compare(k, got, want, tol, &mut fails);
            compared.insert(k.clone());
        } else if let Some(n) = k.strip_prefix("buffer_after.") {
            let got = prog.state(n).ok_or_else(|| format!("program has no state {n}"))?;
            compare(k, &got, want, tol, &mut fails);
            compared.insert(k.clone());
        }
    }
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
