//! What a load may allocate. Everything the file's bytes stand for (the
//! weights in `WGTS`, the text in `GRPH`) is bounded by the file's size,
//! which `container::read` has checked every length against. What they do
//! not stand for, the graph's intermediate values, its inputs and the
//! backend's scratch, is bounded by [`LoadOptions::max_memory`], checked
//! before the backend allocates anything. So a 1 KB file cannot ask for
//! gigabytes, and a 100 MB file of weights may hold 100 MB of weights.

use std::collections::BTreeMap;

use kiln_ir::text::ParseLimits;
use kiln_ir::{Graph, HostTensor};

use super::code_key::KeyChoice;
use super::FormatError;

/// The default [`LoadOptions::max_memory`]: 1 GiB.
pub const DEFAULT_MAX_MEMORY: u64 = 1 << 30;
/// The most threads a file may ask the CPU backend for (its default is the
/// machine's cores, at most 8).
pub const MAX_THREADS: usize = 256;

/// How a `.kiln` file is loaded.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The key whose seals make stored machine code installable.
    pub key: KeyChoice,
    /// Bytes of memory a program may need beyond its stored weights: the
    /// sum of the sizes of all its values (a bound on what any backend
    /// holds at once), and the CPU backend's memory plan.
    pub max_memory: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { key: KeyChoice::User, max_memory: DEFAULT_MAX_MEMORY }
    }
}

impl LoadOptions {
    pub fn new() -> LoadOptions {
        LoadOptions::default()
    }

    pub fn key(mut self, key: KeyChoice) -> LoadOptions {
        self.key = key;
        self
    }

    pub fn max_memory(mut self, bytes: u64) -> LoadOptions {
        self.max_memory = bytes;
        self
    }

    /// Limits for parsing the stored graph: constants take at most the
    /// memory limit, and node ids stay near the node count (the optimizer
    /// leaves gaps in the ids it keeps, but not thousands per node).
    pub(crate) fn parse_limits(&self, grph: &str) -> ParseLimits {
        let lines = grph.bytes().filter(|&b| b == b'\n').count() as u64;
        ParseLimits {
            max_node_id: (lines.saturating_mul(64).saturating_add(1 << 16)).min(u32::MAX as u64) as u32,
            max_constant_bytes: self.max_memory.min(isize::MAX as u64) as usize,
        }
    }
}

/// Bytes of the stored params/state: memory the file itself backs.
pub fn backed_bytes(state: &BTreeMap<String, HostTensor>) -> u64 {
    state.values().map(|t| t.ty().size_bytes() as u64).sum()
}

/// Checks that every value of `graph` has an addressable size and that all
/// of them together fit in `max_memory` plus the stored weights; returns
/// that budget, the most the backend may then plan for.
pub fn check_graph(graph: &Graph, state: &BTreeMap<String, HostTensor>, max_memory: u64) -> Result<u64, FormatError> {
    let budget = max_memory.saturating_add(backed_bytes(state));
    let mut total: u64 = 0;
    for n in graph.node_ids() {
        let ty = graph.ty(n);
        // Zero extents counted as one: an empty [0, 2^62, 4] holds nothing,
        // but its strides overflow all the same.
        let strides_fit = kiln_ir::TensorType::new(ty.dtype, kiln_ir::Shape(ty.shape.dims().iter().map(|&d| d.max(1)).collect())).checked_size_bytes().is_some();
        let (Some(b), true) = (ty.checked_size_bytes(), strides_fit) else {
            return Err(FormatError::TooLarge { what: format!("value {n}: {ty}"), needed: u64::MAX, limit: budget });
        };
        total = total.saturating_add(b as u64);
    }
    if total > budget {
        return Err(FormatError::TooLarge { what: "all values of the graph together".into(), needed: total, limit: budget });
    }
    Ok(budget)
}
