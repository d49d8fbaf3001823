//! Golden tests of the e-graph pass, one test per rule group:
//! `passes/tests/golden/egraph/<group>_*.kir` (format in
//! `common/golden.rs`; `KILN_BLESS=1` rewrites expectations).

mod common;

use common::golden;

fn run_group(prefix: &str) {
    let files: Vec<_> = golden::case_files("egraph")
        .into_iter()
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix)))
        .collect();
    assert!(!files.is_empty(), "no golden cases for `{prefix}`");
    let failures: Vec<String> = files.iter().filter_map(|f| golden::run_file(f).err()).collect();
    assert!(failures.is_empty(), "{} of {} `{prefix}` cases failed:\n\n{}", failures.len(), files.len(), failures.join("\n\n"));
}

#[test]
fn algebra() {
    run_group("algebra_");
}

#[test]
fn fusion() {
    run_group("fusion_");
}

#[test]
fn layout() {
    run_group("layout_");
}
