//! Adam (and AdamW via decoupled weight decay, AMSGrad) and NAdam, with
//! PyTorch's bias corrections.

use kiln_ir::NodeId;

use super::{Decay, non_negative, unit, OptCx, ParamGrad, Rule};
use crate::Result;

#[derive(Debug, Clone, PartialEq)]
pub struct Adam {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    pub amsgrad: bool,
    /// AdamW: scale the parameter by 1 - lr*wd instead of adding wd*p to the gradient.
    pub decoupled_weight_decay: bool,
    pub maximize: bool,
}

impl Adam {
    pub fn new(lr: f64) -> Adam {
        Adam { lr, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.0, amsgrad: false, decoupled_weight_decay: false, maximize: false }
    }
    /// AdamW with PyTorch's default weight decay 1e-2.
    pub fn adamw(lr: f64) -> Adam {
        Adam { weight_decay: 1e-2, decoupled_weight_decay: true, ..Adam::new(lr) }
    }
    pub fn betas(mut self, b1: f64, b2: f64) -> Self {
        self.betas = (b1, b2);
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
    pub fn amsgrad(mut self, on: bool) -> Self {
        self.amsgrad = on;
        self
    }
    pub fn decoupled(mut self, on: bool) -> Self {
        self.decoupled_weight_decay = on;
        self
    }
    pub fn maximize(mut self, on: bool) -> Self {
        self.maximize = on;
        self
    }
}

/// PyTorch's checks of the settings Adam and NAdam share.
fn check_adam(lr: f64, betas: (f64, f64), eps: f64, weight_decay: f64) -> Result<()> {
    non_negative("learning rate", lr)?;
    unit("beta1", betas.0)?;
    unit("beta2", betas.1)?;
    non_negative("eps", eps)?;
    non_negative("weight_decay", weight_decay)
}

/// Moment updates shared by Adam and NAdam: returns (exp_avg, exp_avg_sq).
fn moments(cx: &mut OptCx<'_>, p: &ParamGrad, g: NodeId, b1: f64, b2: f64) -> Result<(NodeId, NodeId)> {
    let m = cx.param_state(p, "exp_avg", 0.0)?;
    let v = cx.param_state(p, "exp_avg_sq", 0.0)?;
    let m_new = cx.axpby(b1, m, 1.0 - b1, g)?;
    let g2 = cx.g.mul(g, g)?;
    let v_new = cx.axpby(b2, v, 1.0 - b2, g2)?;
    cx.set_state(p, "exp_avg", m_new)?;
    cx.set_state(p, "exp_avg_sq", v_new)?;
    Ok((m_new, v_new))
}

/// p * (1 - lr * wd) for decoupled weight decay.
fn decay_param(cx: &mut OptCx<'_>, param: NodeId, lr: NodeId, wd: Decay) -> Result<NodeId> {
    let lw = cx.scale(lr, wd)?;
    let one = cx.g.scalar_like(1.0, lw)?;
    let f = cx.g.sub(one, lw)?;
    Ok(cx.g.mul(param, f)?)
}

/// 1 - base^t.
fn bias_correction(cx: &mut OptCx<'_>, base: f64, t: NodeId) -> Result<NodeId> {
    let p = cx.pow_t(base, t)?;
    let one = cx.g.scalar_like(1.0, p)?;
    Ok(cx.g.sub(one, p)?)
}

impl Rule for Adam {
    fn lr(&self) -> f64 {
        self.lr
    }
    fn wd(&self) -> f64 {
        self.weight_decay
    }

    fn check(&self) -> Result<()> {
        check_adam(self.lr, self.betas, self.eps, self.weight_decay)
    }

    fn step(&self, cx: &mut OptCx<'_>, p: &ParamGrad, grad: NodeId, lr: NodeId, wd: Decay, t: NodeId) -> Result<()> {
        let (b1, b2) = self.betas;
        let mut param = p.param;
        let coupled = if self.decoupled_weight_decay { Decay::Const(0.0) } else { wd };
        if self.decoupled_weight_decay && wd.is_active() {
            param = decay_param(cx, param, lr, wd)?;
        }
        let g = cx.decayed_grad(p, grad, coupled, self.maximize)?;
        let (m, mut v) = moments(cx, p, g, b1, b2)?;
        if self.amsgrad {
            let vmax = cx.param_state(p, "max_exp_avg_sq", 0.0)?;
            v = cx.g.maximum(vmax, v)?;
            cx.set_state(p, "max_exp_avg_sq", v)?;
        }
        let bc1 = bias_correction(cx, b1, t)?;
        let bc2 = bias_correction(cx, b2, t)?;
        // denom = sqrt(v) / sqrt(bc2) + eps; p -= (lr / bc1) * m / denom
        let sv = cx.g.sqrt(v)?;
        let sb = cx.g.sqrt(bc2)?;
        let d = cx.g.div(sv, sb)?;
        let denom = cx.g.add_scalar(d, self.eps)?;
        let step_size = cx.g.div(lr, bc1)?;
        let upd = cx.g.div(m, denom)?;
        let np = cx.descend(param, step_size, upd)?;
        cx.set_param(p, np)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NAdam {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    pub momentum_decay: f64,
    pub decoupled_weight_decay: bool,
    pub maximize: bool,
}

impl NAdam {
    pub fn new(lr: f64) -> NAdam {
        NAdam {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            momentum_decay: 4e-3,
            decoupled_weight_decay: false,
            maximize: false,
        }
    }
    pub fn betas(mut self, b1: f64, b2: f64) -> Self {
        self.betas = (b1, b2);
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
    pub fn momentum_decay(mut self, md: f64) -> Self {
        self.momentum_decay = md;
        self
    }
    pub fn decoupled(mut self, on: bool) -> Self {
        self.decoupled_weight_decay = on;
        self
    }
}

impl Rule for NAdam {
    fn lr(&self) -> f64 {
        self.lr
    }
    fn wd(&self) -> f64 {
        self.weight_decay
    }

    fn check(&self) -> Result<()> {
        check_adam(self.lr, self.betas, self.eps, self.weight_decay)?;
        non_negative("momentum_decay", self.momentum_decay)
    }

    fn step(&self, cx: &mut OptCx<'_>, p: &ParamGrad, grad: NodeId, lr: NodeId, wd: Decay, t: NodeId) -> Result<()> {
        let (b1, b2) = self.betas;
        let mut param = p.param;
        let coupled = if self.decoupled_weight_decay { Decay::Const(0.0) } else { wd };
        if self.decoupled_weight_decay && wd.is_active() {
            param = decay_param(cx, param, lr, wd)?;
        }
        let g = cx.decayed_grad(p, grad, coupled, self.maximize)?;
        // mu_t = b1 (1 - 0.5 * 0.96^(t * md)), mu_{t+1} likewise.
        let mu_at = |cx: &mut OptCx<'_>, tt: NodeId| -> Result<NodeId> {
            let e = cx.g.mul_scalar(tt, self.momentum_decay)?;
            let pw = cx.pow_t(0.96, e)?;
            let h = cx.g.mul_scalar(pw, -0.5)?;
            let h = cx.g.add_scalar(h, 1.0)?;
            Ok(cx.g.mul_scalar(h, b1)?)
        };
        let mu = mu_at(cx, t)?;
        let t1 = cx.g.add_scalar(t, 1.0)?;
        let mu_next = mu_at(cx, t1)?;
        let mp = cx.param_scalar_state(p, "mu_product", 1.0)?;
        let mp_new = cx.g.mul(mp, mu)?;
        cx.set_state(p, "mu_product", mp_new)?;
        let (m, v) = moments(cx, p, g, b1, b2)?;
        let bc2 = bias_correction(cx, b2, t)?;
        let vb = cx.g.div(v, bc2)?;
        let sv = cx.g.sqrt(vb)?;
        let denom = cx.g.add_scalar(sv, self.eps)?;
        // p -= lr (1 - mu) / (1 - mu_prod) * g / denom
        let one = cx.g.scalar_like(1.0, mu)?;
        let a = cx.g.sub(one, mu)?;
        let b = cx.g.sub(one, mp_new)?;
        let c1 = cx.g.div(a, b)?;
        let c1 = cx.g.mul(c1, lr)?;
        // p -= lr mu_next / (1 - mu_prod * mu_next) * m / denom
        let mpn = cx.g.mul(mp_new, mu_next)?;
        let b2n = cx.g.sub(one, mpn)?;
        let c2 = cx.g.div(mu_next, b2n)?;
        let c2 = cx.g.mul(c2, lr)?;
        let gd = cx.g.div(g, denom)?;
        let md = cx.g.div(m, denom)?;
        let p1 = cx.descend(param, c1, gd)?;
        let np = cx.descend(p1, c2, md)?;
        cx.set_param(p, np)
    }
}
