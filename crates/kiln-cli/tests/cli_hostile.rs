//! Issue #13 as it was found: a `.kiln` file from `kiln compile` whose
//! stored machine code is replaced by `int3` (0xCC) bytes, CRCs and trailer
//! recomputed, then `kiln run`. Before the fix the process died of SIGTRAP;
//! now the code is unsealed, so `kiln run` compiles every kernel from the
//! graph and prints the very numbers of the untouched file.

use kiln::format::ProgramFile;
use kiln_ir::read_safetensors;

mod common;
use common::{assert_exit, kiln, kiln_keyed, text};

const MLP: &str = "examples/kir/mlp_grad.kir";
const MLP_IN: &str = "examples/kir/mlp_grad.inputs.safetensors";

fn int3(f: &mut ProgramFile) -> usize {
    let mut n = 0;
    for e in f.plan.iter_mut().filter(|e| e.kind == "mcode") {
        let t = e.as_text();
        let hex = t.lines().find_map(|l| l.strip_prefix("code ")).expect("a code line").to_string();
        e.data = t.replace(&format!("code {hex}"), &format!("code {}", "cc".repeat(hex.len() / 2))).into_bytes();
        n += 1;
    }
    n
}

#[test]
fn kiln_run_of_a_file_with_int3_machine_code_compiles_it_instead() {
    let d = common::scratch("hostile", "int3");
    let prog = d.join("mlp.kiln");
    assert_exit(&kiln(&["compile", MLP, "--weights", MLP_IN, "-o", prog.to_str().unwrap()]), 0);
    let good = d.join("good.safetensors");
    assert_exit(&kiln(&["run", prog.to_str().unwrap(), "--inputs", MLP_IN, "--out", good.to_str().unwrap(), "-q"]), 0);

    let mut f = ProgramFile::read(&prog).unwrap();
    assert!(int3(&mut f) > 0, "the compiled file stores machine code");
    let hostile = d.join("hostile.kiln");
    f.write(&hostile).unwrap();
    let o = kiln(&["inspect", hostile.to_str().unwrap()]);
    assert_exit(&o, 0); // CRCs and trailer are valid: only the seals are wrong
    assert!(text(&o.stdout).contains(" sealed (installed only under the key that sealed them, else compiled)"), "{}", text(&o.stdout));
    let out = d.join("hostile.safetensors");
    let o = kiln(&["run", hostile.to_str().unwrap(), "--inputs", MLP_IN, "--out", out.to_str().unwrap(), "-q"]);
    assert_exit(&o, 0);
    assert_eq!(read_safetensors(&out).unwrap(), read_safetensors(&good).unwrap());

    // The untouched file under another user's key: compiled, same numbers.
    let other = d.join("other-user-key");
    let again = d.join("again.safetensors");
    let o = kiln_keyed(&["run", prog.to_str().unwrap(), "--inputs", MLP_IN, "--out", again.to_str().unwrap(), "-q"], &other);
    assert_exit(&o, 0);
    assert!(!other.exists(), "a load never creates a key: {}", text(&o.stderr));
    assert_eq!(read_safetensors(&again).unwrap(), read_safetensors(&good).unwrap());
    let _ = std::fs::remove_dir_all(&d);
}

/// A small file asking for more memory than the limit is refused, naming
/// the limit; `--max-memory` raises it for a file the user trusts.
#[test]
fn kiln_run_refuses_a_file_over_the_memory_limit_unless_raised() {
    let d = common::scratch("hostile", "limit");
    let prog = d.join("mlp.kiln");
    assert_exit(&kiln(&["compile", MLP, "--weights", MLP_IN, "-o", prog.to_str().unwrap()]), 0);
    let out = d.join("out.safetensors");
    let run = |mib: &str| kiln(&["run", prog.to_str().unwrap(), "--inputs", MLP_IN, "--out", out.to_str().unwrap(), "-q", "--max-memory", mib]);
    let o = run("0");
    assert_exit(&o, 1);
    // The graph's constants alone are over a zero limit.
    assert!(text(&o.stderr).contains("over the parse limit on constants (0 bytes left)"), "{}", text(&o.stderr));
    let o = kiln(&["inspect", prog.to_str().unwrap(), "--max-memory", "0"]);
    assert_exit(&o, 1);
    assert_exit(&run("1"), 0);
    let _ = std::fs::remove_dir_all(&d);
}
