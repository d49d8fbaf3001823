//! A tiny vision transformer (the course's ViT for 28x28 digits): a
//! strided conv cuts the image into patch embeddings (`patch`), a learned
//! class token (`cls_token`) is prepended and learned position embeddings
//! (`pos_embed`) added, a pre-norm GELU `TransformerEncoder` (`encoder`,
//! PyTorch's names `encoder.layers.<i>.self_attn.in_proj_weight`, ...)
//! mixes the tokens, and the class token goes through LayerNorm (`norm`)
//! and Linear (`head`) to the logits.

use kiln_ir::{InputRole, NodeId};

use super::{check_sizes, conv_default};
use crate::init::Init;
use crate::nn::{pname, Conv2d, LayerNorm, Linear, Module, TransformerEncoder, TransformerEncoderLayer};
use crate::{Builder, Error, ParamStore, Result};

/// The ViT's sizes; the default is the course's: 28x28 single-channel
/// images in 7x7 patches (16 tokens + the class token), width 16, 2
/// layers of 4 heads, feed-forward 32, no dropout, 10 classes.
#[derive(Debug, Clone)]
pub struct TinyVitConfig {
    pub image_size: usize,
    pub patch_size: usize,
    pub in_channels: usize,
    pub dim: usize,
    pub depth: usize,
    pub heads: usize,
    pub mlp_dim: usize,
    pub dropout: f64,
    pub num_classes: usize,
}

impl Default for TinyVitConfig {
    fn default() -> Self {
        TinyVitConfig { image_size: 28, patch_size: 7, in_channels: 1, dim: 16, depth: 2, heads: 4, mlp_dim: 32, dropout: 0.0, num_classes: 10 }
    }
}

impl TinyVitConfig {
    setters!(num_classes: usize, in_channels: usize, image_size: usize, patch_size: usize);
    /// Token width, encoder layers, attention heads, feed-forward width.
    pub fn shape(mut self, dim: usize, depth: usize, heads: usize, mlp_dim: usize) -> Self {
        (self.dim, self.depth, self.heads, self.mlp_dim) = (dim, depth, heads, mlp_dim);
        self
    }
    setters!(dropout: f64);

    /// Tokens per image, the class token included.
    pub fn tokens(&self) -> usize {
        (self.image_size / self.patch_size).pow(2) + 1
    }

    /// Registers `patch`, `cls_token`, `pos_embed`, `encoder.layers.*`,
    /// `norm`, `head` under `prefix`. The class token and position
    /// embeddings start N(0, 0.02) (ViT's usual init); the layers keep
    /// PyTorch's defaults.
    pub fn build(self, store: &mut ParamStore, prefix: &str) -> Result<TinyVit> {
        check_sizes(
            "tiny_vit",
            &[
                ("num_classes", self.num_classes),
                ("in_channels", self.in_channels),
                ("patch_size", self.patch_size),
                ("dim", self.dim),
                ("depth", self.depth),
                ("heads", self.heads),
            ],
        )?;
        if self.image_size < self.patch_size || !self.image_size.is_multiple_of(self.patch_size) {
            return Err(Error::Config(format!("tiny_vit: image size {} is not a multiple of patch size {}", self.image_size, self.patch_size)));
        }
        let p = |n: &str| pname(prefix, n);
        let d = self.dim;
        let patch = conv_default(store, &p("patch"), Conv2d::config(self.in_channels, d, self.patch_size).stride(self.patch_size))?;
        let small = Init::Normal { mean: 0.0, std: 0.02 };
        store.register(&p("cls_token"), InputRole::Param, [1, 1, d], small)?;
        store.register(&p("pos_embed"), InputRole::Param, [1, self.tokens(), d], small)?;
        let layer = TransformerEncoderLayer::config(d, self.heads)
            .dim_feedforward(self.mlp_dim)
            .dropout(self.dropout)
            .gelu()
            .batch_first(true)
            .norm_first(true);
        let encoder = TransformerEncoder::new(store, &p("encoder"), &layer, self.depth, false)?;
        let norm = LayerNorm::new(store, &p("norm"), &[d])?;
        let head = Linear::new(store, &p("head"), d, self.num_classes)?;
        Ok(TinyVit { prefix: prefix.to_string(), cfg: self, patch, encoder, norm, head })
    }
}

/// The tiny ViT; `forward` maps `[N, C, H, W]` to logits.
pub struct TinyVit {
    pub cfg: TinyVitConfig,
    prefix: String,
    patch: Conv2d,
    encoder: TransformerEncoder,
    norm: LayerNorm,
    head: Linear,
}

impl Module for TinyVit {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        let (d, t) = (self.cfg.dim, self.cfg.tokens());
        let s = crate::nn::expect_rank(cx, "tiny_vit", x, &[4], Some((1, self.cfg.in_channels)))?;
        let n = s.0[0];
        if s.0[2] != self.cfg.image_size || s.0[3] != self.cfg.image_size {
            return Err(Error::Config(format!("tiny_vit({x}: {}): expected {s}x{s} images", cx.ty(x), s = self.cfg.image_size)));
        }
        // [N, D, h, w] -> [N, h*w, D]: one token per patch, row-major.
        let e = self.patch.forward(cx, x)?;
        let e = cx.reshape(e, [n, d, t - 1])?;
        let e = cx.permute(e, &[0, 2, 1])?;
        let cls = cx.param(&pname(&self.prefix, "cls_token"), [1, 1, d])?;
        let cls = cx.broadcast_to(cls, [n, 1, d])?;
        let tokens = cx.concat(&[cls, e], 1)?;
        let pos = cx.param(&pname(&self.prefix, "pos_embed"), [1, t, d])?;
        let tokens = cx.add(tokens, pos)?;
        let y = self.encoder.forward(cx, tokens)?;
        let first = cx.slice_axis(y, 1, 0, 1)?;
        let first = cx.reshape(first, [n, d])?;
        let first = self.norm.forward(cx, first)?;
        self.head.forward(cx, first)
    }
}

/// The course's tiny ViT (defaults of [`TinyVitConfig`]) for
/// `in_channels`-channel 28x28 images, at the top level of the store.
pub fn tiny_vit(store: &mut ParamStore, num_classes: usize, in_channels: usize) -> Result<TinyVit> {
    TinyVitConfig::default().num_classes(num_classes).in_channels(in_channels).build(store, "")
}
