//! Losses and regularization terms, built from primitive ops so that every
//! one is differentiable by autodiff. Formulas follow PyTorch's
//! (`torch.nn.functional`), including its edge conventions: BCE clamps the
//! log at -100, BCE-with-logits uses the stable log-sigmoid, cross-entropy
//! with class weights and mean reduction divides by the sum of the targets'
//! weights.

use kiln_ir::{CompareOp, DType, Graph, HostTensor, NodeId};

use crate::nn::log_softmax;
use crate::{Error, Result};

/// How per-element losses are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reduction {
    #[default]
    Mean,
    Sum,
    None,
}

/// Applies a reduction to per-element losses.
pub fn reduce(g: &mut Graph, x: NodeId, r: Reduction) -> Result<NodeId> {
    Ok(match r {
        Reduction::Mean => g.mean_all(x)?,
        Reduction::Sum => g.sum_all(x)?,
        Reduction::None => x,
    })
}

fn same_shape(g: &Graph, what: &str, a: NodeId, b: NodeId) -> Result<()> {
    if g.node(a)?.ty != g.node(b)?.ty {
        return Err(Error::Config(format!("{what}({a}: {}, {b}: {}): input and target must have one type", g.ty(a), g.ty(b))));
    }
    Ok(())
}

fn diff(g: &mut Graph, what: &str, input: NodeId, target: NodeId) -> Result<NodeId> {
    same_shape(g, what, input, target)?;
    Ok(g.sub(input, target)?)
}

/// Mean squared error.
pub fn mse(g: &mut Graph, input: NodeId, target: NodeId, r: Reduction) -> Result<NodeId> {
    let d = diff(g, "mse", input, target)?;
    let d2 = g.mul(d, d)?;
    reduce(g, d2, r)
}

/// Mean absolute error.
pub fn l1(g: &mut Graph, input: NodeId, target: NodeId, r: Reduction) -> Result<NodeId> {
    let d = diff(g, "l1", input, target)?;
    let a = g.abs(d)?;
    reduce(g, a, r)
}

/// 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (beta = 0 is L1).
pub fn smooth_l1(g: &mut Graph, input: NodeId, target: NodeId, beta: f64, r: Reduction) -> Result<NodeId> {
    if !(beta.is_finite() && beta >= 0.0) {
        return Err(Error::Config(format!("smooth_l1: beta must be finite and >= 0, got {beta}")));
    }
    if beta == 0.0 {
        return l1(g, input, target, r);
    }
    let d = diff(g, "smooth_l1", input, target)?;
    let a = g.abs(d)?;
    let bt = g.scalar_like(beta, d)?;
    let small = g.compare(CompareOp::Lt, a, bt)?;
    let d2 = g.mul(d, d)?;
    let q = g.mul_scalar(d2, 0.5 / beta)?;
    let lin = g.add_scalar(a, -0.5 * beta)?;
    let l = g.select(small, q, lin)?;
    reduce(g, l, r)
}

/// 0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta).
pub fn huber(g: &mut Graph, input: NodeId, target: NodeId, delta: f64, r: Reduction) -> Result<NodeId> {
    if !(delta.is_finite() && delta > 0.0) {
        return Err(Error::Config(format!("huber: delta must be finite and > 0, got {delta}")));
    }
    let d = diff(g, "huber", input, target)?;
    let a = g.abs(d)?;
    let dt = g.scalar_like(delta, d)?;
    let small = g.compare(CompareOp::Lt, a, dt)?;
    let d2 = g.mul(d, d)?;
    let q = g.mul_scalar(d2, 0.5)?;
    let lin = g.add_scalar(a, -0.5 * delta)?;
    let lin = g.mul_scalar(lin, delta)?;
    let l = g.select(small, q, lin)?;
    reduce(g, l, r)
}

/// log(cosh(d)), as |d| + log(1 + exp(-2|d|)) - log 2 so large |d| cannot
/// overflow; its gradient is tanh(d).
pub fn log_cosh(g: &mut Graph, input: NodeId, target: NodeId, r: Reduction) -> Result<NodeId> {
    let d = diff(g, "log_cosh", input, target)?;
    let a = g.abs(d)?;
    let m = g.mul_scalar(a, -2.0)?;
    let e = g.exp(m)?;
    let e1 = g.add_scalar(e, 1.0)?;
    let l = g.log(e1)?;
    let s = g.add(a, l)?;
    let v = g.add_scalar(s, -std::f64::consts::LN_2)?;
    reduce(g, v, r)
}

/// Options of [`cross_entropy`] and [`nll`].
#[derive(Debug, Clone, Default)]
pub struct CrossEntropyOptions {
    pub reduction: Reduction,
    pub label_smoothing: f64,
    /// Per-class weights (length C).
    pub weight: Option<Vec<f64>>,
    /// Samples with this label contribute nothing (PyTorch's default is
    /// -100; `None` skips the masking, for speed).
    pub ignore_index: Option<i64>,
}

impl CrossEntropyOptions {
    pub fn sum(mut self) -> Self {
        self.reduction = Reduction::Sum;
        self
    }
    pub fn label_smoothing(mut self, eps: f64) -> Self {
        self.label_smoothing = eps;
        self
    }
    pub fn weight(mut self, w: Vec<f64>) -> Self {
        self.weight = Some(w);
        self
    }
    pub fn ignore_index(mut self, i: i64) -> Self {
        self.ignore_index = Some(i);
        self
    }
}

impl CrossEntropyOptions {
    /// PyTorch's checks: smoothing in [0, 1], finite class weights.
    fn check(&self, what: &str) -> Result<()> {
        let eps = self.label_smoothing;
        if !(0.0..=1.0).contains(&eps) {
            return Err(Error::Config(format!("{what}: label_smoothing must be in [0, 1], got {eps}")));
        }
        if let Some(w) = &self.weight
            && let Some(bad) = w.iter().find(|v| !v.is_finite())
        {
            return Err(Error::Config(format!("{what}: class weight {bad} is not finite")));
        }
        Ok(())
    }
}

fn check_class_input(g: &Graph, what: &str, x: NodeId, labels: NodeId) -> Result<usize> {
    let (xt, lt) = (&g.node(x)?.ty, &g.node(labels)?.ty);
    if xt.shape.rank() != 2 || !lt.dtype.is_int() || lt.shape.0 != [xt.shape.0[0]] {
        return Err(Error::Config(format!("{what}({x}: {xt}, {labels}: {lt}): expected [N, C] scores and integer labels [N]")));
    }
    Ok(xt.shape.0[1])
}

fn one_hot_like(g: &mut Graph, labels: NodeId, classes: usize, like: NodeId) -> Result<NodeId> {
    let oh = g.one_hot(labels, classes)?;
    let dt = g.ty(like).dtype;
    Ok(if dt == DType::F32 { oh } else { g.cast(oh, dt)? })
}

fn class_weights(g: &mut Graph, w: &[f64], classes: usize, like: NodeId) -> Result<NodeId> {
    if w.len() != classes {
        return Err(Error::Config(format!("class weights have {} entries for {classes} classes", w.len())));
    }
    let dt = g.ty(like).dtype;
    let t = HostTensor::from_f64_values(&kiln_ir::TensorType::new(dt, [classes]), w);
    Ok(g.constant(t)?)
}

/// Negative log-likelihood of log-probabilities `logp` `[N, C]` at integer
/// `labels` `[N]`, with optional label smoothing and class weights (PyTorch's
/// exact formulas: `(1-eps) w[t] (-logp[t]) + eps/C sum_c w[c] (-logp[c])`,
/// mean divides by `sum_i w[t_i]`).
pub fn nll(g: &mut Graph, logp: NodeId, labels: NodeId, opts: &CrossEntropyOptions) -> Result<NodeId> {
    opts.check("nll")?;
    let c = check_class_input(g, "nll", logp, labels)?;
    // Ignored samples look up class 0 and are masked out afterwards.
    let (labels, keep) = match opts.ignore_index {
        Some(ii) => {
            let iv = g.scalar_like(ii as f64, labels)?;
            let keep = g.compare(CompareOp::Ne, labels, iv)?;
            let zero = g.scalar_like(0.0, labels)?;
            let safe = g.select(keep, labels, zero)?;
            let dt = g.ty(logp).dtype;
            (safe, Some(g.cast(keep, dt)?))
        }
        None => (labels, None),
    };
    let oh = one_hot_like(g, labels, c, logp)?;
    let neg = g.neg(logp)?;
    let w = match &opts.weight {
        Some(w) => Some(class_weights(g, w, c, logp)?),
        None => None,
    };
    // Per-sample weight w[t_i] (1 without weights).
    let (mut picked_w, wneg) = match w {
        Some(w) => {
            let pw = g.mul(oh, w)?;
            (Some(g.sum(pw, &[1], false)?), g.mul(neg, w)?)
        }
        None => (None, neg),
    };
    let hit = g.mul(oh, wneg)?;
    let mut per = g.sum(hit, &[1], false)?;
    let eps = opts.label_smoothing;
    if eps > 0.0 {
        let main = g.mul_scalar(per, 1.0 - eps)?;
        let all = g.sum(wneg, &[1], false)?;
        let smooth = g.mul_scalar(all, eps / c as f64)?;
        per = g.add(main, smooth)?;
    }
    if let Some(k) = keep {
        per = g.mul(per, k)?;
        picked_w = Some(match picked_w {
            Some(pw) => g.mul(pw, k)?,
            None => k,
        });
    }
    match (opts.reduction, picked_w) {
        // Mean divides by the total weight of the counted samples.
        (Reduction::Mean, Some(pw)) => {
            let num = g.sum_all(per)?;
            let den = g.sum_all(pw)?;
            Ok(g.div(num, den)?)
        }
        (r, _) => reduce(g, per, r),
    }
}

/// Cross-entropy from logits `[N, C]` and integer labels `[N]` (a stable
/// log-softmax followed by [`nll`]).
///
/// Float `labels` of the logits' shape `[N, C]` are class probabilities
/// instead (PyTorch's probability targets): see [`cross_entropy_probs`].
pub fn cross_entropy(g: &mut Graph, logits: NodeId, labels: NodeId, opts: &CrossEntropyOptions) -> Result<NodeId> {
    opts.check("cross_entropy")?;
    if g.node(labels)?.ty.dtype.is_float() {
        return cross_entropy_probs(g, logits, labels, opts);
    }
    check_class_input(g, "cross_entropy", logits, labels)?;
    let lp = log_softmax(g, logits, 1)?;
    nll(g, lp, labels, opts)
}

/// Cross-entropy from logits `[N, C]` and class-probability targets
/// `[N, C]` (PyTorch's `CrossEntropyLoss` with float targets):
/// `loss_i = -sum_c w[c] t'[i,c] log_softmax(x)[i,c]` with the smoothed
/// targets `t' = (1 - eps) t + eps / C`; mean reduction divides by N
/// (class weights do not enter the divisor). `ignore_index` does not
/// apply to probability targets.
pub fn cross_entropy_probs(g: &mut Graph, logits: NodeId, target: NodeId, opts: &CrossEntropyOptions) -> Result<NodeId> {
    opts.check("cross_entropy")?;
    let (xt, tt) = (&g.node(logits)?.ty, &g.node(target)?.ty);
    if xt.shape.rank() != 2 || xt != tt {
        return Err(Error::Config(format!(
            "cross_entropy({logits}: {xt}, {target}: {tt}): expected [N, C] scores and integer labels [N] or class probabilities [N, C] of the scores' type"
        )));
    }
    let c = xt.shape.0[1];
    let lp = log_softmax(g, logits, 1)?;
    let eps = opts.label_smoothing;
    let t = if eps > 0.0 {
        let a = g.mul_scalar(target, 1.0 - eps)?;
        g.add_scalar(a, eps / c as f64)?
    } else {
        target
    };
    let mut prod = g.mul(t, lp)?;
    if let Some(w) = &opts.weight {
        let w = class_weights(g, w, c, logits)?;
        prod = g.mul(prod, w)?;
    }
    let s = g.sum(prod, &[1], false)?;
    let per = g.neg(s)?;
    reduce(g, per, opts.reduction)
}

/// Mean cross-entropy with default options.
pub fn cross_entropy_mean(g: &mut Graph, logits: NodeId, labels: NodeId) -> Result<NodeId> {
    cross_entropy(g, logits, labels, &CrossEntropyOptions::default())
}

/// Binary cross-entropy on probabilities; each log is clamped at -100.
pub fn bce(g: &mut Graph, p: NodeId, target: NodeId, r: Reduction) -> Result<NodeId> {
    same_shape(g, "bce", p, target)?;
    let floor = g.scalar_like(-100.0, p)?;
    let lp = g.log(p)?;
    let lp = g.maximum(lp, floor)?;
    let one = g.scalar_like(1.0, p)?;
    let q = g.sub(one, p)?;
    let lq = g.log(q)?;
    let lq = g.maximum(lq, floor)?;
    let a = g.mul(target, lp)?;
    let omt = g.sub(one, target)?;
    let b = g.mul(omt, lq)?;
    let s = g.add(a, b)?;
    let l = g.neg(s)?;
    reduce(g, l, r)
}

/// Binary cross-entropy on logits, stable for any magnitude:
/// `(1-t) x + (1 + (pw-1) t) softplus(-x)`; `pos_weight` broadcasts along
/// the last dim.
pub fn bce_with_logits(g: &mut Graph, x: NodeId, target: NodeId, pos_weight: Option<&[f64]>, r: Reduction) -> Result<NodeId> {
    same_shape(g, "bce_with_logits", x, target)?;
    let nx = g.neg(x)?;
    // softplus(-x) = max(-x, 0) + log(1 + exp(-|x|))
    let z = g.scalar_like(0.0, x)?;
    let relu_nx = g.maximum(nx, z)?;
    let ax = g.abs(x)?;
    let nax = g.neg(ax)?;
    let e = g.exp(nax)?;
    let e1 = g.add_scalar(e, 1.0)?;
    let lg = g.log(e1)?;
    let sp = g.add(relu_nx, lg)?;
    let one = g.scalar_like(1.0, x)?;
    let omt = g.sub(one, target)?;
    let lin = g.mul(omt, x)?;
    let weighted = match pos_weight {
        Some(pw) => {
            let last = *g.ty(x).shape.0.last().unwrap_or(&1);
            let pwn = class_weights(g, pw, last, x)?;
            let pm1 = g.add_scalar(pwn, -1.0)?;
            let t = g.mul(pm1, target)?;
            let lw = g.add_scalar(t, 1.0)?;
            g.mul(lw, sp)?
        }
        None => sp,
    };
    let l = g.add(lin, weighted)?;
    reduce(g, l, r)
}

/// BCE (on probabilities, or on logits when `logits`) with a per-element
/// weight `weight` broadcast against the input, as PyTorch's `weight=`
/// argument: each element's loss is multiplied before the reduction.
pub fn bce_weighted(g: &mut Graph, x: NodeId, target: NodeId, weight: NodeId, logits: bool, r: Reduction) -> Result<NodeId> {
    let per = if logits { bce_with_logits(g, x, target, None, Reduction::None)? } else { bce(g, x, target, Reduction::None)? };
    let w = g.mul(per, weight)?;
    reduce(g, w, r)
}

/// `coeff * sum |p|` over the given parameters.
pub fn l1_penalty(g: &mut Graph, params: &[NodeId], coeff: f64) -> Result<NodeId> {
    penalty(g, params, |g, p| Ok(g.abs(p)?), coeff)
}

/// `coeff * sum p^2` over the given parameters (its gradient is
/// `2 coeff p`: SGD weight decay wd equals coeff = wd / 2).
pub fn l2_penalty(g: &mut Graph, params: &[NodeId], coeff: f64) -> Result<NodeId> {
    penalty(g, params, |g, p| Ok(g.mul(p, p)?), coeff)
}

/// Elastic net: `l1 * sum |p| + l2 * sum p^2`.
pub fn elastic_net(g: &mut Graph, params: &[NodeId], l1: f64, l2: f64) -> Result<NodeId> {
    let a = l1_penalty(g, params, l1)?;
    let b = l2_penalty(g, params, l2)?;
    Ok(g.add(a, b)?)
}

fn penalty(g: &mut Graph, params: &[NodeId], f: impl Fn(&mut Graph, NodeId) -> Result<NodeId>, coeff: f64) -> Result<NodeId> {
    if params.is_empty() {
        return Err(Error::Config("a penalty needs at least one parameter".into()));
    }
    let mut total: Option<NodeId> = None;
    for &p in params {
        let v = f(g, p)?;
        let s = g.sum_all(v)?;
        total = Some(match total {
            Some(t) => g.add(t, s)?,
            None => s,
        });
    }
    Ok(g.mul_scalar(total.expect("non-empty"), coeff)?)
}

/// The graph's param inputs with these names (for penalties); an unknown
/// name is an error.
pub fn params_named(g: &Graph, names: &[&str]) -> Result<Vec<NodeId>> {
    names.iter().map(|n| g.find_input(n).ok_or_else(|| Error::UnknownParam(n.to_string()))).collect()
}
