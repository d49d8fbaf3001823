//! Dead-code elimination.
//!
//! A node is live when an output, an update or a grad request (its loss or
//! a wrt node) depends on it. Named inputs are always kept, used or not:
//! they are the program's signature, and a caller passing `x` must not get
//! "unknown input" because an optimization found `x` unused.

use kiln_ir::Graph;

use crate::{Changed, Pass, PassCx, PassError};

#[derive(Debug, Clone, Copy, Default)]
pub struct Dce;

impl Pass for Dce {
    fn name(&self) -> &str {
        "dce"
    }

    fn run(&self, g: &mut Graph, _cx: &mut PassCx) -> Result<Changed, PassError> {
        Ok(Changed::from_bool(remove_dead(g) > 0))
    }
}

/// Removes every dead non-input node; returns how many were removed.
pub fn remove_dead(g: &mut Graph) -> usize {
    let live = g.live_nodes();
    let dead: rustc_hash::FxHashSet<_> = g.node_ids().into_iter().filter(|id| !live.contains(id) && !g.op(*id).is_input()).collect();
    if dead.is_empty() {
        return 0;
    }
    g.remove_nodes_where(|id| dead.contains(&id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::f32_shape;

    #[test]
    fn keeps_outputs_updates_grads_and_inputs() {
        let mut g = Graph::new();
        let x = g.input("x", f32_shape([2])).unwrap();
        let unused = g.input("unused", f32_shape([2])).unwrap();
        let w = g.param("w", f32_shape([2])).unwrap();
        let y = g.mul(x, w).unwrap();
        let dead = g.exp(y).unwrap();
        let _dead2 = g.neg(dead).unwrap();
        let upd = g.add_scalar(w, 1.0).unwrap();
        let loss = g.sum_all(y).unwrap();
        g.set_output("y", y).unwrap();
        g.set_update("w", upd).unwrap();
        g.add_grad_request(loss, vec![w]).unwrap();
        let before = g.node_count();
        let mut cx = PassCx::default();
        assert_eq!(Dce.run(&mut g, &mut cx).unwrap(), Changed::Yes);
        assert_eq!(g.node_count(), before - 2);
        assert!(g.contains(unused) && g.contains(upd) && g.contains(loss));
        assert!(!g.contains(dead));
        assert_eq!(Dce.run(&mut g, &mut cx).unwrap(), Changed::No);
    }
}
