//! Command-line syntax (clap derive). Every subcommand's `--help` ends with
//! examples that work from the repository root.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "kiln",
    version,
    about = "kiln: a static computation-graph compiler for neural networks",
    long_about = "kiln: a static computation-graph compiler for neural networks.\n\n\
Graphs are written in the .kir text format (see docs/kir.md): one node per line,\n\
`%N = op operands attrs : type`, plus `output`, `update` and `grad` lines.",
    after_help = "Examples:\n  \
kiln check examples/kir/mlp_grad.kir\n  \
kiln run examples/kir/mlp_grad.kir --inputs examples/kir/mlp_grad.inputs.safetensors --out /tmp/out.safetensors\n  \
kiln opt examples/kir/mlp_grad.kir --dump /tmp/dump -o /tmp/mlp_opt.kir"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parse and verify .kir files; print every error as `file:line:col: message`.
    #[command(after_help = "Exit status: 0 when every file is valid, 1 otherwise.\n\n\
Examples:\n  \
kiln check examples/kir/affine.kir\n  \
kiln check examples/kir/*.kir\n  \
kiln check model.kir || echo \"model.kir has errors\"")]
    Check(CheckArgs),

    /// Run a .kir graph or a compiled .kiln program on named inputs from a safetensors file.
    #[command(
        long_about = "Run a .kir graph on named inputs from a safetensors file.\n\n\
Every `input`, `param` and `state` of the graph is read by name from --inputs\n\
(a missing, unexpected or wrongly typed tensor is an error). For a .kiln program\n\
params/state default to the values stored in the file; --inputs may override them. If the file has\n\
`grad` requests, the autodiff pass runs first and the gradients become outputs\n\
named `grad.<input name>` (or `grad.%N`). Every output is written by name to\n\
--out, together with the new value of every param/state the graph `update`s\n\
(under the param's own name; an output of the same name takes precedence).",
        after_help = "Examples:\n  \
kiln run examples/kir/affine.kir --inputs examples/kir/affine.inputs.safetensors --out /tmp/affine.safetensors\n  \
kiln run examples/kir/mlp_grad.kir --inputs examples/kir/mlp_grad.inputs.safetensors --out /tmp/out.safetensors\n  \
kiln run model.kir --inputs in.safetensors --out out.safetensors --precision f64\n  \
kiln run model.kir --backend cpu --inputs in.safetensors --out out.safetensors\n  \
kiln run model.kiln --inputs batch.safetensors --out out.safetensors\n  \
kiln run step.kiln --inputs batch1.safetensors --out out1.safetensors --save step.kiln   # one training step"
    )]
    Run(RunArgs),

    /// Run a pass pipeline on a .kir graph and write the result as .kir.
    #[command(
        long_about = "Run a pass pipeline on a .kir graph and write the result as .kir.\n\n\
Without --passes the default pipeline runs, preceded by `autodiff` when the file\n\
has `grad` requests. With --dump DIR (or KILN_DUMP=DIR) the graph after every\n\
pass that changed it is written to DIR as numbered .kir and .dot files, with a\n\
summary.txt table; with Graphviz installed the .dot files are also rendered to\n\
.svg. The pipeline summary is printed to stderr.",
        after_help = "Examples:\n  \
kiln opt examples/kir/mlp_grad.kir -o /tmp/mlp_opt.kir\n  \
kiln opt examples/kir/mlp_grad.kir --passes autodiff,cse,dce --dump /tmp/dump -o /tmp/mlp_opt.kir\n  \
kiln opt model.kir --passes ''            # no passes: print the canonical form to stdout"
    )]
    Opt(OptArgs),

    /// Compile a .kir graph for a backend and save it as one .kiln program file.
    #[command(
        long_about = "Compile a .kir graph for a backend and save it as one .kiln program file.\n\n\
The file holds the optimized graph, the backend's plan (per-kernel Cranelift IR\n\
for cpu), the pass report, and the values of params/state given with --weights\n\
(see docs/format.md). Loading it (kiln run / kiln inspect) runs no optimization\n\
pass. `grad` requests are resolved by autodiff before the pipeline.",
        after_help = "Examples:\n  \
kiln compile examples/kir/mlp_grad.kir --backend cpu --weights examples/kir/mlp_grad.inputs.safetensors -o /tmp/mlp.kiln\n  \
kiln compile examples/kir/affine.kir --backend interp --dump /tmp/dump -o /tmp/affine.kiln\n  \
kiln compile examples/kir/cnn_grad.kir --passes cse,const_fold,egraph,dce -o /tmp/cnn.kiln\n  \
kiln run /tmp/mlp.kiln --inputs examples/kir/mlp_grad.inputs.safetensors --out /tmp/out.safetensors"
    )]
    Compile(CompileArgs),

    /// Show what a .kiln program file holds: signature, backend, passes, kernels, memory, weights.
    #[command(after_help = "Examples:\n  \
kiln inspect /tmp/mlp.kiln\n  \
kiln inspect /tmp/mlp.kiln --graph --plan")]
    Inspect(InspectArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The .kir files to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// The reference interpreter.
    Interp,
    /// The Cranelift CPU backend.
    Cpu,
    /// The GPU backend: WGSL compute shaders through wgpu (Vulkan, Metal,
    /// DX12; Mesa's software Vulkan where there is no GPU).
    Wgpu,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrecisionArg {
    /// Round every f32 result to f32, as real backends do.
    F32,
    /// Keep every float in f64 (outputs come back as f64).
    F64,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The .kir file or compiled .kiln program to run.
    pub file: PathBuf,
    /// Safetensors file holding every input, param and state by name.
    #[arg(long, value_name = "IN.safetensors")]
    pub inputs: PathBuf,
    /// Where to write the outputs (and updated params/state), by name.
    #[arg(long, value_name = "OUT.safetensors")]
    pub out: PathBuf,
    /// Which backend runs the graph [default: interp for .kir; for .kiln the
    /// backend it was compiled for, and naming another one is an error].
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
    /// Interpreter precision (for .kir files; a .kiln file keeps its own).
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: PrecisionArg,
    /// Do not print the outputs' values to stdout.
    #[arg(long, short)]
    pub quiet: bool,
    /// For a .kiln program: after the run, save the program with its updated
    /// params/state to this file (resume training from the shell).
    #[arg(long, value_name = "NEXT.kiln")]
    pub save: Option<PathBuf>,
    /// For a .kiln program: the memory (MiB) it may need beyond its stored
    /// weights; a file asking for more is refused before anything is
    /// allocated. Raise it for a trusted program that needs more.
    #[arg(long, value_name = "MiB", default_value_t = kiln::format::DEFAULT_MAX_MEMORY >> 20)]
    pub max_memory: u64,
}

#[derive(Args, Debug)]
pub struct OptArgs {
    /// The .kir file to optimize.
    pub file: PathBuf,
    /// Comma-separated pass names, in order (e.g. `autodiff,cse,const_fold,dce`).
    #[arg(long, value_name = "a,b,c")]
    pub passes: Option<String>,
    /// Write the graph after every pass that changed it into DIR.
    #[arg(long, value_name = "DIR")]
    pub dump: Option<PathBuf>,
    /// Output .kir file (stdout when absent).
    #[arg(short = 'o', long = "output", value_name = "OUT.kir")]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CompileArgs {
    /// The .kir file to compile.
    pub file: PathBuf,
    /// Target backend.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendKind,
    /// Interpreter precision (with --backend interp).
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: PrecisionArg,
    /// Initial values of params/state, by name (data inputs in the file are
    /// ignored; a name the graph does not have is an error).
    #[arg(long, value_name = "W.safetensors")]
    pub weights: Option<PathBuf>,
    /// Write the graph after every pass that changed it into DIR.
    #[arg(long, value_name = "DIR")]
    pub dump: Option<PathBuf>,
    /// Skip the optimization pipeline (autodiff still resolves `grad` requests).
    #[arg(long, conflicts_with = "passes")]
    pub no_opt: bool,
    /// Comma-separated pass names to run instead of the default pipeline
    /// (after autodiff when the file has `grad` requests).
    #[arg(long, value_name = "a,b,c")]
    pub passes: Option<String>,
    /// The .kiln file to write.
    #[arg(short = 'o', long = "output", value_name = "OUT.kiln")]
    pub output: PathBuf,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The .kiln program file.
    pub file: PathBuf,
    /// Also print the optimized graph as .kir.
    #[arg(long)]
    pub graph: bool,
    /// Also print every plan entry (partition, memory plan, kernel code).
    #[arg(long)]
    pub plan: bool,
    /// The memory (MiB) the program may need beyond its stored weights, as
    /// for `kiln run`.
    #[arg(long, value_name = "MiB", default_value_t = kiln::format::DEFAULT_MAX_MEMORY >> 20)]
    pub max_memory: u64,
}
