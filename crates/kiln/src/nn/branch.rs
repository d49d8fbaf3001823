//! Modules that fan one input out and concatenate what comes back:
//! [`Branches`] (Inception: several modules on the same input, outputs
//! concatenated) and [`DenselyConnected`] (DenseNet: each module sees the
//! concatenation of the input and every earlier module's output).

use kiln_ir::NodeId;

use super::{shape_of, Module};
use crate::{Builder, Error, Result};

/// Concatenates `parts` on `dim` after checking that every other dim
/// agrees, so a mismatch names the module and which part is off rather
/// than surfacing as a bare concat error.
fn concat_checked(cx: &mut Builder, what: &str, parts: &[NodeId], dim: usize) -> Result<NodeId> {
    let first = shape_of(cx, parts[0])?;
    if dim >= first.rank() {
        return Err(Error::Config(format!("{what}: concat dim {dim} out of range for {} ({})", cx.ty(parts[0]), parts[0])));
    }
    for (i, &p) in parts.iter().enumerate().skip(1) {
        let s = shape_of(cx, p)?;
        let same = s.rank() == first.rank() && (0..s.rank()).all(|d| d == dim || s.0[d] == first.0[d]);
        if !same {
            return Err(Error::Config(format!(
                "{what}: part {i} ({p}: {}) does not match part 0 ({}: {}) outside dim {dim}",
                cx.ty(p),
                parts[0],
                cx.ty(parts[0])
            )));
        }
    }
    if parts.len() == 1 {
        return Ok(parts[0]);
    }
    Ok(cx.concat(parts, dim)?)
}

/// Runs every branch on the same input and concatenates their outputs on
/// `dim` in the order the branches were added (`torch.cat([b(x) for b in
/// branches], dim)`), as in an Inception block.
pub struct Branches {
    dim: usize,
    branches: Vec<Box<dyn Module>>,
}

impl Branches {
    /// No branches yet; outputs will be concatenated on `dim` (1 for NCHW
    /// channels).
    pub fn new(dim: usize) -> Branches {
        Branches { dim, branches: Vec::new() }
    }
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, m: impl Module + 'static) -> Branches {
        self.branches.push(Box::new(m));
        self
    }
    pub fn push(&mut self, m: impl Module + 'static) {
        self.branches.push(Box::new(m));
    }
    pub fn len(&self) -> usize {
        self.branches.len()
    }
    pub fn is_empty(&self) -> bool {
        self.branches.is_empty()
    }
}

impl Module for Branches {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        if self.branches.is_empty() {
            return Err(Error::Config(format!("branches({x}): no branch to run")));
        }
        let outs = self.branches.iter().map(|b| b.forward(cx, x)).collect::<Result<Vec<_>>>()?;
        concat_checked(cx, &format!("branches({x})"), &outs, self.dim)
    }
}

/// Dense connectivity: module `i` runs on the concatenation (on `dim`) of
/// the input and the outputs of modules `0..i`; the result is the input
/// followed by every module's output, concatenated. With input `c0`
/// channels and modules that each add `k`, the output has `c0 + n*k`.
///
/// Equal to DenseNet's block, which concatenates the whole list again for
/// every layer; here each concatenation extends the previous one by one
/// output, which is the same tensor.
pub struct DenselyConnected {
    dim: usize,
    layers: Vec<Box<dyn Module>>,
}

impl DenselyConnected {
    pub fn new(dim: usize) -> DenselyConnected {
        DenselyConnected { dim, layers: Vec::new() }
    }
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, m: impl Module + 'static) -> DenselyConnected {
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

impl Module for DenselyConnected {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        let mut features = x;
        for (i, l) in self.layers.iter().enumerate() {
            let new = l.forward(cx, features)?;
            features = concat_checked(cx, &format!("densely_connected({x}) layer {i}"), &[features, new], self.dim)?;
        }
        Ok(features)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Conv2d, Lambda};
    use crate::{f32_shape, CompileOptions, HostTensor, ParamStore};

    fn scale(k: f64) -> Lambda<impl Fn(&mut Builder, NodeId) -> Result<NodeId>> {
        Lambda(move |cx: &mut Builder, x: NodeId| Ok(cx.mul_scalar(x, k)?))
    }

    #[test]
    fn branches_concatenate_in_order() {
        let m = Branches::new(1).add(scale(1.0)).add(scale(2.0)).add(scale(-1.0));
        let mut b = Builder::eval();
        let x = b.input("x", f32_shape([2, 2])).unwrap();
        let y = m.forward(&mut b, x).unwrap();
        b.output("y", y).unwrap();
        let spec = crate::inference(&b, &ParamStore::new(0)).unwrap();
        let mut p = crate::compile(&spec, CompileOptions::interp()).unwrap();
        let xs = HostTensor::from_f32([2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let out = p.run(&[("x", &xs)]).unwrap();
        assert_eq!(out["y"].shape().dims(), &[2, 6]);
        assert_eq!(out["y"].as_f32().unwrap(), &[1.0, 2.0, 2.0, 4.0, -1.0, -2.0, 3.0, 4.0, 6.0, 8.0, -3.0, -4.0]);
    }

    #[test]
    fn densely_connected_grows_the_feature_list() {
        // Each layer sums its input's features into one: layer 0 sees [a],
        // layer 1 sees [a, a], so the output is [a, a, 2a].
        let sum = || Lambda(|cx: &mut Builder, x: NodeId| Ok(cx.sum(x, &[1], true)?));
        let m = DenselyConnected::new(1).add(sum()).add(sum());
        let mut b = Builder::eval();
        let x = b.input("x", f32_shape([2, 1])).unwrap();
        let y = m.forward(&mut b, x).unwrap();
        b.output("y", y).unwrap();
        let spec = crate::inference(&b, &ParamStore::new(0)).unwrap();
        let mut p = crate::compile(&spec, CompileOptions::interp()).unwrap();
        let out = p.run(&[("x", &HostTensor::from_f32([2, 1], vec![1.0, 3.0]).unwrap())]).unwrap();
        assert_eq!(out["y"].as_f32().unwrap(), &[1.0, 1.0, 2.0, 3.0, 3.0, 6.0]);
    }

    #[test]
    fn mismatched_branches_name_the_part() {
        let mut store = ParamStore::new(0);
        let strided = Conv2d::config(1, 1, 1).stride(2).build(&mut store, "s").unwrap();
        let m = Branches::new(1).add(scale(1.0)).add(strided);
        let mut b = Builder::eval();
        let x = b.input("x", f32_shape([1, 1, 4, 4])).unwrap();
        let e = m.forward(&mut b, x).unwrap_err();
        assert!(matches!(&e, Error::Config(msg) if msg.contains("part 1") && msg.contains("[1,1,2,2]")), "{e}");
        let e = Branches::new(4).add(scale(1.0)).forward(&mut b, x).unwrap_err();
        assert!(matches!(&e, Error::Config(msg) if msg.contains("dim 4")), "{e}");
        assert!(Branches::new(1).forward(&mut b, x).is_err());
    }
}
