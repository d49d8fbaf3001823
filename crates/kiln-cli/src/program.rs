//! Compiled programs: `kiln compile` (.kir -> .kiln), `kiln inspect`, and
//! telling a .kiln file from a .kir one.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use kiln::format::ProgramFile;
use kiln::{CompileOptions, Spec};

use crate::cli::{BackendKind, CompileArgs, InspectArgs, PrecisionArg};
use crate::error::CliError;
use crate::load::load_kir;

/// The facade's backend for a CLI backend and interpreter precision; f64
/// exists only on the interpreter.
pub fn facade_backend(b: BackendKind, p: PrecisionArg) -> Result<kiln::BackendKind, CliError> {
    Ok(match (b, p) {
        (BackendKind::Cpu, PrecisionArg::F32) => kiln::BackendKind::Cpu,
        (BackendKind::Cpu, PrecisionArg::F64) => {
            return Err(CliError::Usage("--precision f64 needs --backend interp (the cpu backend computes in f32)".into()))
        }
        (BackendKind::Wgpu, PrecisionArg::F32) => kiln::BackendKind::Wgpu,
        (BackendKind::Wgpu, PrecisionArg::F64) => {
            return Err(CliError::Usage("--precision f64 needs --backend interp (the GPU computes in f32)".into()))
        }
        (BackendKind::Interp, PrecisionArg::F32) => kiln::BackendKind::Interp,
        (BackendKind::Interp, PrecisionArg::F64) => kiln::BackendKind::InterpF64,
    })
}

/// Whether `path` starts with the .kiln magic number (whatever its name).
pub fn is_kiln_file(path: &Path) -> Result<bool, CliError> {
    let io = |source| CliError::Io { path: path.to_path_buf(), source };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut head = [0u8; 8];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]).map_err(io)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n == head.len() && head == kiln::format::MAGIC)
}

pub fn compile(a: &CompileArgs) -> Result<(), CliError> {
    let g = load_kir(&a.file)?;
    let mut init = BTreeMap::new();
    if let Some(path) = &a.weights {
        let inputs = g.input_map();
        let mut problems = Vec::new();
        for (name, t) in kiln_ir::read_safetensors(path)? {
            match inputs.get(&name) {
                Some((id, role, ty)) if role.is_persistent() => {
                    if t.ty() == *ty {
                        init.insert(name, t);
                    } else {
                        problems.push(format!("{} `{name}` ({id}) must be {ty}, got {}", role.name(), t.ty()));
                    }
                }
                // Data inputs are fed at run time; an inputs file that also
                // holds them (like the examples') is fine.
                Some(_) => {}
                None => {
                    let known: Vec<&str> = inputs.keys().map(String::as_str).collect();
                    problems.push(format!("unexpected tensor `{name}` (the graph's inputs are: {})", known.join(", ")));
                }
            }
        }
        if !problems.is_empty() {
            return Err(CliError::Inputs { path: path.clone(), problems });
        }
    }
    let unset: Vec<String> = g
        .inputs()
        .into_iter()
        .filter(|(_, n, r)| r.is_persistent() && !init.contains_key(*n))
        .map(|(_, n, _)| n.to_string())
        .collect();
    let mut opts = CompileOptions::default().backend(facade_backend(a.backend, a.precision)?).optimize(!a.no_opt);
    if let Some(list) = &a.passes {
        // Validate the names here so the error lists the known passes.
        kiln_passes::registry::passes_from_list(list)?;
        let names: Vec<&str> = list.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
        opts = opts.passes(&names);
    }
    let dump = a.dump.clone().or_else(kiln_passes::dump_dir_from_env);
    if let Some(d) = &dump {
        opts = opts.dump(d);
    }
    let prog = kiln::compile(&Spec { graph: g, init }, opts)?;
    eprint!("{}", prog.report());
    if let Some(d) = &dump {
        eprintln!("{}", crate::svg::dump_note(d));
    }
    kiln::format::save(&prog, &a.output)?;
    if !unset.is_empty() {
        eprintln!("note: no stored value for {}; `kiln run` will need them in --inputs", unset.join(", "));
    }
    println!("wrote {} ({} backend)", a.output.display(), kiln::format::backend_name(prog.backend()));
    Ok(())
}

pub fn inspect(a: &InspectArgs) -> Result<(), CliError> {
    let f = ProgramFile::read_with(&a.file, &kiln::format::LoadOptions::new().max_memory(a.max_memory.saturating_mul(1 << 20)))?;
    print!("{}", f.summary());
    if a.graph {
        println!("optimized graph:");
        print!("{}", kiln_ir::text::print(&f.graph));
    }
    if a.plan {
        for e in &f.plan {
            println!("== plan entry `{}` ({}) ==", e.name, e.kind);
            println!("{}", e.as_text().trim_end());
        }
    }
    Ok(())
}
