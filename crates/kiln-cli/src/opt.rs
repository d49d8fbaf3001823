//! `kiln opt FILE.kir [--passes a,b,c] [--dump DIR] -o OUT.kir`

use kiln_passes::registry::{passes_from_list, DEFAULT_PIPELINE};
use kiln_passes::{dump_dir_from_env, PassCx, PassManager};

use crate::cli::OptArgs;
use crate::error::CliError;
use crate::load::{load_kir, write_file, InterpEvaluator};

pub fn opt(a: &OptArgs) -> Result<(), CliError> {
    let mut g = load_kir(&a.file)?;
    let passes = match &a.passes {
        Some(list) => passes_from_list(list)?,
        None => {
            // Gradients first: the default pipeline then cleans up after them.
            let mut names: Vec<&str> = Vec::new();
            if !g.grad_requests().is_empty() {
                names.push("autodiff");
            }
            names.extend_from_slice(DEFAULT_PIPELINE);
            passes_from_list(&names.join(","))?
        }
    };
    let pm = PassManager::with_passes(passes);
    let mut cx = PassCx::new().with_evaluator(InterpEvaluator);
    cx.dump_dir = a.dump.clone().or_else(dump_dir_from_env);
    let report = pm.run(&mut g, &mut cx)?;
    eprint!("{report}");
    if let Some(dir) = &cx.dump_dir {
        eprintln!("{}", crate::svg::dump_note(dir));
    }
    let text = kiln_ir::text::print(&g);
    match &a.output {
        Some(path) => write_file(path, text.as_bytes())?,
        None => print!("{text}"),
    }
    Ok(())
}
