//! Helpers shared by the tests that run the `kiln` binary.

use std::path::PathBuf;
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the binary from the repository root (example paths are relative),
/// with a code key of this test process's own: never the user's.
pub fn kiln(args: &[&str]) -> Output {
    kiln_keyed(args, &test_key_path())
}

/// [`kiln`] with the code key file at `key`.
pub fn kiln_keyed(args: &[&str], key: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln")).args(args).env("KILN_CODE_KEY", key).current_dir(repo()).output().expect("run kiln")
}

/// Where the binary's code key lives while this test process runs.
pub fn test_key_path() -> PathBuf {
    std::env::temp_dir().join(format!("kiln-cli-code-key-{}", std::process::id()))
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A fresh scratch directory per test; `suite` keeps test files apart.
pub fn scratch(suite: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-cli-{suite}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn assert_exit(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "stdout:\n{}\nstderr:\n{}", text(&o.stdout), text(&o.stderr));
}
