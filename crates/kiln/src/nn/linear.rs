//! Fully connected layer: `y = x W^T + b`, W stored [out, in] as in PyTorch.

use kiln_ir::NodeId;

use super::{pname, register_weight_bias, Module};
use crate::{Builder, Error, ParamStore, Result};

#[derive(Debug, Clone)]
pub struct LinearConfig {
    pub in_features: usize,
    pub out_features: usize,
    pub bias: bool,
}

impl LinearConfig {
    pub fn bias(mut self, on: bool) -> Self {
        self.bias = on;
        self
    }
    /// Registers `<name>.weight` `[out, in]` and `<name>.bias` `[out]`, both
    /// U(-1/sqrt(in), 1/sqrt(in)) like PyTorch.
    pub fn build(self, store: &mut ParamStore, name: &str) -> Result<Linear> {
        register_weight_bias(store, name, &[self.out_features, self.in_features], self.bias, self.in_features)?;
        Ok(Linear { name: name.to_string(), cfg: self })
    }
}

#[derive(Debug, Clone)]
pub struct Linear {
    pub name: String,
    pub cfg: LinearConfig,
}

impl Linear {
    pub fn config(in_features: usize, out_features: usize) -> LinearConfig {
        LinearConfig { in_features, out_features, bias: true }
    }
    /// A Linear layer with bias, registered as `<name>.weight`/`<name>.bias`.
    pub fn new(store: &mut ParamStore, name: &str, in_features: usize, out_features: usize) -> Result<Linear> {
        Self::config(in_features, out_features).build(store, name)
    }
    pub fn weight_name(&self) -> String {
        pname(&self.name, "weight")
    }
    pub fn bias_name(&self) -> Option<String> {
        self.cfg.bias.then(|| pname(&self.name, "bias"))
    }
}

impl Module for Linear {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        let (i, o) = (self.cfg.in_features, self.cfg.out_features);
        let s = super::shape_of(cx, x)?;
        if s.rank() == 0 || s.0[s.rank() - 1] != i {
            return Err(Error::Config(format!("linear `{}`({x}: {}): expected last dim {i}", self.name, cx.ty(x))));
        }
        let w = cx.param(&self.weight_name(), [o, i])?;
        let mut y = cx.matmul_t(x, w, false, true)?;
        if let Some(b) = self.bias_name() {
            let b = cx.param(&b, [o])?;
            y = cx.add(y, b)?;
        }
        Ok(y)
    }
}
