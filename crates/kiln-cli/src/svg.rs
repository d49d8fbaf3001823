//! Rendering the dump folder's Graphviz `.dot` graphs to `.svg` when
//! Graphviz is installed (best effort: the dump is complete without them).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Renders every `.dot` file in `dir` with `dot -Tsvg`; returns how many
/// were rendered (0 when Graphviz is not on PATH).
pub fn render_dot_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut dots: Vec<PathBuf> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "dot")).collect();
    dots.sort();
    let mut rendered = 0;
    for p in dots {
        let status = Command::new("dot")
            .arg("-Tsvg")
            .arg(&p)
            .arg("-o")
            .arg(p.with_extension("svg"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => rendered += 1,
            // One graph Graphviz cannot lay out does not stop the others.
            Ok(_) => {}
            // No Graphviz: nothing else will work either.
            Err(_) => return rendered,
        }
    }
    rendered
}

/// The note printed after a pipeline that dumped into `dir`.
pub fn dump_note(dir: &Path) -> String {
    match render_dot_files(dir) {
        0 => format!("dump: {}", dir.display()),
        n => format!("dump: {} ({n} graphs rendered to SVG)", dir.display()),
    }
}
