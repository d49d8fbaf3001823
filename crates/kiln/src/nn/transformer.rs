//! Transformer encoder: PyTorch's `nn.TransformerEncoderLayer(d_model,
//! nhead, dim_feedforward, dropout, activation, layer_norm_eps,
//! batch_first, norm_first, bias)` and `nn.TransformerEncoder(layer,
//! num_layers, norm)`, with PyTorch's parameter names (`self_attn.*`,
//! `linear1`, `linear2`, `norm1`, `norm2`; `layers.N.` and an optional
//! final `norm` in the encoder).
//!
//! Post-norm (default): `x = norm1(x + sa(x)); x = norm2(x + ff(x))`;
//! pre-norm (`norm_first`): `x = x + sa(norm1(x)); x = x + ff(norm2(x))`,
//! where `sa` is self-attention then dropout1 and `ff` is
//! `dropout2(linear2(dropout(act(linear1(x)))))`.

use kiln_ir::NodeId;

use super::{dropout, gelu, pname, relu, AttentionOptions, LayerNorm, Linear, Module, MultiheadAttention};
use crate::{Builder, Error, ParamStore, Result};

/// The feed-forward activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeedForwardActivation {
    #[default]
    Relu,
    /// Exact (erf) GELU, PyTorch's `"gelu"`.
    Gelu,
}

#[derive(Debug, Clone)]
pub struct TransformerEncoderLayerConfig {
    pub d_model: usize,
    pub nhead: usize,
    pub dim_feedforward: usize,
    pub dropout: f64,
    pub activation: FeedForwardActivation,
    pub layer_norm_eps: f64,
    pub batch_first: bool,
    pub norm_first: bool,
    pub bias: bool,
}

impl TransformerEncoderLayerConfig {
    pub fn dim_feedforward(mut self, n: usize) -> Self {
        self.dim_feedforward = n;
        self
    }
    pub fn dropout(mut self, p: f64) -> Self {
        self.dropout = p;
        self
    }
    pub fn activation(mut self, a: FeedForwardActivation) -> Self {
        self.activation = a;
        self
    }
    pub fn gelu(self) -> Self {
        self.activation(FeedForwardActivation::Gelu)
    }
    pub fn layer_norm_eps(mut self, eps: f64) -> Self {
        self.layer_norm_eps = eps;
        self
    }
    pub fn batch_first(mut self, on: bool) -> Self {
        self.batch_first = on;
        self
    }
    pub fn norm_first(mut self, on: bool) -> Self {
        self.norm_first = on;
        self
    }
    pub fn bias(mut self, on: bool) -> Self {
        self.bias = on;
        self
    }

    /// Registers `<name>.self_attn.*`, `<name>.linear1`, `<name>.linear2`,
    /// `<name>.norm1`, `<name>.norm2` with PyTorch's init.
    pub fn build(self, store: &mut ParamStore, name: &str) -> Result<TransformerEncoderLayer> {
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Config(format!("transformer_encoder_layer `{name}`: dropout must be in [0, 1), got {}", self.dropout)));
        }
        if self.dim_feedforward == 0 {
            return Err(Error::Config(format!("transformer_encoder_layer `{name}`: dim_feedforward must be positive")));
        }
        let d = self.d_model;
        let self_attn = MultiheadAttention::config(d, self.nhead)
            .dropout(self.dropout)
            .bias(self.bias)
            .batch_first(self.batch_first)
            .build(store, &pname(name, "self_attn"))?;
        let linear1 = Linear::config(d, self.dim_feedforward).bias(self.bias).build(store, &pname(name, "linear1"))?;
        let linear2 = Linear::config(self.dim_feedforward, d).bias(self.bias).build(store, &pname(name, "linear2"))?;
        let norm1 = LayerNorm::with(store, &pname(name, "norm1"), &[d], self.layer_norm_eps, true)?;
        let norm2 = LayerNorm::with(store, &pname(name, "norm2"), &[d], self.layer_norm_eps, true)?;
        let seeds = [store.next_seed(), store.next_seed(), store.next_seed()];
        Ok(TransformerEncoderLayer { name: name.to_string(), cfg: self, self_attn, linear1, linear2, norm1, norm2, seeds })
    }
}

#[derive(Debug, Clone)]
pub struct TransformerEncoderLayer {
    pub name: String,
    pub cfg: TransformerEncoderLayerConfig,
    pub self_attn: MultiheadAttention,
    pub linear1: Linear,
    pub linear2: Linear,
    pub norm1: LayerNorm,
    pub norm2: LayerNorm,
    /// Seeds of dropout (feed-forward), dropout1 and dropout2.
    seeds: [u64; 3],
}

impl TransformerEncoderLayer {
    /// PyTorch's defaults: dim_feedforward 2048, dropout 0.1, ReLU, eps
    /// 1e-5, sequence-first, post-norm, bias.
    pub fn config(d_model: usize, nhead: usize) -> TransformerEncoderLayerConfig {
        TransformerEncoderLayerConfig {
            d_model,
            nhead,
            dim_feedforward: 2048,
            dropout: 0.1,
            activation: FeedForwardActivation::Relu,
            layer_norm_eps: 1e-5,
            batch_first: false,
            norm_first: false,
            bias: true,
        }
    }

    fn self_attention(&self, cx: &mut Builder, x: NodeId, mask: Option<NodeId>, key_padding_mask: Option<NodeId>) -> Result<NodeId> {
        let opts = AttentionOptions { attn_mask: mask, key_padding_mask, need_weights: false, average_attn_weights: true };
        let y = self.self_attn.forward_qkv(cx, x, x, x, &opts)?.y;
        dropout(cx, y, self.cfg.dropout, self.seeds[1])
    }

    fn feed_forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        let h = self.linear1.forward(cx, x)?;
        let h = match self.cfg.activation {
            FeedForwardActivation::Relu => relu(cx, h)?,
            FeedForwardActivation::Gelu => gelu(cx, h, false)?,
        };
        let h = dropout(cx, h, self.cfg.dropout, self.seeds[0])?;
        let y = self.linear2.forward(cx, h)?;
        dropout(cx, y, self.cfg.dropout, self.seeds[2])
    }

    /// PyTorch's `forward(src, src_mask, src_key_padding_mask)`: masks as
    /// [`AttentionOptions`]'s `attn_mask` and `key_padding_mask`.
    pub fn forward_masked(&self, cx: &mut Builder, x: NodeId, mask: Option<NodeId>, key_padding_mask: Option<NodeId>) -> Result<NodeId> {
        if self.cfg.norm_first {
            let n = self.norm1.forward(cx, x)?;
            let a = self.self_attention(cx, n, mask, key_padding_mask)?;
            let x = cx.add(x, a)?;
            let n = self.norm2.forward(cx, x)?;
            let f = self.feed_forward(cx, n)?;
            Ok(cx.add(x, f)?)
        } else {
            let a = self.self_attention(cx, x, mask, key_padding_mask)?;
            let s = cx.add(x, a)?;
            let x = self.norm1.forward(cx, s)?;
            let f = self.feed_forward(cx, x)?;
            let s = cx.add(x, f)?;
            self.norm2.forward(cx, s)
        }
    }
}

impl Module for TransformerEncoderLayer {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        self.forward_masked(cx, x, None, None)
    }
}

/// `num_layers` encoder layers `layers.0`, `layers.1`, ... (each with its
/// own parameters) and an optional final LayerNorm `norm` (PyTorch's
/// `nn.TransformerEncoder(encoder_layer, num_layers, norm)`).
#[derive(Debug, Clone)]
pub struct TransformerEncoder {
    pub name: String,
    pub layers: Vec<TransformerEncoderLayer>,
    pub norm: Option<LayerNorm>,
}

impl TransformerEncoder {
    /// Builds `num_layers` layers of `layer`'s config under
    /// `<name>.layers.N`, and `<name>.norm` (eps as the layers') when
    /// `final_norm`. Each layer draws its own initial values (PyTorch
    /// deep-copies one layer, so its layers start equal; a loaded
    /// state_dict makes the two the same).
    pub fn new(store: &mut ParamStore, name: &str, layer: &TransformerEncoderLayerConfig, num_layers: usize, final_norm: bool) -> Result<TransformerEncoder> {
        if num_layers == 0 {
            return Err(Error::Config(format!("transformer_encoder `{name}`: num_layers must be positive")));
        }
        let layers = (0..num_layers)
            .map(|i| layer.clone().build(store, &pname(name, &format!("layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let norm = if final_norm { Some(LayerNorm::with(store, &pname(name, "norm"), &[layer.d_model], layer.layer_norm_eps, true)?) } else { None };
        Ok(TransformerEncoder { name: name.to_string(), layers, norm })
    }

    /// Every layer with the same masks, then the final norm.
    pub fn forward_masked(&self, cx: &mut Builder, mut x: NodeId, mask: Option<NodeId>, key_padding_mask: Option<NodeId>) -> Result<NodeId> {
        for l in &self.layers {
            x = l.forward_masked(cx, x, mask, key_padding_mask)?;
        }
        match &self.norm {
            Some(n) => n.forward(cx, x),
            None => Ok(x),
        }
    }
}

impl Module for TransformerEncoder {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        self.forward_masked(cx, x, None, None)
    }
}
