//! The anchor rows (PyTorch, JAX, candle) recorded on the reference
//! machine, one JSON object per line.

/// A copy of `../shared/bench/results/cpu-2core.jsonl`, so a fresh clone has it.
pub const BUILTIN: &str = include_str!("../anchors/cpu-2core.jsonl");

pub struct Anchor {
    pub workload: String,
    pub framework: String,
    pub median_ms: Option<f64>,
}

/// Rows that do not parse, or that recorded an error, are skipped.
pub fn parse(src: &str) -> Vec<Anchor> {
    src.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("error").is_none_or(|e| e.is_null()))
        .filter_map(|v| {
            Some(Anchor {
                workload: v.get("workload")?.as_str()?.to_string(),
                framework: v.get("framework")?.as_str()?.to_string(),
                median_ms: v.get("median_ms").and_then(|m| m.as_f64()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_anchors_cover_every_workload() {
        let rows = parse(BUILTIN);
        // The reference machine recorded W1-W5; the model-zoo rows (Z*) have
        // no recorded anchors: their PyTorch figures come from
        // scripts/zoo_torch_bench.py run beside kiln (`--anchors FILE`).
        for w in crate::workloads::ALL.iter().filter(|w| w.starts_with('W')) {
            for fw in ["torch-eager", "torch-compile", "jax-jit"] {
                assert!(rows.iter().any(|r| r.workload == *w && r.framework == fw && r.median_ms.is_some()), "{w} {fw}");
            }
        }
        assert!(parse("not json\n{\"workload\": \"W\", \"framework\": \"f\", \"error\": \"boom\"}").is_empty());
    }
}
