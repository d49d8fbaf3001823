//! `kiln`: check, run and optimize `.kir` graphs from the shell.
//!
//! Exit status: 0 on success, 1 when the input is wrong (parse errors, bad
//! inputs, a failing pass or run), 2 for usage errors (clap's own).

mod check;
mod cli;
mod error;
mod load;
mod opt;
mod run;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(a) => check::check(&a),
        Command::Run(a) => run::run(&a),
        Command::Opt(a) => opt::opt(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            e.report();
            ExitCode::from(1)
        }
    }
}
