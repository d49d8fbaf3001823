//! Adagrad (lr decay, initial accumulator) and Adadelta, PyTorch's rules.

use kiln_ir::NodeId;

use super::{Decay, OptCx, ParamGrad, Rule};
use crate::Result;

#[derive(Debug, Clone, PartialEq)]
pub struct Adagrad {
    pub lr: f64,
    pub lr_decay: f64,
    pub weight_decay: f64,
    pub initial_accumulator_value: f64,
    pub eps: f64,
    pub maximize: bool,
}

impl Adagrad {
    pub fn new(lr: f64) -> Adagrad {
        Adagrad { lr, lr_decay: 0.0, weight_decay: 0.0, initial_accumulator_value: 0.0, eps: 1e-10, maximize: false }
    }
    pub fn lr_decay(mut self, d: f64) -> Self {
        self.lr_decay = d;
        self
    }
    pub fn weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = wd;
        self
    }
    pub fn initial_accumulator_value(mut self, v: f64) -> Self {
        self.initial_accumulator_value = v;
        self
    }
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
}

impl Rule for Adagrad {
    fn lr(&self) -> f64 {
        self.lr
    }
    fn wd(&self) -> f64 {
        self.weight_decay
    }

    fn check(&self) -> Result<()> {
        let vals = [
            ("learning rate", self.lr),
            ("lr_decay", self.lr_decay),
            ("weight_decay", self.weight_decay),
            ("initial_accumulator_value", self.initial_accumulator_value),
            ("eps", self.eps),
        ];
        for (what, v) in vals {
            super::non_negative(what, v)?;
        }
        Ok(())
    }

    fn step(&self, cx: &mut OptCx<'_>, p: &ParamGrad, grad: NodeId, lr: NodeId, wd: Decay, t: NodeId) -> Result<()> {
        let g = cx.decayed_grad(p, grad, wd, self.maximize)?;
        // clr = lr / (1 + (t - 1) * lr_decay)
        let clr = if self.lr_decay == 0.0 {
            lr
        } else {
            let tm1 = cx.g.add_scalar(t, -1.0)?;
            let k = cx.g.mul_scalar(tm1, self.lr_decay)?;
            let k = cx.g.add_scalar(k, 1.0)?;
            cx.g.div(lr, k)?
        };
        let sum = cx.param_state(p, "sum", self.initial_accumulator_value)?;
        let g2 = cx.g.mul(g, g)?;
        let s_new = cx.g.add(sum, g2)?;
        cx.set_state(p, "sum", s_new)?;
        let std = cx.g.sqrt(s_new)?;
        let std = cx.g.add_scalar(std, self.eps)?;
        let r = cx.g.div(g, std)?;
        let np = cx.descend(p.param, clr, r)?;
        cx.set_param(p, np)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Adadelta {
    pub lr: f64,
    pub rho: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub maximize: bool,
}

impl Adadelta {
    pub fn new(lr: f64) -> Adadelta {
        Adadelta { lr, rho: 0.9, eps: 1e-6, weight_decay: 0.0, maximize: false }
    }
    pub fn rho(mut self, r: f64) -> Self {
        self.rho = r;
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
}

impl Rule for Adadelta {
    fn lr(&self) -> f64 {
        self.lr
    }
    fn wd(&self) -> f64 {
        self.weight_decay
    }

    fn check(&self) -> Result<()> {
        for (what, v) in [("learning rate", self.lr), ("eps", self.eps), ("weight_decay", self.weight_decay)] {
            super::non_negative(what, v)?;
        }
        if !(0.0..=1.0).contains(&self.rho) {
            return Err(crate::Error::Config(format!("optimizer: rho must be in [0, 1], got {}", self.rho)));
        }
        Ok(())
    }

    fn step(&self, cx: &mut OptCx<'_>, p: &ParamGrad, grad: NodeId, lr: NodeId, wd: Decay, _t: NodeId) -> Result<()> {
        let rho = self.rho;
        let g = cx.decayed_grad(p, grad, wd, self.maximize)?;
        let sa = cx.param_state(p, "square_avg", 0.0)?;
        let ad = cx.param_state(p, "acc_delta", 0.0)?;
        let g2 = cx.g.mul(g, g)?;
        let sa_new = cx.axpby(rho, sa, 1.0 - rho, g2)?;
        cx.set_state(p, "square_avg", sa_new)?;
        let se = cx.g.add_scalar(sa_new, self.eps)?;
        let std = cx.g.sqrt(se)?;
        let ae = cx.g.add_scalar(ad, self.eps)?;
        let num = cx.g.sqrt(ae)?;
        let q = cx.g.div(num, std)?;
        let delta = cx.g.mul(q, g)?;
        let d2 = cx.g.mul(delta, delta)?;
        let ad_new = cx.axpby(rho, ad, 1.0 - rho, d2)?;
        cx.set_state(p, "acc_delta", ad_new)?;
        let np = cx.descend(p.param, lr, delta)?;
        cx.set_param(p, np)
    }
}
