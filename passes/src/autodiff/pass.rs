//! The `autodiff` pass: turns the graph's `grad` requests into gradient nodes.

use kiln_ir::{Graph, NodeId, Op};

use super::emit::ir;
use super::grad;
use crate::{Changed, Pass, PassCx, PassError};

/// Resolves every `GradRequest` of the graph (`grad` lines in `.kir`) with
/// [`grad`] and names each gradient as an output: `grad.<name>` when the
/// differentiated node is a named input (data, param or state), `grad.%N`
/// otherwise. Two different gradients for one output name (e.g. the same
/// param in requests for two losses) is an error.
#[derive(Debug, Default, Clone, Copy)]
pub struct Autodiff;

/// The output name [`Autodiff`] gives the gradient with respect to `wrt`.
pub fn grad_output_name(g: &Graph, wrt: NodeId) -> String {
    match g.op(wrt) {
        Op::Input { name, .. } => format!("grad.{name}"),
        _ => format!("grad.{wrt}"),
    }
}

impl Pass for Autodiff {
    fn name(&self) -> &str {
        "autodiff"
    }

    fn run(&self, g: &mut Graph, _cx: &mut PassCx) -> Result<Changed, PassError> {
        let requests = g.take_grad_requests();
        for r in &requests {
            let grads = grad(g, r.loss, &r.wrt)?;
            for (&w, &gw) in r.wrt.iter().zip(&grads) {
                let name = grad_output_name(g, w);
                // A node listed twice in one request is asked for once.
                if g.output(&name) == Some(gw) {
                    continue;
                }
                g.set_output(&name, gw).map_err(ir)?;
            }
        }
        Ok(Changed::from_bool(!requests.is_empty()))
    }
}
