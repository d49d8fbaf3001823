//! PyTorch parity for the model zoo's layers: every `layer` and `loss` case
//! of `tests/golden-zoo/manifest.json` (README there) runs on the
//! interpreter, the CPU backend and (when an adapter exists; under CI it
//! must) the GPU backend, and must match within its tolerance: forward
//! outputs and the gradients of J = sum(out * upstream) through autodiff.
//! A case this test cannot build is a failure, never a skip.
//! `KILN_ZOO_CASE=substring` runs the matching cases only.

#[path = "common/zoo.rs"]
mod zoo;

use std::collections::BTreeMap;

use kiln::loss::{self, Reduction};
use kiln::nn::{self, Module};
use kiln::{BackendKind, Builder, HostTensor, Mode, NodeId, ParamStore};
use serde_json::Value;
use zoo::{cfg_bool, cfg_f64, cfg_ints, cfg_pair, cfg_str, cfg_usize, e, Forward, Res, Tensors};

/// An optional int-or-pair config value (`null` -> `None`).
fn opt_pair(c: &Value, k: &str) -> Res<Option<[usize; 2]>> {
    if c[k].is_null() { Ok(None) } else { cfg_pair(c, k).map(Some) }
}

/// The padding mode of a conv config.
fn padding_mode(c: &Value) -> Res<nn::PaddingMode> {
    match c["padding_mode"].as_str() {
        None | Some("zeros") => Ok(nn::PaddingMode::Zeros),
        Some("reflect") => Ok(nn::PaddingMode::Reflect),
        Some("replicate") => Ok(nn::PaddingMode::Replicate),
        Some("circular") => Ok(nn::PaddingMode::Circular),
        Some(m) => Err(format!("unknown padding_mode {m}")),
    }
}

/// Builds the forward graph of one `layer` or `loss` case.
fn build(case: &Value, t: &Tensors) -> Res<Forward> {
    let module = case["module"].as_str().ok_or("no module")?;
    let name = case["case"].as_str().ok_or("no case name")?;
    let c = &case["config"];
    let mode = if case["mode"].as_str() == Some("eval") { Mode::Eval } else { Mode::Train };
    let mut b = Builder::new(mode);
    let mut store = ParamStore::new(0);
    let inputs: BTreeMap<String, NodeId> = zoo::add_inputs(&mut b, t)?;
    let inp = |n: &str| inputs.get(n).copied().ok_or_else(|| format!("case has no input.{n}"));
    let mut outputs: Vec<(String, NodeId)> = Vec::new();
    match module {
        "MaxPool2d" => {
            if cfg_bool(c, "return_indices")? {
                return Err("return_indices is not supported".into());
            }
            let k = cfg_pair(c, "kernel_size")?;
            let s = opt_pair(c, "stride")?.unwrap_or(k);
            let attrs = kiln::ir::Pool2dAttrs { kernel: k, stride: s, padding: cfg_pair(c, "padding")? };
            let l = nn::MaxPool2d::from_attrs(attrs).dilation2(cfg_pair(c, "dilation")?).ceil_mode(cfg_bool(c, "ceil_mode")?);
            outputs.push(("y".into(), l.forward(&mut b, inp("x")?).map_err(e)?));
        }
        "AvgPool2d" => {
            if !c["divisor_override"].is_null() {
                return Err("divisor_override is not supported".into());
            }
            let k = cfg_pair(c, "kernel_size")?;
            let s = opt_pair(c, "stride")?.unwrap_or(k);
            let attrs = kiln::ir::Pool2dAttrs { kernel: k, stride: s, padding: cfg_pair(c, "padding")? };
            let l = nn::AvgPool2d::from_attrs(attrs, cfg_bool(c, "count_include_pad")?).ceil_mode(cfg_bool(c, "ceil_mode")?);
            outputs.push(("y".into(), l.forward(&mut b, inp("x")?).map_err(e)?));
        }
        "Conv2d" => {
            let l = nn::Conv2d::config2(cfg_usize(c, "in_channels")?, cfg_usize(c, "out_channels")?, cfg_pair(c, "kernel_size")?)
                .stride2(cfg_pair(c, "stride")?)
                .padding2(cfg_pair(c, "padding")?)
                .dilation2(cfg_pair(c, "dilation")?)
                .groups(cfg_usize(c, "groups")?)
                .bias(cfg_bool(c, "bias")?)
                .padding_mode(padding_mode(c)?)
                .build(&mut store, "")
                .map_err(e)?;
            outputs.push(("y".into(), l.forward(&mut b, inp("x")?).map_err(e)?));
        }
        "ReflectionPad2d" | "ReplicationPad2d" | "ZeroPad2d" => {
            let p = cfg_ints::<4>(c, "padding")?;
            let y = match module {
                "ReflectionPad2d" => nn::ReflectionPad2d(p).forward(&mut b, inp("x")?),
                "ReplicationPad2d" => nn::ReplicationPad2d(p).forward(&mut b, inp("x")?),
                _ => nn::ZeroPad2d(p).forward(&mut b, inp("x")?),
            };
            outputs.push(("y".into(), y.map_err(e)?));
        }
        "MultiheadAttention" => {
            if cfg_bool(c, "add_bias_kv")? || cfg_bool(c, "add_zero_attn")? {
                return Err("add_bias_kv / add_zero_attn are not supported".into());
            }
            let mut cfg = nn::MultiheadAttention::config(cfg_usize(c, "embed_dim")?, cfg_usize(c, "num_heads")?)
                .dropout(cfg_f64(c, "dropout")?)
                .bias(cfg_bool(c, "bias")?)
                .batch_first(cfg_bool(c, "batch_first")?);
            if !c["kdim"].is_null() {
                cfg = cfg.kdim(cfg_usize(c, "kdim")?);
            }
            if !c["vdim"].is_null() {
                cfg = cfg.vdim(cfg_usize(c, "vdim")?);
            }
            let l = cfg.build(&mut store, "").map_err(e)?;
            let (q, k, v) = match inp("x") {
                Ok(x) => (x, x, x),
                Err(_) => (inp("query")?, inp("key")?, inp("value")?),
            };
            // Per-head weights when the reference has a head axis.
            let average_attn_weights = zoo::get(t, "output.attn_weights")?.shape().rank() == 3;
            let mut opts = nn::AttentionOptions { average_attn_weights, ..Default::default() };
            if name == "multiheadattention_masks" {
                // The notes: attn_mask = triu(ones(L, S), 1) (True = masked);
                // key_padding_mask masks the last 2 keys of batch 1.
                let (ls, ss) = (b.ty(q).shape.0[1], b.ty(k).shape.0[1]);
                let am: Vec<f64> = (0..ls * ss).map(|i| f64::from(u8::from(i % ss > i / ss))).collect();
                let am = b.constant(HostTensor::from_f64_values(&kiln::ir::TensorType::new(kiln::ir::DType::Bool, [ls, ss]), &am)).map_err(e)?;
                let nb = b.ty(q).shape.0[0];
                let kp: Vec<f64> = (0..nb * ss).map(|i| f64::from(u8::from(i / ss == 1 && i % ss >= ss - 2))).collect();
                let kp = b.constant(HostTensor::from_f64_values(&kiln::ir::TensorType::new(kiln::ir::DType::Bool, [nb, ss]), &kp)).map_err(e)?;
                opts.attn_mask = Some(am);
                opts.key_padding_mask = Some(kp);
            }
            let o = l.forward_qkv(&mut b, q, k, v, &opts).map_err(e)?;
            outputs.push(("y".into(), o.y));
            outputs.push(("attn_weights".into(), o.weights.ok_or("no attention weights")?));
        }
        "TransformerEncoderLayer" => {
            let act = match cfg_str(c, "activation")? {
                "relu" => nn::FeedForwardActivation::Relu,
                "gelu" => nn::FeedForwardActivation::Gelu,
                a => return Err(format!("activation {a}")),
            };
            let l = nn::TransformerEncoderLayer::config(cfg_usize(c, "d_model")?, cfg_usize(c, "nhead")?)
                .dim_feedforward(cfg_usize(c, "dim_feedforward")?)
                .dropout(cfg_f64(c, "dropout")?)
                .activation(act)
                .layer_norm_eps(cfg_f64(c, "layer_norm_eps")?)
                .batch_first(cfg_bool(c, "batch_first")?)
                .norm_first(cfg_bool(c, "norm_first")?)
                .bias(cfg_bool(c, "bias")?)
                .build(&mut store, "")
                .map_err(e)?;
            outputs.push(("y".into(), l.forward(&mut b, inp("x")?).map_err(e)?));
        }
        "RNNCell" | "LSTMCell" | "GRUCell" => {
            let (i, h) = (cfg_usize(c, "input_size")?, cfg_usize(c, "hidden_size")?);
            let bias = cfg_bool(c, "bias")?;
            let (x, h0) = (inp("x")?, inp("h")?);
            match module {
                "RNNCell" => {
                    let relu = cfg_str(c, "nonlinearity")? == "relu";
                    let l = nn::RnnCell::with(&mut store, "", i, h, bias, relu).map_err(e)?;
                    outputs.push(("h".into(), l.step(&mut b, x, Some(h0)).map_err(e)?));
                }
                "GRUCell" => {
                    let l = nn::GruCell::with(&mut store, "", i, h, bias).map_err(e)?;
                    outputs.push(("h".into(), l.step(&mut b, x, Some(h0)).map_err(e)?));
                }
                _ => {
                    let l = nn::LstmCell::with(&mut store, "", i, h, bias).map_err(e)?;
                    let (hn, cn) = l.step(&mut b, x, Some(h0), Some(inp("c")?)).map_err(e)?;
                    outputs.push(("h".into(), hn));
                    outputs.push(("c".into(), cn));
                }
            }
        }
        "CrossEntropyLoss" => {
            let reduction = match cfg_str(c, "reduction")? {
                "mean" => Reduction::Mean,
                "sum" => Reduction::Sum,
                "none" => Reduction::None,
                r => return Err(format!("reduction {r}")),
            };
            let weight = match &c["weight"] {
                Value::Null => None,
                Value::Array(a) => Some(a.iter().map(|v| v.as_f64().ok_or("weight")).collect::<Result<Vec<_>, _>>()?),
                v => return Err(format!("weight {v}")),
            };
            let opts = loss::CrossEntropyOptions {
                reduction,
                label_smoothing: cfg_f64(c, "label_smoothing")?,
                weight,
                ignore_index: c["ignore_index"].as_i64(),
            };
            outputs.push(("loss".into(), loss::cross_entropy(&mut b, inp("input")?, inp("target")?, &opts).map_err(e)?));
        }
        "ConvTranspose2d" => {
            if padding_mode(c)? != nn::PaddingMode::Zeros {
                return Err("ConvTranspose2d supports only zero padding (as PyTorch)".into());
            }
            let l = nn::ConvTranspose2d::config2(cfg_usize(c, "in_channels")?, cfg_usize(c, "out_channels")?, cfg_pair(c, "kernel_size")?)
                .stride_n(cfg_pair(c, "stride")?)
                .padding_n(cfg_pair(c, "padding")?)
                .output_padding_n(cfg_pair(c, "output_padding")?)
                .dilation_n(cfg_pair(c, "dilation")?)
                .groups(cfg_usize(c, "groups")?)
                .bias(cfg_bool(c, "bias")?)
                .build(&mut store, "")
                .map_err(e)?;
            outputs.push(("y".into(), l.forward(&mut b, inp("x")?).map_err(e)?));
        }
        "ConvTranspose1d" => {
            if padding_mode(c)? != nn::PaddingMode::Zeros {
                return Err("ConvTranspose1d supports only zero padding (as PyTorch)".into());
            }
            let l = nn::ConvTranspose1d::config(cfg_usize(c, "in_channels")?, cfg_usize(c, "out_channels")?, cfg_usize(c, "kernel_size")?)
                .stride_n(cfg_ints::<1>(c, "stride")?)
                .padding_n(cfg_ints::<1>(c, "padding")?)
                .output_padding_n(cfg_ints::<1>(c, "output_padding")?)
                .dilation_n(cfg_ints::<1>(c, "dilation")?)
                .groups(cfg_usize(c, "groups")?)
                .bias(cfg_bool(c, "bias")?)
                .build(&mut store, "")
                .map_err(e)?;
            outputs.push(("y".into(), l.forward(&mut b, inp("x")?).map_err(e)?));
        }
        "Upsample" => {
            let mode = match cfg_str(c, "mode")? {
                "nearest" => nn::UpsampleMode::Nearest,
                "bilinear" | "linear" => nn::UpsampleMode::Linear { align_corners: c["align_corners"].as_bool().unwrap_or(false) },
                m => return Err(format!("upsample mode {m}")),
            };
            if c["recompute_scale_factor"].as_bool() == Some(true) {
                return Err("recompute_scale_factor is not supported".into());
            }
            let size = match &c["size"] {
                Value::Null => None,
                Value::Number(n) => Some(vec![n.as_u64().ok_or("size")? as usize]),
                Value::Array(a) => Some(a.iter().map(|v| v.as_u64().map(|u| u as usize).ok_or("size")).collect::<Result<Vec<_>, _>>()?),
                v => return Err(format!("size {v}")),
            };
            let scale_factor = match &c["scale_factor"] {
                Value::Null => None,
                Value::Number(n) => Some(vec![n.as_f64().ok_or("scale_factor")?]),
                Value::Array(a) => Some(a.iter().map(|v| v.as_f64().ok_or("scale_factor")).collect::<Result<Vec<_>, _>>()?),
                v => return Err(format!("scale_factor {v}")),
            };
            let l = nn::Upsample { size, scale_factor, mode };
            outputs.push(("y".into(), l.forward(&mut b, inp("x")?).map_err(e)?));
        }
        "LocalResponseNorm" => {
            let l = nn::LocalResponseNorm::with(cfg_usize(c, "size")?, cfg_f64(c, "alpha")?, cfg_f64(c, "beta")?, cfg_f64(c, "k")?);
            outputs.push(("y".into(), l.forward(&mut b, inp("x")?).map_err(e)?));
        }
        m => return Err(format!("module {m} (case {name}) has no builder in this test")),
    }
    Ok(Forward { b, store, outputs })
}

fn run(case: &Value, t: &Tensors, backend: BackendKind) -> Res<Vec<String>> {
    let fwd = build(case, t)?;
    zoo::run_forward_case(fwd, t, &zoo::tolerance(case)?, backend)
}

const KINDS: &[&str] = &["layer", "loss"];

/// The manifest holds 24 layer and 2 loss cases; every one runs.
#[test]
fn zoo_manifest_lists_the_layer_and_loss_cases() {
    let m = zoo::manifest();
    let count = |k: &str| m.iter().filter(|c| c["kind"].as_str() == Some(k)).count();
    assert_eq!((count("layer"), count("loss")), (24, 2));
}

#[test]
fn every_zoo_layer_case_matches_pytorch_on_the_interpreter() {
    zoo::run_manifest(KINDS, BackendKind::Interp, run);
}

#[test]
fn every_zoo_layer_case_matches_pytorch_on_cpu() {
    zoo::run_manifest(KINDS, BackendKind::Cpu, run);
}

#[test]
fn every_zoo_layer_case_matches_pytorch_on_wgpu() {
    if kiln_tests::wgpu_available() {
        zoo::run_manifest(KINDS, BackendKind::Wgpu, run);
    }
}
