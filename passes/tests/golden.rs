//! Golden text tests: `passes/tests/golden/<dir>/*.kir` (format in
//! `common/golden.rs`). `KILN_BLESS=1 cargo test -p kiln-passes --test golden`
//! rewrites expectations.

mod common;

use common::golden::{self, GoldenCase, MARKER};

#[test]
fn dce() {
    golden::run_dir("dce");
}

#[test]
fn cse() {
    golden::run_dir("cse");
}

#[test]
fn const_fold() {
    golden::run_dir("const_fold");
}

/// Folders that have their own test target (so they are not run twice).
const OWN_TARGETS: &[&str] = &["dce", "cse", "const_fold", "egraph"];

/// Folders other engineers add (autodiff, ...) run here without editing
/// this file; a folder with its own test target goes in `OWN_TARGETS`.
#[test]
fn other_golden_dirs() {
    for dir in golden::golden_dirs() {
        if !OWN_TARGETS.contains(&dir.as_str()) {
            golden::run_dir(&dir);
        }
    }
}

const CASE: &str = "# passes: cse, dce
# evaluator: none
%0 = input \"x\" : f32[3]
%1 = exp %0 : f32[3]
%2 = exp %0 : f32[3]
%3 = add %1, %2 : f32[3]
output \"y\" = %3
";

#[test]
fn harness_parses_directives_and_sections() {
    let text = format!("{CASE}\n{MARKER}\n# %0 = a\n#\n# b\n\n");
    let c = GoldenCase::parse("t.kir".as_ref(), &text).unwrap();
    assert_eq!(c.passes, ["cse", "dce"]);
    assert!(!c.evaluator);
    assert!(c.input.ends_with("output \"y\" = %3\n\n"), "{:?}", c.input);
    assert_eq!(c.expected.as_deref(), Some("%0 = a\n\nb\n"));
    let e = GoldenCase::parse("t.kir".as_ref(), "%0 = input \"x\" : f32[]\n").unwrap_err();
    assert!(e.contains("passes"), "{e}");
    let e = GoldenCase::parse("t.kir".as_ref(), &format!("{CASE}{MARKER}\nnot a comment\n")).unwrap_err();
    assert!(e.contains("not a `# ` comment"), "{e}");
}

#[test]
fn harness_reports_a_diff_and_bless_text_round_trips() {
    let c = GoldenCase::parse("t.kir".as_ref(), CASE).unwrap();
    let actual = c.actual().unwrap();
    assert!(!actual.contains("%2 ="), "cse merged %2:\n{actual}");
    let blessed = c.blessed_text(&actual);
    let again = GoldenCase::parse("t.kir".as_ref(), &blessed).unwrap();
    assert_eq!(again.expected.as_deref(), Some(actual.as_str()));
    assert_eq!(again.input.trim_end(), c.input.trim_end());

    let dir = std::env::temp_dir().join(format!("kiln-golden-selftest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("wrong.kir");
    std::fs::write(&path, format!("{CASE}{MARKER}\n# %0 = input \"x\" : f32[3]\n")).unwrap();
    // Only meaningful when not blessing (blessing would rewrite the file).
    if std::env::var("KILN_BLESS").is_err() {
        let err = golden::run_file(&path).unwrap_err();
        assert!(err.contains("--- expected") && err.contains("+++ actual"), "{err}");
        assert!(err.contains("+%3 = add %1, %1 : f32[3]"), "{err}");
    }
    std::fs::write(&path, &blessed).unwrap();
    golden::run_file(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failing_pipeline_expects_an_error_line() {
    let text = "# passes: no_such_pass\n%0 = input \"x\" : f32[]\noutput \"x\" = %0\n";
    let c = GoldenCase::parse("t.kir".as_ref(), text).unwrap();
    let e = c.actual().unwrap_err();
    assert!(e.contains("unknown pass `no_such_pass`"), "{e}");
}
