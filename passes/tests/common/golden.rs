//! Golden text tests for passes, in the style of Cranelift's filetests.
//!
//! A case is one `.kir` file under `passes/tests/golden/<dir>/`:
//!
//! ```text
//! # passes: cse, dce
//! # Free comments say what the case is about.
//! %0 = input "x" : f32[3]
//! %1 = exp %0 : f32[3]
//! %2 = exp %0 : f32[3]
//! %3 = add %1, %2 : f32[3]
//! output "y" = %3
//!
//! # ---- expected ----
//! # %0 = input "x" : f32[3]
//! # %1 = exp %0 : f32[3]
//! # %3 = add %1, %1 : f32[3]
//! # output "y" = %3
//! ```
//!
//! Everything above the marker is the input (the directives are comments to
//! the `.kir` parser). Below it is the printed graph after the pipeline, each
//! line behind `# ` so the whole file stays a valid `.kir` of the input. A
//! pipeline that fails expects one line, `# error: <message>`.
//!
//! Directives (comment lines above the marker):
//! - `# passes: a, b, c` (required): pass names from the registry, in order.
//! - `# evaluator: none`: run without a constant evaluator (the default is
//!   the reference interpreter, see `interp_eval.rs`).
//!
//! The harness parses the input, runs the pipeline with a `PassManager`
//! (so the graph is verified after every pass), prints the result, and also
//! checks that the printed result parses back to the same text. On a
//! mismatch it prints a unified diff. `KILN_BLESS=1` rewrites the expected
//! section in place instead of failing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use kiln_passes::{PassCx, PassManager};

use super::InterpEvaluator;

/// The line that separates the input from the expectation.
pub const MARKER: &str = "# ---- expected ----";

/// One parsed golden file.
#[derive(Debug, Clone)]
pub struct GoldenCase {
    pub path: PathBuf,
    /// Pass names, in pipeline order.
    pub passes: Vec<String>,
    /// Whether `cx.evaluator` is the interpreter (else none).
    pub evaluator: bool,
    /// The input section verbatim (directives included), ending in '\n'.
    pub input: String,
    /// The expected output, `# ` prefixes removed; `None` when the file has
    /// no marker yet (bless fills it in).
    pub expected: Option<String>,
}

impl GoldenCase {
    pub fn parse(path: &Path, text: &str) -> Result<GoldenCase, String> {
        let mut input = String::new();
        let mut expected: Option<String> = None;
        for line in text.lines() {
            if let Some(exp) = expected.as_mut() {
                // Blank lines are allowed (editors add them at the end).
                let body = if line.trim().is_empty() { Some("") } else { None };
                let body = body
                    .or_else(|| line.strip_prefix("# "))
                    .or_else(|| line.strip_prefix('#'))
                    .ok_or_else(|| format!("expected-section line is not a `# ` comment: {line:?}"))?;
                exp.push_str(body);
                exp.push('\n');
            } else if line.trim_end() == MARKER {
                expected = Some(String::new());
            } else {
                input.push_str(line);
                input.push('\n');
            }
        }
        let mut passes = None;
        let mut evaluator = true;
        for line in input.lines() {
            let Some(rest) = line.strip_prefix('#') else { continue };
            let rest = rest.trim();
            if let Some(list) = rest.strip_prefix("passes:") {
                passes = Some(list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect());
            } else if let Some(e) = rest.strip_prefix("evaluator:") {
                evaluator = match e.trim() {
                    "none" => false,
                    "interp" => true,
                    other => return Err(format!("unknown evaluator `{other}` (none, interp)")),
                };
            }
        }
        let passes = passes.ok_or("missing `# passes: ...` directive")?;
        let expected = expected.map(|e| trim_trailing_blank_lines(&e));
        Ok(GoldenCase { path: path.to_path_buf(), passes, evaluator, input, expected })
    }

    /// Runs the pipeline; the printed graph, or `error: <message>` when it
    /// fails. `Err` only for a broken test file (unknown pass, bad input).
    pub fn actual(&self) -> Result<String, String> {
        let file = self.path.display().to_string();
        let mut g = kiln_ir::text::parse(&self.input, &file).map_err(|e| format!("input does not parse:\n{}", errors(&e)))?;
        let pm = PassManager::from_names(&self.passes).map_err(|e| e.to_string())?;
        let mut cx = PassCx::new();
        if self.evaluator {
            cx = cx.with_evaluator(InterpEvaluator);
        }
        match pm.run(&mut g, &mut cx) {
            Ok(_) => {
                let printed = kiln_ir::text::print(&g);
                let reparsed = kiln_ir::text::parse(&printed, "<output>")
                    .map(|g2| kiln_ir::text::print(&g2))
                    .map_err(|e| format!("the output does not parse back:\n{}\n{printed}", errors(&e)))?;
                if reparsed != printed {
                    return Err(format!(
                        "the output does not round-trip through the text format:\n{}",
                        diff(&printed, &reparsed)
                    ));
                }
                Ok(trim_trailing_blank_lines(&printed))
            }
            Err(e) => Ok(format!("error: {e}\n")),
        }
    }

    /// The file's text with `actual` as its expectation.
    pub fn blessed_text(&self, actual: &str) -> String {
        let mut s = trim_trailing_blank_lines(&self.input);
        s.push('\n');
        s.push_str(MARKER);
        s.push('\n');
        for line in actual.lines() {
            if line.is_empty() {
                s.push_str("#\n");
            } else {
                let _ = writeln!(s, "# {line}");
            }
        }
        s
    }
}

fn errors(list: &[kiln_ir::IrError]) -> String {
    list.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n")
}

fn trim_trailing_blank_lines(s: &str) -> String {
    let mut t = s.trim_end().to_string();
    t.push('\n');
    t
}

/// A unified diff, expected first.
pub fn diff(expected: &str, actual: &str) -> String {
    similar::TextDiff::from_lines(expected, actual).unified_diff().context_radius(3).header("expected", "actual").to_string()
}

fn blessing() -> bool {
    std::env::var("KILN_BLESS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Runs one golden file. `Err` carries a readable failure (with a diff).
pub fn run_file(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let case = GoldenCase::parse(path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    let actual = case.actual().map_err(|e| format!("{}: {e}", path.display()))?;
    if case.expected.as_deref() == Some(actual.as_str()) {
        return Ok(());
    }
    if blessing() {
        std::fs::write(path, case.blessed_text(&actual)).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("blessed {}", path.display());
        return Ok(());
    }
    match &case.expected {
        None => Err(format!(
            "{}: no `{MARKER}` section; run with KILN_BLESS=1 to record:\n{actual}",
            path.display()
        )),
        Some(exp) => Err(format!(
            "{}: output differs from the expectation (KILN_BLESS=1 rewrites it)\n{}",
            path.display(),
            diff(exp, &actual)
        )),
    }
}

/// The golden folder of this crate.
pub fn golden_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("golden")
}

/// The `.kir` files in `golden/<dir>`, sorted.
pub fn case_files(dir: &str) -> Vec<PathBuf> {
    let root = golden_root().join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "kir"))
        .collect();
    files.sort();
    files
}

/// Runs every case in `golden/<dir>` and fails listing every failure (not
/// just the first), so one bless run shows the whole picture.
pub fn run_dir(dir: &str) {
    let files = case_files(dir);
    assert!(!files.is_empty(), "no .kir cases in {}", golden_root().join(dir).display());
    let failures: Vec<String> = files.iter().filter_map(|f| run_file(f).err()).collect();
    if !failures.is_empty() {
        panic!("{} of {} golden cases in `{dir}` failed:\n\n{}", failures.len(), files.len(), failures.join("\n\n"));
    }
}

/// Subfolders of the golden root, sorted.
pub fn golden_dirs() -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(golden_root())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}
