//! Optimizers as graph nodes. After autodiff has appended the gradients,
//! an optimizer appends the update of every parameter and of its own state
//! (moments, momentum buffers, the step counter) as `update`s of param and
//! state inputs, so one training step is one pure graph.
//!
//! The learning rate is the scalar state input [`LR`] (`optim.lr`): a
//! schedule changes it between runs (`Program::set_lr`) without
//! recompiling. Parameter groups with another base lr scale it by their
//! ratio to the default group's lr, as PyTorch schedulers scale every group.
//! Weight decay is a constant of the update by default (the graph of a
//! rule without decay has no decay nodes at all); `tunable_weight_decay()`
//! makes it the scalar state input [`WEIGHT_DECAY`] (`optim.weight_decay`)
//! instead, set with `Program::set_weight_decay`, so a hyper-parameter
//! search compiles one step per shape rather than one per decay. Groups
//! with another decay scale it by their ratio, as with the lr.
//! The step counter is [`STEP`] (`optim.step`, f32 like PyTorch's `step`);
//! per-parameter state is `optim.<param>.<name>` with PyTorch's state names
//! (`momentum_buffer`, `exp_avg`, `exp_avg_sq`, ...).

mod adagrad;
mod adam;
mod rmsprop;
pub mod schedule;
mod sgd;

use std::collections::BTreeMap;

use kiln_ir::{CompareOp, Graph, HostTensor, InputRole, NodeId, Shape, TensorType};

pub use adagrad::{Adadelta, Adagrad};
pub use adam::{Adam, NAdam};
pub use rmsprop::RmsProp;
pub use sgd::Sgd;

use crate::{Error, Result};

/// The learning-rate state input.
pub const LR: &str = "optim.lr";
/// The weight-decay state input (only with `tunable_weight_decay()`).
pub const WEIGHT_DECAY: &str = "optim.weight_decay";
/// The step-counter state input (number of steps taken, f32).
pub const STEP: &str = "optim.step";

/// A parameter and its gradient node in the graph being extended.
#[derive(Debug, Clone)]
pub struct ParamGrad {
    pub name: String,
    pub param: NodeId,
    pub grad: NodeId,
}

/// One parameter's weight decay as its rule's update sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decay {
    /// Baked into the update (the default); 0 adds no decay nodes.
    Const(f64),
    /// A scalar f32 node: the [`WEIGHT_DECAY`] state input, or it scaled by
    /// a parameter group's ratio. Always applied, even while its value is 0,
    /// since the value can change after compilation.
    Node(NodeId),
}

impl Decay {
    /// Whether the update needs decay nodes at all.
    pub fn is_active(self) -> bool {
        self != Decay::Const(0.0)
    }
}

/// Something that appends parameter updates to a graph.
pub trait Optimizer {
    /// Appends the updates; returns the initial values of the state inputs
    /// it created.
    fn apply(&self, g: &mut Graph, params: &[ParamGrad]) -> Result<BTreeMap<String, HostTensor>>;
    /// The base learning rate (initial value of [`LR`]).
    fn base_lr(&self) -> f64;
}

/// One optimizer's per-parameter update rule (SGD, Adam, ...).
pub trait Rule: Clone {
    fn lr(&self) -> f64;
    /// The weight decay (L2 penalty, or decoupled for AdamW-style rules).
    /// Required rather than defaulted to 0 so that a new rule cannot
    /// silently ignore `tunable_weight_decay()`.
    fn wd(&self) -> f64;
    /// Rejects settings PyTorch's constructor rejects (negative or
    /// non-finite learning rate, betas outside [0, 1), ...).
    fn check(&self) -> Result<()> {
        non_negative("learning rate", self.lr())
    }
    /// Appends the update of one parameter given its (clipped) gradient,
    /// the group's learning-rate node, its weight decay `wd` (use it, not
    /// `self.wd()`: it may be runtime state) and the 1-based step
    /// number node `t`.
    fn step(&self, cx: &mut OptCx<'_>, p: &ParamGrad, grad: NodeId, lr: NodeId, wd: Decay, t: NodeId) -> Result<()>;

    /// Settings for a named subset of parameters (PyTorch param groups).
    fn group(self, names: &[&str], settings: Self) -> Optim<Self> {
        Optim::new(self).group(names, settings)
    }
    /// Clips the global L2 norm of all gradients to `max_norm` first.
    fn clip_grad_norm(self, max_norm: f64) -> Optim<Self> {
        Optim::new(self).clip_grad_norm(max_norm)
    }
    /// Clamps every gradient element to [-v, v] first.
    fn clip_grad_value(self, v: f64) -> Optim<Self> {
        Optim::new(self).clip_grad_value(v)
    }
    /// Makes the weight decay the runtime state [`WEIGHT_DECAY`].
    fn tunable_weight_decay(self) -> Optim<Self> {
        Optim::new(self).tunable_weight_decay()
    }
}

/// A rule with parameter groups and gradient clipping.
#[derive(Debug, Clone)]
pub struct Optim<R> {
    pub default: R,
    pub groups: Vec<(Vec<String>, R)>,
    pub clip_norm: Option<f64>,
    pub clip_value: Option<f64>,
    /// The default group's weight decay is the state input [`WEIGHT_DECAY`]
    /// rather than a constant.
    pub tunable_weight_decay: bool,
}

impl<R: Rule> Optim<R> {
    pub fn new(default: R) -> Optim<R> {
        Optim { default, groups: Vec::new(), clip_norm: None, clip_value: None, tunable_weight_decay: false }
    }
    pub fn group(mut self, names: &[&str], settings: R) -> Optim<R> {
        self.groups.push((names.iter().map(|s| s.to_string()).collect(), settings));
        self
    }
    pub fn clip_grad_norm(mut self, max_norm: f64) -> Optim<R> {
        self.clip_norm = Some(max_norm);
        self
    }
    pub fn clip_grad_value(mut self, v: f64) -> Optim<R> {
        self.clip_value = Some(v);
        self
    }
    /// Makes the default group's weight decay the scalar state input
    /// [`WEIGHT_DECAY`] (initially its configured value), changed between
    /// runs with `Program::set_weight_decay` without recompiling. Off by
    /// default: the state costs one scalar multiply per parameter element
    /// even at 0, where a constant 0 adds nothing. Groups whose decay
    /// differs from the default's scale the state by their ratio; if the
    /// default's is 0 they keep constants (no ratio exists).
    pub fn tunable_weight_decay(mut self) -> Optim<R> {
        self.tunable_weight_decay = true;
        self
    }
}

impl<R: Rule> Optimizer for R {
    fn apply(&self, g: &mut Graph, params: &[ParamGrad]) -> Result<BTreeMap<String, HostTensor>> {
        Optim::new(self.clone()).apply(g, params)
    }
    fn base_lr(&self) -> f64 {
        self.lr()
    }
}

impl Optimizer for Box<dyn Optimizer> {
    fn apply(&self, g: &mut Graph, params: &[ParamGrad]) -> Result<BTreeMap<String, HostTensor>> {
        (**self).apply(g, params)
    }
    fn base_lr(&self) -> f64 {
        (**self).base_lr()
    }
}

impl<R: Rule> Optimizer for Optim<R> {
    fn base_lr(&self) -> f64 {
        self.default.lr()
    }

    fn apply(&self, g: &mut Graph, params: &[ParamGrad]) -> Result<BTreeMap<String, HostTensor>> {
        self.default.check()?;
        for (_, r) in &self.groups {
            r.check()?;
        }
        if let Some(v) = self.clip_norm {
            non_negative("clip_grad_norm max_norm", v)?;
        }
        if let Some(v) = self.clip_value {
            non_negative("clip_grad_value clip value", v)?;
        }
        for (names, _) in &self.groups {
            if let Some(n) = names.iter().find(|n| !params.iter().any(|p| &p.name == *n)) {
                return Err(Error::UnknownParam(format!("{n} (in an optimizer parameter group)")));
            }
        }
        // PyTorch: "some parameters appear in more than one parameter group".
        let mut seen = std::collections::BTreeSet::new();
        if let Some(n) = self.groups.iter().flat_map(|(names, _)| names).find(|n| !seen.insert(n.as_str())) {
            return Err(Error::Config(format!("optimizer: parameter `{n}` appears in more than one parameter group")));
        }
        let mut cx = OptCx { g, init: BTreeMap::new() };
        let lr = cx.scalar_state(LR, self.default.lr())?;
        let wd = match self.tunable_weight_decay {
            true => Some(cx.scalar_state(WEIGHT_DECAY, self.default.wd())?),
            false => None,
        };
        let step = cx.scalar_state(STEP, 0.0)?;
        let t = cx.g.add_scalar(step, 1.0)?;
        cx.g.set_update(STEP, t)?;
        let grads = clip(cx.g, params, self.clip_norm, self.clip_value)?;
        for (p, grad) in params.iter().zip(grads) {
            let rule = self.groups.iter().find(|(n, _)| n.contains(&p.name)).map(|(_, r)| r).unwrap_or(&self.default);
            let base = self.default.lr();
            let lr_p = if rule.lr() == base {
                lr
            } else if base != 0.0 {
                cx.g.mul_scalar(lr, rule.lr() / base)?
            } else {
                cx.g.scalar_f32(rule.lr() as f32)?
            };
            let base = self.default.wd();
            let wd_p = match wd {
                None => Decay::Const(rule.wd()),
                Some(wd) if rule.wd() == base => Decay::Node(wd),
                Some(wd) if base != 0.0 => Decay::Node(cx.g.mul_scalar(wd, rule.wd() / base)?),
                Some(_) => Decay::Const(rule.wd()),
            };
            rule.step(&mut cx, p, grad, lr_p, wd_p, t)?;
        }
        Ok(cx.init)
    }
}

fn clip(g: &mut Graph, params: &[ParamGrad], norm: Option<f64>, value: Option<f64>) -> Result<Vec<NodeId>> {
    let mut grads: Vec<NodeId> = params.iter().map(|p| p.grad).collect();
    if let Some(v) = value {
        for gr in &mut grads {
            let hi = g.scalar_like(v, *gr)?;
            let lo = g.scalar_like(-v, *gr)?;
            let a = g.minimum(*gr, hi)?;
            *gr = g.maximum(a, lo)?;
        }
    }
    if let Some(max_norm) = norm {
        if grads.is_empty() {
            return Ok(grads);
        }
        // PyTorch: coef = max_norm / (total_norm + 1e-6), clamped to 1.
        let mut total: Option<NodeId> = None;
        for &gr in &grads {
            let sq = g.mul(gr, gr)?;
            let s = g.sum_all(sq)?;
            total = Some(match total {
                Some(t) => g.add(t, s)?,
                None => s,
            });
        }
        let n = g.sqrt(total.expect("non-empty"))?;
        let n = g.add_scalar(n, 1e-6)?;
        let mx = g.scalar_like(max_norm, n)?;
        let coef = g.div(mx, n)?;
        let one = g.scalar_like(1.0, coef)?;
        let coef = g.minimum(coef, one)?;
        for gr in &mut grads {
            *gr = g.mul(*gr, coef)?;
        }
    }
    Ok(grads)
}

/// The graph being extended plus the initial values of new state.
pub struct OptCx<'g> {
    pub g: &'g mut Graph,
    pub init: BTreeMap<String, HostTensor>,
}

impl OptCx<'_> {
    /// A scalar f32 state input (shared by all parameters).
    pub fn scalar_state(&mut self, name: &str, init: f64) -> Result<NodeId> {
        self.state_input(name, TensorType::new(kiln_ir::DType::F32, Shape::scalar()), init)
    }

    /// Per-parameter state `optim.<param>.<leaf>` with the param's type,
    /// filled with `init`.
    pub fn param_state(&mut self, p: &ParamGrad, leaf: &str, init: f64) -> Result<NodeId> {
        let ty = self.g.ty(p.param).clone();
        self.state_input(&state_name(&p.name, leaf), ty, init)
    }

    /// Per-parameter scalar state `optim.<param>.<leaf>`.
    pub fn param_scalar_state(&mut self, p: &ParamGrad, leaf: &str, init: f64) -> Result<NodeId> {
        self.scalar_state(&state_name(&p.name, leaf), init)
    }

    fn state_input(&mut self, name: &str, ty: TensorType, init: f64) -> Result<NodeId> {
        if let Some(id) = self.g.find_input(name) {
            return Ok(id);
        }
        let id = self.g.add_input(name, InputRole::State, ty.clone())?;
        self.init.insert(name.to_string(), HostTensor::from_f64_values(&ty, &vec![init; ty.numel()]));
        Ok(id)
    }

    pub fn set_state(&mut self, p: &ParamGrad, leaf: &str, value: NodeId) -> Result<()> {
        Ok(self.g.set_update(&state_name(&p.name, leaf), value)?)
    }

    pub fn set_param(&mut self, p: &ParamGrad, value: NodeId) -> Result<()> {
        Ok(self.g.set_update(&p.name, value)?)
    }

    /// `a * x + b * y` for scalar constants a, b.
    pub fn axpby(&mut self, a: f64, x: NodeId, b: f64, y: NodeId) -> Result<NodeId> {
        let ax = self.g.mul_scalar(x, a)?;
        let by = self.g.mul_scalar(y, b)?;
        Ok(self.g.add(ax, by)?)
    }

    /// `base^t` for a constant base and the step node (as exp(t ln base)).
    pub fn pow_t(&mut self, base: f64, t: NodeId) -> Result<NodeId> {
        let e = self.g.mul_scalar(t, base.ln())?;
        Ok(self.g.exp(e)?)
    }

    /// `grad + wd * param` (coupled weight decay), and `-grad` if maximizing.
    pub fn decayed_grad(&mut self, p: &ParamGrad, grad: NodeId, wd: Decay, maximize: bool) -> Result<NodeId> {
        let mut g = if maximize { self.g.neg(grad)? } else { grad };
        if wd.is_active() {
            let d = self.scale(p.param, wd)?;
            g = self.g.add(g, d)?;
        }
        Ok(g)
    }

    /// `x * wd`: by a constant, or by the scalar decay node (broadcast).
    pub fn scale(&mut self, x: NodeId, wd: Decay) -> Result<NodeId> {
        Ok(match wd {
            Decay::Const(c) => self.g.mul_scalar(x, c)?,
            Decay::Node(n) => self.g.mul(x, n)?,
        })
    }

    /// `param - lr * delta`.
    pub fn descend(&mut self, param: NodeId, lr: NodeId, delta: NodeId) -> Result<NodeId> {
        let s = self.g.mul(delta, lr)?;
        Ok(self.g.sub(param, s)?)
    }

    /// A 0/1 scalar mask: `t == 1`.
    pub fn is_first_step(&mut self, t: NodeId) -> Result<NodeId> {
        let one = self.g.scalar_like(1.0, t)?;
        Ok(self.g.compare(CompareOp::Eq, t, one)?)
    }
}

/// `optim.<param>.<leaf>`.
pub fn state_name(param: &str, leaf: &str) -> String {
    format!("optim.{param}.{leaf}")
}

/// A hyper-parameter that must be finite and >= 0 (PyTorch's constructor
/// checks; kiln's constructors cannot fail, so `apply` runs them).
pub(crate) fn non_negative(what: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v >= 0.0) {
        return Err(Error::Config(format!("optimizer: {what} must be finite and >= 0, got {v}")));
    }
    Ok(())
}

/// A decay factor such as Adam's betas: in [0, 1).
pub(crate) fn unit(what: &str, v: f64) -> Result<()> {
    if !(0.0..1.0).contains(&v) {
        return Err(Error::Config(format!("optimizer: {what} must be in [0, 1), got {v}")));
    }
    Ok(())
}

#[cfg(test)]
mod tunable_decay_tests;
