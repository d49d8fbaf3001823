//! Embedding lookup: `weight[indices]`, weight [num_embeddings, dim] ~ N(0,1).

use kiln_ir::{CompareOp, InputRole, NodeId};

use super::{pname, Module};
use crate::init::Init;
use crate::{Builder, Error, ParamStore, Result};

#[derive(Debug, Clone)]
pub struct Embedding {
    pub name: String,
    pub num_embeddings: usize,
    pub dim: usize,
    /// Row that starts at zero and receives no gradient.
    pub padding_idx: Option<usize>,
}

impl Embedding {
    pub fn new(store: &mut ParamStore, name: &str, num_embeddings: usize, dim: usize) -> Result<Embedding> {
        Self::with_padding(store, name, num_embeddings, dim, None)
    }

    pub fn with_padding(
        store: &mut ParamStore,
        name: &str,
        num_embeddings: usize,
        dim: usize,
        padding_idx: Option<usize>,
    ) -> Result<Embedding> {
        if let Some(p) = padding_idx
            && p >= num_embeddings
        {
            return Err(Error::Config(format!("embedding `{name}`: padding_idx {p} >= {num_embeddings}")));
        }
        let w = pname(name, "weight");
        store.register(&w, InputRole::Param, [num_embeddings, dim], Init::Normal { mean: 0.0, std: 1.0 })?;
        if let Some(p) = padding_idx {
            let mut t = store.get(&w).expect("just registered").clone();
            t.as_f32_mut().expect("f32")[p * dim..(p + 1) * dim].fill(0.0);
            store.set(&w, t)?;
        }
        Ok(Embedding { name: name.to_string(), num_embeddings, dim, padding_idx })
    }
}

impl Module for Embedding {
    /// `indices` (integer, any shape) -> f32 `indices.shape ++ [dim]`.
    fn forward(&self, cx: &mut Builder, indices: NodeId) -> Result<NodeId> {
        if !cx.node(indices)?.ty.dtype.is_int() {
            return Err(Error::Config(format!("embedding `{}`({indices}: {}): indices must be integers", self.name, cx.ty(indices))));
        }
        let w = cx.param(&pname(&self.name, "weight"), [self.num_embeddings, self.dim])?;
        let y = cx.gather(w, indices, 0)?;
        let Some(p) = self.padding_idx else { return Ok(y) };
        // Positions that look up the padding row pass their value through
        // a stop_gradient, so that row gets no gradient.
        let pi = cx.scalar_like(p as f64, indices)?;
        let is_pad = cx.compare(CompareOp::Eq, indices, pi)?;
        let mut dims = cx.ty(indices).shape.0.clone();
        dims.push(1);
        let is_pad = cx.reshape(is_pad, dims)?;
        let frozen = cx.stop_gradient(y)?;
        Ok(cx.select(is_pad, frozen, y)?)
    }
}
