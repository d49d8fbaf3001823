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
//! entries); loading installs it into every kernel whose regenerated CLIF
//! equals the stored CLIF, for the same ISA and flags, so a load skips
//! Cranelift codegen, the bulk of a compile. Anything else is recompiled.

use std::collections::BTreeMap;
use std::path::Path;

use kiln_ir::{Backend, Executable, Graph};
use kiln_passes::PipelineReport;

use super::file::{PlanEntry, ProgramFile};
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

/// The stored kernels of a CPU plan (CLIF plus machine code, where both are
/// there), for [`kiln_cpu::CpuBackend::compile_cpu_with_code`].
fn stored_kernels(plan: &[PlanEntry]) -> Result<Vec<kiln_cpu::KernelCode>, FormatError> {
    let mut out = Vec::new();
    for e in plan.iter().filter(|e| e.kind == "clif") {
        let Some(m) = plan.iter().find(|m| m.kind == MACHINE_CODE && m.name == e.name) else { continue };
        let bad = |reason: String| FormatError::Corrupt { section: "PLAN".into(), reason: format!("entry `{}`: {reason}", e.name) };
        let (k, name) = e.name.split_once(' ').ok_or_else(|| bad("kernel name".into()))?;
        let kernel = k.strip_prefix('k').and_then(|n| n.parse().ok()).ok_or_else(|| bad("kernel name".into()))?;
        let text = std::str::from_utf8(&m.data).map_err(|_| bad("machine code is not text".into()))?;
        let machine = kiln_cpu::MachineCode::from_text(text).map_err(|x| bad(x.to_string()))?;
        out.push(kiln_cpu::KernelCode { kernel, name: name.to_string(), clif: e.as_text(), machine: Some(machine) });
    }
    Ok(out)
}

/// Compiles `graph` for the CPU, installing the machine code stored in
/// `stored` (a file's plan) for every kernel it still matches.
pub(super) fn lower_cpu(graph: &Graph, options: &BTreeMap<String, String>, stored: &[PlanEntry]) -> Result<kiln_cpu::CpuExecutable, FormatError> {
    let code = stored_kernels(stored)?;
    Ok(cpu_backend(options)?.compile_cpu_with_code(graph, &code).map_err(kiln_ir::RunError::from)?)
}

/// The CPU backend as the file's options describe it. The thread count
/// shapes the memory plan (per-thread scratch) and how reductions split, so
/// a file loads with the count it was compiled with, whatever the machine.
fn cpu_backend(options: &BTreeMap<String, String>) -> Result<kiln_cpu::CpuBackend, FormatError> {
    let mut b = kiln_cpu::CpuBackend::new();
    if let Some(t) = options.get("threads") {
        let n: usize = t.parse().map_err(|_| FormatError::Corrupt { section: "META".into(), reason: format!("option threads = `{t}`") })?;
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

/// Compiles `graph` for `kind` without any optimization pass (reusing the
/// machine code in `stored`, a file's plan, where it still matches);
/// returns the executable, its plan and peak bytes.
fn lower(kind: BackendKind, graph: &Graph, options: &BTreeMap<String, String>, stored: &[PlanEntry]) -> Result<(Box<dyn Executable>, Vec<PlanEntry>, Option<u64>), FormatError> {
    Ok(match kind {
        BackendKind::Cpu => {
            let exe = lower_cpu(graph, options, stored)?;
            let plan = cpu_plan(&exe);
            let peak = exe.peak_bytes() as u64;
            (Box::new(exe), plan, Some(peak))
        }
        // The plan's WGSL is never compiled from the file: the shaders are
        // regenerated from the checked graph, and the stored ones must
        // equal them (`same_plan`).
        BackendKind::Wgpu => {
            let exe = kiln_wgpu::WgpuBackend::new().compile_program(graph, None).map_err(kiln_ir::RunError::from)?;
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
/// Machine code entries are not compared: they are optional, and the
/// backend installs stored code only into a kernel whose CLIF it equals.
fn same_plan(a: &[PlanEntry], b: &[PlanEntry]) -> bool {
    let (a, b): (Vec<_>, Vec<_>) = (a.iter().filter(|e| e.kind != MACHINE_CODE).collect(), b.iter().filter(|e| e.kind != MACHINE_CODE).collect());
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
/// params/state. (The CPU plan is regenerated from the graph: the program
/// holds its executable as `dyn Executable`.)
pub fn to_file(p: &Program) -> Result<ProgramFile, FormatError> {
    let options = if p.backend() == BackendKind::Cpu { cpu_options() } else { BTreeMap::new() };
    let (_, plan, peak_bytes) = lower(p.backend(), p.graph(), &options, &[])?;
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
        backend: backend_name(p.backend()).to_string(),
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

/// Writes `p` (graph, plan, weights and optimizer state) to `path`.
pub fn save(p: &Program, path: impl AsRef<Path>) -> Result<(), FormatError> {
    to_file(p)?.write(path)
}

/// Loads a program for whatever backend it was compiled for.
pub fn load(path: impl AsRef<Path>) -> Result<Program, FormatError> {
    ProgramFile::read(path)?.instantiate()
}

/// Loads a program, refusing one compiled for another backend.
pub fn load_expecting(path: impl AsRef<Path>, backend: BackendKind) -> Result<Program, FormatError> {
    let f = ProgramFile::read(path)?;
    if f.backend != backend_name(backend) {
        return Err(FormatError::WrongBackend { found: f.backend, expected: backend_name(backend).to_string() });
    }
    f.instantiate()
}

impl ProgramFile {
    /// Compiles the stored graph for the stored backend (no optimization
    /// pass), checks the plan, and sets the stored params/state.
    pub fn instantiate(&self) -> Result<Program, FormatError> {
        let kind = parse_backend(&self.backend)?;
        let (mut exe, plan, _) = lower(kind, &self.graph, &self.options, &self.plan)?;
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
