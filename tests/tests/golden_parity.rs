//! PyTorch parity: every case of `tests/golden/manifest.json` (see the
//! README there) runs on the interpreter and must match within its stated
//! tolerance: forward outputs, input and parameter gradients of
//! J = sum(out * upstream) through autodiff, buffers after the forward,
//! optimizer trajectories and state, and the MLP training trajectory.
//!
//! A case this test cannot build is a failure, not a skip: the only way to
//! exempt one is `EXPECTED_UNSUPPORTED` below, with the reason.

use std::path::{Path, PathBuf};

use kiln::loss::{self, CrossEntropyOptions, Reduction};
use kiln::nn::{self, Module};
use kiln::optim::{self, Adadelta, Adagrad, Adam, NAdam, Optimizer, ParamGrad, RmsProp, Sgd};
use kiln::{BackendKind, Builder, CompileOptions, Graph, HostTensor, InputRole, Mode, NodeId, ParamStore, Spec};
use serde_json::Value;

#[path = "common/golden.rs"]
mod golden;
use golden::{add_inputs, cfg_bool, cfg_f64, cfg_pair, cfg_usize, e, get, load_store, Forward, Res, Tensors, Tol};

/// Cases that are known not to be supported, with the reason. Empty: every
/// case must pass.
const EXPECTED_UNSUPPORTED: &[(&str, &str)] = &[];

thread_local! {
    /// The backend the cases of the current test run on.
    static BACKEND: std::cell::Cell<BackendKind> = const { std::cell::Cell::new(BackendKind::Interp) };
}

/// `KILN_GOLDEN_PASSES=cse,egraph,dce` runs the cases through another pipeline.
fn options() -> CompileOptions {
    let o = CompileOptions::default().backend(BACKEND.with(|b| b.get()));
    match std::env::var("KILN_GOLDEN_PASSES") {
        Ok(list) => o.passes(&list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>()),
        Err(_) => o,
    }
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden")
}

/// Whether a tensor of a case file is a reference value to check (the
/// others are given data).
fn is_reference(k: &str) -> bool {
    ["output.", "grad.input.", "grad.param.", "buffer_after.", "param_after.", "state.", "loss."].iter().any(|p| k.starts_with(p))
        || (k.starts_with("grad.step1.") && !k.contains(".step2"))
}

thread_local! {
    static COMPARED: std::cell::RefCell<std::collections::BTreeSet<String>> = Default::default();
}

/// [`golden::compare`], noting `name` as compared.
fn compare(name: &str, got: &HostTensor, want: &HostTensor, tol: &Tol, fails: &mut Vec<String>) {
    COMPARED.with(|c| c.borrow_mut().insert(name.to_string()));
    golden::compare(name, got, want, tol, fails);
}

fn cfg_f64_list(c: &Value, k: &str) -> Res<Option<Vec<f64>>> {
    match &c[k] {
        Value::Null => Ok(None),
        Value::Array(a) => a.iter().map(|v| v.as_f64().ok_or_else(|| format!("config `{k}`: bad number"))).collect::<Res<Vec<_>>>().map(Some),
        v => Err(format!("config `{k}`: expected a list, got {v}")),
    }
}
fn reduction(c: &Value) -> Res<Reduction> {
    match c["reduction"].as_str() {
        Some("mean") | None => Ok(Reduction::Mean),
        Some("sum") => Ok(Reduction::Sum),
        Some("none") => Ok(Reduction::None),
        Some(r) => Err(format!("unknown reduction {r}")),
    }
}

/// Builds the forward pass of a layer/activation/loss/model case.
fn build_forward(case: &Value, t: &Tensors) -> Res<Forward> {
    let module = case["module"].as_str().ok_or("no module")?;
    let c = &case["config"];
    let mode = if case["mode"].as_str() == Some("eval") { Mode::Eval } else { Mode::Train };
    let mut b = Builder::new(mode);
    let mut store = ParamStore::new(0);
    let inputs = add_inputs(&mut b, t)?;
    let inp = |n: &str| inputs.get(n).copied().ok_or_else(|| format!("case has no input.{n}"));
    let mut outputs = Vec::new();
    let mut one = |o: NodeId| outputs.push(("y".to_string(), o));
    match module {
        "Linear" => {
            let l = nn::Linear::config(cfg_usize(c, "in_features")?, cfg_usize(c, "out_features")?)
                .bias(cfg_bool(c, "bias")?)
                .build(&mut store, "")
                .map_err(e)?;
            one(l.forward(&mut b, inp("x")?).map_err(e)?);
        }
        "Conv2d" => {
            let l = nn::Conv2d::config2(cfg_usize(c, "in_channels")?, cfg_usize(c, "out_channels")?, cfg_pair(c, "kernel_size")?)
                .stride2(cfg_pair(c, "stride")?)
                .padding2(cfg_pair(c, "padding")?)
                .dilation2(cfg_pair(c, "dilation")?)
                .groups(cfg_usize(c, "groups")?)
                .bias(cfg_bool(c, "bias")?)
                .build(&mut store, "")
                .map_err(e)?;
            if c["padding_mode"].as_str() != Some("zeros") {
                return Err("only zero padding".into());
            }
            one(l.forward(&mut b, inp("x")?).map_err(e)?);
        }
        "Conv1d" => {
            let l = nn::Conv1d::config(cfg_usize(c, "in_channels")?, cfg_usize(c, "out_channels")?, cfg_usize(c, "kernel_size")?)
                .stride(cfg_usize(c, "stride")?)
                .padding(cfg_usize(c, "padding")?)
                .dilation(cfg_usize(c, "dilation")?)
                .groups(cfg_usize(c, "groups")?)
                .bias(cfg_bool(c, "bias")?)
                .build(&mut store, "")
                .map_err(e)?;
            one(l.forward(&mut b, inp("x")?).map_err(e)?);
        }
        "MaxPool2d" | "AvgPool2d" => {
            if c["ceil_mode"].as_bool() == Some(true) || c.get("dilation").and_then(Value::as_u64).is_some_and(|d| d != 1) {
                return Err("ceil_mode/dilation not supported".into());
            }
            let k = cfg_pair(c, "kernel_size")?;
            let s = if c["stride"].is_null() { k } else { cfg_pair(c, "stride")? };
            let attrs = kiln::ir::Pool2dAttrs { kernel: k, stride: s, padding: cfg_pair(c, "padding")? };
            let x = inp("x")?;
            let y = if module == "MaxPool2d" {
                nn::MaxPool2d::from_attrs(attrs).forward(&mut b, x)
            } else {
                if !c["divisor_override"].is_null() {
                    return Err("divisor_override not supported".into());
                }
                nn::AvgPool2d::from_attrs(attrs, cfg_bool(c, "count_include_pad")?).forward(&mut b, x)
            };
            one(y.map_err(e)?);
        }
        "AdaptiveAvgPool2d" => {
            one(nn::AdaptiveAvgPool2d(cfg_pair(c, "output_size")?).forward(&mut b, inp("x")?).map_err(e)?);
        }
        "BatchNorm1d" | "BatchNorm2d" => {
            let n = cfg_usize(c, "num_features")?;
            let cfg = if module == "BatchNorm1d" { nn::BatchNorm::config1d(n) } else { nn::BatchNorm::config2d(n) };
            let cfg = if c["momentum"].is_null() { cfg.cumulative_average() } else { cfg.momentum(cfg_f64(c, "momentum")?) };
            let l = cfg
                .eps(cfg_f64(c, "eps")?)
                .track_running_stats(cfg_bool(c, "track_running_stats")?)
                .affine(cfg_bool(c, "affine")?)
                .build(&mut store, "")
                .map_err(e)?;
            one(l.forward(&mut b, inp("x")?).map_err(e)?);
        }
        "LayerNorm" => {
            let shape: Vec<usize> = match &c["normalized_shape"] {
                Value::Array(a) => a.iter().map(|v| v.as_u64().unwrap_or(0) as usize).collect(),
                v => vec![v.as_u64().ok_or("normalized_shape")? as usize],
            };
            let l = nn::LayerNorm::with(&mut store, "", &shape, cfg_f64(c, "eps")?, cfg_bool(c, "elementwise_affine")?).map_err(e)?;
            one(l.forward(&mut b, inp("x")?).map_err(e)?);
        }
        "Embedding" => {
            let pad = c["padding_idx"].as_u64().map(|v| v as usize);
            if !c["max_norm"].is_null() {
                return Err("max_norm not supported".into());
            }
            let l = nn::Embedding::with_padding(&mut store, "", cfg_usize(c, "num_embeddings")?, cfg_usize(c, "embedding_dim")?, pad)
                .map_err(e)?;
            one(l.forward(&mut b, inp("indices")?).map_err(e)?);
        }
        "Flatten" => {
            let end = c["end_dim"].as_i64().ok_or("end_dim")? as isize;
            one(nn::Flatten::dims(cfg_usize(c, "start_dim")?, end).forward(&mut b, inp("x")?).map_err(e)?);
        }
        "RNN" | "LSTM" | "GRU" => {
            let (i, h) = (cfg_usize(c, "input_size")?, cfg_usize(c, "hidden_size")?);
            let mut cfg = match module {
                "LSTM" => nn::Lstm::config(i, h),
                "GRU" => nn::Gru::config(i, h),
                _ => nn::Rnn::config(i, h),
            };
            if c["nonlinearity"].as_str() == Some("relu") {
                cfg = cfg.relu();
            }
            if c["proj_size"].as_u64().unwrap_or(0) != 0 {
                return Err("LSTM proj_size is not supported".into());
            }
            let l = cfg
                .batch_first(cfg_bool(c, "batch_first")?)
                .dropout(cfg_f64(c, "dropout")?)
                .num_layers(cfg_usize(c, "num_layers")?)
                .bias(cfg_bool(c, "bias")?)
                .bidirectional(cfg_bool(c, "bidirectional")?)
                .build(&mut store, "")
                .map_err(e)?;
            let o = l.forward_seq(&mut b, inp("x")?, inp("h0").ok(), inp("c0").ok()).map_err(e)?;
            outputs.push(("out".into(), o.out));
            outputs.push(("h_n".into(), o.h_n));
            if let Some(cn) = o.c_n {
                outputs.push(("c_n".into(), cn));
            }
        }
        "ReLU" | "LeakyReLU" | "ELU" | "Sigmoid" | "Tanh" | "SiLU" | "GELU" | "Softmax" | "LogSoftmax" | "Softplus" | "PReLU" => {
            let x = inp("x")?;
            let y = match module {
                "ReLU" => nn::ReLU.forward(&mut b, x),
                "LeakyReLU" => nn::LeakyReLU(cfg_f64(c, "negative_slope")?).forward(&mut b, x),
                "ELU" => nn::ELU(cfg_f64(c, "alpha")?).forward(&mut b, x),
                "Sigmoid" => nn::Sigmoid.forward(&mut b, x),
                "Tanh" => nn::Tanh.forward(&mut b, x),
                "SiLU" => nn::SiLU.forward(&mut b, x),
                "GELU" => nn::GELU { tanh_approx: c["approximate"].as_str() == Some("tanh") }.forward(&mut b, x),
                "Softmax" => nn::Softmax(cfg_usize(c, "dim")?).forward(&mut b, x),
                "LogSoftmax" => nn::LogSoftmax(cfg_usize(c, "dim")?).forward(&mut b, x),
                "Softplus" => nn::Softplus { beta: cfg_f64(c, "beta")?, threshold: cfg_f64(c, "threshold")? }.forward(&mut b, x),
                _ => {
                    let l = nn::PReLU::with_init(&mut store, "", cfg_usize(c, "num_parameters")?, cfg_f64(c, "init")?).map_err(e)?;
                    l.forward(&mut b, x)
                }
            };
            one(y.map_err(e)?);
        }
        "MSELoss" | "L1Loss" | "SmoothL1Loss" | "HuberLoss" | "logcosh" | "CrossEntropyLoss" | "NLLLoss" | "BCELoss"
        | "BCEWithLogitsLoss" => {
            let (x, y) = (inp("input")?, inp("target")?);
            let r = reduction(c)?;
            if c.get("weight").is_some_and(|w| !w.is_null()) && matches!(module, "BCELoss" | "BCEWithLogitsLoss") {
                return Err("BCE element weights are not supported".into());
            }
            let ce = || -> Res<CrossEntropyOptions> {
                Ok(CrossEntropyOptions {
                    reduction: r,
                    label_smoothing: c["label_smoothing"].as_f64().unwrap_or(0.0),
                    weight: cfg_f64_list(c, "weight")?,
                    ignore_index: c["ignore_index"].as_i64(),
                })
            };
            let l = match module {
                "MSELoss" => loss::mse(&mut b, x, y, r),
                "L1Loss" => loss::l1(&mut b, x, y, r),
                "SmoothL1Loss" => loss::smooth_l1(&mut b, x, y, cfg_f64(c, "beta")?, r),
                "HuberLoss" => loss::huber(&mut b, x, y, cfg_f64(c, "delta")?, r),
                "logcosh" => loss::log_cosh(&mut b, x, y, r),
                "CrossEntropyLoss" => loss::cross_entropy(&mut b, x, y, &ce()?),
                "NLLLoss" => loss::nll(&mut b, x, y, &ce()?),
                "BCELoss" => loss::bce(&mut b, x, y, r),
                _ => loss::bce_with_logits(&mut b, x, y, cfg_f64_list(c, "pos_weight")?.as_deref(), r),
            };
            outputs.push(("loss".into(), l.map_err(e)?));
        }
        "Sequential" if case["case"].as_str().is_some_and(|n| n.starts_with("model_worked_example")) => {
            let fc1 = nn::Linear::new(&mut store, "fc1", 2, 2).map_err(e)?;
            let fc2 = nn::Linear::new(&mut store, "fc2", 2, 1).map_err(e)?;
            let h = fc1.forward(&mut b, inp("x")?).map_err(e)?;
            let h = nn::ReLU.forward(&mut b, h).map_err(e)?;
            let y = fc2.forward(&mut b, h).map_err(e)?;
            let d = b.sub(y, inp("target")?).map_err(e)?;
            let d2 = b.mul(d, d).map_err(e)?;
            let s = b.sum_all(d2).map_err(e)?;
            let l = b.mul_scalar(s, 0.5).map_err(e)?;
            outputs.push(("h".into(), h));
            outputs.push(("y".into(), y));
            outputs.push(("loss".into(), l));
        }
        m => return Err(format!("module {m} has no builder in this test")),
    }
    Ok(Forward { b, store, outputs })
}

/// Forward, J = sum(out * upstream), gradients of J, compare everything.
fn run_layer_case(case: &Value, t: &Tensors, tol: &Tol, fails: &mut Vec<String>) -> Res<()> {
    let compared = golden::run_forward(build_forward(case, t)?, t, tol, options(), fails)?;
    COMPARED.with(|c| c.borrow_mut().extend(compared));
    Ok(())
}

fn group_rule<R: optim::Rule>(c: &Value, make: impl Fn(&Value) -> Res<R>) -> Res<optim::Optim<R>> {
    let groups = c["param_groups"].as_array().ok_or("no param_groups")?;
    let mut opt = optim::Optim::new(make(c)?);
    for grp in groups {
        let names: Vec<&str> = grp["params"].as_array().ok_or("group params")?.iter().filter_map(Value::as_str).collect();
        opt = opt.group(&names, make(grp)?);
    }
    Ok(opt)
}

fn make_optimizer(module: &str, c: &Value) -> Res<Box<dyn Optimizer>> {
    let maximize = |g: &Value| g["maximize"].as_bool().unwrap_or(false);
    let betas = |g: &Value| -> Res<(f64, f64)> {
        let b = g["betas"].as_array().ok_or("betas")?;
        Ok((b[0].as_f64().ok_or("beta1")?, b[1].as_f64().ok_or("beta2")?))
    };
    Ok(match module {
        "SGD" => Box::new(group_rule(c, |g| {
            Ok(Sgd::new(cfg_f64(g, "lr")?)
                .momentum(cfg_f64(g, "momentum")?)
                .dampening(cfg_f64(g, "dampening")?)
                .weight_decay(cfg_f64(g, "weight_decay")?)
                .nesterov(cfg_bool(g, "nesterov")?)
                .maximize(maximize(g)))
        })?),
        "Adam" | "AdamW" => Box::new(group_rule(c, |g| {
            let (b1, b2) = betas(g)?;
            Ok(Adam::new(cfg_f64(g, "lr")?)
                .betas(b1, b2)
                .eps(cfg_f64(g, "eps")?)
                .weight_decay(cfg_f64(g, "weight_decay")?)
                .amsgrad(cfg_bool(g, "amsgrad")?)
                .decoupled(g["decoupled_weight_decay"].as_bool().unwrap_or(module == "AdamW"))
                .maximize(maximize(g)))
        })?),
        "NAdam" => Box::new(group_rule(c, |g| {
            let (b1, b2) = betas(g)?;
            Ok(NAdam::new(cfg_f64(g, "lr")?)
                .betas(b1, b2)
                .eps(cfg_f64(g, "eps")?)
                .weight_decay(cfg_f64(g, "weight_decay")?)
                .momentum_decay(cfg_f64(g, "momentum_decay")?)
                .decoupled(g["decoupled_weight_decay"].as_bool().unwrap_or(false)))
        })?),
        "RMSprop" => Box::new(group_rule(c, |g| {
            Ok(RmsProp::new(cfg_f64(g, "lr")?)
                .alpha(cfg_f64(g, "alpha")?)
                .eps(cfg_f64(g, "eps")?)
                .weight_decay(cfg_f64(g, "weight_decay")?)
                .momentum(cfg_f64(g, "momentum")?)
                .centered(cfg_bool(g, "centered")?))
        })?),
        "Adagrad" => Box::new(group_rule(c, |g| {
            Ok(Adagrad::new(cfg_f64(g, "lr")?)
                .lr_decay(cfg_f64(g, "lr_decay")?)
                .eps(cfg_f64(g, "eps")?)
                .weight_decay(cfg_f64(g, "weight_decay")?)
                .initial_accumulator_value(cfg_f64(g, "initial_accumulator_value")?))
        })?),
        "Adadelta" => Box::new(group_rule(c, |g| {
            Ok(Adadelta::new(cfg_f64(g, "lr")?).rho(cfg_f64(g, "rho")?).eps(cfg_f64(g, "eps")?).weight_decay(cfg_f64(g, "weight_decay")?))
        })?),
        m => return Err(format!("optimizer {m} has no builder in this test")),
    })
}

/// The program state name holding PyTorch's `state.<p>.<s>`.
fn optim_state_name(p: &str, s: &str) -> String {
    if s == "step" { optim::STEP.to_string() } else { optim::state_name(p, s) }
}

/// Gradients fed as inputs, five steps, parameters and state compared.
fn run_optimizer_case(case: &Value, t: &Tensors, tol: &Tol, fails: &mut Vec<String>) -> Res<()> {
    let c = &case["config"];
    let opt = make_optimizer(case["module"].as_str().ok_or("module")?, c)?;
    let steps = cfg_usize(c, "steps")?;
    let names: Vec<String> = t.keys().filter_map(|k| k.strip_prefix("param.")).map(str::to_string).collect();
    let mut g = Graph::new();
    let mut pg = Vec::new();
    for n in &names {
        let ty = t[&format!("param.{n}")].ty();
        let param = g.add_input(n, InputRole::Param, ty.clone()).map_err(e)?;
        let grad = g.input(&format!("grad.{n}"), ty).map_err(e)?;
        pg.push(ParamGrad { name: n.clone(), param, grad });
    }
    let init = opt.apply(&mut g, &pg).map_err(e)?;
    let mut spec = Spec::bare(g);
    spec.init = init;
    for n in &names {
        spec.init.insert(n.clone(), t[&format!("param.{n}")].clone());
    }
    let mut prog = kiln::compile(&spec, options()).map_err(e)?;
    for k in 1..=steps {
        let feed: Tensors = names.iter().map(|n| Ok((format!("grad.{n}"), get(t, &format!("grad.step{k}.{n}"))?.clone()))).collect::<Res<_>>()?;
        prog.run_map(&feed).map_err(e)?;
        for n in &names {
            let key = format!("param_after.step{k}.{n}");
            compare(&key, &prog.state(n).ok_or("param missing")?, get(t, &key)?, tol, fails);
        }
    }
    compare_state(&prog, t, tol, fails)
}

fn compare_state(prog: &kiln::Program, t: &Tensors, tol: &Tol, fails: &mut Vec<String>) -> Res<()> {
    for (k, want) in t {
        let Some(rest) = k.strip_prefix("state.") else { continue };
        let (p, s) = rest.rsplit_once('.').ok_or_else(|| format!("bad state key {k}"))?;
        let name = optim_state_name(p, s);
        let got = prog.state(&name).ok_or_else(|| format!("{k}: program has no state `{name}`"))?;
        compare(k, &got, want, tol, fails);
    }
    Ok(())
}

/// The MLP trajectory: gradient at step 1, five SGD steps' losses, final
/// parameters and momentum buffers.
fn run_trajectory_case(case: &Value, t: &Tensors, tol: &Tol, fails: &mut Vec<String>) -> Res<()> {
    let c = &case["config"];
    let steps = cfg_usize(c, "steps")?;
    let mut store = ParamStore::new(0);
    let fc1 = nn::Linear::new(&mut store, "fc1", 784, 64).map_err(e)?;
    let fc2 = nn::Linear::new(&mut store, "fc2", 64, 10).map_err(e)?;
    let net = nn::Sequential::new().add(fc1).add(nn::ReLU).add(fc2);
    load_store(&mut store, t)?;
    let x1 = get(t, "input.x.step1")?;
    let y1 = get(t, "input.y.step1")?;
    let mut b = Builder::train();
    let x = b.input("x", x1.ty()).map_err(e)?;
    let y = b.input("y", y1.ty()).map_err(e)?;
    let logits = net.forward(&mut b, x).map_err(e)?;
    let l = loss::cross_entropy_mean(&mut b, logits, y).map_err(e)?;

    // Gradient at step 1 (a separate graph: forward + autodiff only).
    let mut g = b.graph().clone();
    let pnames = store.param_names();
    let ids: Vec<NodeId> = pnames.iter().map(|n| g.find_input(n).ok_or_else(|| format!("param {n}"))).collect::<Res<_>>()?;
    let grads = kiln::grad(&mut g, l, &ids).map_err(e)?;
    for (n, gid) in pnames.iter().zip(grads) {
        g.set_output(&format!("grad.step1.{n}"), gid).map_err(e)?;
    }
    let spec = Spec::from_parts(g, &store, b.init_values()).map_err(e)?;
    let mut gp = kiln::compile(&spec, options()).map_err(e)?;
    let out = gp.run(&[("x", x1), ("y", y1)]).map_err(e)?;
    for n in &pnames {
        let k = format!("grad.step1.{n}");
        compare(&k, &out[&k], get(t, &k)?, tol, fails);
    }

    let opt = Sgd::new(cfg_f64(c, "lr")?)
        .momentum(cfg_f64(c, "momentum")?)
        .dampening(cfg_f64(c, "dampening")?)
        .weight_decay(cfg_f64(c, "weight_decay")?)
        .nesterov(cfg_bool(c, "nesterov")?);
    let spec = kiln::train_step(&b, l, &store, opt).map_err(e)?;
    let mut prog = kiln::compile(&spec, options()).map_err(e)?;
    for k in 1..=steps {
        let out = prog.run(&[("x", get(t, &format!("input.x.step{k}"))?), ("y", get(t, &format!("input.y.step{k}"))?)]).map_err(e)?;
        let key = format!("loss.step{k}");
        compare(&key, &out["loss"], get(t, &key)?, tol, fails);
    }
    for (k, want) in t {
        if let Some(n) = k.strip_prefix(&format!("param_after.step{steps}.")) {
            compare(k, &prog.state(n).ok_or("param")?, want, tol, fails);
        }
    }
    compare_state(&prog, t, tol, fails)
}

fn run_case(case: &Value) -> Res<Vec<String>> {
    let name = case["case"].as_str().ok_or("case name")?;
    let t = kiln::ir::read_safetensors(&golden_dir().join(format!("{name}.safetensors"))).map_err(e)?;
    let tol = Tol { rtol: cfg_f64(&case["tolerance"], "rtol")?, atol: cfg_f64(&case["tolerance"], "atol")? };
    let mut fails = Vec::new();
    COMPARED.with(|c| c.borrow_mut().clear());
    match case["kind"].as_str() {
        Some("optimizer") => run_optimizer_case(case, &t, &tol, &mut fails)?,
        Some("model") if t.contains_key("loss.step1") => run_trajectory_case(case, &t, &tol, &mut fails)?,
        Some(_) => run_layer_case(case, &t, &tol, &mut fails)?,
        None => return Err("case has no kind".into()),
    }
    // Every reference tensor of the file must have been checked.
    let optimizer_grads = case["kind"].as_str() == Some("optimizer");
    for k in t.keys().filter(|k| is_reference(k)) {
        let given = optimizer_grads && k.starts_with("grad.step");
        if !given && !COMPARED.with(|c| c.borrow().contains(k)) {
            fails.push(format!("{k}: reference tensor not compared"));
        }
    }
    Ok(fails)
}

/// Runs every case on `backend`; panics listing every case that differs.
fn run_all(backend: BackendKind) {
    BACKEND.with(|b| b.set(backend));
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(golden_dir().join("manifest.json")).expect("manifest.json")).expect("json");
    let cases = manifest.as_array().expect("array");
    assert_eq!(cases.len(), 93, "the manifest lists 93 cases");
    let only = std::env::var("KILN_GOLDEN_CASE").ok();
    let mut passed = 0;
    let mut problems = Vec::new();
    let mut expected_bad = Vec::new();
    for case in cases {
        let name = case["case"].as_str().unwrap_or("?");
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let result = std::panic::catch_unwind(|| run_case(case));
        let outcome = match result {
            Ok(Ok(f)) if f.is_empty() => Ok(()),
            Ok(Ok(f)) => Err(f.join("\n    ")),
            Ok(Err(m)) => Err(format!("could not run: {m}")),
            Err(_) => Err("panicked".to_string()),
        };
        let exempt = EXPECTED_UNSUPPORTED.iter().find(|(n, _)| *n == name);
        match (outcome, exempt) {
            (Ok(()), None) => passed += 1,
            (Ok(()), Some(_)) => problems.push(format!("{name}: listed as unsupported but passes; remove it from the list")),
            (Err(m), Some((_, why))) => expected_bad.push(format!("{name}: {why} ({m})")),
            (Err(m), None) => problems.push(format!("{name}:\n    {m}")),
        }
    }
    eprintln!("golden parity ({backend:?}): {passed} passed, {} expected-unsupported, {} failed", expected_bad.len(), problems.len());
    // A filter that matches nothing must not pass as "all cases matched".
    assert!(passed + expected_bad.len() + problems.len() > 0, "KILN_GOLDEN_CASE={only:?} selects no case");
    for m in &expected_bad {
        eprintln!("  expected unsupported: {m}");
    }
    assert!(problems.is_empty(), "golden cases that do not match PyTorch:\n{}", problems.join("\n"));
}

/// The reference: every case on the f32 interpreter
/// (`KILN_GOLDEN_BACKEND=interp-f64` runs them in f64 instead).
#[test]
fn every_golden_case_matches_pytorch() {
    let b = if std::env::var("KILN_GOLDEN_BACKEND").as_deref() == Ok("interp-f64") { BackendKind::InterpF64 } else { BackendKind::Interp };
    run_all(b);
}

/// The same cases through the CPU backend (Cranelift JIT).
#[test]
fn every_golden_case_matches_pytorch_on_cpu() {
    run_all(BackendKind::Cpu);
}

/// The same cases through the GPU backend (WGSL through wgpu; Mesa's
/// software Vulkan in CI).
#[test]
fn every_golden_case_matches_pytorch_on_wgpu() {
    if kiln_tests::wgpu_available() {
        run_all(BackendKind::Wgpu);
    }
}
