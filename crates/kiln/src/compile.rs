//! From a model to a program: `train_step` (forward + loss + autodiff +
//! optimizer updates as one graph), and `compile` (the pass pipeline with
//! verification and optional dumps, then a backend).

use std::path::PathBuf;
use std::time::Duration;

use kiln_ir::{Backend, Graph, HostTensor, InputRole, NodeId, Op, TensorType};
use kiln_passes::{ConstEvaluator, PassCx, PassManager};

use crate::optim::{Optimizer, ParamGrad};
use crate::{Builder, Error, ParamStore, Program, Result, Spec};

/// Which backend runs the compiled program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// The reference interpreter, f32 (rounded after every op).
    Interp,
    /// The interpreter keeping every float in f64 (gradient checks).
    InterpF64,
    /// The Cranelift CPU backend.
    Cpu,
    /// The GPU backend: WGSL compute shaders through wgpu (f32).
    Wgpu,
}

impl BackendKind {
    /// The name used on the command line, in `KILN_BACKEND` and in files.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Interp => "interp",
            BackendKind::InterpF64 => "interp-f64",
            BackendKind::Cpu => "cpu",
            BackendKind::Wgpu => "wgpu",
        }
    }

    pub fn parse(name: &str) -> Option<BackendKind> {
        [BackendKind::Interp, BackendKind::InterpF64, BackendKind::Cpu, BackendKind::Wgpu].into_iter().find(|b| b.name() == name)
    }

    /// `KILN_BACKEND` when set (an unknown name is an error), else `default`.
    pub fn from_env_or(default: BackendKind) -> Result<BackendKind> {
        match std::env::var("KILN_BACKEND") {
            Ok(v) if !v.is_empty() => BackendKind::parse(&v)
                .ok_or_else(|| Error::Config(format!("KILN_BACKEND={v}: expected one of interp, interp-f64, cpu, wgpu"))),
            _ => Ok(default),
        }
    }
}

/// Limits for equality saturation (the e-graph pass); hitting one is a
/// reported stop reason, not an error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EgraphLimits {
    pub nodes: usize,
    pub iterations: usize,
    pub time: Duration,
}

impl Default for EgraphLimits {
    fn default() -> Self {
        let d = kiln_passes::egraph::EGraphConfig::default();
        EgraphLimits { nodes: d.node_limit, iterations: d.iter_limit, time: d.time_limit }
    }
}

/// How to compile: backend, dump folder, optimization on/off, e-graph limits.
#[derive(Debug, Clone)]
pub struct CompileOptions {
    pub backend: BackendKind,
    /// Write every pass's graph here (`KILN_DUMP` is used when unset).
    pub dump: Option<PathBuf>,
    /// Run the optimization pipeline (autodiff requests are resolved either way).
    pub optimize: bool,
    pub egraph: EgraphLimits,
    /// Pass names to run instead of the default pipeline (see
    /// `kiln_passes::registry`); `None` runs the default one.
    pub passes: Option<Vec<String>>,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions { backend: BackendKind::Interp, dump: None, optimize: true, egraph: EgraphLimits::default(), passes: None }
    }
}

impl CompileOptions {
    pub fn interp() -> CompileOptions {
        CompileOptions::default()
    }
    pub fn interp_f64() -> CompileOptions {
        CompileOptions { backend: BackendKind::InterpF64, ..Default::default() }
    }
    pub fn cpu() -> CompileOptions {
        CompileOptions { backend: BackendKind::Cpu, ..Default::default() }
    }
    /// The GPU backend (wgpu: Vulkan, Metal or DX12; Mesa's software
    /// Vulkan where there is no GPU).
    pub fn wgpu() -> CompileOptions {
        CompileOptions { backend: BackendKind::Wgpu, ..Default::default() }
    }
    pub fn backend(mut self, b: BackendKind) -> Self {
        self.backend = b;
        self
    }
    pub fn dump(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dump = Some(dir.into());
        self
    }
    pub fn optimize(mut self, on: bool) -> Self {
        self.optimize = on;
        self
    }
    /// Runs exactly these passes (by registry name) instead of the default
    /// pipeline.
    pub fn passes<S: AsRef<str>>(mut self, names: &[S]) -> Self {
        self.passes = Some(names.iter().map(|s| s.as_ref().to_string()).collect());
        self
    }
    pub fn egraph_limits(mut self, l: EgraphLimits) -> Self {
        self.egraph = l;
        self
    }
}

/// Constant folding through the interpreter's op rules.
struct InterpEval;

impl ConstEvaluator for InterpEval {
    fn eval(&self, op: &Op, ty: &TensorType, operands: &[&HostTensor]) -> std::result::Result<HostTensor, String> {
        kiln_interp::eval_op(op, ty, operands, kiln_interp::Precision::F32)
    }
}

fn backend_for(kind: BackendKind, dump: Option<&std::path::Path>) -> Result<Box<dyn Backend>> {
    Ok(match kind {
        BackendKind::Interp => Box::new(kiln_interp::Interpreter::new(kiln_interp::Precision::F32)),
        BackendKind::InterpF64 => Box::new(kiln_interp::Interpreter::new(kiln_interp::Precision::F64)),
        BackendKind::Cpu => {
            let mut b = kiln_cpu::CpuBackend::new();
            if let Some(d) = dump {
                b = b.with_dump(d);
            }
            Box::new(b)
        }
        BackendKind::Wgpu => {
            let mut b = kiln_wgpu::WgpuBackend::new();
            if let Some(d) = dump {
                b = b.with_dump(d);
            }
            Box::new(b)
        }
    })
}

/// The GPU adapter `BackendKind::Wgpu` would run on ("name (backend,
/// type, driver)"), or the typed error saying why there is none.
pub fn wgpu_adapter() -> Result<String> {
    Ok(kiln_wgpu::runtime::device::Gpu::open()?.adapter_text())
}

/// The backend's executable for an optimized graph. The GPU backend's
/// errors stay typed (no adapter, f64, limits) rather than flattened into
/// a run error.
pub(crate) fn compile_graph(kind: BackendKind, g: &Graph, dump: Option<&std::path::Path>) -> Result<Box<dyn kiln_ir::Executable>> {
    if kind == BackendKind::Wgpu {
        let mut b = kiln_wgpu::WgpuBackend::new();
        if let Some(d) = dump {
            b = b.with_dump(d);
        }
        return Ok(Box::new(b.compile_program(g, None)?));
    }
    Ok(backend_for(kind, dump)?.compile(g)?)
}

/// The default pipeline by name, with the e-graph pass configured from
/// the options.
fn pipeline(opts: &CompileOptions) -> Result<Vec<Box<dyn kiln_passes::Pass>>> {
    let default: Vec<String> = kiln_passes::registry::DEFAULT_PIPELINE.iter().map(|s| s.to_string()).collect();
    opts.passes
        .as_ref()
        .unwrap_or(&default)
        .iter()
        .map(|name| {
            if name == "egraph" {
                let config = kiln_passes::egraph::EGraphConfig {
                    node_limit: opts.egraph.nodes,
                    iter_limit: opts.egraph.iterations,
                    time_limit: opts.egraph.time,
                    ..Default::default()
                };
                Ok(Box::new(kiln_passes::egraph::EGraphPass::new(config)) as Box<dyn kiln_passes::Pass>)
            } else {
                kiln_passes::pass_by_name(name).ok_or_else(|| kiln_passes::registry::unknown_pass(name).into())
            }
        })
        .collect()
}

/// Runs the pipeline on a copy of `spec.graph`, compiles it for the chosen
/// backend and loads the initial param/state values.
pub fn compile(spec: &Spec, opts: CompileOptions) -> Result<Program> {
    let mut g = spec.graph.clone();
    let mut cx = PassCx::new().with_evaluator(InterpEval);
    cx.dump_dir = opts.dump.clone().or_else(kiln_passes::dump_dir_from_env);
    let mut pm = PassManager::new();
    if !g.grad_requests().is_empty() {
        pm = PassManager::from_names(&["autodiff"])?;
    }
    if opts.optimize {
        for p in pipeline(&opts)? {
            pm.push(p);
        }
    }
    let report = pm.run(&mut g, &mut cx)?;
    let exe = compile_graph(opts.backend, &g, cx.dump_dir.as_deref())?;
    let mut prog = Program::new(exe, g, report, opts.backend);
    for (name, v) in &spec.init {
        if prog.has_state(name) {
            prog.set_state(name, v.clone())?;
        }
    }
    Ok(prog)
}

/// Appends the gradient of scalar `loss` with respect to each of `wrt`
/// (reverse mode) to `g`; see `kiln_passes::autodiff::grad`.
pub fn grad(g: &mut Graph, loss: NodeId, wrt: &[NodeId]) -> Result<Vec<NodeId>> {
    Ok(kiln_passes::autodiff::grad(g, loss, wrt)?)
}

/// One training step as one graph: the forward graph built in `b`, the
/// gradient of `loss` with respect to every parameter, and the optimizer's
/// updates. Outputs `loss` plus every output already named on `b`.
pub fn train_step(b: &Builder, loss: NodeId, store: &ParamStore, opt: impl Optimizer) -> Result<Spec> {
    let names: Vec<String> =
        b.graph().inputs().into_iter().filter(|(_, _, r)| *r == InputRole::Param).map(|(_, n, _)| n.to_string()).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    train_step_params(b, loss, store, opt, &refs)
}

/// [`train_step`] updating only the named parameters (the others stay fixed).
pub fn train_step_params(b: &Builder, loss: NodeId, store: &ParamStore, opt: impl Optimizer, params: &[&str]) -> Result<Spec> {
    let mut g = b.graph().clone();
    let lt = g.node(loss)?.ty.clone();
    if !lt.dtype.is_float() || lt.shape.rank() != 0 {
        return Err(Error::Config(format!("train_step: the loss {loss} must be a float scalar, got {lt}")));
    }
    let mut ids = Vec::with_capacity(params.len());
    for &name in params {
        let id = g.find_input(name).ok_or_else(|| Error::UnknownParam(name.to_string()))?;
        if !matches!(g.op(id), Op::Input { role: InputRole::Param, .. }) {
            return Err(Error::Config(format!("train_step: `{name}` ({id}) is not a param input")));
        }
        ids.push(id);
    }
    let grads = grad(&mut g, loss, &ids)?;
    let pg: Vec<ParamGrad> = params
        .iter()
        .zip(ids.iter().zip(&grads))
        .map(|(n, (&param, &grad))| ParamGrad { name: n.to_string(), param, grad })
        .collect();
    let mut extra = opt.apply(&mut g, &pg)?;
    if g.output("loss").is_none() {
        g.set_output("loss", loss)?;
    }
    for (k, v) in b.init_values() {
        extra.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Spec::from_parts(g, store, &extra)
}

/// The graph built in `b` (an eval-mode builder for inference) with its
/// outputs and the store's values.
pub fn inference(b: &Builder, store: &ParamStore) -> Result<Spec> {
    b.spec(store)
}
