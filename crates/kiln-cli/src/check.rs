//! `kiln check FILE.kir...`

use kiln_ir::InputRole;

use crate::cli::CheckArgs;
use crate::error::CliError;
use crate::load::load_kir;

/// Checks every file (not stopping at the first bad one); errors of all
/// files are reported, and the command fails if any file failed.
pub fn check(a: &CheckArgs) -> Result<(), CliError> {
    let mut failed = 0;
    for file in &a.files {
        match load_kir(file) {
            Ok(g) => {
                let count = |r: InputRole| g.inputs().iter().filter(|(_, _, role)| *role == r).count();
                println!(
                    "{}: ok ({} nodes; {} inputs, {} params, {} state; {} outputs, {} updates, {} grad requests)",
                    file.display(),
                    g.node_count(),
                    count(InputRole::Input),
                    count(InputRole::Param),
                    count(InputRole::State),
                    g.outputs().len(),
                    g.updates().len(),
                    g.grad_requests().len()
                );
            }
            Err(e) => {
                e.report();
                failed += 1;
            }
        }
    }
    if failed > 0 {
        return Err(CliError::Reported);
    }
    Ok(())
}
