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
    /// pass        time        nodes      changed
    /// (input)                 12
    /// cse         0.021 ms    12 -> 10   yes
    /// dce         0.004 ms    10 -> 10   no
    /// total       0.025 ms    12 -> 10
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
    /// that graph is written as `NN-<pass>.invalid.kir` and `summary.txt`
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
                dump::prepare_dump_dir(dir)?;
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
                Ok(c) => c.changed(),
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
        dump::write_numbered(dir, seq, &format!("{pass}.invalid.kir"), &kir)?;
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
