//! Multi-head attention, PyTorch's `nn.MultiheadAttention(embed_dim,
//! num_heads, dropout, bias, kdim, vdim, batch_first)` with its parameter
//! names and layouts: `in_proj_weight` `[3E, E]` and `in_proj_bias` `[3E]`
//! (rows q, k, v) when `kdim == vdim == E`, otherwise `q_proj_weight`
//! `[E, E]`, `k_proj_weight` `[E, kdim]`, `v_proj_weight` `[E, vdim]`;
//! `out_proj.weight` `[E, E]`, `out_proj.bias` `[E]`.
//!
//! Built from matmuls, reshapes/permutes, a stable softmax and selects:
//! scores `q k^T / sqrt(head_dim)` per head, masks added as -inf (boolean,
//! True = masked) or as given (float), softmax over keys, dropout on the
//! weights in train mode (the returned weights are those after dropout,
//! as PyTorch's), weights times values, heads joined, output projection.

use kiln_ir::{DType, InputRole, NodeId};

use super::{pname, shape_of, softmax, Module};
use crate::init::{Init, Nonlinearity};
use crate::{Builder, Error, ParamStore, Result};

#[derive(Debug, Clone)]
pub struct MultiheadAttentionConfig {
    pub embed_dim: usize,
    pub num_heads: usize,
    /// Dropout on the attention weights (train mode).
    pub dropout: f64,
    pub bias: bool,
    /// Key features (default `embed_dim`).
    pub kdim: Option<usize>,
    /// Value features (default `embed_dim`).
    pub vdim: Option<usize>,
    /// Inputs and output `[batch, seq, feature]` instead of `[seq, batch, feature]`.
    pub batch_first: bool,
}

impl MultiheadAttentionConfig {
    pub fn dropout(mut self, p: f64) -> Self {
        self.dropout = p;
        self
    }
    pub fn bias(mut self, on: bool) -> Self {
        self.bias = on;
        self
    }
    pub fn kdim(mut self, k: usize) -> Self {
        self.kdim = Some(k);
        self
    }
    pub fn vdim(mut self, v: usize) -> Self {
        self.vdim = Some(v);
        self
    }
    pub fn batch_first(mut self, on: bool) -> Self {
        self.batch_first = on;
        self
    }

    /// Registers the parameters under `name` with PyTorch's init:
    /// projections Xavier-uniform, biases zero, `out_proj.weight`
    /// U(-1/sqrt(E), 1/sqrt(E)).
    pub fn build(self, store: &mut ParamStore, name: &str) -> Result<MultiheadAttention> {
        let e = self.embed_dim;
        if e == 0 || self.num_heads == 0 || !e.is_multiple_of(self.num_heads) {
            return Err(Error::Config(format!(
                "multihead_attention `{name}`: embed_dim {e} must be a positive multiple of num_heads {}",
                self.num_heads
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Config(format!("multihead_attention `{name}`: dropout must be in [0, 1), got {}", self.dropout)));
        }
        let (kd, vd) = (self.kdim.unwrap_or(e), self.vdim.unwrap_or(e));
        if kd == 0 || vd == 0 {
            return Err(Error::Config(format!("multihead_attention `{name}`: kdim and vdim must be positive")));
        }
        let xavier = Init::XavierUniform { gain: Nonlinearity::Linear.gain() };
        let packed = kd == e && vd == e;
        if packed {
            store.register(&pname(name, "in_proj_weight"), InputRole::Param, [3 * e, e], xavier)?;
        } else {
            store.register(&pname(name, "q_proj_weight"), InputRole::Param, [e, e], xavier)?;
            store.register(&pname(name, "k_proj_weight"), InputRole::Param, [e, kd], xavier)?;
            store.register(&pname(name, "v_proj_weight"), InputRole::Param, [e, vd], xavier)?;
        }
        if self.bias {
            store.register(&pname(name, "in_proj_bias"), InputRole::Param, [3 * e], Init::Zeros)?;
        }
        store.register(&pname(name, "out_proj.weight"), InputRole::Param, [e, e], Init::torch_default(e))?;
        if self.bias {
            store.register(&pname(name, "out_proj.bias"), InputRole::Param, [e], Init::Zeros)?;
        }
        let seed = store.next_seed();
        Ok(MultiheadAttention { name: name.to_string(), cfg: self, packed, seed })
    }
}

/// Masks and options of one attention call (PyTorch's `forward` arguments).
#[derive(Debug, Clone, Copy)]
pub struct AttentionOptions {
    /// `[L, S]` or `[B*num_heads, L, S]`: boolean (True = may not attend)
    /// or float (added to the scores).
    pub attn_mask: Option<NodeId>,
    /// `[B, S]`: boolean (True = padding, ignored) or float (added).
    pub key_padding_mask: Option<NodeId>,
    /// Return the attention weights.
    pub need_weights: bool,
    /// Weights averaged over heads `[B, L, S]` (true, PyTorch's default)
    /// or per head `[B, num_heads, L, S]`.
    pub average_attn_weights: bool,
}

impl Default for AttentionOptions {
    fn default() -> Self {
        AttentionOptions { attn_mask: None, key_padding_mask: None, need_weights: true, average_attn_weights: true }
    }
}

/// The output `[B, L, E]` (or `[L, B, E]`) and, when asked for, the weights.
#[derive(Debug, Clone, Copy)]
pub struct AttentionOutput {
    pub y: NodeId,
    pub weights: Option<NodeId>,
}

#[derive(Debug, Clone)]
pub struct MultiheadAttention {
    pub name: String,
    pub cfg: MultiheadAttentionConfig,
    packed: bool,
    seed: u64,
}

impl MultiheadAttention {
    /// Defaults as PyTorch's: dropout 0, bias, kdim = vdim = embed_dim,
    /// sequence-first. Finish with `.build(store, name)`.
    pub fn config(embed_dim: usize, num_heads: usize) -> MultiheadAttentionConfig {
        MultiheadAttentionConfig { embed_dim, num_heads, dropout: 0.0, bias: true, kdim: None, vdim: None, batch_first: false }
    }
    pub fn new(store: &mut ParamStore, name: &str, embed_dim: usize, num_heads: usize) -> Result<MultiheadAttention> {
        Self::config(embed_dim, num_heads).build(store, name)
    }

    fn p(&self, leaf: &str) -> String {
        pname(&self.name, leaf)
    }

    /// `x W^T + b` for projection `k` (0 = q, 1 = k, 2 = v) of the packed
    /// or separate weights.
    fn project(&self, cx: &mut Builder, x: NodeId, k: usize, in_dim: usize) -> Result<NodeId> {
        let e = self.cfg.embed_dim;
        let w = if self.packed {
            let w = cx.param(&self.p("in_proj_weight"), [3 * e, e])?;
            cx.slice_axis(w, 0, k * e, (k + 1) * e)?
        } else {
            let leaf = ["q_proj_weight", "k_proj_weight", "v_proj_weight"][k];
            cx.param(&self.p(leaf), [e, in_dim])?
        };
        let mut y = cx.matmul_t(x, w, false, true)?;
        if self.cfg.bias {
            let b = cx.param(&self.p("in_proj_bias"), [3 * e])?;
            let b = cx.slice_axis(b, 0, k * e, (k + 1) * e)?;
            y = cx.add(y, b)?;
        }
        Ok(y)
    }

    /// Attention of `query` over `key`/`value` (PyTorch's `forward(query,
    /// key, value, key_padding_mask, need_weights, attn_mask,
    /// average_attn_weights)`).
    pub fn forward_qkv(&self, cx: &mut Builder, query: NodeId, key: NodeId, value: NodeId, opts: &AttentionOptions) -> Result<AttentionOutput> {
        let c = &self.cfg;
        let (e, nh) = (c.embed_dim, c.num_heads);
        let hd = e / nh;
        let (kd, vd) = (c.kdim.unwrap_or(e), c.vdim.unwrap_or(e));
        let layout = if c.batch_first { "[batch, seq, feature]" } else { "[seq, batch, feature]" };
        let what = format!("multihead_attention `{}`", self.name);
        let mut dims = Vec::new();
        for (x, f, role) in [(query, e, "query"), (key, kd, "key"), (value, vd, "value")] {
            let s = shape_of(cx, x)?;
            if s.rank() != 3 || s.0[2] != f {
                return Err(Error::Config(format!("{what}: {role} {x}: {} must be {layout} with {f} features", cx.ty(x))));
            }
            dims.push(if c.batch_first { (s.0[0], s.0[1]) } else { (s.0[1], s.0[0]) });
        }
        let (b, l) = dims[0];
        let s_len = dims[1].1;
        if dims[1].0 != b || dims[2].0 != b || dims[2].1 != s_len {
            return Err(Error::Config(format!(
                "{what}: query {query}: {}, key {key}: {}, value {value}: {} disagree on batch or key length",
                cx.ty(query),
                cx.ty(key),
                cx.ty(value)
            )));
        }
        let to_bf = |cx: &mut Builder, x: NodeId| -> Result<NodeId> { if c.batch_first { Ok(x) } else { Ok(cx.permute(x, &[1, 0, 2])?) } };
        let (qb, kb, vb) = (to_bf(cx, query)?, to_bf(cx, key)?, to_bf(cx, value)?);
        let q = self.project(cx, qb, 0, e)?;
        let k = self.project(cx, kb, 1, kd)?;
        let v = self.project(cx, vb, 2, vd)?;
        // [B, T, E] -> [B, H, T, D]
        let heads = |cx: &mut Builder, x: NodeId, t: usize| -> Result<NodeId> {
            let r = cx.reshape(x, [b, t, nh, hd])?;
            Ok(cx.permute(r, &[0, 2, 1, 3])?)
        };
        let q = heads(cx, q, l)?;
        let k = heads(cx, k, s_len)?;
        let v = heads(cx, v, s_len)?;
        let q = cx.mul_scalar(q, 1.0 / (hd as f64).sqrt())?;
        let mut scores = cx.matmul_t(q, k, false, true)?; // [B, H, L, S]
        if let Some(m) = opts.attn_mask {
            let ms = shape_of(cx, m)?;
            let add = additive_mask(cx, m)?;
            let add = if ms.0 == [l, s_len] {
                add
            } else if ms.0 == [b * nh, l, s_len] {
                cx.reshape(add, [b, nh, l, s_len])?
            } else {
                return Err(Error::Config(format!(
                    "{what}: attn_mask {m}: {} must be [{l}, {s_len}] or [{}, {l}, {s_len}]",
                    cx.ty(m),
                    b * nh
                )));
            };
            scores = cx.add(scores, add)?;
        }
        if let Some(m) = opts.key_padding_mask {
            if shape_of(cx, m)?.0 != [b, s_len] {
                return Err(Error::Config(format!("{what}: key_padding_mask {m}: {} must be [{b}, {s_len}]", cx.ty(m))));
            }
            let add = additive_mask(cx, m)?;
            let add = cx.reshape(add, [b, 1, 1, s_len])?;
            scores = cx.add(scores, add)?;
        }
        let w = softmax(cx, scores, 3)?;
        let wd = if c.dropout > 0.0 { super::dropout(cx, w, c.dropout, self.seed)? } else { w };
        let o = cx.matmul(wd, v)?; // [B, H, L, D]
        let o = cx.permute(o, &[0, 2, 1, 3])?;
        let o = cx.reshape(o, [b, l, e])?;
        let ow = cx.param(&self.p("out_proj.weight"), [e, e])?;
        let mut y = cx.matmul_t(o, ow, false, true)?;
        if c.bias {
            let ob = cx.param(&self.p("out_proj.bias"), [e])?;
            y = cx.add(y, ob)?;
        }
        let y = if c.batch_first { y } else { cx.permute(y, &[1, 0, 2])? };
        let weights = if !opts.need_weights {
            None
        } else if opts.average_attn_weights {
            Some(cx.mean(wd, &[1], false)?)
        } else {
            Some(wd)
        };
        Ok(AttentionOutput { y, weights })
    }
}

/// A boolean mask as 0 / -inf (True = masked), a float mask as is.
pub(crate) fn additive_mask(cx: &mut Builder, m: NodeId) -> Result<NodeId> {
    if cx.ty(m).dtype == DType::Bool {
        let ninf = cx.scalar_f32(f32::NEG_INFINITY)?;
        let zero = cx.scalar_f32(0.0)?;
        Ok(cx.select(m, ninf, zero)?)
    } else {
        Ok(m)
    }
}

/// Self-attention `x` -> `y` with no masks.
impl Module for MultiheadAttention {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        let opts = AttentionOptions { need_weights: false, ..AttentionOptions::default() };
        Ok(self.forward_qkv(cx, x, x, x, &opts)?.y)
    }
}
