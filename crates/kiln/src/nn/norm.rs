//! Normalization: BatchNorm (1d/2d, train and eval) and LayerNorm.

use kiln_ir::{DType, Graph, HostTensor, InputRole, NodeId, Shape, TensorType};

use super::{expect_rank, pname, Module};
use crate::init::Init;
use crate::{Builder, Error, Mode, ParamStore, Result};

#[derive(Debug, Clone)]
pub struct BatchNormConfig {
    pub num_features: usize,
    pub eps: f64,
    pub momentum: f64,
    pub affine: bool,
    /// Input ranks accepted: [2, 3] for BatchNorm1d, [4] for BatchNorm2d.
    ranks: Vec<usize>,
}

impl BatchNormConfig {
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
    pub fn momentum(mut self, m: f64) -> Self {
        self.momentum = m;
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
        store.register(&pname(name, "running_mean"), InputRole::State, [c], Init::Zeros)?;
        store.register(&pname(name, "running_var"), InputRole::State, [c], Init::Ones)?;
        store.register_value(&pname(name, "num_batches_tracked"), InputRole::State, HostTensor::scalar_i64(0))?;
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
        BatchNormConfig { num_features, eps: 1e-5, momentum: 0.1, affine: true, ranks: vec![2, 3] }
    }
    /// BatchNorm2d: input [N, C, H, W].
    pub fn config2d(num_features: usize) -> BatchNormConfig {
        BatchNormConfig { num_features, eps: 1e-5, momentum: 0.1, affine: true, ranks: vec![4] }
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
        let f32c = TensorType::new(DType::F32, [c]);
        let rm = cx.buffer(&pname(n, "running_mean"), f32c.clone())?;
        let rv = cx.buffer(&pname(n, "running_var"), f32c)?;
        let (w, b) = if self.cfg.affine {
            (Some(cx.param(&pname(n, "weight"), [c])?), Some(cx.param(&pname(n, "bias"), [c])?))
        } else {
            (None, None)
        };
        let mode = cx.mode();
        let out = batch_norm(cx, x, rm, rv, w, b, mode, self.cfg.eps, self.cfg.momentum)?;
        if let Some((new_mean, new_var)) = out.running {
            cx.set_update(&pname(n, "running_mean"), new_mean)?;
            cx.set_update(&pname(n, "running_var"), new_var)?;
            let nbt = cx.buffer(&pname(n, "num_batches_tracked"), TensorType::new(DType::I64, Shape::scalar()))?;
            let inc = cx.add_scalar(nbt, 1.0)?;
            cx.set_update(&pname(n, "num_batches_tracked"), inc)?;
        }
        Ok(out.y)
    }
}

/// What [`batch_norm`] produced: the output and, in train mode, the new
/// running mean and variance.
pub struct BatchNormOut {
    pub y: NodeId,
    pub running: Option<(NodeId, NodeId)>,
}

/// Functional batch norm over dim 1 of `x` ([N, C, ...]).
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
    let s = g.ty(x).shape.clone();
    if s.rank() < 2 {
        return Err(Error::Config(format!("batch_norm({x}: {}): needs [N, C, ...]", g.ty(x))));
    }
    let c = s.0[1];
    let axes: Vec<usize> = std::iter::once(0).chain(2..s.rank()).collect();
    let count: usize = axes.iter().map(|&a| s.0[a]).product();
    let mut bshape = vec![c];
    bshape.extend(std::iter::repeat_n(1, s.rank() - 2));
    let (mean, var, running) = match mode {
        Mode::Train => {
            let mean = g.mean(x, &axes, true)?;
            let d = g.sub(x, mean)?;
            let d2 = g.mul(d, d)?;
            let var = g.mean(d2, &axes, true)?;
            let m_flat = g.reshape(mean, [c])?;
            let m_flat = g.stop_gradient(m_flat)?;
            let v_flat = g.reshape(var, [c])?;
            let v_flat = g.stop_gradient(v_flat)?;
            let unbias = if count > 1 { count as f64 / (count - 1) as f64 } else { 1.0 };
            let v_unb = g.mul_scalar(v_flat, unbias)?;
            let a = g.mul_scalar(running_mean, 1.0 - momentum)?;
            let b = g.mul_scalar(m_flat, momentum)?;
            let new_mean = g.add(a, b)?;
            let a = g.mul_scalar(running_var, 1.0 - momentum)?;
            let b = g.mul_scalar(v_unb, momentum)?;
            let new_var = g.add(a, b)?;
            (mean, var, Some((new_mean, new_var)))
        }
        Mode::Eval => (g.reshape(running_mean, bshape.clone())?, g.reshape(running_var, bshape.clone())?, None),
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
    Ok(BatchNormOut { y, running })
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
    let s = g.ty(x).shape.clone();
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
