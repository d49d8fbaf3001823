//! Normalization: BatchNorm (1d/2d, train and eval) and LayerNorm.

use kiln_ir::{DType, Graph, HostTensor, InputRole, NodeId, Shape, TensorType};

use super::{expect_rank, pname, Module};
use crate::init::Init;
use crate::{Builder, Error, Mode, ParamStore, Result};

#[derive(Debug, Clone)]
pub struct BatchNormConfig {
    pub num_features: usize,
    pub eps: f64,
    /// `None`: cumulative moving average (PyTorch `momentum=None`).
    pub momentum: Option<f64>,
    pub affine: bool,
    /// `false`: no running statistics; batch statistics in both modes.
    pub track_running_stats: bool,
    /// Input ranks accepted: [2, 3] for BatchNorm1d, [4] for BatchNorm2d.
    ranks: Vec<usize>,
}

impl BatchNormConfig {
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
    pub fn momentum(mut self, m: f64) -> Self {
        self.momentum = Some(m);
        self
    }
    /// Running statistics as the plain average over all batches seen.
    pub fn cumulative_average(mut self) -> Self {
        self.momentum = None;
        self
    }
    pub fn track_running_stats(mut self, on: bool) -> Self {
        self.track_running_stats = on;
        self
    }
    pub fn affine(mut self, on: bool) -> Self {
        self.affine = on;
        self
    }
    /// Registers `weight` (ones) and `bias` (zeros) when affine, and the
    /// buffers `running_mean` (zeros), `running_var` (ones) and
    /// `num_batches_tracked` (i64 0), PyTorch's names.
    pub fn build(self, store: &mut ParamStore, name: &str) -> Result<BatchNorm> {
        let c = self.num_features;
        if self.affine {
            store.register(&pname(name, "weight"), InputRole::Param, [c], Init::Ones)?;
            store.register(&pname(name, "bias"), InputRole::Param, [c], Init::Zeros)?;
        }
        if self.track_running_stats {
            store.register(&pname(name, "running_mean"), InputRole::State, [c], Init::Zeros)?;
            store.register(&pname(name, "running_var"), InputRole::State, [c], Init::Ones)?;
            store.register_value(&pname(name, "num_batches_tracked"), InputRole::State, HostTensor::scalar_i64(0))?;
        }
        Ok(BatchNorm { name: name.to_string(), cfg: self })
    }
}

/// Batch normalization over dim 1. Train mode normalizes with the batch's
/// biased variance and updates the running statistics (with the unbiased
/// variance) as `update`s of their state inputs; eval mode uses them.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    pub name: String,
    pub cfg: BatchNormConfig,
}

impl BatchNorm {
    /// BatchNorm1d: input [N, C] or [N, C, L].
    pub fn config1d(num_features: usize) -> BatchNormConfig {
        BatchNormConfig { num_features, eps: 1e-5, momentum: Some(0.1), affine: true, track_running_stats: true, ranks: vec![2, 3] }
    }
    /// BatchNorm2d: input [N, C, H, W].
    pub fn config2d(num_features: usize) -> BatchNormConfig {
        BatchNormConfig { num_features, eps: 1e-5, momentum: Some(0.1), affine: true, track_running_stats: true, ranks: vec![4] }
    }
    pub fn new1d(store: &mut ParamStore, name: &str, num_features: usize) -> Result<BatchNorm> {
        Self::config1d(num_features).build(store, name)
    }
    pub fn new2d(store: &mut ParamStore, name: &str, num_features: usize) -> Result<BatchNorm> {
        Self::config2d(num_features).build(store, name)
    }
}

impl Module for BatchNorm {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        let c = self.cfg.num_features;
        expect_rank(cx, &format!("batch_norm `{}`", self.name), x, &self.cfg.ranks, Some((1, c)))?;
        let n = &self.name;
        let (w, b) = if self.cfg.affine {
            (Some(cx.param(&pname(n, "weight"), [c])?), Some(cx.param(&pname(n, "bias"), [c])?))
        } else {
            (None, None)
        };
        if !self.cfg.track_running_stats {
            return Ok(normalize(cx, x, None, w, b, self.cfg.eps)?.y);
        }
        let f32c = TensorType::new(DType::F32, [c]);
        let rm = cx.buffer(&pname(n, "running_mean"), f32c.clone())?;
        let rv = cx.buffer(&pname(n, "running_var"), f32c)?;
        if cx.mode() == Mode::Eval {
            return Ok(normalize(cx, x, Some((rm, rv)), w, b, self.cfg.eps)?.y);
        }
        let nbt = cx.buffer(&pname(n, "num_batches_tracked"), TensorType::new(DType::I64, Shape::scalar()))?;
        let nbt1 = cx.add_scalar(nbt, 1.0)?;
        let factor = match self.cfg.momentum {
            Some(m) => Factor::Fixed(m),
            None => {
                let k = cx.cast(nbt1, DType::F32)?;
                Factor::Node(cx.recip(k)?)
            }
        };
        let out = normalize(cx, x, None, w, b, self.cfg.eps)?;
        let (new_mean, new_var) = out.batch.expect("train mode has batch statistics");
        let upd = |cx: &mut Builder, old: NodeId, new: NodeId| -> Result<NodeId> {
            // (1 - f) old + f new = old + f (new - old)
            let d = cx.sub(new, old)?;
            let fd = match factor {
                Factor::Fixed(m) => cx.mul_scalar(d, m)?,
                Factor::Node(f) => cx.mul(d, f)?,
            };
            Ok(cx.add(old, fd)?)
        };
        let m = upd(cx, rm, new_mean)?;
        let v = upd(cx, rv, new_var)?;
        // Updates are declared last, so a shape error above leaves none behind.
        cx.set_update(&pname(n, "num_batches_tracked"), nbt1)?;
        cx.set_update(&pname(n, "running_mean"), m)?;
        cx.set_update(&pname(n, "running_var"), v)?;
        Ok(out.y)
    }
}

#[derive(Debug, Clone, Copy)]
enum Factor {
    Fixed(f64),
    Node(NodeId),
}

struct Normalized {
    y: NodeId,
    /// Batch mean and unbiased batch variance, `[C]`, gradient-stopped.
    batch: Option<(NodeId, NodeId)>,
}

/// Normalizes over every dim but 1 with the given running statistics, or
/// with the batch's (biased) statistics when `running` is `None`.
fn normalize(
    g: &mut Graph,
    x: NodeId,
    running: Option<(NodeId, NodeId)>,
    weight: Option<NodeId>,
    bias: Option<NodeId>,
    eps: f64,
) -> Result<Normalized> {
    let s = super::shape_of(g, x)?;
    if s.rank() < 2 {
        return Err(Error::Config(format!("batch_norm({x}: {}): needs [N, C, ...]", g.ty(x))));
    }
    let c = s.0[1];
    let axes: Vec<usize> = std::iter::once(0).chain(2..s.rank()).collect();
    let count: usize = axes.iter().map(|&a| s.0[a]).product();
    let mut bshape = vec![c];
    bshape.extend(std::iter::repeat_n(1, s.rank() - 2));
    let (mean, var, batch) = match running {
        // PyTorch's check: batch statistics of one value (or none) are no
        // statistics; the variance would be 0 or NaN.
        None if count <= 1 => {
            return Err(Error::Config(format!(
                "batch_norm({x}: {}): expected more than 1 value per channel when training, got {count}",
                g.ty(x)
            )));
        }
        None => {
            let mean = g.mean(x, &axes, true)?;
            let d = g.sub(x, mean)?;
            let d2 = g.mul(d, d)?;
            let var = g.mean(d2, &axes, true)?;
            let m_flat = g.reshape(mean, [c])?;
            let m_flat = g.stop_gradient(m_flat)?;
            let v_flat = g.reshape(var, [c])?;
            let v_flat = g.stop_gradient(v_flat)?;
            let unbias = count as f64 / (count - 1) as f64;
            let v_unb = g.mul_scalar(v_flat, unbias)?;
            (mean, var, Some((m_flat, v_unb)))
        }
        Some((rm, rv)) => (g.reshape(rm, bshape.clone())?, g.reshape(rv, bshape.clone())?, None),
    };
    let d = g.sub(x, mean)?;
    let ve = g.add_scalar(var, eps)?;
    let inv = g.rsqrt(ve)?;
    let mut y = g.mul(d, inv)?;
    if let Some(w) = weight {
        let w = g.reshape(w, bshape.clone())?;
        y = g.mul(y, w)?;
    }
    if let Some(b) = bias {
        let b = g.reshape(b, bshape)?;
        y = g.add(y, b)?;
    }
    Ok(Normalized { y, batch })
}

/// What [`batch_norm`] produced: the output and, in train mode, the new
/// running mean and variance.
pub struct BatchNormOut {
    pub y: NodeId,
    pub running: Option<(NodeId, NodeId)>,
}

/// Functional batch norm over dim 1 of `x` (`[N, C, ...]`): train mode
/// normalizes with the batch statistics and returns the new running mean
/// and variance (`(1 - momentum) * old + momentum * batch`, unbiased batch
/// variance); eval mode uses the running statistics.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm(
    g: &mut Graph,
    x: NodeId,
    running_mean: NodeId,
    running_var: NodeId,
    weight: Option<NodeId>,
    bias: Option<NodeId>,
    mode: Mode,
    eps: f64,
    momentum: f64,
) -> Result<BatchNormOut> {
    if mode == Mode::Eval {
        let y = normalize(g, x, Some((running_mean, running_var)), weight, bias, eps)?.y;
        return Ok(BatchNormOut { y, running: None });
    }
    let out = normalize(g, x, None, weight, bias, eps)?;
    let (bm, bv) = out.batch.expect("batch statistics in train mode");
    let a = g.mul_scalar(running_mean, 1.0 - momentum)?;
    let b = g.mul_scalar(bm, momentum)?;
    let new_mean = g.add(a, b)?;
    let a = g.mul_scalar(running_var, 1.0 - momentum)?;
    let b = g.mul_scalar(bv, momentum)?;
    let new_var = g.add(a, b)?;
    Ok(BatchNormOut { y: out.y, running: Some((new_mean, new_var)) })
}

/// Layer normalization over the trailing `normalized_shape` dims with the
/// biased variance; weight (ones) and bias (zeros) of that shape.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub name: String,
    pub normalized_shape: Vec<usize>,
    pub eps: f64,
    pub affine: bool,
}

impl LayerNorm {
    pub fn new(store: &mut ParamStore, name: &str, normalized_shape: &[usize]) -> Result<LayerNorm> {
        Self::with(store, name, normalized_shape, 1e-5, true)
    }
    pub fn with(store: &mut ParamStore, name: &str, normalized_shape: &[usize], eps: f64, affine: bool) -> Result<LayerNorm> {
        if affine {
            store.register(&pname(name, "weight"), InputRole::Param, normalized_shape.to_vec(), Init::Ones)?;
            store.register(&pname(name, "bias"), InputRole::Param, normalized_shape.to_vec(), Init::Zeros)?;
        }
        Ok(LayerNorm { name: name.to_string(), normalized_shape: normalized_shape.to_vec(), eps, affine })
    }
}

impl Module for LayerNorm {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        let (w, b) = if self.affine {
            (
                Some(cx.param(&pname(&self.name, "weight"), self.normalized_shape.clone())?),
                Some(cx.param(&pname(&self.name, "bias"), self.normalized_shape.clone())?),
            )
        } else {
            (None, None)
        };
        layer_norm(cx, x, &self.normalized_shape, w, b, self.eps)
    }
}

/// Functional layer norm over the trailing dims equal to `normalized_shape`.
pub fn layer_norm(
    g: &mut Graph,
    x: NodeId,
    normalized_shape: &[usize],
    weight: Option<NodeId>,
    bias: Option<NodeId>,
    eps: f64,
) -> Result<NodeId> {
    let s = super::shape_of(g, x)?;
    let k = normalized_shape.len();
    if k == 0 || s.rank() < k || s.0[s.rank() - k..] != *normalized_shape {
        return Err(Error::Config(format!(
            "layer_norm({x}: {}): trailing dims must be {normalized_shape:?}",
            g.ty(x)
        )));
    }
    let axes: Vec<usize> = (s.rank() - k..s.rank()).collect();
    let mean = g.mean(x, &axes, true)?;
    let d = g.sub(x, mean)?;
    let d2 = g.mul(d, d)?;
    let var = g.mean(d2, &axes, true)?;
    let ve = g.add_scalar(var, eps)?;
    let inv = g.rsqrt(ve)?;
    let mut y = g.mul(d, inv)?;
    if let Some(w) = weight {
        y = g.mul(y, w)?;
    }
    if let Some(b) = bias {
        y = g.add(y, b)?;
    }
    Ok(y)
}
