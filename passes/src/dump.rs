//! The dump flag's writer: numbered files in one folder, in pipeline order.
//!
//! Layout of a dump folder after one compilation:
//!
//! ```text
//! 00-input.kir  00-input.dot      the graph handed to the pipeline
//! 01-cse.kir    01-cse.dot        after each pass that changed the graph
//! 02-egraph.txt                   reports a pass added to `PassCx::reports`
//! 03-partition.txt ...            files later stages add with `write_dump_file`
//! summary.txt                     pass, time, nodes before -> after, changed
//! ```
//!
//! Numbers are two digits wide (wider once past 99) so that a plain `ls`
//! lists the files in pipeline order. A hidden `.kiln-dump` file marks the
//! folder as kiln's; only such a folder is cleaned when a new compilation
//! dumps into it (see [`prepare_dump_dir`]).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use kiln_ir::{Graph, NodeId, Op, TensorData};

use crate::PassError;

/// The environment variable that turns dumping on.
pub const DUMP_ENV: &str = "KILN_DUMP";

/// The dump folder `KILN_DUMP` names; `None` when unset or empty (off).
pub fn dump_dir_from_env() -> Option<PathBuf> {
    dump_dir_from_value(std::env::var_os(DUMP_ENV))
}

/// `KILN_DUMP`'s rule on a given value (tests cannot safely set the
/// environment of a multi-threaded test binary).
pub fn dump_dir_from_value(v: Option<std::ffi::OsString>) -> Option<PathBuf> {
    match v {
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => None,
    }
}

fn io_err(path: &Path, e: std::io::Error) -> PassError {
    PassError::Dump(format!("{}: {e}", path.display()))
}

/// Keeps a pass or report name usable as (part of) a file name everywhere.
pub fn sanitize_file_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() { "unnamed".to_string() } else { s }
}

/// `NN-name` with the number zero-padded to two digits.
pub fn numbered_name(seq: usize, name: &str) -> String {
    format!("{seq:02}-{}", sanitize_file_name(name))
}

/// The numeric prefix of a dump file name (`"07-cse.kir"` -> 7).
fn number_prefix(file_name: &str) -> Option<usize> {
    let (num, _) = file_name.split_once('-')?;
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse().ok()
}

/// The number the next file group in `dir` gets: one past the largest
/// `NN-` prefix there (0 for a missing or empty folder).
pub fn next_dump_number(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| number_prefix(&e.file_name().to_string_lossy()))
        .map(|n| n + 1)
        .max()
        .unwrap_or(0)
}

/// Marks a folder as a kiln dump folder, so a later compilation knows the
/// numbered files there are its own to replace.
pub const MARKER_FILE: &str = ".kiln-dump";

/// Creates `dir` and returns the number the new dump starts at.
///
/// A folder kiln dumped into before (it holds [`MARKER_FILE`]) loses what
/// the earlier compilation wrote (`NN-*` files and `summary.txt`), so the
/// numbering restarts at 00 and no stale file is mistaken for this run's.
/// Any other folder (say `KILN_DUMP=.`) is never cleaned: the dump is
/// numbered after the largest `NN-` prefix already there, and the folder
/// is marked. Subfolders and other files are always left alone.
pub fn prepare_dump_dir(dir: &Path) -> Result<usize, PassError> {
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let marker = dir.join(MARKER_FILE);
    if !marker.is_file() {
        fs::write(&marker, "kiln dump folder: numbered files here are replaced by the next compilation\n")
            .map_err(|e| io_err(&marker, e))?;
        return Ok(next_dump_number(dir));
    }
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        if is_file && (number_prefix(&name).is_some() || name == SUMMARY_FILE) {
            let p = entry.path();
            fs::remove_file(&p).map_err(|e| io_err(&p, e))?;
        }
    }
    Ok(0)
}

/// The summary table's file name.
pub const SUMMARY_FILE: &str = "summary.txt";

fn write(path: &Path, contents: &str) -> Result<PathBuf, PassError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    }
    fs::write(path, contents).map_err(|e| io_err(path, e))?;
    Ok(path.to_path_buf())
}

/// Writes `contents` as `dir/NN-name` with the next free number, for stages
/// after the pass pipeline (kernel partition, memory plan, generated code).
/// Returns the path written.
pub fn write_dump_file(dir: &Path, name: &str, contents: &str) -> Result<PathBuf, PassError> {
    let n = next_dump_number(dir);
    write(&dir.join(numbered_name(n, name)), contents)
}

/// Writes several files under one shared number (e.g. one `.clif` per kernel
/// of one compilation stage). Returns the paths written.
pub fn write_dump_group(dir: &Path, files: &[(&str, &str)]) -> Result<Vec<PathBuf>, PassError> {
    let n = next_dump_number(dir);
    files.iter().map(|(name, contents)| write(&dir.join(numbered_name(n, name)), contents)).collect()
}

/// Writes `dir/NN-stem.kir` and `dir/NN-stem.dot` for `g`.
pub fn write_graph(dir: &Path, seq: usize, stem: &str, g: &Graph) -> Result<(), PassError> {
    let base = numbered_name(seq, stem);
    write(&dir.join(format!("{base}.kir")), &kiln_ir::text::print(g))?;
    write(&dir.join(format!("{base}.dot")), &to_dot(g))?;
    Ok(())
}

/// Writes one report under a given number.
pub(crate) fn write_numbered(dir: &Path, seq: usize, name: &str, contents: &str) -> Result<PathBuf, PassError> {
    write(&dir.join(numbered_name(seq, name)), contents)
}

/// Writes `summary.txt`, replacing it, or appending when a later pipeline
/// of the same compilation continues the dump.
pub(crate) fn write_summary(dir: &Path, table: &str, append: bool) -> Result<(), PassError> {
    let path = dir.join(SUMMARY_FILE);
    let contents = if append {
        match fs::read_to_string(&path) {
            Ok(old) if !old.is_empty() => format!("{old}\n{table}"),
            _ => table.to_string(),
        }
    } else {
        table.to_string()
    };
    write(&path, &contents).map(|_| ())
}

fn dot_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out
}

/// A short label value for tiny constants, so a picture shows `1.5`.
fn constant_hint(t: &kiln_ir::HostTensor) -> Option<String> {
    if t.numel() != 1 {
        return None;
    }
    Some(match t.data() {
        TensorData::F32(v) => format!("{:?}", v[0]),
        TensorData::F64(v) => format!("{:?}", v[0]),
        TensorData::I64(v) => v[0].to_string(),
        TensorData::I32(v) => v[0].to_string(),
        TensorData::Bool(v) => (v[0] != 0).to_string(),
    })
}

/// The node's Graphviz label: `%N op : type` (inputs add their name, scalar
/// constants their value).
pub fn dot_label(g: &Graph, id: NodeId) -> String {
    let node = match g.node(id) {
        Ok(n) => n,
        Err(_) => return format!("{id} <missing>"),
    };
    let op = match &node.op {
        Op::Input { name, role } => format!("{} {name}", role.name()),
        Op::Constant(t) => match constant_hint(t) {
            Some(v) => format!("const {v}"),
            None => "const".to_string(),
        },
        other => other.name().to_string(),
    };
    format!("{id} {op} : {}", node.ty)
}

/// The graph in Graphviz dot. Edges run operand -> user and carry the
/// operand slot when a node has several operands; outputs and updates are
/// extra ellipse nodes so the picture shows what the program returns.
pub fn to_dot(g: &Graph) -> String {
    let mut s = String::new();
    s.push_str("digraph kiln {\n");
    s.push_str("  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n");
    for id in g.node_ids() {
        let style = match g.op(id) {
            Op::Input { .. } => ", style=filled, fillcolor=\"#d8ecff\"",
            Op::Constant(_) => ", style=filled, fillcolor=\"#eeeeee\"",
            _ => "",
        };
        let _ = writeln!(s, "  n{} [label=\"{}\"{style}];", id.0, dot_escape(&dot_label(g, id)));
    }
    for id in g.node_ids() {
        let ops = g.operands(id);
        for (slot, o) in ops.iter().enumerate() {
            if ops.len() > 1 {
                let _ = writeln!(s, "  n{} -> n{} [label=\"{slot}\"];", o.0, id.0);
            } else {
                let _ = writeln!(s, "  n{} -> n{};", o.0, id.0);
            }
        }
    }
    for (i, (name, id)) in g.outputs().iter().enumerate() {
        let _ = writeln!(s, "  out{i} [shape=ellipse, label=\"output {}\"];", dot_escape(name));
        let _ = writeln!(s, "  n{} -> out{i};", id.0);
    }
    for (i, (name, id)) in g.updates().iter().enumerate() {
        let _ = writeln!(s, "  upd{i} [shape=ellipse, label=\"update {}\"];", dot_escape(name));
        let _ = writeln!(s, "  n{} -> upd{i} [style=dashed];", id.0);
    }
    s.push_str("}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::f32_shape;

    #[test]
    fn env_value_rule() {
        assert_eq!(dump_dir_from_value(None), None);
        assert_eq!(dump_dir_from_value(Some("".into())), None);
        assert_eq!(dump_dir_from_value(Some("d/x".into())), Some(PathBuf::from("d/x")));
    }

    #[test]
    fn numbering_and_sanitizing() {
        assert_eq!(numbered_name(3, "cse"), "03-cse");
        assert_eq!(numbered_name(123, "a/b c"), "123-a_b_c");
        assert_eq!(sanitize_file_name("../x"), "_x");
        assert_eq!(sanitize_file_name(""), "unnamed");
        assert_eq!(number_prefix("07-cse.kir"), Some(7));
        assert_eq!(number_prefix("summary.txt"), None);
        assert_eq!(number_prefix("x-1.kir"), None);
    }

    #[test]
    fn dot_labels_nodes_and_escapes_names() {
        let mut g = Graph::new();
        let x = g.input("x\"q", f32_shape([2])).unwrap();
        let c = g.scalar_f32(1.5).unwrap();
        let y = g.add(x, c).unwrap();
        g.set_output("y", y).unwrap();
        let d = to_dot(&g);
        assert!(d.starts_with("digraph kiln {"), "{d}");
        assert!(d.contains(r#"n0 [label="%0 input x\"q : f32[2]""#), "{d}");
        assert!(d.contains(r#"[label="%1 const 1.5 : f32[]""#), "{d}");
        assert!(d.contains(r#"n2 [label="%2 add : f32[2]"]"#), "{d}");
        assert!(d.contains("n0 -> n2 [label=\"0\"];"), "{d}");
        assert!(d.contains("n1 -> n2 [label=\"1\"];"), "{d}");
        assert!(d.contains("n2 -> out0;"), "{d}");
        assert!(d.trim_end().ends_with('}'));
    }
}
