//! The `kiln` binary end to end: success and error exits of check, run, opt.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_ir::{read_safetensors, write_safetensors, HostTensor};

mod common;
use common::{assert_exit, kiln, repo, text};

fn scratch(name: &str) -> PathBuf {
    common::scratch("test", name)
}

fn write(dir: &Path, name: &str, contents: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, contents).unwrap();
    p.display().to_string()
}

#[test]
fn check_accepts_the_examples() {
    for f in ["examples/kir/mlp_grad.kir", "examples/kir/affine.kir"] {
        let o = kiln(&["check", f]);
        assert_exit(&o, 0);
        assert!(text(&o.stdout).starts_with(&format!("{f}: ok (")), "{}", text(&o.stdout));
    }
    let o = kiln(&["check", "examples/kir/mlp_grad.kir"]);
    assert!(text(&o.stdout).contains("4 params") && text(&o.stdout).contains("1 grad requests"), "{}", text(&o.stdout));
}

#[test]
fn check_prints_every_error_with_its_position_and_exits_1() {
    let d = scratch("check_errors");
    let f = write(&d, "bad.kir", "%0 = input \"x\" : f32[2]\n%1 = frob %0\n%2 = neg %0 : f32[3]\n%3 = add %0, %9\n");
    let o = kiln(&["check", &f]);
    assert_exit(&o, 1);
    assert_eq!(
        text(&o.stderr),
        format!(
            "{f}:2:6: unknown op `frob`\n{f}:3:15: declared type f32[3] but neg gives f32[2]\n{f}:4:14: unknown node %9\n"
        )
    );
    assert!(o.stdout.is_empty());
}

#[test]
fn check_takes_several_files_and_reports_all_of_them() {
    let d = scratch("check_many");
    let bad1 = write(&d, "a.kir", "%0 = nope\n");
    let bad2 = write(&d, "b.kir", "%0 = input \"x\" : f32[2]\noutput \"y\" = %3\n");
    let o = kiln(&["check", &bad1, "examples/kir/affine.kir", &bad2]);
    assert_exit(&o, 1);
    assert_eq!(text(&o.stderr), format!("{bad1}:1:6: unknown op `nope`\n{bad2}:2:14: unknown node %3\n"));
    assert!(text(&o.stdout).starts_with("examples/kir/affine.kir: ok"), "{}", text(&o.stdout));
}

#[test]
fn check_of_a_missing_file_is_an_error() {
    let o = kiln(&["check", "does/not/exist.kir"]);
    assert_exit(&o, 1);
    let e = text(&o.stderr);
    assert!(e.starts_with("error: does/not/exist.kir: "), "{e}");
}

#[test]
fn run_affine_writes_the_output_by_name() {
    let d = scratch("run_affine");
    let out = d.join("out.safetensors");
    let o = kiln(&[
        "run",
        "examples/kir/affine.kir",
        "--inputs",
        "examples/kir/affine.inputs.safetensors",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_exit(&o, 0);
    let inputs = read_safetensors(&repo().join("examples/kir/affine.inputs.safetensors")).unwrap();
    let res = read_safetensors(&out).unwrap();
    assert_eq!(res.keys().collect::<Vec<_>>(), ["y"]);
    let (x, w, b) = (inputs["x"].as_f32().unwrap(), inputs["w"].as_f32().unwrap(), inputs["b"].as_f32().unwrap());
    let y = res["y"].as_f32().unwrap();
    assert_eq!(res["y"].shape().dims(), &[3, 2]);
    for i in 0..3 {
        for j in 0..2 {
            let want = (x[i * 2] * w[j] + x[i * 2 + 1] * w[2 + j] + b[j]).tanh();
            assert!((y[i * 2 + j] - want).abs() < 1e-6, "y[{i},{j}] = {} want {want}", y[i * 2 + j]);
        }
    }
    assert!(text(&o.stdout).contains("y (%5): f32[3,2] = ["), "{}", text(&o.stdout));
}

#[test]
fn run_with_grad_requests_runs_autodiff_and_writes_gradients() {
    let d = scratch("run_mlp");
    let out = d.join("out.safetensors");
    let o = kiln(&[
        "run",
        "examples/kir/mlp_grad.kir",
        "--inputs",
        "examples/kir/mlp_grad.inputs.safetensors",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_exit(&o, 0);
    let res = read_safetensors(&out).unwrap();
    let names: Vec<&str> = res.keys().map(String::as_str).collect();
    assert_eq!(names, ["grad.b1", "grad.b2", "grad.w1", "grad.w2", "logits", "loss"]);
    for (g, p) in [("grad.w1", [4, 8].as_slice()), ("grad.b1", &[8]), ("grad.w2", &[8, 3]), ("grad.b2", &[3])] {
        assert_eq!(res[g].shape().dims(), p, "{g}");
    }
    // Cross-entropy by hand from the logits: loss = mean(-log softmax[y]),
    // d loss / d b2 = mean over the batch of softmax - one_hot(y).
    let logits = res["logits"].as_f32().unwrap();
    let labels = [0usize, 2];
    let mut loss = 0.0f64;
    let mut gb2 = [0.0f64; 3];
    for (n, &label) in labels.iter().enumerate() {
        let row: Vec<f64> = logits[n * 3..n * 3 + 3].iter().map(|&v| v as f64).collect();
        let m = row.iter().cloned().fold(f64::MIN, f64::max);
        let z: f64 = row.iter().map(|v| (v - m).exp()).sum();
        loss += -(row[label] - m - z.ln()) / 2.0;
        for c in 0..3 {
            gb2[c] += ((row[c] - m).exp() / z - (c == label) as u8 as f64) / 2.0;
        }
    }
    assert!((res["loss"].scalar().unwrap() - loss).abs() < 1e-5, "loss {} want {loss}", res["loss"].scalar().unwrap());
    let got = res["grad.b2"].as_f32().unwrap();
    for c in 0..3 {
        assert!((got[c] as f64 - gb2[c]).abs() < 1e-5, "grad.b2[{c}] = {} want {}", got[c], gb2[c]);
    }
}

fn small_graph(d: &Path) -> String {
    write(
        d,
        "g.kir",
        "%0 = input \"x\" : f32[2]\n%1 = param \"w\" : f32[2]\n%2 = mul %0, %1\n%3 = reduce_sum %2 axes=[0]\n%4 = const 0.5 : f32[]\n%5 = mul %1, %4\noutput \"s\" = %3\nupdate \"w\" = %5\n",
    )
}

fn inputs(d: &Path, name: &str, tensors: &[(&str, HostTensor)]) -> String {
    let p = d.join(name);
    let m: BTreeMap<String, HostTensor> = tensors.iter().map(|(n, t)| (n.to_string(), t.clone())).collect();
    write_safetensors(&p, &m).unwrap();
    p.display().to_string()
}

#[test]
fn run_writes_updated_params_under_their_names() {
    let d = scratch("run_update");
    let g = small_graph(&d);
    let x = HostTensor::from_f32([2], vec![1.0, 2.0]).unwrap();
    let w = HostTensor::from_f32([2], vec![3.0, 4.0]).unwrap();
    let inp = inputs(&d, "in.safetensors", &[("x", x), ("w", w)]);
    let out = d.join("out.safetensors");
    let o = kiln(&["run", &g, "--inputs", &inp, "--out", out.to_str().unwrap(), "--quiet"]);
    assert_exit(&o, 0);
    assert!(o.stdout.is_empty());
    let res = read_safetensors(&out).unwrap();
    assert_eq!(res["s"].scalar().unwrap(), 11.0);
    assert_eq!(res["w"].as_f32().unwrap(), &[1.5, 2.0]);
}

#[test]
fn run_reports_missing_extra_and_mistyped_inputs_together() {
    let d = scratch("run_bad_inputs");
    let g = small_graph(&d);
    let x = HostTensor::from_f32([3], vec![1.0, 2.0, 3.0]).unwrap();
    let z = HostTensor::from_f32([1], vec![0.0]).unwrap();
    let inp = inputs(&d, "in.safetensors", &[("x", x), ("z", z)]);
    let out = d.join("out.safetensors");
    let o = kiln(&["run", &g, "--inputs", &inp, "--out", out.to_str().unwrap()]);
    assert_exit(&o, 1);
    assert_eq!(
        text(&o.stderr),
        format!(
            "error: {inp}: missing param `w` (%1: f32[2])\n\
             error: {inp}: input `x` (%0) must be f32[2], got f32[3]\n\
             error: {inp}: unexpected tensor `z` (the graph's inputs are: w, x)\n"
        )
    );
    assert!(!out.exists(), "nothing is written on error");
}

#[test]
fn run_rejects_a_non_safetensors_input_file_and_parse_errors() {
    let d = scratch("run_bad_file");
    let g = small_graph(&d);
    let junk = write(&d, "junk.safetensors", "not a safetensors file");
    let out = d.join("o.safetensors");
    let o = kiln(&["run", &g, "--inputs", &junk, "--out", out.to_str().unwrap()]);
    assert_exit(&o, 1);
    assert!(text(&o.stderr).starts_with(&format!("error: safetensors: {junk}: ")), "{}", text(&o.stderr));

    let bad = write(&d, "bad.kir", "%0 = input \"x\" : f32[2]\n%1 = neg %2\n");
    let o = kiln(&["run", &bad, "--inputs", &junk, "--out", out.to_str().unwrap()]);
    assert_exit(&o, 1);
    assert_eq!(text(&o.stderr), format!("{bad}:2:10: unknown node %2\n"));
}

#[test]
fn opt_runs_autodiff_and_the_default_pipeline_and_dumps() {
    let d = scratch("opt_mlp");
    let out = d.join("opt.kir");
    let dump = d.join("dump");
    let o = kiln(&[
        "opt",
        "examples/kir/mlp_grad.kir",
        "--dump",
        dump.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_exit(&o, 0);
    let src = std::fs::read_to_string(&out).unwrap();
    let g = kiln_ir::text::parse(&src, "opt.kir").unwrap();
    assert!(g.grad_requests().is_empty());
    for name in ["loss", "logits", "grad.w1", "grad.b1", "grad.w2", "grad.b2"] {
        assert!(g.output(name).is_some(), "output {name} missing in\n{src}");
    }
    let summary = std::fs::read_to_string(dump.join("summary.txt")).unwrap();
    assert!(summary.contains("autodiff") && summary.contains("dce"), "{summary}");
    assert!(text(&o.stderr).contains("autodiff"), "the pipeline table goes to stderr");
    // The optimized file still runs.
    let res = d.join("res.safetensors");
    let o = kiln(&[
        "run",
        out.to_str().unwrap(),
        "--inputs",
        "examples/kir/mlp_grad.inputs.safetensors",
        "--out",
        res.to_str().unwrap(),
        "-q",
    ]);
    assert_exit(&o, 0);
}

#[test]
fn opt_with_named_passes_and_stdout() {
    let d = scratch("opt_named");
    let f = write(
        &d,
        "dup.kir",
        "%0 = input \"x\" : f32[3]\n%1 = exp %0\n%2 = exp %0\n%3 = add %1, %2\n%4 = neg %0\noutput \"y\" = %3\n",
    );
    let o = kiln(&["opt", &f, "--passes", "cse,dce"]);
    assert_exit(&o, 0);
    assert_eq!(text(&o.stdout), "%0 = input \"x\" : f32[3]\n%1 = exp %0 : f32[3]\n%3 = add %1, %1 : f32[3]\noutput \"y\" = %3\n");
    // No passes: the canonical form of the file.
    let o = kiln(&["opt", &f, "--passes", ""]);
    assert_exit(&o, 0);
    assert!(text(&o.stdout).contains("%4 = neg %0 : f32[3]"));
}

#[test]
fn opt_with_an_unknown_pass_fails() {
    let o = kiln(&["opt", "examples/kir/affine.kir", "--passes", "cse,frobnicate"]);
    assert_exit(&o, 1);
    let e = text(&o.stderr);
    assert!(e.starts_with("error: unknown pass `frobnicate` (known: "), "{e}");
}

#[test]
fn every_subcommand_has_help_with_examples() {
    for sub in [&["--help"][..], &["check", "--help"], &["run", "--help"], &["opt", "--help"]] {
        let o = kiln(sub);
        assert_exit(&o, 0);
        assert!(text(&o.stdout).contains("Examples:\n  kiln "), "{sub:?}:\n{}", text(&o.stdout));
    }
    let o = kiln(&["run", "examples/kir/affine.kir"]);
    assert_exit(&o, 2);
    assert!(text(&o.stderr).contains("--inputs"), "{}", text(&o.stderr));
}

/// With Graphviz on PATH the dump's .dot files are rendered to .svg. A stub
/// `dot` stands in for Graphviz so the test runs anywhere.
#[cfg(unix)]
#[test]
fn opt_renders_dumped_dot_files_with_graphviz_when_installed() {
    use std::os::unix::fs::PermissionsExt;
    let d = scratch("opt_svg");
    let bin = d.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let stub = bin.join("dot");
    // Invoked as: dot -Tsvg IN.dot -o OUT.svg
    std::fs::write(&stub, "#!/bin/sh\necho \"<svg><!-- $2 --></svg>\" > \"$4\"\n").unwrap();
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dump = d.join("dump");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let o = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["opt", "examples/kir/mlp_grad.kir", "--dump", dump.to_str().unwrap(), "-o", d.join("o.kir").to_str().unwrap()])
        .env("PATH", path)
        .current_dir(repo())
        .output()
        .unwrap();
    assert_exit(&o, 0);
    let names: Vec<String> = std::fs::read_dir(&dump).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    let dots = names.iter().filter(|n| n.ends_with(".dot")).count();
    let svgs: Vec<&String> = names.iter().filter(|n| n.ends_with(".svg")).collect();
    assert!(dots > 0 && svgs.len() == dots, "{names:?}");
    let svg = std::fs::read_to_string(dump.join(svgs[0])).unwrap();
    assert!(svg.starts_with("<svg><!-- ") && svg.contains(".dot"), "{svg}");
    assert!(text(&o.stderr).contains("graphs rendered to SVG"), "{}", text(&o.stderr));
}

/// `kiln opt` with the e-graph (fusion) keeps the numbers: the optimized
/// CNN file gives the interpreter the same outputs and gradients.
#[test]
fn optimized_file_computes_what_the_original_does() {
    let d = scratch("opt_differential");
    let opt = d.join("cnn_opt.kir");
    let o = kiln(&["opt", "examples/kir/cnn_grad.kir", "--passes", "autodiff,cse,const_fold,egraph,dce", "-o", opt.to_str().unwrap()]);
    assert_exit(&o, 0);
    let src = std::fs::read_to_string(&opt).unwrap();
    assert!(src.contains("= fused_conv2d "), "conv + bias + relu should fuse:\n{src}");
    let inputs = "examples/kir/cnn_grad.inputs.safetensors";
    let (a, b) = (d.join("a.safetensors"), d.join("b.safetensors"));
    assert_exit(&kiln(&["run", "examples/kir/cnn_grad.kir", "--inputs", inputs, "--out", a.to_str().unwrap(), "-q"]), 0);
    assert_exit(&kiln(&["run", opt.to_str().unwrap(), "--inputs", inputs, "--out", b.to_str().unwrap(), "-q"]), 0);
    let (ra, rb) = (read_safetensors(&a).unwrap(), read_safetensors(&b).unwrap());
    assert_eq!(ra.keys().collect::<Vec<_>>(), rb.keys().collect::<Vec<_>>());
    for (k, ta) in &ra {
        for (x, y) in ta.to_f64_vec().iter().zip(rb[k].to_f64_vec()) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "{k}: original {x} vs optimized {y}");
        }
    }
}
