//! Convenience builders on `Graph`: one method per common op, each returning
//! the new node's id or a typed error from shape inference.

use crate::op::*;
use crate::{DType, Graph, HostTensor, InputRole, IrError, NodeId, Shape, TensorType};

type R = Result<NodeId, IrError>;

impl Graph {
    pub fn input(&mut self, name: &str, ty: TensorType) -> R {
        self.add_input(name, InputRole::Input, ty)
    }
    pub fn param(&mut self, name: &str, ty: TensorType) -> R {
        self.add_input(name, InputRole::Param, ty)
    }
    pub fn state_input(&mut self, name: &str, ty: TensorType) -> R {
        self.add_input(name, InputRole::State, ty)
    }

    pub fn constant(&mut self, t: HostTensor) -> R {
        self.apply(Op::Constant(t), &[])
    }
    /// A scalar constant of the given float or int dtype.
    pub fn scalar(&mut self, v: f64, dtype: DType) -> R {
        self.constant(HostTensor::from_f64_values(&TensorType::new(dtype, Shape::scalar()), &[v]))
    }
    pub fn scalar_f32(&mut self, v: f32) -> R {
        self.constant(HostTensor::scalar_f32(v))
    }
    /// A scalar constant with `like`'s dtype.
    pub fn scalar_like(&mut self, v: f64, like: NodeId) -> R {
        let d = self.node(like)?.ty.dtype;
        self.scalar(v, d)
    }

    pub fn unary(&mut self, op: UnaryOp, x: NodeId) -> R {
        self.apply(Op::Unary(op), &[x])
    }
    pub fn binary(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> R {
        self.apply(Op::Binary(op), &[a, b])
    }
    pub fn compare(&mut self, op: CompareOp, a: NodeId, b: NodeId) -> R {
        self.apply(Op::Compare(op), &[a, b])
    }

    pub fn add(&mut self, a: NodeId, b: NodeId) -> R {
        self.binary(BinaryOp::Add, a, b)
    }
    pub fn sub(&mut self, a: NodeId, b: NodeId) -> R {
        self.binary(BinaryOp::Sub, a, b)
    }
    pub fn mul(&mut self, a: NodeId, b: NodeId) -> R {
        self.binary(BinaryOp::Mul, a, b)
    }
    pub fn div(&mut self, a: NodeId, b: NodeId) -> R {
        self.binary(BinaryOp::Div, a, b)
    }
    pub fn pow(&mut self, a: NodeId, b: NodeId) -> R {
        self.binary(BinaryOp::Pow, a, b)
    }
    pub fn maximum(&mut self, a: NodeId, b: NodeId) -> R {
        self.binary(BinaryOp::Max, a, b)
    }
    pub fn minimum(&mut self, a: NodeId, b: NodeId) -> R {
        self.binary(BinaryOp::Min, a, b)
    }
    /// `x * c` for a scalar constant c.
    pub fn mul_scalar(&mut self, x: NodeId, c: f64) -> R {
        let s = self.scalar_like(c, x)?;
        self.mul(x, s)
    }
    /// `x + c` for a scalar constant c.
    pub fn add_scalar(&mut self, x: NodeId, c: f64) -> R {
        let s = self.scalar_like(c, x)?;
        self.add(x, s)
    }

    pub fn neg(&mut self, x: NodeId) -> R {
        self.unary(UnaryOp::Neg, x)
    }
    pub fn exp(&mut self, x: NodeId) -> R {
        self.unary(UnaryOp::Exp, x)
    }
    pub fn log(&mut self, x: NodeId) -> R {
        self.unary(UnaryOp::Log, x)
    }
    pub fn sqrt(&mut self, x: NodeId) -> R {
        self.unary(UnaryOp::Sqrt, x)
    }
    pub fn rsqrt(&mut self, x: NodeId) -> R {
        self.unary(UnaryOp::Rsqrt, x)
    }
    pub fn abs(&mut self, x: NodeId) -> R {
        self.unary(UnaryOp::Abs, x)
    }
    pub fn sign(&mut self, x: NodeId) -> R {
        self.unary(UnaryOp::Sign, x)
    }
    pub fn recip(&mut self, x: NodeId) -> R {
        self.unary(UnaryOp::Recip, x)
    }
    pub fn relu(&mut self, x: NodeId) -> R {
        self.unary(UnaryOp::Relu, x)
    }
    pub fn sigmoid(&mut self, x: NodeId) -> R {
        self.unary(UnaryOp::Sigmoid, x)
    }
    pub fn tanh(&mut self, x: NodeId) -> R {
        self.unary(UnaryOp::Tanh, x)
    }
    pub fn erf(&mut self, x: NodeId) -> R {
        self.unary(UnaryOp::Erf, x)
    }

    pub fn select(&mut self, mask: NodeId, a: NodeId, b: NodeId) -> R {
        self.apply(Op::Select, &[mask, a, b])
    }
    pub fn cast(&mut self, x: NodeId, dtype: DType) -> R {
        self.apply(Op::Cast(dtype), &[x])
    }
    pub fn stop_gradient(&mut self, x: NodeId) -> R {
        self.apply(Op::StopGradient, &[x])
    }

    pub fn reduce(&mut self, op: ReduceOp, x: NodeId, axes: &[usize], keepdims: bool) -> R {
        let mut axes = axes.to_vec();
        axes.sort();
        self.apply(Op::Reduce { op, axes, keepdims }, &[x])
    }
    pub fn sum(&mut self, x: NodeId, axes: &[usize], keepdims: bool) -> R {
        self.reduce(ReduceOp::Sum, x, axes, keepdims)
    }
    pub fn mean(&mut self, x: NodeId, axes: &[usize], keepdims: bool) -> R {
        self.reduce(ReduceOp::Mean, x, axes, keepdims)
    }
    pub fn reduce_max(&mut self, x: NodeId, axes: &[usize], keepdims: bool) -> R {
        self.reduce(ReduceOp::Max, x, axes, keepdims)
    }
    /// Sum over every axis to a scalar.
    pub fn sum_all(&mut self, x: NodeId) -> R {
        let r = self.node(x)?.ty.shape.rank();
        self.sum(x, &(0..r).collect::<Vec<_>>(), false)
    }
    /// Mean over every axis to a scalar.
    pub fn mean_all(&mut self, x: NodeId) -> R {
        let r = self.node(x)?.ty.shape.rank();
        self.mean(x, &(0..r).collect::<Vec<_>>(), false)
    }
    pub fn argmax(&mut self, x: NodeId, axis: usize, keepdims: bool) -> R {
        self.apply(Op::ArgMax { axis, keepdims }, &[x])
    }

    pub fn reshape(&mut self, x: NodeId, shape: impl Into<Shape>) -> R {
        self.apply(Op::Reshape(shape.into()), &[x])
    }
    pub fn permute(&mut self, x: NodeId, perm: &[usize]) -> R {
        self.apply(Op::Permute(perm.to_vec()), &[x])
    }
    /// Swaps two axes.
    pub fn transpose(&mut self, x: NodeId, a: usize, b: usize) -> R {
        let r = self.node(x)?.ty.shape.rank();
        let mut perm: Vec<usize> = (0..r).collect();
        if a >= r || b >= r {
            return self.apply(Op::Permute(vec![a, b]), &[x]);
        }
        perm.swap(a, b);
        self.permute(x, &perm)
    }
    pub fn broadcast_to(&mut self, x: NodeId, shape: impl Into<Shape>) -> R {
        self.apply(Op::BroadcastTo(shape.into()), &[x])
    }
    pub fn slice(&mut self, x: NodeId, start: &[usize], end: &[usize], step: &[usize]) -> R {
        self.apply(Op::Slice { start: start.to_vec(), end: end.to_vec(), step: step.to_vec() }, &[x])
    }
    /// `x[.., start..end, ..]` along one axis.
    pub fn slice_axis(&mut self, x: NodeId, axis: usize, start: usize, end: usize) -> R {
        let s = self.node(x)?.ty.shape.clone();
        if axis >= s.rank() {
            return self.slice(x, &[start], &[end], &[1]);
        }
        let mut st = vec![0; s.rank()];
        let mut en = s.0.clone();
        st[axis] = start;
        en[axis] = end;
        self.slice(x, &st, &en, &vec![1; s.rank()])
    }
    pub fn concat(&mut self, xs: &[NodeId], axis: usize) -> R {
        self.apply(Op::Concat { axis }, xs)
    }
    pub fn pad(&mut self, x: NodeId, lo: &[usize], hi: &[usize], value: f64) -> R {
        self.apply(Op::Pad { lo: lo.to_vec(), hi: hi.to_vec(), value }, &[x])
    }
    pub fn matmul(&mut self, a: NodeId, b: NodeId) -> R {
        self.apply(Op::MatMul { trans_a: false, trans_b: false }, &[a, b])
    }
    pub fn matmul_t(&mut self, a: NodeId, b: NodeId, trans_a: bool, trans_b: bool) -> R {
        self.apply(Op::MatMul { trans_a, trans_b }, &[a, b])
    }
    pub fn conv2d(&mut self, x: NodeId, w: NodeId, attrs: Conv2dAttrs) -> R {
        self.apply(Op::Conv2d(attrs), &[x, w])
    }
    pub fn conv1d(&mut self, x: NodeId, w: NodeId, attrs: Conv1dAttrs) -> R {
        self.apply(Op::Conv1d(attrs), &[x, w])
    }
    pub fn max_pool2d(&mut self, x: NodeId, pool: Pool2dAttrs) -> R {
        self.apply(Op::MaxPool2d(pool), &[x])
    }
    pub fn avg_pool2d(&mut self, x: NodeId, pool: Pool2dAttrs, count_include_pad: bool) -> R {
        self.apply(Op::AvgPool2d { pool, count_include_pad }, &[x])
    }
    pub fn gather(&mut self, data: NodeId, indices: NodeId, axis: usize) -> R {
        self.apply(Op::Gather { axis }, &[data, indices])
    }
    pub fn scatter_add(&mut self, indices: NodeId, updates: NodeId, axis: usize, size: usize) -> R {
        self.apply(Op::ScatterAdd { axis, size }, &[indices, updates])
    }
    pub fn one_hot(&mut self, indices: NodeId, classes: usize) -> R {
        self.apply(Op::OneHot { classes }, &[indices])
    }
    pub fn random_uniform(&mut self, counter: NodeId, shape: impl Into<Shape>, seed: u64, low: f64, high: f64) -> R {
        self.apply(Op::RandomUniform { seed, low, high, shape: shape.into() }, &[counter])
    }
}

#[cfg(test)]
mod tests {
    use crate::*;

    #[test]
    fn shape_errors_name_op_operands_and_types() {
        let mut g = Graph::new();
        let a = g.input("a", f32_shape([2, 3])).unwrap();
        let b = g.input("b", f32_shape([4, 3])).unwrap();
        let e = g.add(a, b).unwrap_err();
        let msg = e.to_string();
        assert_eq!(msg, "add(%0: f32[2,3], %1: f32[4,3]): shapes [2,3] and [4,3] do not broadcast");
    }

    #[test]
    fn duplicate_input_names_are_rejected() {
        let mut g = Graph::new();
        g.input("x", f32_shape([1])).unwrap();
        assert_eq!(g.param("x", f32_shape([1])).unwrap_err(), IrError::DuplicateName("x".into()));
    }

    #[test]
    fn bad_axes_are_rejected() {
        let mut g = Graph::new();
        let x = g.input("x", f32_shape([2, 3])).unwrap();
        assert!(g.sum(x, &[2], false).unwrap_err().to_string().contains("axis 2 out of range"));
        assert!(g.sum(x, &[1, 1], false).unwrap_err().to_string().contains("listed twice"));
        assert!(g.permute(x, &[0, 0]).unwrap_err().to_string().contains("not a permutation"));
        assert!(g.concat(&[x], 3).unwrap_err().to_string().contains("axis 3 out of range for rank 2"));
    }

    #[test]
    fn verify_accepts_built_graphs_and_rejects_bad_updates() {
        let mut g = Graph::new();
        let x = g.input("x", f32_shape([2, 3])).unwrap();
        let w = g.param("w", f32_shape([3])).unwrap();
        let y = g.mul(x, w).unwrap();
        let s = g.sum(y, &[0], false).unwrap();
        g.set_output("s", s).unwrap();
        g.set_update("w", s).unwrap();
        verify(&g).unwrap();
        assert!(g.set_update("x", s).is_err(), "data inputs cannot be updated");
        let e = g.set_update("w", y).unwrap_err().to_string();
        assert!(e.contains("f32[2,3]") && e.contains("f32[3]"), "{e}");
    }

    #[test]
    fn replace_all_uses_rewires_users_and_outputs() {
        let mut g = Graph::new();
        let x = g.input("x", f32_shape([3])).unwrap();
        let a = g.neg(x).unwrap();
        let b = g.exp(a).unwrap();
        g.set_output("b", b).unwrap();
        g.set_output("a", a).unwrap();
        let c = g.abs(x).unwrap();
        g.replace_all_uses(a, c);
        assert_eq!(g.operands(b), vec![c]);
        assert_eq!(g.output("a"), Some(c));
        verify(&g).unwrap();
    }

    #[test]
    fn conv_and_pool_shapes() {
        let mut g = Graph::new();
        let x = g.input("x", f32_shape([2, 4, 9, 9])).unwrap();
        let w = g.param("w", f32_shape([6, 2, 3, 3])).unwrap();
        let attrs = Conv2dAttrs { stride: [2, 2], padding: [1, 1], dilation: [2, 2], groups: 2 };
        let y = g.conv2d(x, w, attrs).unwrap();
        assert_eq!(g.ty(y).to_string(), "f32[2,6,4,4]");
        let p = g.max_pool2d(y, Pool2dAttrs { kernel: [3, 3], stride: [1, 1], padding: [1, 1] }).unwrap();
        assert_eq!(g.ty(p).to_string(), "f32[2,6,4,4]");
        let bad = Conv2dAttrs { groups: 3, ..Default::default() };
        let e = g.conv2d(x, w, bad).unwrap_err().to_string();
        assert!(e.starts_with("conv2d(%0: f32[2,4,9,9], %1: f32[6,2,3,3]): groups 3 must divide"), "{e}");
    }
}
