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
    /// Parse and verify a .kir file; print every error as `file:line:col: message`.
    #[command(after_help = "Exit status: 0 when the file is valid, 1 otherwise.\n\n\
Examples:\n  \
kiln check examples/kir/affine.kir\n  \
kiln check model.kir || echo \"model.kir has errors\"")]
    Check(CheckArgs),

    /// Run a .kir graph on named inputs from a safetensors file.
    #[command(
        long_about = "Run a .kir graph on named inputs from a safetensors file.\n\n\
Every `input`, `param` and `state` of the graph is read by name from --inputs\n\
(a missing, unexpected or wrongly typed tensor is an error). If the file has\n\
`grad` requests, the autodiff pass runs first and the gradients become outputs\n\
named `grad.<input name>` (or `grad.%N`). Every output is written by name to\n\
--out, together with the new value of every param/state the graph `update`s\n\
(under the param's own name; an output of the same name takes precedence).",
        after_help = "Examples:\n  \
kiln run examples/kir/affine.kir --inputs examples/kir/affine.inputs.safetensors --out /tmp/affine.safetensors\n  \
kiln run examples/kir/mlp_grad.kir --inputs examples/kir/mlp_grad.inputs.safetensors --out /tmp/out.safetensors\n  \
kiln run model.kir --inputs in.safetensors --out out.safetensors --precision f64"
    )]
    Run(RunArgs),

    /// Run a pass pipeline on a .kir graph and write the result as .kir.
    #[command(
        long_about = "Run a pass pipeline on a .kir graph and write the result as .kir.\n\n\
Without --passes the default pipeline runs, preceded by `autodiff` when the file\n\
has `grad` requests. With --dump DIR (or KILN_DUMP=DIR) the graph after every\n\
pass that changed it is written to DIR as numbered .kir and .dot files, with a\n\
summary.txt table. The pipeline summary is printed to stderr.",
        after_help = "Examples:\n  \
kiln opt examples/kir/mlp_grad.kir -o /tmp/mlp_opt.kir\n  \
kiln opt examples/kir/mlp_grad.kir --passes autodiff,cse,dce --dump /tmp/dump -o /tmp/mlp_opt.kir\n  \
kiln opt model.kir --passes ''            # no passes: print the canonical form to stdout"
    )]
    Opt(OptArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The .kir file to check.
    pub file: PathBuf,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// The reference interpreter.
    Interp,
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
    /// The .kir file to run.
    pub file: PathBuf,
    /// Safetensors file holding every input, param and state by name.
    #[arg(long, value_name = "IN.safetensors")]
    pub inputs: PathBuf,
    /// Where to write the outputs (and updated params/state), by name.
    #[arg(long, value_name = "OUT.safetensors")]
    pub out: PathBuf,
    /// Which backend runs the graph.
    #[arg(long, value_enum, default_value = "interp")]
    pub backend: BackendKind,
    /// Interpreter precision.
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: PrecisionArg,
    /// Do not print the outputs' values to stdout.
    #[arg(long, short)]
    pub quiet: bool,
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
