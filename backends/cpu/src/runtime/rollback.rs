//! All-or-nothing runs: a run that fails leaves parameters and optimizer
//! state as they were before it.
//!
//! Updates are written in place into the persistent buffers as soon as
//! their value is computed, so a step that fails later in the same run (an
//! index out of range in `gather`/`scatter_add`/`one_hot`, a label out of
//! range in `softmax_cross_entropy`, an integer division by zero in a
//! portable loop) would leave some parameters updated and others not: a
//! silently half-applied training step. The interpreter applies updates
//! only on success; this module gives the CPU backend the same contract.
//!
//! Only buffers written in place by a step scheduled *before* the last step
//! that can fail need saving; in the usual training step every fallible op
//! (labels, embeddings) runs before any update, so nothing is saved and a
//! run costs nothing extra. The save buffers are allocated at compile time,
//! so a run still allocates nothing.

use kiln_ir::Op;

use super::buffers::AlignedBuf;
use super::step::{Persistent, SlotSrc, Step};

/// The persistent buffers to save before a run and restore if it fails.
pub(crate) struct Rollback {
    /// (persistent index, bytes, saved copy).
    saved: Vec<(usize, usize, AlignedBuf)>,
}

/// Whether a step can return an error at run time (after compile-time
/// checks passed): ops that check data-dependent indices, and loops run by
/// the portable evaluator (integer arithmetic errors).
fn fallible(step: &Step) -> bool {
    match step {
        Step::Native { op, .. } => matches!(op.op, Op::Gather { .. } | Op::ScatterAdd { .. } | Op::OneHot { .. } | Op::SoftmaxCrossEntropy),
        Step::Loop(l) => l.jit.is_none(),
    }
}

/// The slots a step writes.
fn written(step: &Step) -> Vec<usize> {
    match step {
        Step::Native { op, .. } => vec![op.out.0],
        Step::Loop(l) => l.prog.stores.iter().map(|s| s.slot).collect(),
    }
}

/// The persistent buffer a slot lies in, following views to their base.
fn persistent_of(slots: &[SlotSrc], mut slot: usize) -> Option<usize> {
    loop {
        match slots[slot] {
            SlotSrc::Persistent(p) => return Some(p),
            SlotSrc::Offset { base, .. } => slot = base,
            _ => return None,
        }
    }
}

impl Rollback {
    pub fn plan(steps: &[Step], slots: &[SlotSrc], persistent: &[Persistent]) -> Rollback {
        let last_fallible = steps.iter().rposition(fallible);
        let mut at_risk: Vec<usize> = match last_fallible {
            Some(last) => steps[..last].iter().flat_map(written).filter_map(|s| persistent_of(slots, s)).collect(),
            None => Vec::new(),
        };
        at_risk.sort_unstable();
        at_risk.dedup();
        let saved = at_risk
            .into_iter()
            .map(|p| {
                let bytes = persistent[p].ty.size_bytes();
                (p, bytes, AlignedBuf::zeroed(bytes))
            })
            .collect();
        Rollback { saved }
    }

    /// Names of the buffers a failing run restores (for the memory plan text).
    pub fn names<'a>(&self, persistent: &'a [Persistent]) -> Vec<&'a str> {
        self.saved.iter().map(|(p, _, _)| persistent[*p].name.as_str()).collect()
    }

    pub fn save(&mut self, persistent: &[Persistent]) {
        for (p, bytes, buf) in &mut self.saved {
            buf.bytes_mut()[..*bytes].copy_from_slice(&persistent[*p].buf.bytes()[..*bytes]);
        }
    }

    pub fn restore(&self, persistent: &mut [Persistent]) {
        for (p, bytes, buf) in &self.saved {
            persistent[*p].buf.bytes_mut()[..*bytes].copy_from_slice(&buf.bytes()[..*bytes]);
        }
    }
}
