//! Helpers shared by the PyTorch golden-file tests (`golden_parity.rs`,
//! and through `zoo.rs` the model-zoo ones): the case files' tensors, the
//! manifest config readers, numpy.allclose comparison, and the forward /
//! gradient runner of a layer case. Included with `#[path]` (each test
//! crate compiles its own copy).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use kiln::{Builder, CompileOptions, Graph, HostTensor, NodeId, ParamStore, Spec};
use serde_json::Value;

pub type Tensors = BTreeMap<String, HostTensor>;
pub type Res<T> = Result<T, String>;

/// `e(err)`: any displayable error as the `String` the helpers return.
pub fn e<E: std::fmt::Display>(x: E) -> String {
    x.to_string()
}

#[derive(Debug, Clone, Copy)]
pub struct Tol {
    pub rtol: f64,
    pub atol: f64,
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

/// Loads the file's `param.*`/`buffer.*` into the store, adds
/// J = sum(out * upstream), takes the gradients of J (`grad.input.*`,
/// `grad.param.*`) by autodiff, compiles with `opts`, runs, and compares
/// every `output.*`, `grad.input.*`, `grad.param.*` and `buffer_after.*` of
/// the file into `fails`. Returns the names compared.
pub fn run_forward(fwd: Forward, t: &Tensors, tol: &Tol, opts: CompileOptions, fails: &mut Vec<String>) -> Res<BTreeSet<String>> {
    let Forward { mut b, mut store, outputs } = fwd;
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
    let mut prog = kiln::compile(&spec, opts).map_err(e)?;
    let out = prog.run_map(&feed).map_err(e)?;
    let mut compared = BTreeSet::new();
    for (k, want) in t {
        if k.starts_with("output.") || k.starts_with("grad.input.") || k.starts_with("grad.param.") {
            let got = out.get(k).ok_or_else(|| format!("program has no output {k}"))?;
            compare(k, got, want, tol, fails);
            compared.insert(k.clone());
        } else if let Some(n) = k.strip_prefix("buffer_after.") {
            let got = prog.state(n).ok_or_else(|| format!("program has no state {n}"))?;
            compare(k, &got, want, tol, fails);
            compared.insert(k.clone());
        }
    }
    Ok(compared)
}

