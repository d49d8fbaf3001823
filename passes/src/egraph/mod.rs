//! The e-graph pass: algebraic simplification, fusion and layout rewrites by
//! equality saturation (egg), then DAG-aware extraction.
//!
//! Pipeline: the graph becomes an e-graph (`convert`: one e-class per
//! value, inputs and constants as leaves) whose analysis ([`lang`]) carries
//! every class's tensor type; the named rules ([`rules`]: algebra, fusion,
//! layout) and constant folding run until saturation or a limit
//! ([`saturate`]); the cheapest DAG is extracted ([`extract`]: FLOPs + bytes,
//! shared values counted once) and written back into the same graph, with
//! outputs/updates rewired by `replace_all_uses`. Replaced nodes stay in the
//! graph for DCE.
//!
//! Rule groups (names as they appear in the report; each file's docs give
//! the exact patterns and float semantics):
//! - algebra ([`rules::algebra`]): `add-zero`, `mul-one`, `mul-zero`,
//!   `neg-neg`, `relu-relu`, `log-exp`, `exp-log`, `permute-permute`,
//!   `permute-identity`, `reshape-reshape`, `reshape-identity`,
//!   `broadcast-broadcast`, `broadcast-identity`, `broadcast-implicit`,
//!   `bias-reassociate`, `scalar-mul-mul`, `matmul-scalar-hoist`,
//!   `reduce-scalar-hoist`, `div-static-to-mul`, and `const-fold`;
//! - fusion ([`rules::fusion`]): `dense-from-matmul`, `conv-from-conv2d`,
//!   `dense-bias`, `conv-bias`, `dense-sub-fold`, `conv-sub-fold`,
//!   `dense-scale-fold`, `conv-scale-fold` (batch-norm folding),
//!   `dense-relu|sigmoid|tanh`, `conv-relu|sigmoid|tanh`,
//!   `relu-mask-from-output` (backward), `softmax-cross-entropy`;
//! - layout ([`rules::layout`]): `matmul-trans-a`, `matmul-trans-b`,
//!   `dense-trans-b`, `transpose-matmul`.
//!
//! Reading the report (`NN-egraph-report.txt` in the dump folder): the stop
//! reason and limits, e-graph size, live nodes and estimated cost before and
//! after, unions per rule, one line per fused op in the result with the
//! chain of rules that built it (`%41 = fused_conv2d bias=true act=relu <-
//! conv-relu <- conv-bias <- conv-from-conv2d`), and one line per product
//! left without a fused epilogue saying why (its value is needed elsewhere,
//! the added operand is not a bias, the scale is not static, ...).
//!
//! Safety: rules add nodes only through a type-checking builder and a
//! rewrite is unioned only when its result has the matched value's type, so
//! no rewrite can change a shape or dtype; nothing in the pass panics on a
//! valid graph.

mod convert;
pub mod extract;
mod live_dag;
mod fold;
pub mod lang;
pub mod pattern;
mod report;
pub mod rule;
pub mod rules;
pub mod saturate;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kiln_ir::Graph;

pub use report::Report;
pub use rule::Group;
pub use saturate::StopReason;

use crate::{Changed, ConstEvaluator, Pass, PassCx, PassError};

/// Limits and switches; the facade fills these from `CompileOptions`.
#[derive(Debug, Clone, PartialEq)]
pub struct EGraphConfig {
    /// Stop when the e-graph holds more e-nodes than this.
    pub node_limit: usize,
    /// Stop after this many search/apply rounds.
    pub iter_limit: usize,
    /// Stop starting new rounds after this long.
    pub time_limit: Duration,
    /// Matches per rule per round, so one explosive rule cannot starve the rest.
    pub match_limit: usize,
    /// Fold constant subgraphs with at most this many result elements (0: off).
    pub fold_limit: usize,
    /// After the first round, search a rule only where the e-graph changed
    /// since its previous search (off: every class every round; the same
    /// result, tested, at a cost that grows with rounds x graph).
    pub incremental: bool,
    /// Enabled rule groups.
    pub groups: Vec<Group>,
    /// Allow the rules in [`rules::VALUE_CHANGING`] (reassociation, BN
    /// folding, signed zeros, ...), which change results by rounding. Off,
    /// results differ from the input graph only by the intermediate
    /// rounding a fusion skips, and constants fold only through the
    /// evaluator or exactly rounded native ops.
    pub reassociate: bool,
}

impl EGraphConfig {
    /// The three limits in one call (what `CompileOptions` carries).
    pub fn with_limits(mut self, node_limit: usize, iter_limit: usize, time_limit: Duration) -> EGraphConfig {
        self.node_limit = node_limit;
        self.iter_limit = iter_limit;
        self.time_limit = time_limit;
        self
    }
}

impl Default for EGraphConfig {
    fn default() -> Self {
        EGraphConfig {
            node_limit: 50_000,
            iter_limit: 16,
            time_limit: Duration::from_millis(2000),
            match_limit: 20_000,
            fold_limit: 4096,
            incremental: true,
            groups: Group::ALL.to_vec(),
            reassociate: true,
        }
    }
}

/// Runs the e-graph optimizer as a pipeline pass (`"egraph"`).
#[derive(Debug, Clone, Default)]
pub struct EGraphPass {
    pub config: EGraphConfig,
}

impl EGraphPass {
    pub fn new(config: EGraphConfig) -> EGraphPass {
        EGraphPass { config }
    }
}

impl Pass for EGraphPass {
    fn name(&self) -> &str {
        "egraph"
    }

    fn run(&self, g: &mut Graph, cx: &mut PassCx) -> Result<Changed, PassError> {
        let report = optimize(g, &self.config, cx.evaluator.as_deref())?;
        let changed = report.changed;
        if cx.dump_dir.is_some() {
            cx.reports.push(("egraph-report.txt".to_string(), report.to_string()));
        }
        Ok(Changed::from_bool(changed))
    }
}

fn fail(message: impl Into<String>) -> PassError {
    PassError::Failed { pass: "egraph".into(), message: message.into() }
}

/// Optimizes `g` in place and returns what happened. The graph is left
/// unchanged when extraction finds nothing better.
pub fn optimize(g: &mut Graph, config: &EGraphConfig, ev: Option<&dyn ConstEvaluator>) -> Result<Report, PassError> {
    let start = Instant::now();
    let mut rules = rules::rules(&config.groups).map_err(fail)?;
    if !config.reassociate {
        rules.retain(|r| !rules::VALUE_CHANGING.contains(&r.name));
    }
    let nodes_before = g.live_nodes().len();
    let mut built = convert::build(g).map_err(fail)?;
    let roots = built.root_classes();
    let cost_before = extract::original_cost(&built.eg, &built.original, &roots).unwrap_or(f64::NAN);
    let mut prov = rule::Provenance::default();
    let sat = saturate::saturate(&mut built.eg, &rules, config, ev, &mut prov);
    // Extraction gets its own time budget of the same length.
    let deadline = Instant::now() + config.time_limit.max(Duration::from_millis(100));
    let extracted = extract::extract(&built.eg, &roots, &built.original, deadline);
    let mut report = Report {
        iterations: sat.iterations,
        stop: sat.stop,
        fired: sat.fired.clone(),
        enodes: sat.enodes,
        eclasses: sat.eclasses,
        cost_before,
        cost_after: cost_before,
        nodes_before,
        nodes_after: nodes_before,
        saturation_time: sat.time,
        total_time: Duration::ZERO,
        fused: Vec::new(),
        unfused: Vec::new(),
        changed: false,
        extraction_truncated: false,
        group_of: rules.iter().map(|r| (r.name, r.group)).collect::<BTreeMap<_, _>>(),
    };
    let mut created = Vec::new();
    if let Some(ex) = extracted {
        report.extraction_truncated = ex.truncated;
        let cost_after = ex.cost;
        // Keep the original graph unless the extracted one is cheaper.
        if cost_after < cost_before || cost_before.is_nan() {
            let (made, changed) = convert::write_back(g, &built, &ex.choice).map_err(fail)?;
            created = made;
            report.changed = changed;
            report.cost_after = cost_after;
            report.nodes_after = g.live_nodes().len();
        }
    }
    report::explain(&mut report, g, &built.eg, &prov, &created);
    report.total_time = start.elapsed();
    Ok(report)
}
