//! `kiln run FILE.kir|FILE.kiln --inputs IN.safetensors --out OUT.safetensors`

use std::collections::BTreeMap;

use kiln_interp::{Interpreter, Precision};
use kiln_ir::{Backend, Executable, Graph, HostTensor, InputRole, TensorData};
use kiln_passes::{PassCx, PassManager};

use crate::cli::{BackendKind, PrecisionArg, RunArgs};
use crate::error::CliError;
use crate::load::load_kir;
use crate::program::{facade_backend, is_kiln_file};

pub fn run(a: &RunArgs) -> Result<(), CliError> {
    if is_kiln_file(&a.file)? {
        return run_program(a);
    }
    if a.save.is_some() {
        return Err(CliError::Usage("--save needs a compiled .kiln program (see `kiln compile`)".into()));
    }
    let mut g = load_kir(&a.file)?;
    if !g.grad_requests().is_empty() {
        PassManager::from_names(&["autodiff"])?.run(&mut g, &mut PassCx::new())?;
    }
    let backend_kind = a.backend.unwrap_or(BackendKind::Interp);
    facade_backend(backend_kind, a.precision)?;
    let precision = precision(a.precision);
    let tensors = kiln_ir::read_safetensors(&a.inputs)?;
    let problems = input_problems(&g, &tensors, precision == Precision::F64, |_| false);
    if !problems.is_empty() {
        return Err(CliError::Inputs { path: a.inputs.clone(), problems });
    }

    let backend: Box<dyn Backend> = match backend_kind {
        BackendKind::Interp => Box::new(Interpreter::new(precision)),
        BackendKind::Cpu => Box::new(kiln_cpu::CpuBackend::new()),
        BackendKind::Wgpu => Box::new(kiln_wgpu::WgpuBackend::new()),
    };
    let mut exe = backend.compile(&g)?;
    let data = split_state(&g, tensors, exe.as_mut())?;
    let outputs = exe.run(&data)?;
    finish(a, &g, outputs, |n| exe.state(n))
}

/// A compiled `.kiln` program: params/state come from the file unless
/// `--inputs` overrides them.
fn run_program(a: &RunArgs) -> Result<(), CliError> {
    let opts = kiln::format::LoadOptions::new().max_memory(a.max_memory.saturating_mul(1 << 20));
    let file = kiln::format::ProgramFile::read_with(&a.file, &opts)?;
    if let Some(b) = a.backend {
        let want = kiln::format::backend_name(facade_backend(b, a.precision)?);
        if file.backend != want {
            return Err(kiln::format::FormatError::WrongBackend { found: file.backend, expected: want.to_string() }.into());
        }
    }
    let mut prog = file.instantiate_with(&opts)?;
    let tensors = kiln_ir::read_safetensors(&a.inputs)?;
    let float_any = prog.backend() == kiln::BackendKind::InterpF64;
    let g = prog.graph().clone();
    let problems = input_problems(&g, &tensors, float_any, |name| prog.state(name).is_some());
    if !problems.is_empty() {
        return Err(CliError::Inputs { path: a.inputs.clone(), problems });
    }
    let data = split_state(&g, tensors, prog.executable_mut())?;
    let outputs = prog.run_map(&data)?;
    finish(a, &g, outputs, |n| prog.state(n))?;
    if let Some(path) = &a.save {
        kiln::format::save(&prog, path)?;
        if !a.quiet {
            println!("saved the updated program to {}", path.display());
        }
    }
    Ok(())
}

fn precision(p: PrecisionArg) -> Precision {
    match p {
        PrecisionArg::F32 => Precision::F32,
        PrecisionArg::F64 => Precision::F64,
    }
}

/// Sets every param/state tensor on the executable; returns the data inputs.
fn split_state(
    g: &Graph,
    tensors: BTreeMap<String, HostTensor>,
    exe: &mut dyn Executable,
) -> Result<BTreeMap<String, HostTensor>, CliError> {
    let roles: BTreeMap<String, InputRole> = g.inputs().into_iter().map(|(_, n, r)| (n.to_string(), r)).collect();
    let mut data = BTreeMap::new();
    for (name, t) in tensors {
        if roles.get(&name) == Some(&InputRole::Input) {
            data.insert(name, t);
        } else {
            exe.set_state(&name, t)?;
        }
    }
    Ok(data)
}

/// Writes the outputs and updated params/state to `--out` and prints them.
fn finish(
    a: &RunArgs,
    g: &Graph,
    outputs: BTreeMap<String, HostTensor>,
    state: impl Fn(&str) -> Option<HostTensor>,
) -> Result<(), CliError> {
    let mut out = outputs.clone();
    for (name, _) in g.updates() {
        if out.contains_key(name) {
            eprintln!("warning: output `{name}` has the name of an updated param/state; {} holds the output", a.out.display());
            continue;
        }
        if let Some(t) = state(name) {
            out.insert(name.clone(), t);
        }
    }
    kiln_ir::write_safetensors(&a.out, &out)?;
    if !a.quiet {
        for (name, id) in g.outputs() {
            if let Some(t) = outputs.get(name) {
                println!("{name} ({id}): {} = {}", t.ty(), preview(t));
            }
        }
        for (name, _) in g.updates() {
            if let Some(t) = out.get(name).filter(|_| !outputs.contains_key(name)) {
                println!("{name} (updated): {} = {}", t.ty(), preview(t));
            }
        }
        println!("wrote {} tensors to {}", out.len(), a.out.display());
    }
    Ok(())
}

/// Every problem with the given tensors at once: missing, unexpected and
/// wrongly typed ones. With `float_any` (f64 mode) a float input may be given
/// as f32 or f64. `has_value(name)` says a param/state already has a value
/// (stored in a .kiln file), so leaving it out is fine.
pub fn input_problems(
    g: &Graph,
    given: &BTreeMap<String, HostTensor>,
    float_any: bool,
    has_value: impl Fn(&str) -> bool,
) -> Vec<String> {
    let inputs = g.input_map();
    let mut problems = Vec::new();
    for (name, (id, role, ty)) in &inputs {
        match given.get(name) {
            None if role.is_persistent() && has_value(name) => {}
            None => problems.push(format!("missing {} `{name}` ({id}: {ty})", role.name())),
            Some(t) => {
                let got = t.ty();
                let ok = got == *ty || (float_any && got.shape == ty.shape && got.dtype.is_float() && ty.dtype.is_float());
                if !ok {
                    problems.push(format!("{} `{name}` ({id}) must be {ty}, got {got}", role.name()));
                }
            }
        }
    }
    let known: Vec<&str> = inputs.keys().map(String::as_str).collect();
    for name in given.keys().filter(|n| !inputs.contains_key(*n)) {
        problems.push(format!("unexpected tensor `{name}` (the graph's inputs are: {})", known.join(", ")));
    }
    problems
}

/// The first few values of a tensor, for the terminal.
fn preview(t: &HostTensor) -> String {
    const SHOW: usize = 8;
    let vals: Vec<String> = match t.data() {
        TensorData::F32(v) => v.iter().take(SHOW).map(|x| x.to_string()).collect(),
        TensorData::F64(v) => v.iter().take(SHOW).map(|x| x.to_string()).collect(),
        TensorData::I64(v) => v.iter().take(SHOW).map(|x| x.to_string()).collect(),
        TensorData::I32(v) => v.iter().take(SHOW).map(|x| x.to_string()).collect(),
        TensorData::Bool(v) => v.iter().take(SHOW).map(|&x| (x != 0).to_string()).collect(),
    };
    if t.shape().rank() == 0 {
        return vals.into_iter().next().unwrap_or_default();
    }
    let more = if t.numel() > SHOW { ", ..." } else { "" };
    format!("[{}{more}]", vals.join(", "))
}
