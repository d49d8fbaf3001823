//! Where every value lives in the program's one device buffer, in 32-bit
//! words: params and state (persistent, updated in place), per-call data
//! inputs, constants, the arena of intermediates laid out by kiln-passes'
//! memory plan (planned with 4-byte elements, the device's width for every
//! dtype), and a two-word error flag that index-checking shaders write.

use std::collections::HashMap;

use kiln_ir::{Graph, NodeId, TensorType};
use kiln_passes::memory_plan::{MemoryPlan, Storage};
use kiln_passes::partition::Partition;

use crate::WgpuError;

/// Bytes per element on the device, whatever the dtype.
pub const WORD: usize = 4;

/// A named region (a param/state or a data input).
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    pub name: String,
    pub ty: TensorType,
    pub word: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Layout {
    word: HashMap<NodeId, u64>,
    /// Params and state, in signature order; one contiguous run of words
    /// `persistent_words` long starting at word 0 (so a rollback copies one range).
    pub persistent: Vec<Region>,
    pub persistent_words: u64,
    pub inputs: Vec<Region>,
    /// Constant nodes and their words (written once at compile time).
    pub constants: Vec<(NodeId, u64)>,
    pub arena_word: u64,
    err_word: u64,
    pub total_words: u64,
}

/// Rounds a word count up so every region starts on a 256-byte boundary
/// (the copy and binding alignments GPUs ask for).
fn pad(words: u64) -> u64 {
    words.div_ceil(64) * 64
}

impl Layout {
    pub fn build(g: &Graph, part: &Partition, plan: &MemoryPlan) -> Result<Layout, WgpuError> {
        let mut l = Layout::default();
        let mut at = 0u64;
        let mut named: HashMap<String, u64> = HashMap::new();
        for (_, name, role) in g.inputs() {
            if role.is_persistent() {
                let id = g.find_input(name).ok_or_else(|| WgpuError::Internal(format!("input `{name}` not found")))?;
                let ty = g.ty(id).clone();
                named.insert(name.to_string(), at);
                l.persistent.push(Region { name: name.to_string(), ty: ty.clone(), word: at });
                at += pad(ty.numel() as u64);
            }
        }
        l.persistent_words = at;
        for (id, name, role) in g.inputs() {
            if !role.is_persistent() {
                let ty = g.ty(id).clone();
                named.insert(name.to_string(), at);
                l.inputs.push(Region { name: name.to_string(), ty: ty.clone(), word: at });
                at += pad(ty.numel() as u64);
            }
        }
        for (&n, st) in &plan.values {
            if *st == Storage::Constant {
                l.constants.push((n, at));
                l.word.insert(n, at);
                at += pad(g.ty(n).numel() as u64);
            }
        }
        l.err_word = at;
        at += 64;
        l.arena_word = at;
        if plan.arena_bytes % WORD != 0 {
            return Err(WgpuError::Internal("arena not planned in 4-byte words".into()));
        }
        at += pad((plan.arena_bytes / WORD) as u64);
        l.total_words = at;
        for (&n, st) in &plan.values {
            let w = match st {
                Storage::Input(name) | Storage::Persistent(name) => named[name],
                Storage::Arena { offset, .. } => l.arena_word + (*offset / WORD) as u64,
                Storage::Constant | Storage::View(_) => continue,
            };
            l.word.insert(n, w);
        }
        // Views: their root's word plus the elements they skip (the
        // partition gives host bytes; the dtype is the root's).
        for (v, r) in &part.views {
            let base = *l.word.get(r).ok_or_else(|| WgpuError::Internal(format!("view {v} of unplaced {r}")))?;
            let skip = part.offset(*v) / g.ty(*r).dtype.size_bytes();
            l.word.insert(*v, base + skip as u64);
        }
        Ok(l)
    }

    /// Word offset of element 0 of `n`'s value.
    pub fn word(&self, n: NodeId) -> Result<u64, WgpuError> {
        self.word.get(&n).copied().ok_or_else(|| WgpuError::Internal(format!("{n} has no place in the device buffer")))
    }

    /// The first of the error flag's two words: 0 when no shader failed,
    /// else the failing node's index + 1; then the offending index.
    pub fn err_word(&self) -> u64 {
        self.err_word
    }

    /// Bytes of the one buffer.
    pub fn bytes(&self) -> u64 {
        self.total_words * WORD as u64
    }
}
