//! `kiln check FILE.kir`

use kiln_ir::InputRole;

use crate::cli::CheckArgs;
use crate::error::CliError;
use crate::load::load_kir;

pub fn check(a: &CheckArgs) -> Result<(), CliError> {
    let g = load_kir(&a.file)?;
    let count = |r: InputRole| g.inputs().iter().filter(|(_, _, role)| *role == r).count();
    println!(
        "{}: ok ({} nodes; {} inputs, {} params, {} state; {} outputs, {} updates, {} grad requests)",
        a.file.display(),
        g.node_count(),
        count(InputRole::Input),
        count(InputRole::Param),
        count(InputRole::State),
        g.outputs().len(),
        g.updates().len(),
        g.grad_requests().len()
    );
    Ok(())
}
