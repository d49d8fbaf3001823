//! Activations, as functions on a graph and as unit-struct modules.
//! Branching activations use `select` on `x > 0`, which gives PyTorch's
//! derivative convention at 0 (the negative branch), and feed the unchosen
//! branch a clamped value so its gradient never meets inf * 0.

use kiln_ir::{CompareOp, Graph, NodeId};

use super::Module;
use crate::{Builder, Error, Result};

fn positive(g: &mut Graph, x: NodeId) -> Result<NodeId> {
    let z = g.scalar_like(0.0, x)?;
    Ok(g.compare(CompareOp::Gt, x, z)?)
}

pub fn relu(g: &mut Graph, x: NodeId) -> Result<NodeId> {
    Ok(g.relu(x)?)
}

pub fn leaky_relu(g: &mut Graph, x: NodeId, negative_slope: f64) -> Result<NodeId> {
    let m = positive(g, x)?;
    let n = g.mul_scalar(x, negative_slope)?;
    Ok(g.select(m, x, n)?)
}

pub fn elu(g: &mut Graph, x: NodeId, alpha: f64) -> Result<NodeId> {
    let m = positive(g, x)?;
    let z = g.scalar_like(0.0, x)?;
    let neg = g.minimum(x, z)?;
    let e = g.exp(neg)?;
    let e1 = g.add_scalar(e, -1.0)?;
    let n = g.mul_scalar(e1, alpha)?;
    Ok(g.select(m, x, n)?)
}

/// PReLU with slopes `weight` (`[1]` or `[C]`, C along dim 1).
pub fn prelu(g: &mut Graph, x: NodeId, weight: NodeId) -> Result<NodeId> {
    let xs = super::shape_of(g, x)?;
    let n = super::shape_of(g, weight)?.numel();
    let w = if n == 1 {
        weight
    } else if xs.rank() < 2 {
        // PyTorch: an input of rank < 2 has one channel, so one slope.
        return Err(Error::Config(format!("prelu({x}: {}): {n} slopes for an input without a channel dim", g.ty(x))));
    } else {
        if xs.0[1] != n {
            return Err(Error::Config(format!("prelu({x}: {}): {n} slopes but {} channels", g.ty(x), xs.0[1])));
        }
        let mut dims = vec![n];
        dims.extend(std::iter::repeat_n(1, xs.rank() - 2));
        g.reshape(weight, dims)?
    };
    let m = positive(g, x)?;
    let neg = g.mul(x, w)?;
    Ok(g.select(m, x, neg)?)
}

pub fn sigmoid(g: &mut Graph, x: NodeId) -> Result<NodeId> {
    Ok(g.sigmoid(x)?)
}

pub fn tanh(g: &mut Graph, x: NodeId) -> Result<NodeId> {
    Ok(g.tanh(x)?)
}

/// x * sigmoid(x) (a.k.a. swish).
pub fn silu(g: &mut Graph, x: NodeId) -> Result<NodeId> {
    let s = g.sigmoid(x)?;
    Ok(g.mul(x, s)?)
}

/// GELU: exact `x * Phi(x)` with erf, or PyTorch's tanh approximation.
pub fn gelu(g: &mut Graph, x: NodeId, tanh_approx: bool) -> Result<NodeId> {
    let inner = if tanh_approx {
        let x2 = g.mul(x, x)?;
        let x3 = g.mul(x2, x)?;
        let c = g.mul_scalar(x3, 0.044715)?;
        let s = g.add(x, c)?;
        let k = g.mul_scalar(s, (2.0 / std::f64::consts::PI).sqrt())?;
        g.tanh(k)?
    } else {
        let k = g.mul_scalar(x, std::f64::consts::FRAC_1_SQRT_2)?;
        g.erf(k)?
    };
    let one = g.add_scalar(inner, 1.0)?;
    let h = g.mul_scalar(x, 0.5)?;
    Ok(g.mul(h, one)?)
}

/// log(1 + exp(beta x)) / beta, and x where beta x > threshold.
pub fn softplus(g: &mut Graph, x: NodeId, beta: f64, threshold: f64) -> Result<NodeId> {
    let bx = g.mul_scalar(x, beta)?;
    let t = g.scalar_like(threshold, x)?;
    let lin = g.compare(CompareOp::Gt, bx, t)?;
    let clamped = g.minimum(bx, t)?;
    let e = g.exp(clamped)?;
    let e1 = g.add_scalar(e, 1.0)?;
    let l = g.log(e1)?;
    let sp = g.mul_scalar(l, 1.0 / beta)?;
    Ok(g.select(lin, x, sp)?)
}

/// Softmax along `dim`, shifted by the (gradient-stopped) max for stability.
pub fn softmax(g: &mut Graph, x: NodeId, dim: usize) -> Result<NodeId> {
    let m = g.reduce_max(x, &[dim], true)?;
    let m = g.stop_gradient(m)?;
    let d = g.sub(x, m)?;
    let e = g.exp(d)?;
    let s = g.sum(e, &[dim], true)?;
    Ok(g.div(e, s)?)
}

/// log(softmax(x)) along `dim` without overflow: x - m - log(sum(exp(x - m))).
pub fn log_softmax(g: &mut Graph, x: NodeId, dim: usize) -> Result<NodeId> {
    let m = g.reduce_max(x, &[dim], true)?;
    let m = g.stop_gradient(m)?;
    let d = g.sub(x, m)?;
    let e = g.exp(d)?;
    let s = g.sum(e, &[dim], true)?;
    let l = g.log(s)?;
    Ok(g.sub(d, l)?)
}

macro_rules! unit_module {
    ($(#[$m:meta])* $name:ident, $f:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name;
        impl Module for $name {
            fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
                $f(cx, x)
            }
        }
    };
}

unit_module!(ReLU, |cx: &mut Builder, x| relu(cx, x));
unit_module!(Sigmoid, |cx: &mut Builder, x| sigmoid(cx, x));
unit_module!(Tanh, |cx: &mut Builder, x| tanh(cx, x));
unit_module!(
    /// x * sigmoid(x).
    SiLU,
    |cx: &mut Builder, x| silu(cx, x)
);

#[derive(Debug, Clone, Copy)]
pub struct LeakyReLU(pub f64);
impl Default for LeakyReLU {
    fn default() -> Self {
        LeakyReLU(0.01)
    }
}
impl Module for LeakyReLU {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        leaky_relu(cx, x, self.0)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ELU(pub f64);
impl Default for ELU {
    fn default() -> Self {
        ELU(1.0)
    }
}
impl Module for ELU {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        elu(cx, x, self.0)
    }
}

/// GELU; `GELU::tanh()` for the tanh approximation.
#[derive(Debug, Clone, Copy, Default)]
pub struct GELU {
    pub tanh_approx: bool,
}
impl GELU {
    pub fn exact() -> GELU {
        GELU { tanh_approx: false }
    }
    pub fn tanh() -> GELU {
        GELU { tanh_approx: true }
    }
}
impl Module for GELU {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        gelu(cx, x, self.tanh_approx)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Softplus {
    pub beta: f64,
    pub threshold: f64,
}
impl Default for Softplus {
    fn default() -> Self {
        Softplus { beta: 1.0, threshold: 20.0 }
    }
}
impl Module for Softplus {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        softplus(cx, x, self.beta, self.threshold)
    }
}

/// Softmax along a dim.
#[derive(Debug, Clone, Copy)]
pub struct Softmax(pub usize);
impl Module for Softmax {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        softmax(cx, x, self.0)
    }
}

/// LogSoftmax along a dim.
#[derive(Debug, Clone, Copy)]
pub struct LogSoftmax(pub usize);
impl Module for LogSoftmax {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        log_softmax(cx, x, self.0)
    }
}

/// PReLU with learnable slopes `<name>.weight` (`[num_parameters]`, init 0.25).
#[derive(Debug, Clone)]
pub struct PReLU {
    pub name: String,
    pub num_parameters: usize,
}

impl PReLU {
    pub fn new(store: &mut crate::ParamStore, name: &str, num_parameters: usize) -> Result<PReLU> {
        Self::with_init(store, name, num_parameters, 0.25)
    }
    pub fn with_init(store: &mut crate::ParamStore, name: &str, num_parameters: usize, init: f64) -> Result<PReLU> {
        store.register(
            &super::pname(name, "weight"),
            kiln_ir::InputRole::Param,
            [num_parameters],
            crate::init::Init::Constant(init),
        )?;
        Ok(PReLU { name: name.to_string(), num_parameters })
    }
}

impl Module for PReLU {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        let w = cx.param(&super::pname(&self.name, "weight"), [self.num_parameters])?;
        prelu(cx, x, w)
    }
}
