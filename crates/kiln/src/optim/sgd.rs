//! SGD with momentum, dampening, Nesterov and weight decay (PyTorch's rule:
//! the momentum buffer is the gradient itself at step 1).

use kiln_ir::NodeId;

use super::{Decay, non_negative, OptCx, ParamGrad, Rule};
use crate::Result;

#[derive(Debug, Clone, PartialEq)]
pub struct Sgd {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    pub maximize: bool,
}

impl Sgd {
    pub fn new(lr: f64) -> Sgd {
        Sgd { lr, momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false, maximize: false }
    }
    pub fn momentum(mut self, m: f64) -> Self {
        self.momentum = m;
        self
    }
    pub fn dampening(mut self, d: f64) -> Self {
        self.dampening = d;
        self
    }
    pub fn weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = wd;
        self
    }
    pub fn nesterov(mut self, on: bool) -> Self {
        self.nesterov = on;
        self
    }
    pub fn maximize(mut self, on: bool) -> Self {
        self.maximize = on;
        self
    }
}

impl Rule for Sgd {
    fn lr(&self) -> f64 {
        self.lr
    }
    fn wd(&self) -> f64 {
        self.weight_decay
    }

    fn check(&self) -> Result<()> {
        non_negative("learning rate", self.lr)?;
        non_negative("momentum", self.momentum)?;
        non_negative("weight_decay", self.weight_decay)?;
        if !self.dampening.is_finite() {
            return Err(crate::Error::Config(format!("optimizer: dampening must be finite, got {}", self.dampening)));
        }
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(crate::Error::Config("optimizer: nesterov momentum requires a momentum > 0 and zero dampening".into()));
        }
        Ok(())
    }

    fn step(&self, cx: &mut OptCx<'_>, p: &ParamGrad, grad: NodeId, lr: NodeId, wd: Decay, t: NodeId) -> Result<()> {
        let mut d = cx.decayed_grad(p, grad, wd, self.maximize)?;
        if self.momentum != 0.0 {
            let buf = cx.param_state(p, "momentum_buffer", 0.0)?;
            // buf_new = m * buf + f * d with f = 1 at step 1 (where buf is 0,
            // so buf_new = d) and 1 - dampening afterwards.
            let first = cx.is_first_step(t)?;
            let one = cx.g.scalar_like(1.0, t)?;
            let damp = cx.g.scalar_like(1.0 - self.dampening, t)?;
            let f = cx.g.select(first, one, damp)?;
            let mb = cx.g.mul_scalar(buf, self.momentum)?;
            let fd = cx.g.mul(d, f)?;
            let nb = cx.g.add(mb, fd)?;
            cx.set_state(p, "momentum_buffer", nb)?;
            d = if self.nesterov {
                let m = cx.g.mul_scalar(nb, self.momentum)?;
                cx.g.add(d, m)?
            } else {
                nb
            };
        }
        let np = cx.descend(p.param, lr, d)?;
        cx.set_param(p, np)
    }
}
