//! Nonsense configurations and inputs at the facade: layers with zero or
//! overflowing sizes, kernels larger than the input, losses with mismatched
//! labels, invalid optimizer settings, a model with no parameters, and bad
//! run-time inputs. Each gives a typed `kiln::Error` that names the problem;
//! none panics.

use kiln::init::{Init, Rng};
use kiln::loss::{self, CrossEntropyOptions, Reduction};
use kiln::nn::{self, Module};
use kiln::optim::{Adam, Sgd};
use kiln::prelude::*;
use kiln::{f32_shape, i64_shape, Builder, CompileOptions, Error, HostTensor, NodeId, ParamStore, Shape};

#[path = "../../../graph-ir/tests/support/mod.rs"]
mod support;
use support::no_panic;

const HUGE: usize = usize::MAX;

/// Asserts that `f` returns an error whose message contains every `needle`.
#[track_caller]
fn fails<T: std::fmt::Debug>(what: &str, needles: &[&str], f: impl FnOnce() -> kiln::Result<T>) -> Error {
    let e = match no_panic(what, f) {
        Ok(v) => panic!("{what}: expected an error, got {v:?}"),
        Err(e) => e,
    };
    let msg = e.to_string();
    for n in needles {
        assert!(msg.contains(n), "{what}: error `{msg}` does not mention `{n}`");
    }
    e
}

fn input(b: &mut Builder, shape: &[usize]) -> NodeId {
    let n = format!("x{}", b.node_count());
    b.input(&n, f32_shape(shape.to_vec())).unwrap()
}

#[test]
fn layer_sizes_that_overflow_are_config_errors() {
    let mut s = ParamStore::new(0);
    fails("linear HUGE", &["fc"], || nn::Linear::new(&mut s, "fc", HUGE, 2));
    fails("conv2d HUGE kernel", &["conv"], || nn::Conv2d::config(2, 2, HUGE).build(&mut s, "conv"));
    fails("embedding HUGE", &["emb"], || nn::Embedding::new(&mut s, "emb", HUGE, 4));
    fails("lstm HUGE hidden", &["lstm"], || nn::Lstm::new(&mut s, "lstm", 3, HUGE));
    fails("layer_norm HUGE", &["ln"], || nn::LayerNorm::new(&mut s, "ln", &[HUGE, 4]));
    fails("register HUGE", &["w"], || s.register("w", kiln::InputRole::Param, [HUGE / 2, 4], Init::Zeros));
    // Nothing half-registered stays behind.
    assert!(s.names().is_empty(), "{:?}", s.names());
}

#[test]
fn zero_and_degenerate_layer_settings_are_config_errors() {
    let mut s = ParamStore::new(0);
    fails("conv2d kernel 0", &["conv0", "kernel"], || nn::Conv2d::config(2, 2, 0).build(&mut s, "conv0"));
    fails("conv2d stride 0", &["conv1", "stride"], || nn::Conv2d::config(2, 2, 3).stride(0).build(&mut s, "conv1"));
    fails("conv2d dilation 0", &["conv2", "dilation"], || nn::Conv2d::config(2, 2, 3).dilation(0).build(&mut s, "conv2"));
    fails("conv2d groups 0", &["conv3", "groups"], || nn::Conv2d::config(2, 2, 3).groups(0).build(&mut s, "conv3"));
    fails("conv2d groups 3", &["conv4", "groups"], || nn::Conv2d::config(2, 4, 3).groups(3).build(&mut s, "conv4"));
    fails("conv1d kernel 0", &["c1", "kernel"], || nn::Conv1d::config(2, 2, 0).build(&mut s, "c1"));
    fails("conv1d groups 0", &["c2", "groups"], || nn::Conv1d::config(2, 2, 3).groups(0).build(&mut s, "c2"));
    fails("rnn 0 layers", &["rnn"], || nn::Rnn::config(3, 4).num_layers(0).build(&mut s, "rnn"));
    fails("rnn hidden 0", &["rnn"], || nn::Rnn::new(&mut s, "rnn", 3, 0));
    fails("gru dropout 1", &["dropout"], || nn::Gru::config(3, 4).dropout(1.0).build(&mut s, "gru"));
    fails("dropout NaN", &["dropout"], || nn::Dropout::new(&mut s, f64::NAN));
    fails("dropout -0.1", &["dropout"], || nn::Dropout::new(&mut s, -0.1));
    fails("embedding padding_idx", &["padding_idx"], || nn::Embedding::with_padding(&mut s, "e", 3, 2, Some(3)));
    fails("init NaN", &["NaN"], || s.register("u", kiln::InputRole::Param, [3], Init::Uniform { low: f64::NAN, high: 1.0 }));
    fails("init inf std", &["inf"], || s.register("n", kiln::InputRole::Param, [3], Init::Normal { mean: 0.0, std: f64::INFINITY }));
    fails("init const NaN", &["NaN"], || s.register("c", kiln::InputRole::Param, [3], Init::Constant(f64::NAN)));
    fails("xavier on a vector", &["2 non-empty dims"], || Init::XavierUniform { gain: 1.0 }.sample(&Shape::new([4]), &mut Rng::new(0)));
}

#[test]
fn shapes_that_do_not_fit_the_layer_are_errors_naming_the_layer() {
    let mut s = ParamStore::new(0);
    let fc = nn::Linear::new(&mut s, "fc", 4, 2).unwrap();
    let conv = nn::Conv2d::new(&mut s, "conv", 3, 2, 5).unwrap();
    let bn = nn::BatchNorm::new2d(&mut s, "bn", 3).unwrap();
    let ln = nn::LayerNorm::new(&mut s, "ln", &[4]).unwrap();
    let lstm = nn::Lstm::new(&mut s, "lstm", 3, 4).unwrap();
    let emb = nn::Embedding::new(&mut s, "emb", 5, 2).unwrap();
    let mut b = Builder::train();
    let x = input(&mut b, &[2, 3]);
    fails("linear wrong features", &["fc", "4"], || fc.forward(&mut b, x));
    let scalar = input(&mut b, &[]);
    fails("linear on a scalar", &["fc"], || fc.forward(&mut b, scalar));
    let small = input(&mut b, &[1, 3, 4, 4]);
    fails("conv kernel larger than input", &["5x5", "4x4"], || conv.forward(&mut b, small));
    let wrong_c = input(&mut b, &[1, 2, 8, 8]);
    fails("conv wrong channels", &["conv"], || conv.forward(&mut b, wrong_c));
    fails("batchnorm wrong channels", &["bn"], || bn.forward(&mut b, wrong_c));
    let one_per_channel = input(&mut b, &[1, 3, 1, 1]);
    fails("batchnorm one value per channel", &["more than 1 value per channel", "got 1"], || bn.forward(&mut b, one_per_channel));
    let empty_batch = input(&mut b, &[0, 3, 2, 2]);
    fails("batchnorm empty batch", &["more than 1 value per channel", "got 0"], || bn.forward(&mut b, empty_batch));
    fails("layernorm wrong trailing dims", &["layer_norm", "[4]"], || ln.forward(&mut b, x));
    fails("lstm wrong rank", &["lstm"], || lstm.forward(&mut b, x));
    fails("embedding float indices", &["emb", "integers"], || emb.forward(&mut b, x));
    fails("maxpool kernel 0", &["max_pool2d"], || nn::MaxPool2d::new(0).forward(&mut b, small));
    fails("maxpool larger than input", &["max_pool2d"], || nn::MaxPool2d::new(5).forward(&mut b, small));
    fails("maxpool padding > k/2", &["padding"], || nn::MaxPool2d::new(2).padding(2).forward(&mut b, small));
    fails("avgpool stride 0", &["avg_pool2d"], || nn::AvgPool2d::new(2).stride(0).forward(&mut b, small));
    fails("adaptive pool 0", &["adaptive_avg_pool2d"], || nn::adaptive_avg_pool2d(&mut b, small, [0, 2]));
    fails("adaptive pool on rank 2", &["adaptive_avg_pool2d"], || nn::adaptive_avg_pool2d(&mut b, x, [1, 1]));
    fails("flatten end out of range", &["flatten"], || nn::Flatten::dims(1, 7).forward(&mut b, x));
    fails("flatten start out of range", &["flatten"], || nn::Flatten::dims(HUGE, -1).forward(&mut b, x));
    let prelu = nn::PReLU::new(&mut s, "act", 3).unwrap();
    let v3 = input(&mut b, &[3]);
    fails("prelu slopes on a vector", &["prelu", "3 slopes"], || prelu.forward(&mut b, v3));
    fails("prelu slopes vs channels", &["prelu", "3 slopes but 4 channels"], || {
        let x4 = input(&mut b, &[2, 4]);
        prelu.forward(&mut b, x4)
    });
    fails("softmax dim", &["axis 2"], || nn::softmax(&mut b, x, 2));
    fails("log_softmax dim", &["axis"], || nn::log_softmax(&mut b, x, HUGE));
}

#[test]
fn losses_with_mismatched_labels_are_errors() {
    let mut b = Builder::train();
    let logits = input(&mut b, &[4, 3]);
    let other = input(&mut b, &[4, 2]);
    let flabels = input(&mut b, &[4]);
    let labels5 = b.input("labels5", i64_shape([5])).unwrap();
    let labels = b.input("labels", i64_shape([4])).unwrap();
    let o = CrossEntropyOptions::default();
    fails("mse shapes", &["mse"], || loss::mse(&mut b, logits, other, Reduction::Mean));
    fails("l1 shapes", &["l1"], || loss::l1(&mut b, logits, other, Reduction::Sum));
    fails("bce shapes", &["bce"], || loss::bce(&mut b, logits, other, Reduction::Mean));
    fails("bce_with_logits shapes", &["bce_with_logits"], || loss::bce_with_logits(&mut b, logits, other, None, Reduction::Mean));
    fails("ce float labels", &["cross_entropy", "integer labels"], || loss::cross_entropy(&mut b, logits, flabels, &o));
    fails("ce label count", &["cross_entropy"], || loss::cross_entropy(&mut b, logits, labels5, &o));
    fails("nll rank", &["nll"], || loss::nll(&mut b, flabels, labels, &o));
    fails("ce weights length", &["class weights", "3 classes"], || {
        loss::cross_entropy(&mut b, logits, labels, &CrossEntropyOptions::default().weight(vec![1.0, 2.0]))
    });
    fails("ce NaN weight", &["weight"], || {
        loss::cross_entropy(&mut b, logits, labels, &CrossEntropyOptions::default().weight(vec![1.0, f64::NAN, 1.0]))
    });
    fails("ce smoothing > 1", &["label_smoothing"], || {
        loss::cross_entropy(&mut b, logits, labels, &CrossEntropyOptions::default().label_smoothing(1.5))
    });
    fails("ce smoothing < 0", &["label_smoothing"], || {
        loss::cross_entropy(&mut b, logits, labels, &CrossEntropyOptions::default().label_smoothing(-0.1))
    });
    fails("pos_weight length", &["3 classes"], || loss::bce_with_logits(&mut b, logits, logits, Some(&[1.0]), Reduction::Mean));
    fails("smooth_l1 beta < 0", &["smooth_l1", "beta"], || loss::smooth_l1(&mut b, logits, logits, -1.0, Reduction::Mean));
    fails("huber delta 0", &["huber", "delta"], || loss::huber(&mut b, logits, logits, 0.0, Reduction::Mean));
    fails("huber delta NaN", &["huber", "NaN"], || loss::huber(&mut b, logits, logits, f64::NAN, Reduction::Mean));
    fails("empty penalty", &["at least one"], || loss::l2_penalty(&mut b, &[], 0.1));
    fails("unknown penalty param", &["nope"], || loss::params_named(&b, &["nope"]));
    // A node id from another (larger) graph is an error, not a panic.
    let stale = NodeId(10_000);
    fails("mse stale id", &["%10000"], || loss::mse(&mut b, logits, stale, Reduction::Mean));
    fails("ce stale id", &["%10000"], || loss::cross_entropy(&mut b, stale, labels, &o));
}

/// A two-parameter regression step for the optimizer checks.
fn regression() -> (Builder, NodeId, ParamStore) {
    let mut s = ParamStore::new(1);
    let fc = nn::Linear::new(&mut s, "fc", 3, 1).unwrap();
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([2, 3])).unwrap();
    let y = b.input("y", f32_shape([2, 1])).unwrap();
    let p = fc.forward(&mut b, x).unwrap();
    let l = loss::mse(&mut b, p, y, Reduction::Mean).unwrap();
    (b, l, s)
}

#[test]
fn invalid_optimizer_settings_are_config_errors() {
    let (b, l, s) = regression();
    fails("sgd lr -1", &["learning rate", "-1"], || kiln::train_step(&b, l, &s, Sgd::new(-1.0)));
    fails("sgd lr NaN", &["learning rate", "NaN"], || kiln::train_step(&b, l, &s, Sgd::new(f64::NAN)));
    fails("adam lr inf", &["learning rate", "inf"], || kiln::train_step(&b, l, &s, Adam::new(f64::INFINITY)));
    fails("group lr -1", &["learning rate"], || kiln::train_step(&b, l, &s, Sgd::new(0.1).group(&["fc.bias"], Sgd::new(-1.0))));
    fails("sgd momentum -1", &["momentum"], || kiln::train_step(&b, l, &s, Sgd::new(0.1).momentum(-1.0)));
    fails("nesterov without momentum", &["nesterov"], || kiln::train_step(&b, l, &s, Sgd::new(0.1).nesterov(true)));
    fails("adam beta 1", &["beta"], || kiln::train_step(&b, l, &s, Adam::new(0.1).betas(1.0, 0.999)));
    fails("adam eps -1", &["eps"], || kiln::train_step(&b, l, &s, Adam::new(0.1).eps(-1.0)));
    fails("weight decay NaN", &["weight_decay"], || kiln::train_step(&b, l, &s, Adam::new(0.1).weight_decay(f64::NAN)));
    fails("clip norm NaN", &["clip"], || kiln::train_step(&b, l, &s, Sgd::new(0.1).clip_grad_norm(f64::NAN)));
    fails("clip value -1", &["clip"], || kiln::train_step(&b, l, &s, Sgd::new(0.1).clip_grad_value(-1.0)));
    fails("param in two groups", &["fc.bias", "more than one parameter group"], || {
        kiln::train_step(&b, l, &s, Sgd::new(0.1).group(&["fc.bias"], Sgd::new(0.2)).group(&["fc.bias"], Sgd::new(0.3)))
    });
    fails("unknown group", &["nope"], || kiln::train_step(&b, l, &s, Sgd::new(0.1).group(&["nope"], Sgd::new(0.2))));
    fails("unknown train param", &["nope"], || kiln::train_step_params(&b, l, &s, Sgd::new(0.1), &["nope"]));
    fails("data input as param", &["not a param"], || kiln::train_step_params(&b, l, &s, Sgd::new(0.1), &["x"]));
    let x = b.find_input("x").unwrap();
    fails("non-scalar loss", &["must be a float scalar"], || kiln::train_step(&b, x, &s, Sgd::new(0.1)));
}

#[test]
fn a_model_without_parameters_trains_as_a_no_op_step() {
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([3])).unwrap();
    let l = b.sum_all(x).unwrap();
    let s = ParamStore::new(0);
    let step = no_panic("no params", || kiln::train_step(&b, l, &s, Adam::new(0.1).clip_grad_norm(1.0))).unwrap();
    let mut p = kiln::compile(&step, CompileOptions::interp()).unwrap();
    let out = p.run(&[("x", HostTensor::from_f32([3], vec![1.0, 2.0, 3.5]).unwrap())]).unwrap();
    assert_eq!(out["loss"].scalar().unwrap(), 6.5);
    assert_eq!(p.state(kiln::optim::STEP).unwrap().scalar().unwrap(), 1.0);
    assert!(p.model_state_dict().is_empty());
}

#[test]
fn bad_run_inputs_and_state_are_typed_errors() {
    let (b, l, s) = regression();
    let mut p = kiln::compile(&kiln::train_step(&b, l, &s, Sgd::new(0.1)).unwrap(), CompileOptions::interp()).unwrap();
    let x = HostTensor::from_f32([2, 3], vec![0.5; 6]).unwrap();
    let y = HostTensor::from_f32([2, 1], vec![1.0, -1.0]).unwrap();
    let before = p.state_dict();
    fails("missing y", &["missing input `y`"], || p.run(&[("x", &x)]));
    fails("unknown input", &["zzz"], || p.run(&[("x", &x), ("y", &y), ("zzz", &y)]));
    fails("wrong shape", &["`x`", "f32[2,3]", "f32[3,2]"], || p.run(&[("x", &x.clone().reshaped([3, 2]).unwrap()), ("y", &y)]));
    let xi = x.cast(kiln::DType::I64);
    fails("wrong dtype", &["`x`", "i64"], || p.run(&[("x", &xi), ("y", &y)]));
    let nan = HostTensor::from_f32([2, 1], vec![f32::NAN, 0.0]).unwrap();
    fails("NaN input", &["`y`", "NaN"], || p.run(&[("x", &x), ("y", &nan)]));
    let inf = HostTensor::from_f32([2, 3], vec![f32::INFINITY; 6]).unwrap();
    fails("inf input", &["`x`", "infinity"], || p.run(&[("x", &inf), ("y", &y)]));
    fails("param given as input", &["fc.weight"], || p.run(&[("x", &x), ("y", &y), ("fc.weight", &y)]));
    fails("set unknown state", &["nope"], || p.set_state("nope", y.clone()));
    fails("set state wrong shape", &["fc.weight"], || p.set_state("fc.weight", y.clone()));
    fails("set state NaN", &["fc.bias", "NaN"], || p.set_state("fc.bias", HostTensor::from_f32([1], vec![f32::NAN]).unwrap()));
    fails("set lr NaN", &["NaN"], || p.set_lr(f64::NAN));
    fails("set lr -1", &["learning rate"], || p.set_lr(-1.0));
    fails("input given twice", &["`x`", "twice"], || p.run(&[("x", &x), ("y", &y), ("x", &x)]));
    // load_state_dict is all or nothing: a bad entry after a good one
    // leaves both as they were.
    let mut d = std::collections::BTreeMap::new();
    d.insert("fc.bias".to_string(), HostTensor::from_f32([1], vec![42.0]).unwrap());
    d.insert("fc.weight".to_string(), HostTensor::from_f32([1, 3], vec![f32::NAN; 3]).unwrap());
    fails("load_state_dict with a NaN entry", &["fc.weight", "NaN"], || p.load_state_dict(&d));
    // Failed calls leave the state alone.
    assert_eq!(p.state_dict(), before);
    let mut s2 = ParamStore::new(0);
    nn::Linear::new(&mut s2, "fc", 3, 1).unwrap();
    let mut wrong = s2.state_dict();
    wrong.insert("fc.weight".into(), HostTensor::from_f32([3], vec![0.0; 3]).unwrap());
    fails("load wrong shape", &["fc.weight"], || s2.load_state_dict(&wrong));
    wrong.remove("fc.weight");
    fails("load missing", &["fc.weight"], || s2.load_state_dict(&wrong));
    let dir = std::env::temp_dir().join(format!("kiln-bad-input-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":").unwrap();
    fails("load garbage", &["garbage.safetensors"], || s2.load(&garbage));
    fails("load missing file", &["nonexistent"], || s2.load(dir.join("nonexistent.safetensors")));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn compile_and_run_time_failures_are_typed() {
    let (b, l, s) = regression();
    let step = kiln::train_step(&b, l, &s, Sgd::new(0.1)).unwrap();
    fails("unknown pass", &["bogus"], || kiln::compile(&step, CompileOptions::interp().passes(&["dce", "bogus"])));
    // A dump "directory" that is a file.
    let file = std::env::temp_dir().join(format!("kiln-bad-input-dump-{}", std::process::id()));
    std::fs::write(&file, b"not a directory").unwrap();
    let e = no_panic("dump into a file", || kiln::compile(&step, CompileOptions::interp().dump(&file)));
    std::fs::remove_file(&file).unwrap();
    let e = e.err().expect("dumping into a file is an error");
    assert!(e.to_string().contains("kiln-bad-input-dump"), "{e}");
    // A param with no value anywhere.
    let mut empty = ParamStore::new(0);
    fails("missing value", &["fc.weight"], || kiln::train_step(&b, l, &empty, Sgd::new(0.1)));
    nn::Linear::new(&mut empty, "other", 3, 1).unwrap();
    fails("missing value with other params", &["fc.weight"], || kiln::inference(&b, &empty));

    // Labels out of range surface at run time naming the node.
    let mut s = ParamStore::new(0);
    let fc = nn::Linear::new(&mut s, "fc", 2, 3).unwrap();
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([2, 2])).unwrap();
    let y = b.input("y", i64_shape([2])).unwrap();
    let logits = fc.forward(&mut b, x).unwrap();
    let l = loss::cross_entropy_mean(&mut b, logits, y).unwrap();
    let mut p = kiln::compile(&kiln::train_step(&b, l, &s, Sgd::new(0.1)).unwrap(), CompileOptions::interp()).unwrap();
    let xs = HostTensor::from_f32([2, 2], vec![0.1, 0.2, 0.3, 0.4]).unwrap();
    let before = p.state_dict();
    for bad in [3, -1] {
        let ys = HostTensor::from_i64([2], vec![0, bad]).unwrap();
        let e = fails("label out of range", &["out of range 0..3"], || p.run(&[("x", &xs), ("y", &ys)]));
        assert!(matches!(e, Error::Run(kiln::ir::RunError::IndexOutOfRange { index, bound: 3, .. }) if index == bad), "{e:?}");
    }
    assert_eq!(p.state_dict(), before, "a failed step updates nothing");
}
