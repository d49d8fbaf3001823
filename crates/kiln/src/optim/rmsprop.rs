//! RMSprop (optional momentum and centering), PyTorch's rule.

use kiln_ir::NodeId;

use super::{Decay, OptCx, ParamGrad, Rule};
use crate::Result;

#[derive(Debug, Clone, PartialEq)]
pub struct RmsProp {
    pub lr: f64,
    pub alpha: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub momentum: f64,
    pub centered: bool,
    pub maximize: bool,
}

impl RmsProp {
    pub fn new(lr: f64) -> RmsProp {
        RmsProp { lr, alpha: 0.99, eps: 1e-8, weight_decay: 0.0, momentum: 0.0, centered: false, maximize: false }
    }
    pub fn alpha(mut self, a: f64) -> Self {
        self.alpha = a;
        self
    }
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
    pub fn weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = wd;
        self
    }
    pub fn momentum(mut self, m: f64) -> Self {
        self.momentum = m;
        self
    }
    pub fn centered(mut self, on: bool) -> Self {
        self.centered = on;
        self
    }
}

impl Rule for RmsProp {
    fn lr(&self) -> f64 {
        self.lr
    }
    fn wd(&self) -> f64 {
        self.weight_decay
    }

    fn check(&self) -> Result<()> {
        for (what, v) in [("learning rate", self.lr), ("alpha", self.alpha), ("eps", self.eps), ("weight_decay", self.weight_decay), ("momentum", self.momentum)] {
            super::non_negative(what, v)?;
        }
        Ok(())
    }

    fn step(&self, cx: &mut OptCx<'_>, p: &ParamGrad, grad: NodeId, lr: NodeId, wd: Decay, _t: NodeId) -> Result<()> {
        let a = self.alpha;
        let g = cx.decayed_grad(p, grad, wd, self.maximize)?;
        let sa = cx.param_state(p, "square_avg", 0.0)?;
        let g2 = cx.g.mul(g, g)?;
        let sa_new = cx.axpby(a, sa, 1.0 - a, g2)?;
        cx.set_state(p, "square_avg", sa_new)?;
        let avg = if self.centered {
            let ga = cx.param_state(p, "grad_avg", 0.0)?;
            let ga_new = cx.axpby(a, ga, 1.0 - a, g)?;
            cx.set_state(p, "grad_avg", ga_new)?;
            let ga2 = cx.g.mul(ga_new, ga_new)?;
            let d = cx.g.sub(sa_new, ga2)?;
            cx.g.sqrt(d)?
        } else {
            cx.g.sqrt(sa_new)?
        };
        let avg = cx.g.add_scalar(avg, self.eps)?;
        let ratio = cx.g.div(g, avg)?;
        let delta = if self.momentum > 0.0 {
            let buf = cx.param_state(p, "momentum_buffer", 0.0)?;
            let mb = cx.g.mul_scalar(buf, self.momentum)?;
            let nb = cx.g.add(mb, ratio)?;
            cx.set_state(p, "momentum_buffer", nb)?;
            nb
        } else {
            ratio
        };
        let np = cx.descend(p.param, lr, delta)?;
        cx.set_param(p, np)
    }
}
