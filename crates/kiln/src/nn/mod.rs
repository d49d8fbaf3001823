//! Layers. A layer is constructed against a [`ParamStore`](crate::ParamStore)
//! (which registers its parameters under PyTorch names with PyTorch's default
//! initialization) and applied with [`Module::forward`] to a node of a
//! [`Builder`]. The forward pass adds the parameters as named graph inputs,
//! so applying one layer twice shares one parameter.

mod activation;
mod attention;
mod cells;
mod branch;
mod conv;
mod conv_transpose;
mod dropout;
mod embedding;
mod linear;
mod lrn;
mod norm;
mod padding;
mod pool;
mod rnn;
mod transformer;
mod upsample;

pub use activation::*;
pub use cells::{GruCell, LstmCell, RnnCell, RnnCellBase};
pub use attention::{AttentionOptions, AttentionOutput, MultiheadAttention, MultiheadAttentionConfig};
pub use branch::{Branches, DenselyConnected};
pub use conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig};
pub use conv_transpose::{ConvTranspose1d, ConvTranspose2d, ConvTransposeConfig};
pub use dropout::{dropout, Dropout, RNG_STEP};
pub use embedding::Embedding;
pub use linear::{Linear, LinearConfig};
pub use lrn::{local_response_norm, LocalResponseNorm};
pub use padding::{
    pad1d, pad2d, pad_axis, CircularPad1d, CircularPad2d, PaddingMode, ReflectionPad1d, ReflectionPad2d, ReplicationPad1d,
    ReplicationPad2d, ZeroPad1d, ZeroPad2d,
};
pub use norm::{batch_norm, layer_norm, BatchNorm, BatchNormConfig, LayerNorm};
pub use pool::{
    adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d_ext, global_avg_pool2d, max_pool2d_ext, pool_out_dim, AdaptiveAvgPool2d,
    AdaptiveMaxPool2d, AvgPool2d, MaxPool2d,
};
pub use rnn::{Gru, Lstm, Rnn, RnnConfig, RnnKind, RnnOutput};
pub use upsample::{interpolate, Upsample, UpsampleMode};
pub use transformer::{
    FeedForwardActivation, TransformerEncoder, TransformerEncoderLayer, TransformerEncoderLayerConfig,
};

use kiln_ir::{InputRole, NodeId, Shape};

use crate::init::Init;
use crate::{Builder, Error, ParamStore, Result};

/// Something that maps one node to another inside a graph being built.
pub trait Module {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId>;
}

impl<M: Module + ?Sized> Module for Box<M> {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        (**self).forward(cx, x)
    }
}

impl<M: Module + ?Sized> Module for &M {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        (**self).forward(cx, x)
    }
}

/// Layers applied in order.
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
}

impl Sequential {
    pub fn new() -> Sequential {
        Sequential::default()
    }
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, m: impl Module + 'static) -> Sequential {
        self.layers.push(Box::new(m));
        self
    }
    pub fn push(&mut self, m: impl Module + 'static) {
        self.layers.push(Box::new(m));
    }
    pub fn len(&self) -> usize {
        self.layers.len()
    }
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl Module for Sequential {
    fn forward(&self, cx: &mut Builder, mut x: NodeId) -> Result<NodeId> {
        for l in &self.layers {
            x = l.forward(cx, x)?;
        }
        Ok(x)
    }
}

/// `body(x) + shortcut(x)`, the shortcut being the identity unless given
/// (e.g. a strided 1x1 conv when the shapes change).
pub struct Residual {
    body: Box<dyn Module>,
    shortcut: Option<Box<dyn Module>>,
}

impl Residual {
    pub fn new(body: impl Module + 'static) -> Residual {
        Residual { body: Box::new(body), shortcut: None }
    }
    pub fn with_shortcut(mut self, s: impl Module + 'static) -> Residual {
        self.shortcut = Some(Box::new(s));
        self
    }
}

impl Module for Residual {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        let y = self.body.forward(cx, x)?;
        let s = match &self.shortcut {
            Some(m) => m.forward(cx, x)?,
            None => x,
        };
        Ok(cx.add(y, s)?)
    }
}

/// A closure as a module, for one-off glue inside a `Sequential`.
pub struct Lambda<F>(pub F);

impl<F: Fn(&mut Builder, NodeId) -> Result<NodeId>> Module for Lambda<F> {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        (self.0)(cx, x)
    }
}

/// Flattens dims `start..=end` into one (PyTorch `nn.Flatten`, default 1..=-1).
#[derive(Debug, Clone, Copy)]
pub struct Flatten {
    pub start_dim: usize,
    pub end_dim: isize,
}

impl Default for Flatten {
    fn default() -> Self {
        Flatten { start_dim: 1, end_dim: -1 }
    }
}

impl Flatten {
    pub fn new() -> Flatten {
        Flatten::default()
    }
    pub fn dims(start_dim: usize, end_dim: isize) -> Flatten {
        Flatten { start_dim, end_dim }
    }
}

impl Module for Flatten {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        let s = shape_of(cx, x)?;
        let r = s.rank() as isize;
        let end = if self.end_dim < 0 { r + self.end_dim } else { self.end_dim };
        if r == 0 || self.start_dim >= s.rank() || self.start_dim as isize > end || end >= r {
            return Err(Error::Config(format!(
                "flatten({x}): dims {}..={} out of range for shape {s}",
                self.start_dim, self.end_dim
            )));
        }
        let end = end as usize;
        let mut dims = s.0[..self.start_dim].to_vec();
        dims.push(s.0[self.start_dim..=end].iter().product());
        dims.extend_from_slice(&s.0[end + 1..]);
        Ok(cx.reshape(x, dims)?)
    }
}

/// `x`'s shape; an id that is not in this graph (e.g. from another
/// builder) is an error rather than a panic.
pub(crate) fn shape_of(g: &kiln_ir::Graph, x: NodeId) -> Result<Shape> {
    Ok(g.node(x)?.ty.shape.clone())
}

/// Checks that `x` has the given rank (and, if `channels` is given, that
/// dim 1 matches), naming the layer and the node in the error.
pub(crate) fn expect_rank(g: &kiln_ir::Graph, layer: &str, x: NodeId, ranks: &[usize], dim: Option<(usize, usize)>) -> Result<Shape> {
    let s = shape_of(g, x)?;
    if !ranks.contains(&s.rank()) {
        return Err(Error::Config(format!("{layer}({x}: {}): expected rank {ranks:?}", g.ty(x))));
    }
    if let Some((axis, n)) = dim
        && s.0[axis] != n
    {
        return Err(Error::Config(format!("{layer}({x}: {}): expected {n} features at dim {axis}", g.ty(x))));
    }
    Ok(s)
}

/// Registers `<name>.weight` of `shape` and, when `bias` is set,
/// `<name>.bias` `[shape[0]]` (the output features/channels), both with
/// PyTorch's default init for `fan_in`.
pub(crate) fn register_weight_bias(store: &mut ParamStore, name: &str, shape: &[usize], bias: bool, fan_in: usize) -> Result<()> {
    let init = Init::torch_default(fan_in);
    store.register(&pname(name, "weight"), InputRole::Param, shape, init)?;
    if bias {
        store.register(&pname(name, "bias"), InputRole::Param, [shape[0]], init)?;
    }
    Ok(())
}

/// `prefix.leaf`, or `leaf` for an unnamed (top-level) layer.
pub(crate) fn pname(prefix: &str, leaf: &str) -> String {
    if prefix.is_empty() { leaf.to_string() } else { format!("{prefix}.{leaf}") }
}
