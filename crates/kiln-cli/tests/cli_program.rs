//! `kiln compile`, `kiln inspect`, `kiln run X.kiln`, and `--backend cpu`.

use std::path::PathBuf;
use std::process::Output;

use kiln_ir::read_safetensors;

mod common;
use common::{assert_exit, kiln, repo, text};

fn scratch(name: &str) -> PathBuf {
    common::scratch("prog", name)
}

const MLP: &str = "examples/kir/mlp_grad.kir";
const MLP_IN: &str = "examples/kir/mlp_grad.inputs.safetensors";

fn run_kir(backend: &str, out: &std::path::Path) -> Output {
    kiln(&["run", MLP, "--backend", backend, "--inputs", MLP_IN, "--out", out.to_str().unwrap(), "-q"])
}

/// Every shipped example with an inputs file gives the same numbers on the
/// CPU backend as on the interpreter (gradients included).
#[test]
fn cpu_backend_matches_the_interpreter_on_every_example() {
    backend_matches_the_interpreter_on_every_example("cpu");
}

/// The same on the GPU backend (Mesa's software Vulkan in CI).
#[test]
fn wgpu_backend_matches_the_interpreter_on_every_example() {
    if gpu() {
        backend_matches_the_interpreter_on_every_example("wgpu");
    }
}

fn gpu() -> bool {
    match kiln::wgpu_adapter() {
        Ok(_) => true,
        Err(e) => {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but no GPU adapter: {e}");
            eprintln!("skipping: {e}");
            false
        }
    }
}

fn backend_matches_the_interpreter_on_every_example(backend: &str) {
    let d = scratch(&format!("{backend}_vs_interp"));
    let mut checked = 0;
    for e in std::fs::read_dir(repo().join("examples/kir")).unwrap() {
        let p = e.unwrap().path();
        let Some(stem) = p.file_name().unwrap().to_str().unwrap().strip_suffix(".kir") else { continue };
        let inputs = format!("examples/kir/{stem}.inputs.safetensors");
        let file = format!("examples/kir/{stem}.kir");
        let (a, b) = (d.join(format!("{stem}.interp")), d.join(format!("{stem}.{backend}")));
        for (backend, out) in [("interp", &a), (backend, &b)] {
            let o = kiln(&["run", &file, "--backend", backend, "--inputs", &inputs, "--out", out.to_str().unwrap(), "-q"]);
            assert_exit(&o, 0);
        }
        let (ra, rb) = (read_safetensors(&a).unwrap(), read_safetensors(&b).unwrap());
        assert_eq!(ra.keys().collect::<Vec<_>>(), rb.keys().collect::<Vec<_>>(), "{stem}");
        for (k, ta) in &ra {
            assert_eq!(ta.ty(), rb[k].ty(), "{stem}: {k}");
            for (x, y) in ta.to_f64_vec().iter().zip(rb[k].to_f64_vec()) {
                assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "{stem}: {k}: interp {x} vs {backend} {y}");
            }
        }
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} examples found");
}

/// `kiln compile --backend wgpu`: the file names the adapter, holds the
/// WGSL, runs with the stored params, and is refused as a CPU program.
#[test]
fn compile_inspect_and_run_a_wgpu_program() {
    if !gpu() {
        return;
    }
    let d = scratch("compile_wgpu");
    let prog = d.join("mlp.kiln");
    let o = kiln(&["compile", MLP, "--backend", "wgpu", "--weights", MLP_IN, "-o", prog.to_str().unwrap()]);
    assert_exit(&o, 0);
    assert!(text(&o.stdout).contains("(wgpu backend)"), "{}", text(&o.stdout));
    let o = kiln(&["inspect", prog.to_str().unwrap(), "--plan"]);
    assert_exit(&o, 0);
    let info = text(&o.stdout);
    for want in ["backend: wgpu", "device", "(wgsl)", "@compute @workgroup_size(64)", "dispatches"] {
        assert!(info.contains(want), "inspect output lacks `{want}`:\n{info}");
    }
    let res = d.join("res.safetensors");
    let o = kiln(&["run", prog.to_str().unwrap(), "--inputs", MLP_IN, "--out", res.to_str().unwrap(), "-q"]);
    assert_exit(&o, 0);
    assert!(read_safetensors(&res).unwrap().contains_key("loss"));
    let o = kiln(&["run", prog.to_str().unwrap(), "--backend", "cpu", "--inputs", MLP_IN, "--out", res.to_str().unwrap()]);
    assert_exit(&o, 1);
    assert!(text(&o.stderr).contains("compiled for backend `wgpu`, expected `cpu`"), "{}", text(&o.stderr));
}

#[test]
fn compile_inspect_and_run_a_kiln_program() {
    let d = scratch("compile_interp");
    let prog = d.join("mlp.kiln");
    let dump = d.join("dump");
    let o = kiln(&[
        "compile",
        MLP,
        "--backend",
        "interp",
        "--weights",
        MLP_IN,
        "--dump",
        dump.to_str().unwrap(),
        "-o",
        prog.to_str().unwrap(),
    ]);
    assert_exit(&o, 0);
    assert!(text(&o.stdout).contains("(interp backend)"), "{}", text(&o.stdout));
    assert!(dump.join("summary.txt").exists(), "--dump writes the pass dumps");

    let o = kiln(&["inspect", prog.to_str().unwrap(), "--graph"]);
    assert_exit(&o, 0);
    let info = text(&o.stdout);
    for want in ["backend: interp", "param  w1 : f32[4,8]", "grad.b2 : f32[3]", "autodiff", "w2 : f32[8,3]", "optimized graph:", "output \"loss\" = %"] {
        assert!(info.contains(want), "inspect output lacks `{want}`:\n{info}");
    }

    // Same numbers as running the .kir directly; the params come from the file.
    let direct = d.join("direct.safetensors");
    assert_exit(&run_kir("interp", &direct), 0);
    let data_only = d.join("data.safetensors");
    let all = read_safetensors(&repo().join(MLP_IN)).unwrap();
    let data: std::collections::BTreeMap<_, _> = all.into_iter().filter(|(k, _)| k == "x" || k == "y").collect();
    kiln_ir::write_safetensors(&data_only, &data).unwrap();
    let res = d.join("res.safetensors");
    let o = kiln(&["run", prog.to_str().unwrap(), "--inputs", data_only.to_str().unwrap(), "--out", res.to_str().unwrap()]);
    assert_exit(&o, 0);
    // The program ran the optimization pipeline (fusion may reassociate), so
    // f32 results agree to rounding, not bit for bit.
    let (got, want) = (read_safetensors(&res).unwrap(), read_safetensors(&direct).unwrap());
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (k, t) in &want {
        assert_eq!(t.ty(), got[k].ty(), "{k}");
        for (x, y) in t.to_f64_vec().iter().zip(got[k].to_f64_vec()) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "{k}: .kir {x} vs .kiln {y}");
        }
    }

    // A program compiled for one backend is not silently run on another.
    let o = kiln(&["run", prog.to_str().unwrap(), "--backend", "cpu", "--inputs", MLP_IN, "--out", res.to_str().unwrap()]);
    assert_exit(&o, 1);
    assert!(text(&o.stderr).contains("compiled for backend `interp`, expected `cpu`"), "{}", text(&o.stderr));
}

#[test]
fn a_kiln_program_without_stored_params_needs_them_in_inputs() {
    let d = scratch("compile_noweights");
    let prog = d.join("affine.kiln");
    let o = kiln(&["compile", "examples/kir/affine.kir", "--backend", "interp", "-o", prog.to_str().unwrap()]);
    assert_exit(&o, 0);
    assert!(text(&o.stderr).contains("note: no stored value for w, b"), "{}", text(&o.stderr));
    let x = kiln_ir::HostTensor::from_f32([3, 2], vec![0.0; 6]).unwrap();
    let inp = d.join("x.safetensors");
    kiln_ir::write_safetensors(&inp, &[("x".to_string(), x)].into_iter().collect()).unwrap();
    let out = d.join("o.safetensors");
    let o = kiln(&["run", prog.to_str().unwrap(), "--inputs", inp.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_exit(&o, 1);
    let e = text(&o.stderr);
    assert!(e.contains("missing param `b` (%2: f32[2])") && e.contains("missing param `w` (%1: f32[2,2])"), "{e}");
}

#[test]
fn inspect_and_run_reject_files_that_are_not_programs() {
    let d = scratch("not_kiln");
    let junk = d.join("junk.kiln");
    std::fs::write(&junk, b"\x89KILN\r\n\x1a then garbage").unwrap();
    let o = kiln(&["inspect", junk.to_str().unwrap()]);
    assert_exit(&o, 1);
    assert!(text(&o.stderr).starts_with("error: "), "{}", text(&o.stderr));
    let o = kiln(&["inspect", MLP]);
    assert_exit(&o, 1);
    assert!(text(&o.stderr).contains("not a kiln program file"), "{}", text(&o.stderr));
    let out = d.join("o.safetensors");
    let o = kiln(&["run", junk.to_str().unwrap(), "--inputs", MLP_IN, "--out", out.to_str().unwrap()]);
    assert_exit(&o, 1);
    assert!(!out.exists());
}

#[test]
fn compile_rejects_weights_of_the_wrong_type() {
    let d = scratch("bad_weights");
    let w = d.join("w.safetensors");
    let bad = kiln_ir::HostTensor::from_f32([3], vec![0.0; 3]).unwrap();
    kiln_ir::write_safetensors(&w, &[("b".to_string(), bad)].into_iter().collect()).unwrap();
    let o = kiln(&["compile", "examples/kir/affine.kir", "--backend", "interp", "--weights", w.to_str().unwrap(), "-o", d.join("a.kiln").to_str().unwrap()]);
    assert_exit(&o, 1);
    assert_eq!(text(&o.stderr), format!("error: {}: param `b` (%2) must be f32[2], got f32[3]\n", w.display()));
}

#[test]
fn f64_precision_is_only_for_the_interpreter() {
    let d = scratch("f64_cpu");
    let out = d.join("o.safetensors");
    let o = kiln(&["run", MLP, "--backend", "cpu", "--precision", "f64", "--inputs", MLP_IN, "--out", out.to_str().unwrap()]);
    assert_exit(&o, 1);
    assert_eq!(text(&o.stderr), "error: --precision f64 needs --backend interp (the cpu backend computes in f32)\n");
    let o = kiln(&["run", MLP, "--precision", "f64", "--inputs", MLP_IN, "--out", out.to_str().unwrap(), "-q"]);
    assert_exit(&o, 0);
    let res = read_safetensors(&out).unwrap();
    assert_eq!(res["loss"].dtype(), kiln_ir::DType::F64, "f64 mode returns f64 outputs");
}

/// A hand-written SGD step on `w`: run it twice through `--save` and the
/// stored weight moves twice.
#[test]
fn run_save_resumes_a_training_step() {
    let d = scratch("save_resume");
    let step = d.join("step.kir");
    std::fs::write(
        &step,
        "%0 = input \"x\" : f32[2]\n%1 = param \"w\" : f32[2]\n%2 = mul %0, %1\n%3 = reduce_sum %2 axes=[0]\n\
         %4 = const 0.5 : f32[]\n%5 = mul %0, %4\n%6 = sub %1, %5\noutput \"loss\" = %3\nupdate \"w\" = %6\n",
    )
    .unwrap();
    let w = d.join("w.safetensors");
    let x = d.join("x.safetensors");
    let t = |v: Vec<f32>| kiln_ir::HostTensor::from_f32([2], v).unwrap();
    kiln_ir::write_safetensors(&w, &[("w".to_string(), t(vec![1.0, 1.0]))].into_iter().collect()).unwrap();
    kiln_ir::write_safetensors(&x, &[("x".to_string(), t(vec![2.0, 4.0]))].into_iter().collect()).unwrap();
    let prog = d.join("step.kiln");
    let p = prog.to_str().unwrap();
    assert_exit(&kiln(&["compile", step.to_str().unwrap(), "--backend", "interp", "--weights", w.to_str().unwrap(), "-o", p]), 0);
    let out = d.join("out.safetensors");
    for (i, want_loss, want_w) in [(0, 6.0, [0.0f32, -1.0]), (1, -4.0, [-1.0, -3.0])] {
        let o = kiln(&["run", p, "--inputs", x.to_str().unwrap(), "--out", out.to_str().unwrap(), "--save", p]);
        assert_exit(&o, 0);
        let r = read_safetensors(&out).unwrap();
        assert_eq!(r["loss"].scalar().unwrap(), want_loss, "step {i}");
        assert_eq!(r["w"].as_f32().unwrap(), &want_w, "step {i}");
    }
    let o = kiln(&["run", step.to_str().unwrap(), "--inputs", x.to_str().unwrap(), "--out", out.to_str().unwrap(), "--save", p]);
    assert_exit(&o, 1);
    assert!(text(&o.stderr).contains("--save needs a compiled .kiln program"), "{}", text(&o.stderr));
}

#[test]
fn compile_for_the_cpu_backend_inspect_its_kernels_and_run_it() {
    let d = scratch("compile_cpu");
    let prog = d.join("mlp_cpu.kiln");
    let o = kiln(&["compile", MLP, "--weights", MLP_IN, "-o", prog.to_str().unwrap()]);
    assert_exit(&o, 0);
    assert!(text(&o.stdout).contains("(cpu backend)"), "cpu is the default: {}", text(&o.stdout));

    let o = kiln(&["inspect", prog.to_str().unwrap(), "--plan"]);
    assert_exit(&o, 0);
    let info = text(&o.stdout);
    for want in ["backend: cpu", "peak memory: ", "kernels", "== plan entry `partition`", "== plan entry `memory`", "(clif) =="] {
        assert!(info.contains(want), "inspect lacks `{want}`:\n{info}");
    }

    let (direct, res) = (d.join("direct.safetensors"), d.join("res.safetensors"));
    assert_exit(&run_kir("interp", &direct), 0);
    let o = kiln(&["run", prog.to_str().unwrap(), "--inputs", MLP_IN, "--out", res.to_str().unwrap(), "-q"]);
    assert_exit(&o, 0);
    let (a, b) = (read_safetensors(&direct).unwrap(), read_safetensors(&res).unwrap());
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, ta) in &a {
        for (x, y) in ta.to_f64_vec().iter().zip(b[k].to_f64_vec()) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "{k}: interp {x} vs compiled cpu {y}");
        }
    }
}

/// The gradients `kiln run` reports for the CNN example agree with central
/// finite differences of the loss it reports (f64 interpreter).
#[test]
fn cnn_example_gradients_match_finite_differences() {
    let d = scratch("cnn_fd");
    let file = "examples/kir/cnn_grad.kir";
    let base = read_safetensors(&repo().join("examples/kir/cnn_grad.inputs.safetensors")).unwrap();
    let run = |inputs: &std::collections::BTreeMap<String, kiln_ir::HostTensor>, tag: &str| {
        let (i, o) = (d.join(format!("{tag}.in")), d.join(format!("{tag}.out")));
        kiln_ir::write_safetensors(&i, inputs).unwrap();
        let r = kiln(&["run", file, "--precision", "f64", "--inputs", i.to_str().unwrap(), "--out", o.to_str().unwrap(), "-q"]);
        assert_exit(&r, 0);
        read_safetensors(&o).unwrap()
    };
    let res = run(&base, "base");
    let h = 1e-4;
    for (param, indices) in [("conv.bias", vec![0, 1, 2]), ("conv.weight", vec![0, 13, 26]), ("fc.weight", vec![5, 50, 107])] {
        let grad = res[&format!("grad.{param}")].to_f64_vec();
        for &k in &indices {
            let mut loss = [0.0; 2];
            for (s, sign) in [1.0, -1.0].into_iter().enumerate() {
                let mut inputs = base.clone();
                let t = &inputs[param];
                let mut v = t.to_f64_vec();
                v[k] += sign * h;
                inputs.insert(param.to_string(), kiln_ir::HostTensor::from_f64(t.shape().clone(), v).unwrap());
                loss[s] = run(&inputs, &format!("{param}{k}{s}"))["loss"].scalar().unwrap();
            }
            let fd = (loss[0] - loss[1]) / (2.0 * h);
            assert!((fd - grad[k]).abs() <= 1e-6 + 1e-4 * fd.abs(), "d loss / d {param}[{k}]: autodiff {} vs finite difference {fd}", grad[k]);
        }
    }
}

#[test]
fn compile_with_named_passes() {
    let d = scratch("compile_passes");
    let prog = d.join("cnn.kiln");
    let o = kiln(&["compile", "examples/kir/cnn_grad.kir", "--backend", "interp", "--passes", "cse,egraph,dce", "-o", prog.to_str().unwrap()]);
    assert_exit(&o, 0);
    let o = kiln(&["inspect", prog.to_str().unwrap(), "--graph"]);
    assert_exit(&o, 0);
    let info = text(&o.stdout);
    assert!(info.contains("egraph") && info.contains("= fused_conv2d "), "{info}");
    assert!(!info.contains("const_fold"), "only the named passes run:\n{info}");
    let o = kiln(&["compile", "examples/kir/cnn_grad.kir", "--passes", "cse,nope", "-o", prog.to_str().unwrap()]);
    assert_exit(&o, 1);
    assert!(text(&o.stderr).starts_with("error: unknown pass `nope` (known: "), "{}", text(&o.stderr));
}
