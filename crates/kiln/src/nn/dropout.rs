//! Dropout: in train mode zeroes each element with probability p and scales
//! the rest by 1/(1-p); identity in eval mode. The mask comes from
//! `random_uniform` keyed by a per-layer seed and the shared step counter
//! state `rng.step`, which the graph increments once per run, so every step
//! draws a new mask and a rerun from the same state repeats it.

use kiln_ir::{CompareOp, HostTensor, NodeId};

use super::Module;
use crate::{Builder, Error, Mode, ParamStore, Result};

/// Name of the shared random-step counter state.
pub const RNG_STEP: &str = "rng.step";

#[derive(Debug, Clone, Copy)]
pub struct Dropout {
    pub p: f64,
    pub seed: u64,
}

impl Dropout {
    /// Draws the layer's seed from the store's generator.
    pub fn new(store: &mut ParamStore, p: f64) -> Result<Dropout> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::Config(format!("dropout probability must be in [0, 1), got {p}")));
        }
        Ok(Dropout { p, seed: store.next_seed() })
    }
}

impl Module for Dropout {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        dropout(cx, x, self.p, self.seed)
    }
}

/// Functional dropout on a builder (reads its mode).
pub fn dropout(cx: &mut Builder, x: NodeId, p: f64, seed: u64) -> Result<NodeId> {
    if cx.mode() == Mode::Eval || p == 0.0 {
        return Ok(x);
    }
    let counter = cx.state_with_init(RNG_STEP, HostTensor::scalar_i64(0))?;
    if !cx.updates().iter().any(|(n, _)| n == RNG_STEP) {
        let next = cx.add_scalar(counter, 1.0)?;
        cx.set_update(RNG_STEP, next)?;
    }
    // Distinct streams for each dropout application in one graph, so a layer
    // applied twice draws two masks.
    let k = cx.next_random_index();
    let seed = seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let shape = super::shape_of(cx, x)?;
    let u = cx.random_uniform(counter, shape, seed, 0.0, 1.0)?;
    let pn = cx.scalar_f32(p as f32)?;
    let keep = cx.compare(CompareOp::Ge, u, pn)?;
    let scaled = cx.mul_scalar(x, 1.0 / (1.0 - p))?;
    let zero = cx.scalar_like(0.0, x)?;
    Ok(cx.select(keep, scaled, zero)?)
}
