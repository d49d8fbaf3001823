//! From a compiled [`Program`] to a [`ProgramFile`] and back.
//!
//! Loading parses the stored optimized graph and gives it straight to the
//! backend (`Backend::compile` / `CpuBackend::compile_cpu`, which only
//! partition, plan memory and generate code: deterministic functions of the
//! graph). No pass of the optimization pipeline runs. For the CPU backend
//! the regenerated plan (kernel list, buffer plan, Cranelift IR of every
//! kernel) is compared with the stored one, so a file from a different
//! backend build is refused instead of silently running different code.
//! The plan also holds each JIT kernel's finished machine code (`mcode`
//! entries), sealed with the user's code key (`seal.rs`); loading installs
//! it into a kernel only when its seal verifies under this user's key and
//! the kernel's regenerated CLIF equals the sealed CLIF, for the same ISA
//! and flags, so a load of one's own file skips Cranelift codegen, the
//! bulk of a compile. Anything else, every kernel of a file from anyone
//! else included, is compiled from the graph.

use std::collections::BTreeMap;
use std::path::Path;

use kiln_ir::{Backend, Executable, Graph};
use kiln_passes::PipelineReport;

use super::code_key::KeyChoice;
use super::file::{PlanEntry, ProgramFile};
use super::limits::{self, LoadOptions, MAX_THREADS};
use super::seal::{self, Sealed};
use super::FormatError;
use crate::{BackendKind, Program};

/// The name a backend is stored under.
pub fn backend_name(b: BackendKind) -> &'static str {
    match b {
        BackendKind::Interp => "interp",
        BackendKind::InterpF64 => "interp-f64",
        BackendKind::Cpu => "cpu",
        BackendKind::Wgpu => "wgpu",
    }
}

/// The inverse of [`backend_name`].
pub fn parse_backend(name: &str) -> Result<BackendKind, FormatError> {
    Ok(match name {
        "interp" => BackendKind::Interp,
        "interp-f64" => BackendKind::InterpF64,
        "cpu" => BackendKind::Cpu,
        "wgpu" => BackendKind::Wgpu,
        other => return Err(FormatError::UnknownBackend(other.to_string())),
    })
}

fn cpu_plan(exe: &kiln_cpu::CpuExecutable) -> Vec<PlanEntry> {
    let mut v = vec![
        PlanEntry::text("partition", "text", exe.partition_text()),
        PlanEntry::text("memory", "text", exe.memory_plan_text()),
    ];
    for k in exe.kernel_code() {
        let name = format!("k{} {}", k.kernel, k.name);
        v.push(PlanEntry::text(&name, "clif", &k.clif));
        if let Some(m) = &k.machine {
            v.push(PlanEntry::text(&name, MACHINE_CODE, &m.to_text()));
        }
    }
    v
}

/// The plan entry kind of a kernel's finished machine code (after its
/// `clif` entry, same name). Absent in files written before it existed:
/// those kernels are compiled at load.
const MACHINE_CODE: &str = "mcode";

/// The kernels of a CPU plan's sealed groups (each exactly one CLIF and
/// its machine code), for [`kiln_cpu::CpuBackend::compile_cpu_with_code`].
/// Only code from a verified seal gets here, paired with exactly the CLIF
/// the seal covers.
fn stored_kernels(sealed: &[Sealed]) -> Result<Vec<kiln_cpu::KernelCode>, FormatError> {
    let mut out = Vec::new();
    for g in sealed {
        let one = |kind: &str| {
            let mut it = g.entries().iter().filter(|e| e.kind == kind);
            match (it.next(), it.next()) {
                (Some(e), None) => Some(*e),
                _ => None,
            }
        };
        let (Some(e), Some(m)) = (one("clif"), one(MACHINE_CODE)) else { continue };
        let bad = |reason: String| FormatError::Corrupt { section: "PLAN".into(), reason: format!("entry `{}`: {reason}", g.name()) };
        let (k, name) = g.name().split_once(' ').ok_or_else(|| bad("kernel name".into()))?;
        let kernel = k.strip_prefix('k').and_then(|n| n.parse().ok()).ok_or_else(|| bad("kernel name".into()))?;
        let text = std::str::from_utf8(&m.data).map_err(|_| bad("machine code is not text".into()))?;
        let machine = kiln_cpu::MachineCode::from_text(text).map_err(|x| bad(x.to_string()))?;
        out.push(kiln_cpu::KernelCode { kernel, name: name.to_string(), clif: e.as_text(), machine: Some(machine) });
    }
    Ok(out)
}

/// Compiles `graph` for the CPU, installing the machine code of `sealed`
/// (a file's verified groups) for every kernel it still matches; refuses a
/// memory plan over `max_memory` before allocating it.
pub(super) fn lower_cpu(graph: &Graph, options: &BTreeMap<String, String>, sealed: &[Sealed], max_memory: Option<u64>) -> Result<kiln_cpu::CpuExecutable, FormatError> {
    let code = stored_kernels(sealed)?;
    let mut backend = cpu_backend(options)?;
    backend.max_memory = max_memory;
    // SAFETY: every machine code in `code` comes from a group whose seal
    // verified under the user's key, so this user's kiln compiled it from
    // exactly the CLIF it is paired with; the backend installs it only into
    // a function whose regenerated CLIF is that CLIF, for the same ISA.
    let exe = unsafe { backend.compile_cpu_with_code(graph, &code) };
    match exe {
        Ok(e) => Ok(e),
        Err(kiln_cpu::CpuError::MemoryLimit { needed, limit }) => Err(FormatError::TooLarge { what: "the CPU backend's memory plan".into(), needed, limit }),
        Err(e) => Err(kiln_ir::RunError::from(e).into()),
    }
}

/// The CPU backend as the file's options describe it. The thread count
/// shapes the memory plan (per-thread scratch) and how reductions split, so
/// a file loads with the count it was compiled with, whatever the machine.
fn cpu_backend(options: &BTreeMap<String, String>) -> Result<kiln_cpu::CpuBackend, FormatError> {
    let mut b = kiln_cpu::CpuBackend::new();
    if let Some(t) = options.get("threads") {
        let n: usize = t
            .parse()
            .ok()
            .filter(|n| (1..=MAX_THREADS).contains(n))
            .ok_or_else(|| FormatError::Corrupt { section: "META".into(), reason: format!("option threads = `{t}` (1 to {MAX_THREADS})") })?;
        b = b.with_threads(n);
    }
    if let Some(j) = options.get("jit") {
        b = b.with_jit(j == "true");
    }
    Ok(b)
}

/// The options a CPU program is compiled with by `kiln::compile`.
fn cpu_options() -> BTreeMap<String, String> {
    let b = kiln_cpu::CpuBackend::new();
    BTreeMap::from([("threads".to_string(), b.threads.to_string()), ("jit".to_string(), b.jit.to_string())])
}

/// Compiles `graph` for `kind` without any optimization pass (installing
/// the machine code of `sealed`, a file's verified groups, where it still
/// matches); returns the executable, its plan and peak bytes.
fn lower(kind: BackendKind, graph: &Graph, options: &BTreeMap<String, String>, sealed: &[Sealed], max_memory: Option<u64>) -> Result<(Box<dyn Executable>, Vec<PlanEntry>, Option<u64>), FormatError> {
    Ok(match kind {
        BackendKind::Cpu => {
            let exe = lower_cpu(graph, options, sealed, max_memory)?;
            let plan = cpu_plan(&exe);
            let peak = exe.peak_bytes() as u64;
            (Box::new(exe), plan, Some(peak))
        }
        // The plan's WGSL is never compiled from the file: the shaders are
        // regenerated from the checked graph, and the stored ones must
        // equal them (`same_plan`).
        BackendKind::Wgpu => {
            let mut be = kiln_wgpu::WgpuBackend::new();
            be.max_memory = max_memory;
            let exe = be.compile_program(graph, None).map_err(kiln_ir::RunError::from)?;
            let plan = wgpu_plan(exe.lowered());
            let peak = exe.lowered().peak_bytes as u64;
            (Box::new(exe), plan, Some(peak))
        }
        BackendKind::Interp | BackendKind::InterpF64 => {
            let p = if kind == BackendKind::Interp { kiln_interp::Precision::F32 } else { kiln_interp::Precision::F64 };
            (kiln_interp::Interpreter::new(p).compile(graph)?, Vec::new(), None)
        }
    })
}

/// A GPU program's plan: partition, buffer plan, dispatch list and the
/// WGSL of every dispatch.
fn wgpu_plan(l: &kiln_wgpu::Lowered) -> Vec<PlanEntry> {
    let mut v = vec![
        PlanEntry::text("partition", "text", &l.partition_text),
        PlanEntry::text("memory", "text", &l.memory_text),
        PlanEntry::text("dispatches", "text", &l.dispatch_text(65535)),
    ];
    v.extend(l.shaders.iter().map(|s| PlanEntry::text(&s.name, "wgsl", &s.wgsl)));
    v
}

/// Whether two plans are the same code. Cranelift IR entries are compared
/// modulo a consistent renaming of external functions: the JIT numbers its
/// imported helpers (`fnN = u0:M sigK`) in an order that varies from one
/// compile of the same graph to the next, while everything else is exact.
/// Executable entries and seals are not compared: they are optional, only
/// sealed code is installed, and only into a kernel whose CLIF it was made
/// from. Every other entry must be what this build regenerates: the rule
/// for any backend's stored code that is not sealed (a GPU's WGSL too).
fn same_plan(a: &[PlanEntry], b: &[PlanEntry]) -> bool {
    let keep = |e: &&PlanEntry| !seal::is_sealed_kind(&e.kind);
    let (a, b): (Vec<_>, Vec<_>) = (a.iter().filter(keep).collect(), b.iter().filter(keep).collect());
    a.len() == b.len()
        && a.iter().zip(&b).all(|(x, y)| {
            x.name == y.name
                && x.kind == y.kind
                && if x.kind == "clif" { canonical_clif(&x.as_text()) == canonical_clif(&y.as_text()) } else { x.data == y.data }
        })
}

fn canonical_clif(text: &str) -> String {
    let mut names: Vec<&str> = Vec::new();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let t = line.trim_start();
        let is_decl = |p: &str| t.strip_prefix(p).is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()) && r.contains(" = "));
        if is_decl("fn") || is_decl("sig") {
            continue;
        }
        let b = line.as_bytes();
        let (mut i, mut copied) = (0, 0);
        while i + 2 < b.len() {
            let word_start = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
            if word_start && &b[i..i + 2] == b"fn" && b[i + 2].is_ascii_digit() {
                let mut end = i + 2;
                while end < b.len() && b[end].is_ascii_digit() {
                    end += 1;
                }
                let tok = &line[i..end];
                let k = names.iter().position(|n| *n == tok).unwrap_or_else(|| {
                    names.push(tok);
                    names.len() - 1
                });
                out.push_str(&line[copied..i]);
                out.push_str("ext");
                out.push_str(&k.to_string());
                copied = end;
                i = end;
            } else {
                i += 1;
            }
        }
        out.push_str(&line[copied..]);
        out.push('\n');
    }
    out
}

/// The file content of `p`: its optimized graph, plan, report and current
/// params/state, its machine code sealed with the user's key. (The CPU
/// plan is regenerated from the graph: the program holds its executable as
/// `dyn Executable`.)
pub fn to_file(p: &Program) -> Result<ProgramFile, FormatError> {
    to_file_with(p, &KeyChoice::User)
}

/// [`to_file`] with machine code sealed under `key` (none stored without one).
pub fn to_file_with(p: &Program, key: &KeyChoice) -> Result<ProgramFile, FormatError> {
    let options = if p.backend() == BackendKind::Cpu { cpu_options() } else { BTreeMap::new() };
    let (_, plan, peak_bytes) = lower(p.backend(), p.graph(), &options, &[], None)?;
    let backend = backend_name(p.backend());
    // The key file is touched only when there is code to seal.
    let key = if plan.iter().any(|e| seal::EXECUTABLE.contains(&e.kind.as_str())) { key.for_save()? } else { None };
    let plan = seal::seal_plan(backend, plan, key.as_ref());
    let mut extra = BTreeMap::new();
    let kind = if p.signature().inputs.iter().any(|i| i.role == kiln_ir::InputRole::Param) && !p.graph().updates().is_empty() {
        "train-step"
    } else {
        "inference"
    };
    extra.insert("kind".to_string(), kind.to_string());
    // Which GPU it was compiled on, for `kiln inspect` (loading recompiles
    // for whatever adapter the loading machine has).
    if let Some(device) = p.executable().device() {
        extra.insert("device".to_string(), device);
    }
    Ok(ProgramFile {
        backend: backend.to_string(),
        options,
        extra,
        writer: format!("kiln {}", env!("CARGO_PKG_VERSION")),
        signature: p.signature().clone(),
        graph: p.graph().clone(),
        report: p.report().clone(),
        plan,
        state: p.state_dict(),
        peak_bytes,
    })
}

/// Writes `p` (graph, plan, weights and optimizer state) to `path`, its
/// machine code sealed with the user's code key.
pub fn save(p: &Program, path: impl AsRef<Path>) -> Result<(), FormatError> {
    save_with(p, path, &KeyChoice::User)
}

/// [`save`] sealing with `key`.
pub fn save_with(p: &Program, path: impl AsRef<Path>, key: &KeyChoice) -> Result<(), FormatError> {
    to_file_with(p, key)?.write(path)
}

/// Loads a program for whatever backend it was compiled for, installing
/// stored machine code only where the user's key sealed it.
pub fn load(path: impl AsRef<Path>) -> Result<Program, FormatError> {
    load_with(path, &LoadOptions::default())
}

/// [`load`] with another key or memory limit.
pub fn load_with(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Program, FormatError> {
    ProgramFile::read_with(path, opts)?.instantiate_with(opts)
}

/// Loads a program, refusing one compiled for another backend.
pub fn load_expecting(path: impl AsRef<Path>, backend: BackendKind) -> Result<Program, FormatError> {
    let opts = LoadOptions::default();
    let f = ProgramFile::read_with(path, &opts)?;
    if f.backend != backend_name(backend) {
        return Err(FormatError::WrongBackend { found: f.backend, expected: backend_name(backend).to_string() });
    }
    f.instantiate_with(&opts)
}

impl ProgramFile {
    /// Compiles the stored graph for the stored backend (no optimization
    /// pass), checks the plan, and sets the stored params/state.
    pub fn instantiate(&self) -> Result<Program, FormatError> {
        self.instantiate_with(&LoadOptions::default())
    }

    /// [`instantiate`](Self::instantiate) with another key or memory limit.
    pub fn instantiate_with(&self, opts: &LoadOptions) -> Result<Program, FormatError> {
        let kind = parse_backend(&self.backend)?;
        let budget = limits::check_graph(&self.graph, &self.state, opts.max_memory)?;
        // The key file is read only when there is a seal to check.
        let key = if seal::has_seals(&self.plan) { opts.key.for_load()? } else { None };
        let sealed = seal::verified(&self.backend, &self.plan, key.as_ref());
        let (mut exe, plan, _) = lower(kind, &self.graph, &self.options, &sealed, Some(budget))?;
        if matches!(kind, BackendKind::Cpu | BackendKind::Wgpu) && !same_plan(&plan, &self.plan) {
            return Err(FormatError::PlanMismatch { backend: self.backend.clone() });
        }
        if exe.signature() != &self.signature {
            return Err(FormatError::Corrupt { section: "SIGN".into(), reason: "the backend's signature differs from the stored one".into() });
        }
        for (k, v) in &self.state {
            exe.set_state(k, v.clone())?;
        }
        let report: PipelineReport = self.report.clone();
        Ok(Program::new(exe, self.graph.clone(), report, kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clif_compared_modulo_helper_numbering() {
        let a = "function u0:0(i64) system_v {\n    sig0 = (f32) -> f32\n    fn0 = u0:6 sig0\n    fn1 = u0:2 sig0\nblock0:\n    v1 = call fn1(v0)\n    v2 = call fn0(v1)\n}\n";
        let b = "function u0:0(i64) system_v {\n    sig0 = (f32) -> f32\n    fn0 = u0:1 sig0\n    fn1 = u0:4 sig0\nblock0:\n    v1 = call fn0(v0)\n    v2 = call fn1(v1)\n}\n";
        let c = "function u0:0(i64) system_v {\n    sig0 = (f32) -> f32\n    fn0 = u0:1 sig0\nblock0:\n    v1 = call fn0(v0)\n    v2 = call fn0(v1)\n}\n";
        assert_eq!(canonical_clif(a), canonical_clif(b));
        assert_ne!(canonical_clif(a), canonical_clif(c), "one helper called twice is different code");
        let e = |t: &str| vec![PlanEntry::text("k0 x", "clif", t)];
        assert!(same_plan(&e(a), &e(b)));
        assert!(!same_plan(&e(a), &e(&a.replace("v2 = call", "v3 = call"))));
    }

    #[test]
    fn cpu_options_set_threads() {
        let o = BTreeMap::from([("threads".to_string(), "3".to_string()), ("jit".to_string(), "false".to_string())]);
        let b = cpu_backend(&o).unwrap();
        assert_eq!((b.threads, b.jit), (3, false));
        let bad = BTreeMap::from([("threads".to_string(), "many".to_string())]);
        assert!(matches!(cpu_backend(&bad), Err(FormatError::Corrupt { .. })));
        assert_eq!(cpu_options()["threads"], kiln_cpu::CpuBackend::new().threads.to_string());
    }
}
