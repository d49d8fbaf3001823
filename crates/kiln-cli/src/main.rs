//! `kiln`: check, run, optimize and compile `.kir` graphs from the shell;
//! run and inspect compiled `.kiln` programs.
//!
//! Exit status: 0 on success, 1 when the input is wrong (parse errors, bad
//! inputs, a failing pass or run), 2 for usage errors (clap's own).

mod check;
mod cli;
mod error;
mod load;
mod opt;
mod program;
mod run;
mod svg;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(a) => check::check(&a),
        Command::Run(a) => run::run(&a),
        Command::Opt(a) => opt::opt(&a),
        Command::Compile(a) => program::compile(&a),
        Command::Inspect(a) => program::inspect(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            e.report();
            ExitCode::from(1)
        }
    }
}
