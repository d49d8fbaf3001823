//! The pass pipeline: verify, run, time, count, dump.

use std::fmt;
use std::time::{Duration, Instant};

use kiln_ir::{verify, Graph};

use crate::dump;
use crate::{Pass, PassCx, PassError};

/// One row of the pipeline summary.
#[derive(Debug, Clone, PartialEq)]
pub struct PassRow {
    pub pass: String,
    pub duration: Duration,
    pub nodes_before: usize,
    pub nodes_after: usize,
    pub changed: bool,
}

/// What a pipeline run did, pass by pass. `Display` renders the summary
/// table the dump folder's `summary.txt` holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipelineReport {
    /// Node count of the graph handed to the pipeline.
    pub nodes_in: usize,
    pub rows: Vec<PassRow>,
}

impl PipelineReport {
    /// Whether any pass changed the graph.
    pub fn changed(&self) -> bool {
        self.rows.iter().any(|r| r.changed)
    }

    /// Node count after the last pass (the input count if none ran).
    pub fn nodes_out(&self) -> usize {
        self.rows.last().map_or(self.nodes_in, |r| r.nodes_after)
    }

    pub fn total_duration(&self) -> Duration {
        self.rows.iter().map(|r| r.duration).sum()
    }

    pub fn row(&self, pass: &str) -> Option<&PassRow> {
        self.rows.iter().find(|r| r.pass == pass)
    }
}

/// Milliseconds with three decimals: passes on small graphs take
/// microseconds, big ones seconds, and one unit keeps the column comparable.
fn fmt_ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

impl fmt::Display for PipelineReport {
    /// ```text
    /// pass        time  nodes     changed
    /// (input)           12
    /// cse     0.021 ms  12 -> 10  yes
    /// dce     0.004 ms  10 -> 10  no
    /// total   0.025 ms  12 -> 10
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut lines: Vec<[String; 4]> = Vec::new();
        lines.push(["pass".into(), "time".into(), "nodes".into(), "changed".into()]);
        lines.push(["(input)".into(), String::new(), self.nodes_in.to_string(), String::new()]);
        for r in &self.rows {
            lines.push([
                r.pass.clone(),
                fmt_ms(r.duration),
                format!("{} -> {}", r.nodes_before, r.nodes_after),
                if r.changed { "yes" } else { "no" }.into(),
            ]);
        }
        lines.push([
            "total".into(),
            fmt_ms(self.total_duration()),
            format!("{} -> {}", self.nodes_in, self.nodes_out()),
            String::new(),
        ]);
        let mut w = [0usize; 4];
        for l in &lines {
            for (i, c) in l.iter().enumerate() {
                w[i] = w[i].max(c.chars().count());
            }
        }
        for l in &lines {
            let line = format!("{:<w0$}  {:>w1$}  {:<w2$}  {}", l[0], l[1], l[2], l[3], w0 = w[0], w1 = w[1], w2 = w[2]);
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// A pipeline of passes. `run` verifies the graph before the first pass and
/// after every pass, so a pass that breaks an invariant is named in the
/// error instead of surfacing later in a backend.
#[derive(Default)]
pub struct PassManager {
    passes: Vec<Box<dyn Pass>>,
}

impl fmt::Debug for PassManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PassManager").field("passes", &self.pass_names()).finish()
    }
}

impl PassManager {
    pub fn new() -> PassManager {
        PassManager::default()
    }

    pub fn with_passes(passes: Vec<Box<dyn Pass>>) -> PassManager {
        PassManager { passes }
    }

    /// The passes named, in order (see [`crate::registry`]).
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<PassManager, PassError> {
        let passes = names
            .iter()
            .map(|n| crate::registry::pass_by_name(n.as_ref()).ok_or_else(|| crate::registry::unknown_pass(n.as_ref())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PassManager { passes })
    }

    /// A comma-separated list of pass names (`"cse, dce"`), as `kiln opt
    /// --passes` takes it.
    pub fn from_list(list: &str) -> Result<PassManager, PassError> {
        Ok(PassManager { passes: crate::registry::passes_from_list(list)? })
    }

    /// [`crate::registry::default_pipeline`] as a manager.
    pub fn default_pipeline() -> PassManager {
        PassManager { passes: crate::registry::default_pipeline() }
    }

    /// Appends a pass (builder style).
    pub fn with(mut self, pass: impl Pass + 'static) -> PassManager {
        self.passes.push(Box::new(pass));
        self
    }

    pub fn push(&mut self, pass: Box<dyn Pass>) {
        self.passes.push(pass);
    }

    pub fn pass_names(&self) -> Vec<&str> {
        self.passes.iter().map(|p| p.name()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.passes.is_empty()
    }

    /// Runs every pass in order on `g`.
    ///
    /// With `cx.dump_dir` set it writes the dump folder (see [`crate::dump`]).
    /// On error the graph is left as the failing pass left it; when dumping,
    /// that graph is written as `NN-<pass>.failed.kir` and `summary.txt`
    /// covers the passes that ran, so the folder explains the failure.
    pub fn run(&self, g: &mut Graph, cx: &mut PassCx) -> Result<PipelineReport, PassError> {
        verify(g).map_err(PassError::InvalidInput)?;
        let mut report = PipelineReport { nodes_in: g.node_count(), rows: Vec::new() };
        let dir = cx.dump_dir.clone();
        let continuing = cx.dump_seq > 0;
        if let Some(dir) = &dir {
            if continuing {
                cx.dump_seq = cx.dump_seq.max(dump::next_dump_number(dir));
            } else {
                cx.dump_seq = dump::prepare_dump_dir(dir)?;
            }
            dump::write_graph(dir, cx.dump_seq, "input", g)?;
            cx.dump_seq += 1;
        }
        for pass in &self.passes {
            let name = pass.name().to_string();
            let reports_before = cx.reports.len();
            let nodes_before = g.node_count();
            let start = Instant::now();
            let result = pass.run(g, cx);
            let duration = start.elapsed();
            let result = result.and_then(|changed| {
                verify(g).map_err(|source| PassError::Verify { pass: name.clone(), source })?;
                Ok(changed)
            });
            let changed = match result {
                // A pass that reports "no change" yet added or removed nodes
                // still counts as changed, so the dump never skips a graph.
                Ok(c) => c.changed() || g.node_count() != nodes_before,
                Err(e) => {
                    if let Some(dir) = &dir {
                        // Best effort: the pass's own error is what the caller needs.
                        let _ = self.dump_failure(dir, cx, &name, g, &report, &e, continuing);
                    }
                    return Err(e);
                }
            };
            report.rows.push(PassRow { pass: name.clone(), duration, nodes_before, nodes_after: g.node_count(), changed });
            if let Some(dir) = &dir {
                let new_reports = &cx.reports[reports_before.min(cx.reports.len())..];
                if changed || !new_reports.is_empty() {
                    let seq = cx.dump_seq;
                    if changed {
                        dump::write_graph(dir, seq, &name, g)?;
                    }
                    for (file, contents) in new_reports {
                        dump::write_numbered(dir, seq, file, contents)?;
                    }
                    cx.dump_seq += 1;
                }
            }
        }
        if let Some(dir) = &dir {
            dump::write_summary(dir, &report.to_string(), continuing)?;
        }
        Ok(report)
    }

    #[allow(clippy::too_many_arguments)]
    fn dump_failure(
        &self,
        dir: &std::path::Path,
        cx: &mut PassCx,
        pass: &str,
        g: &Graph,
        report: &PipelineReport,
        err: &PassError,
        continuing: bool,
    ) -> Result<(), PassError> {
        let seq = cx.dump_seq;
        cx.dump_seq += 1;
        let kir = print_guarded(g);
        dump::write_numbered(dir, seq, &format!("{pass}.failed.kir"), &kir)?;
        let table = format!("{report}failed in `{pass}`: {err}\n");
        dump::write_summary(dir, &table, continuing)
    }
}

/// Prints a graph a pass may have broken; a printer panic must not hide the
/// pass's error, so it becomes a note in the file instead.
fn print_guarded(g: &Graph) -> String {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| kiln_ir::text::print(g))) {
        Ok(s) => s,
        Err(_) => format!("# the printer could not print this graph ({} nodes)\n", g.node_count()),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::{Path, PathBuf};

    use kiln_ir::{f32_shape, Op, TensorType, UnaryOp};

    use super::*;
    use crate::{Changed, Cse, Dce};

    /// A fresh, empty folder under the system temp dir, removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!("kiln-passes-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != crate::dump::MARKER_FILE)
            .collect();
        v.sort();
        v
    }

    /// x -> exp, exp (duplicate) -> add, plus a dead neg: 6 nodes.
    fn sample() -> Graph {
        let mut g = Graph::new();
        let x = g.input("x", f32_shape([4])).unwrap();
        let a = g.exp(x).unwrap();
        let b = g.exp(x).unwrap();
        let _dead = g.neg(a).unwrap();
        let y = g.add(a, b).unwrap();
        let z = g.tanh(y).unwrap();
        g.set_output("z", z).unwrap();
        g
    }

    /// Gives the first unary node a wrong type: the verifier must catch it.
    struct Breaker;
    impl Pass for Breaker {
        fn name(&self) -> &str {
            "breaker"
        }
        fn run(&self, g: &mut Graph, _cx: &mut PassCx) -> Result<Changed, PassError> {
            let id = g.node_ids().into_iter().find(|&id| matches!(g.op(id), Op::Unary(_))).unwrap();
            let ops = g.operands(id);
            g.rewrite(id, Op::Unary(UnaryOp::Exp), TensorType::f32([5]), &ops);
            Ok(Changed::Yes)
        }
    }

    /// Changes nothing, leaves a report.
    struct Reporter;
    impl Pass for Reporter {
        fn name(&self) -> &str {
            "reporter"
        }
        fn run(&self, _g: &mut Graph, cx: &mut PassCx) -> Result<Changed, PassError> {
            cx.add_report("reporter.txt", "rules fired: 0\n");
            Ok(Changed::No)
        }
    }

    #[test]
    fn runs_passes_in_order_and_records_counts() {
        let mut g = sample();
        let pm = PassManager::new().with(Cse).with(Dce).with(Dce);
        assert_eq!(pm.pass_names(), ["cse", "dce", "dce"]);
        assert_eq!(PassManager::from_list("cse,dce, dce").unwrap().pass_names(), pm.pass_names());
        let e = PassManager::from_list("cse,bogus").err().expect("an unknown pass name is an error");
        assert!(matches!(&e, PassError::UnknownPass(n, known) if n == "bogus" && known.contains("cse")), "{e:?}");
        let r = pm.run(&mut g, &mut PassCx::new()).unwrap();
        let counts: Vec<(usize, usize, bool)> = r.rows.iter().map(|r| (r.nodes_before, r.nodes_after, r.changed)).collect();
        assert_eq!(counts, [(6, 5, true), (5, 4, true), (4, 4, false)]);
        assert_eq!((r.nodes_in, r.nodes_out(), r.changed()), (6, 4, true));
        assert_eq!(r.row("cse").map(|r| r.nodes_after), Some(5));
    }

    #[test]
    fn a_pass_that_breaks_the_graph_is_named() {
        let mut g = sample();
        let err = PassManager::new().with(Dce).with(Breaker).run(&mut g, &mut PassCx::new()).unwrap_err();
        match &err {
            PassError::Verify { pass, .. } => assert_eq!(pass, "breaker"),
            other => panic!("expected a verify error, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("pass `breaker` left an invalid graph") && msg.contains("%1"), "{msg}");
    }

    #[test]
    fn an_invalid_input_is_reported_before_any_pass() {
        let mut g = Graph::new();
        let x = g.input("x", f32_shape([2])).unwrap();
        let bad = g.add_typed(Op::Unary(UnaryOp::Exp), TensorType::f32([3]), &[x]);
        g.set_output("y", bad).unwrap();
        let err = PassManager::new().with(Dce).run(&mut g, &mut PassCx::new()).unwrap_err();
        assert!(matches!(err, PassError::InvalidInput(_)), "{err:?}");
        assert!(err.to_string().contains("%1"), "{err}");
    }

    #[test]
    fn dump_writes_numbered_files_for_changing_passes_and_reports() {
        let tmp = TempDir::new("dump-on");
        let mut g = sample();
        let mut cx = PassCx::new().with_dump_dir(&tmp.0);
        let pm = PassManager::new().with(Cse).with(Reporter).with(Dce).with(Dce);
        pm.run(&mut g, &mut cx).unwrap();
        assert_eq!(
            files(&tmp.0),
            [
                "00-input.dot",
                "00-input.kir",
                "01-cse.dot",
                "01-cse.kir",
                "02-reporter.txt",
                "03-dce.dot",
                "03-dce.kir",
                "summary.txt"
            ]
        );
        assert_eq!(fs::read_to_string(tmp.0.join("03-dce.kir")).unwrap(), kiln_ir::text::print(&g));
        assert!(fs::read_to_string(tmp.0.join("00-input.kir")).unwrap().contains("%2 = exp %0"));
        assert!(!fs::read_to_string(tmp.0.join("01-cse.kir")).unwrap().contains("%2 = exp"));
        assert!(fs::read_to_string(tmp.0.join("01-cse.dot")).unwrap().contains("%1 exp : f32[4]"));
        assert_eq!(fs::read_to_string(tmp.0.join("02-reporter.txt")).unwrap(), "rules fired: 0\n");
        assert_eq!(cx.reports.len(), 1, "reports stay readable through the API");
        let summary = fs::read_to_string(tmp.0.join("summary.txt")).unwrap();
        assert!(summary.contains("6 -> 5") && summary.contains("5 -> 4"), "{summary}");
        assert_eq!(summary.lines().count(), 7, "{summary}");

        // Later stages number after the pipeline's files.
        let p = crate::write_dump_file(&tmp.0, "memory_plan.txt", "peak 64 B\n").unwrap();
        assert!(p.ends_with("04-memory_plan.txt"), "{}", p.display());
        let ps = crate::write_dump_group(&tmp.0, &[("k0.clif", "a"), ("k1.clif", "b")]).unwrap();
        assert!(ps[0].ends_with("05-k0.clif") && ps[1].ends_with("05-k1.clif"));

        // A second compilation into the same folder starts again at 00.
        let mut g2 = sample();
        PassManager::new().with(Dce).run(&mut g2, &mut PassCx::new().with_dump_dir(&tmp.0)).unwrap();
        assert_eq!(files(&tmp.0), ["00-input.dot", "00-input.kir", "01-dce.dot", "01-dce.kir", "summary.txt"]);
    }

    #[test]
    fn a_folder_that_is_not_a_dump_folder_is_never_cleaned() {
        let tmp = TempDir::new("dump-foreign");
        fs::create_dir_all(&tmp.0).unwrap();
        fs::write(tmp.0.join("01-notes.txt"), "mine").unwrap();
        let mut g = sample();
        PassManager::new().with(Dce).run(&mut g, &mut PassCx::new().with_dump_dir(&tmp.0)).unwrap();
        assert_eq!(files(&tmp.0), ["01-notes.txt", "02-input.dot", "02-input.kir", "03-dce.dot", "03-dce.kir", "summary.txt"]);
        assert!(tmp.0.join(crate::dump::MARKER_FILE).is_file());
    }

    #[test]
    fn a_second_pipeline_on_the_same_cx_continues_the_numbering() {
        let tmp = TempDir::new("dump-continue");
        let mut g = sample();
        let mut cx = PassCx::new().with_dump_dir(&tmp.0);
        PassManager::new().with(Cse).run(&mut g, &mut cx).unwrap();
        PassManager::new().with(Dce).run(&mut g, &mut cx).unwrap();
        assert_eq!(
            files(&tmp.0),
            ["00-input.dot", "00-input.kir", "01-cse.dot", "01-cse.kir", "02-input.dot", "02-input.kir", "03-dce.dot", "03-dce.kir", "summary.txt"]
        );
        let summary = fs::read_to_string(tmp.0.join("summary.txt")).unwrap();
        assert!(summary.contains("\ncse ") && summary.contains("\ndce "), "{summary}");
    }

    #[test]
    fn nothing_is_written_when_dumping_is_off() {
        let tmp = TempDir::new("dump-off");
        let mut g = sample();
        let mut cx = PassCx::new();
        PassManager::new().with(Cse).with(Reporter).with(Dce).run(&mut g, &mut cx).unwrap();
        assert!(!tmp.0.exists());
        assert_eq!(cx.dump_seq, 0);
    }

    #[test]
    fn a_failing_pass_leaves_its_graph_and_a_partial_summary_in_the_dump() {
        let tmp = TempDir::new("dump-fail");
        let mut g = sample();
        let mut cx = PassCx::new().with_dump_dir(&tmp.0);
        PassManager::new().with(Dce).with(Breaker).run(&mut g, &mut cx).unwrap_err();
        assert_eq!(
            files(&tmp.0),
            ["00-input.dot", "00-input.kir", "01-dce.dot", "01-dce.kir", "02-breaker.failed.kir", "summary.txt"]
        );
        let summary = fs::read_to_string(tmp.0.join("summary.txt")).unwrap();
        assert!(summary.contains("failed in `breaker`"), "{summary}");
    }

    #[test]
    fn summary_table_format() {
        let r = PipelineReport {
            nodes_in: 12,
            rows: vec![
                PassRow { pass: "cse".into(), duration: Duration::from_micros(1500), nodes_before: 12, nodes_after: 9, changed: true },
                PassRow { pass: "const_fold".into(), duration: Duration::from_micros(20), nodes_before: 9, nodes_after: 9, changed: false },
            ],
        };
        let expected = "\
pass            time  nodes    changed
(input)               12
cse         1.500 ms  12 -> 9  yes
const_fold  0.020 ms  9 -> 9   no
total       1.520 ms  12 -> 9
";
        assert_eq!(r.to_string(), expected);
    }
}
