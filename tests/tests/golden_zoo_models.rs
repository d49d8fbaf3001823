//! The model zoo against PyTorch/torchvision: every `model`, `structure`
//! and `formula` case of `tests/golden-zoo/manifest.json` (see the README
//! there).
//!
//! - `model`: the course's Inception net and tiny ViT built by
//!   `kiln::models`, the file's weights loaded by name; logits, loss and
//!   the gradients of the loss (input and every parameter) compared.
//! - `structure`: the builder's parameters and buffers must be exactly
//!   torchvision's state_dict names and shapes, in PyTorch's order, with
//!   its parameter count, and the logits' shape for the case's input must
//!   be the file's. Only shapes: no backend runs, so this runs once.
//! - `formula`: eval-mode logits of the full torchvision model whose every
//!   float state_dict entry is set by the README's formula (implemented
//!   below), so a torchvision-named state_dict loads and gives
//!   torchvision's numbers.
//!
//! `model` and `formula` cases run on the interpreter, the CPU backend and
//! (where an adapter exists; under CI it must) the GPU backend. A case
//! this test cannot build is a failure, never a skip. Each case's time is
//! printed (`--nocapture`).

#[path = "common/zoo.rs"]
mod zoo;

use std::collections::BTreeMap;
use std::time::Instant;

use kiln::models;
use kiln::nn::Module;
use kiln::{BackendKind, Builder, CompileOptions, DType, HostTensor, Mode, ParamStore};
use serde_json::Value;
use zoo::{cfg_usize, e, get, Forward, Res, Tensors};

/// A torchvision model by its name in the manifest, `num_classes` outputs,
/// 3 input channels (torchvision's).
fn torchvision(store: &mut ParamStore, name: &str, num_classes: usize) -> Res<Box<dyn Module>> {
    let m: Box<dyn Module> = match name {
        "resnet18" => Box::new(models::resnet18(store, num_classes, 3).map_err(e)?),
        "resnet34" => Box::new(models::resnet34(store, num_classes, 3).map_err(e)?),
        "alexnet" => Box::new(models::alexnet(store, num_classes, 3).map_err(e)?),
        "vgg11" => Box::new(models::vgg11(store, num_classes, 3).map_err(e)?),
        "vgg11_bn" => Box::new(models::vgg11_bn(store, num_classes, 3).map_err(e)?),
        "vgg13" => Box::new(models::vgg13(store, num_classes, 3).map_err(e)?),
        "vgg13_bn" => Box::new(models::vgg13_bn(store, num_classes, 3).map_err(e)?),
        "vgg16" => Box::new(models::vgg16(store, num_classes, 3).map_err(e)?),
        "vgg16_bn" => Box::new(models::vgg16_bn(store, num_classes, 3).map_err(e)?),
        "vgg19" => Box::new(models::vgg19(store, num_classes, 3).map_err(e)?),
        "vgg19_bn" => Box::new(models::vgg19_bn(store, num_classes, 3).map_err(e)?),
        "googlenet" => Box::new(models::googlenet(store, num_classes, 3).map_err(e)?),
        "densenet121" => Box::new(models::densenet121(store, num_classes, 3).map_err(e)?),
        m => return Err(format!("torchvision model `{m}` has no kiln builder in this test")),
    };
    Ok(m)
}

fn shape_list(v: &Value) -> Res<Vec<usize>> {
    v.as_array().ok_or_else(|| format!("expected a shape, got {v}"))?.iter().map(|d| d.as_u64().map(|d| d as usize).ok_or_else(|| format!("bad dim {d}"))).collect()
}

/// `model`: the course's networks, with the cross-entropy loss on
/// `input.target`; logits, loss and gradients compared.
fn run_model_case(case: &Value, t: &Tensors, backend: BackendKind) -> Res<Vec<String>> {
    let mut store = ParamStore::new(0);
    let mut b = Builder::new(if case["mode"].as_str() == Some("eval") { Mode::Eval } else { Mode::Train });
    let inputs = zoo::add_inputs(&mut b, t)?;
    let x = *inputs.get("x").ok_or("case has no input.x")?;
    let y = *inputs.get("target").ok_or("case has no input.target")?;
    let classes = get(t, "output.logits")?.shape().dims()[1];
    let channels = get(t, "input.x")?.shape().dims()[1];
    let model: Box<dyn Module> = match case["module"].as_str() {
        Some("InceptionNet") => Box::new(models::inception_net(&mut store, classes, channels).map_err(e)?),
        Some("TinyViT") => Box::new(models::tiny_vit(&mut store, classes, channels).map_err(e)?),
        m => return Err(format!("model {m:?} has no kiln builder in this test")),
    };
    // The file must hold every parameter the builder made, and no other.
    let file: Vec<&str> = t.keys().filter_map(|k| k.strip_prefix("param.")).collect();
    let ours = store.param_names();
    if ours.len() != file.len() || ours.iter().any(|n| !file.contains(&n.as_str())) {
        return Err(format!("parameters differ: kiln {ours:?}, file {file:?}"));
    }
    let logits = model.forward(&mut b, x).map_err(e)?;
    let loss = kiln::loss::cross_entropy_mean(&mut b, logits, y).map_err(e)?;
    let fwd = Forward { b, store, outputs: vec![("logits".into(), logits), ("loss".into(), loss)] };
    zoo::run_forward_case(fwd, t, &zoo::tolerance(case)?, backend)
}

/// `structure`: names, shapes and order of the state_dict, parameter
/// count, logits shape. Backend-free.
fn run_structure_case(case: &Value, t: &Tensors) -> Res<Vec<String>> {
    let c = &case["config"];
    let name = c["torchvision_model"].as_str().ok_or("no torchvision_model")?;
    let mut fails = Vec::new();
    let mut store = ParamStore::new(0);
    let model = torchvision(&mut store, name, cfg_usize(c, "num_classes")?)?;
    let want: Vec<(String, Vec<usize>)> = c["state_dict"]
        .as_array()
        .ok_or("no state_dict")?
        .iter()
        .map(|kv| Ok((kv[0].as_str().ok_or("entry name")?.to_string(), shape_list(&kv[1])?)))
        .collect::<Res<_>>()?;
    // PyTorch leaves `num_batches_tracked` out of the listing; kiln keeps it.
    let got: Vec<(String, Vec<usize>)> = store
        .names()
        .iter()
        .filter(|n| !n.ends_with(".num_batches_tracked"))
        .map(|n| (n.clone(), store.get(n).map(|v| v.shape().dims().to_vec()).unwrap_or_default()))
        .collect();
    if got.len() != want.len() {
        fails.push(format!("{} state_dict entries, torchvision has {}", got.len(), want.len()));
    }
    if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
        fails.push(format!("entry {i}: kiln {:?}, torchvision {:?}", got[i], want[i]));
    }
    let params = cfg_usize(c, "parameters")?;
    if store.num_params() != params {
        fails.push(format!("{} parameters, torchvision has {params}", store.num_params()));
    }
    let mut b = Builder::eval();
    let x = b.input("x", kiln::f32_shape(shape_list(&c["input_shape"])?)).map_err(e)?;
    let logits = model.forward(&mut b, x).map_err(e)?;
    let got_shape: Vec<i64> = b.ty(logits).shape.dims().iter().map(|&d| d as i64).collect();
    let want_shape = get(t, "output.logits_shape")?.as_i64().ok_or("logits_shape is not int64")?.to_vec();
    if got_shape != want_shape {
        fails.push(format!("logits shape {got_shape:?}, torchvision {want_shape:?}"));
    }
    Ok(fails)
}

/// The README's formula for entry `k` (in sorted-name order) of a
/// torchvision state_dict: every element from `sin(0.37 i + 0.91 k + 0.5)`
/// in f64, shaped by what the entry is.
fn formula_value(name: &str, k: usize, shape: &[usize]) -> Res<HostTensor> {
    let n: usize = shape.iter().product();
    let fan_in = if shape.is_empty() || shape[0] == 0 { 1 } else { n / shape[0] };
    let vals = (0..n).map(|i| {
        let v = (0.37 * i as f64 + 0.91 * k as f64 + 0.5).sin();
        let out = if name.ends_with("running_var") {
            1.0 + 0.5 * v * v
        } else if name.ends_with("running_mean") {
            0.1 * v
        } else if shape.len() == 1 && name.ends_with("weight") {
            1.0 + 0.1 * v
        } else if name.ends_with("bias") || shape.len() == 1 {
            0.1 * v
        } else {
            v * (3.0 / fan_in as f64).sqrt()
        };
        out as f32
    });
    HostTensor::from_f32(shape.to_vec(), vals.collect()).map_err(e)
}

/// `formula`: the formula's weights as torchvision would export them (a
/// safetensors file of every state_dict entry, `num_batches_tracked`
/// included), loaded by name into the store, the eval graph compiled for
/// `backend`, the logits compared.
fn run_formula_case(case: &Value, t: &Tensors, backend: BackendKind) -> Res<Vec<String>> {
    let c = &case["config"];
    let name = c["torchvision_model"].as_str().ok_or("no torchvision_model")?;
    let mut store = ParamStore::new(0);
    let model = torchvision(&mut store, name, cfg_usize(c, "num_classes")?)?;
    // The float entries by name (a BTreeMap iterates in byte order), the
    // integer `num_batches_tracked` counters aside.
    let mut dict = BTreeMap::new();
    let entries = store.state_dict();
    let floats = entries.iter().filter(|(n, v)| v.dtype() == DType::F32 && !n.ends_with("num_batches_tracked"));
    for (k, (n, v)) in floats.enumerate() {
        dict.insert(n.clone(), formula_value(n, k, v.shape().dims())?);
    }
    for (n, v) in entries {
        dict.entry(n).or_insert(v);
    }
    let path = std::env::temp_dir().join(format!("kiln-zoo-{}-{name}-{backend:?}.safetensors", std::process::id()));
    kiln::ir::write_safetensors(&path, &dict).map_err(e)?;
    let loaded = store.load(&path);
    let _ = std::fs::remove_file(&path);
    loaded.map_err(e)?;
    let xs = get(t, "input.x")?;
    let mut b = Builder::eval();
    let x = b.input("x", xs.ty()).map_err(e)?;
    let logits = model.forward(&mut b, x).map_err(e)?;
    b.output("logits", logits).map_err(e)?;
    let spec = kiln::inference(&b, &store).map_err(e)?;
    let mut prog = kiln::compile(&spec, CompileOptions::default().backend(backend)).map_err(e)?;
    let out = prog.run(&[("x", xs)]).map_err(e)?;
    let mut fails = Vec::new();
    zoo::compare("output.logits", &out["logits"], get(t, "output.logits")?, &zoo::tolerance(case)?, &mut fails);
    Ok(fails)
}

/// Runs the `model` and `formula` cases on `backend`, printing each one's
/// time.
fn run_numeric(backend: BackendKind) {
    let n = zoo::run_manifest(&["model", "formula"], backend, |case, t, backend| {
        let start = Instant::now();
        let r = match case["kind"].as_str() {
            Some("model") => run_model_case(case, t, backend),
            _ => run_formula_case(case, t, backend),
        };
        eprintln!("  {} on {backend:?}: {:.1} s", case["case"].as_str().unwrap_or("?"), start.elapsed().as_secs_f64());
        r
    });
    assert!(std::env::var("KILN_ZOO_CASE").is_ok() || n == 5, "the manifest has 2 model and 3 formula cases, {n} ran");
}

#[test]
fn zoo_models_match_pytorch_on_interp() {
    run_numeric(BackendKind::Interp);
}

#[test]
fn zoo_models_match_pytorch_on_cpu() {
    run_numeric(BackendKind::Cpu);
}

#[test]
fn zoo_models_match_pytorch_on_wgpu() {
    if kiln_tests::wgpu_available() {
        run_numeric(BackendKind::Wgpu);
    }
}

#[test]
fn zoo_structures_match_torchvision() {
    let n = zoo::run_manifest(&["structure"], BackendKind::Interp, |case, t, _| {
        let start = Instant::now();
        let r = run_structure_case(case, t);
        eprintln!("  {}: {:.1} s", case["case"].as_str().unwrap_or("?"), start.elapsed().as_secs_f64());
        r
    });
    assert!(std::env::var("KILN_ZOO_CASE").is_ok() || n == 6, "the manifest has 6 structure cases, {n} ran");
}
