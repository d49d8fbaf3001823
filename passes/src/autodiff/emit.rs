//! Small graph-building helpers the VJP rules share. Every helper goes
//! through `Graph::apply`, so a rule that builds an ill-typed node fails with
//! a typed error naming the op and its operands instead of corrupting the graph.

use std::collections::HashMap;

use kiln_ir::{BinaryOp, CompareOp, DType, Graph, HostTensor, IrError, NodeId, Op, Shape, TensorType};

use crate::PassError;

pub(crate) type R = Result<NodeId, PassError>;

pub(crate) fn ir(e: IrError) -> PassError {
    PassError::Ir { pass: "autodiff".into(), source: e }
}

/// A graph plus the helpers rules need. Borrowed mutably for one sweep.
///
/// Nodes built during the sweep are memoized by (op, operands), so rules
/// that ask for the same thing twice (the zero of a mask, `g * x` for both
/// slots of `x * x`) share one node instead of leaving that to CSE.
pub(crate) struct Emit<'g> {
    pub g: &'g mut Graph,
    memo: HashMap<(String, Vec<NodeId>), NodeId>,
}

impl<'g> Emit<'g> {
    pub fn new(g: &'g mut Graph) -> Emit<'g> {
        Emit { g, memo: HashMap::new() }
    }

    pub fn apply(&mut self, op: Op, operands: &[NodeId]) -> R {
        // Constants here are scalars, so the debug form is a cheap exact key.
        let key = (format!("{op:?}"), operands.to_vec());
        if let Some(&id) = self.memo.get(&key) {
            return Ok(id);
        }
        let id = self.g.apply(op, operands).map_err(ir)?;
        self.memo.insert(key, id);
        Ok(id)
    }

    pub fn shape(&self, id: NodeId) -> Shape {
        self.g.ty(id).shape.clone()
    }

    pub fn dtype(&self, id: NodeId) -> DType {
        self.g.ty(id).dtype
    }

    /// A scalar constant with `like`'s dtype (broadcasts in binary ops).
    pub fn scalar(&mut self, v: f64, like: NodeId) -> R {
        let ty = TensorType::new(self.dtype(like), Shape::scalar());
        self.apply(Op::Constant(HostTensor::from_f64_values(&ty, &[v])), &[])
    }

    /// Zeros with `like`'s type, as a broadcast scalar so the constant stays tiny.
    pub fn zeros_like(&mut self, like: NodeId) -> R {
        let z = self.scalar(0.0, like)?;
        let s = self.shape(like);
        if s.rank() == 0 {
            return Ok(z);
        }
        self.apply(Op::BroadcastTo(s), &[z])
    }

    pub fn bin(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> R {
        self.apply(Op::Binary(op), &[a, b])
    }
    pub fn add(&mut self, a: NodeId, b: NodeId) -> R {
        self.bin(BinaryOp::Add, a, b)
    }
    pub fn sub(&mut self, a: NodeId, b: NodeId) -> R {
        self.bin(BinaryOp::Sub, a, b)
    }
    pub fn mul(&mut self, a: NodeId, b: NodeId) -> R {
        self.bin(BinaryOp::Mul, a, b)
    }
    pub fn div(&mut self, a: NodeId, b: NodeId) -> R {
        self.bin(BinaryOp::Div, a, b)
    }
    pub fn neg(&mut self, a: NodeId) -> R {
        self.apply(Op::Unary(kiln_ir::UnaryOp::Neg), &[a])
    }
    pub fn unary(&mut self, op: kiln_ir::UnaryOp, a: NodeId) -> R {
        self.apply(Op::Unary(op), &[a])
    }
    pub fn mul_scalar(&mut self, a: NodeId, c: f64) -> R {
        let s = self.scalar(c, a)?;
        self.mul(a, s)
    }
    /// `c - a` for a scalar constant c.
    pub fn rsub_scalar(&mut self, c: f64, a: NodeId) -> R {
        let s = self.scalar(c, a)?;
        self.sub(s, a)
    }
    pub fn compare(&mut self, op: CompareOp, a: NodeId, b: NodeId) -> R {
        self.apply(Op::Compare(op), &[a, b])
    }
    /// `a <op> c` for a scalar constant c of `a`'s dtype.
    pub fn compare_scalar(&mut self, op: CompareOp, a: NodeId, c: f64) -> R {
        let s = self.scalar(c, a)?;
        self.compare(op, a, s)
    }
    /// `mask ? v : 0`.
    pub fn where_or_zero(&mut self, mask: NodeId, v: NodeId) -> R {
        let z = self.scalar(0.0, v)?;
        self.apply(Op::Select, &[mask, v, z])
    }
    /// `mask ? 0 : v`.
    pub fn zero_where(&mut self, mask: NodeId, v: NodeId) -> R {
        let z = self.scalar(0.0, v)?;
        self.apply(Op::Select, &[mask, z, v])
    }
    pub fn cast(&mut self, a: NodeId, d: DType) -> R {
        if self.dtype(a) == d {
            return Ok(a);
        }
        self.apply(Op::Cast(d), &[a])
    }
    pub fn reshape(&mut self, a: NodeId, s: impl Into<Shape>) -> R {
        let s = s.into();
        if self.shape(a) == s {
            return Ok(a);
        }
        self.apply(Op::Reshape(s), &[a])
    }
    pub fn broadcast_to(&mut self, a: NodeId, s: impl Into<Shape>) -> R {
        let s = s.into();
        if self.shape(a) == s {
            return Ok(a);
        }
        self.apply(Op::BroadcastTo(s), &[a])
    }
    pub fn sum(&mut self, a: NodeId, axes: &[usize], keepdims: bool) -> R {
        if axes.is_empty() {
            return Ok(a);
        }
        self.apply(Op::Reduce { op: kiln_ir::ReduceOp::Sum, axes: axes.to_vec(), keepdims }, &[a])
    }
    pub fn matmul(&mut self, a: NodeId, b: NodeId, trans_a: bool, trans_b: bool) -> R {
        self.apply(Op::MatMul { trans_a, trans_b }, &[a, b])
    }

    /// Sums a gradient of a broadcast result back to the shape of the operand
    /// that was broadcast (NumPy rules: leading axes and size-1 axes).
    pub fn unbroadcast(&mut self, grad: NodeId, target: &Shape) -> R {
        let s = self.shape(grad);
        if &s == target {
            return Ok(grad);
        }
        let (r, t) = (s.rank(), target.rank());
        if t > r {
            return Err(PassError::Autodiff(format!(
                "internal: gradient {grad} of shape {s} cannot be reduced to the larger shape {target}"
            )));
        }
        let lead = r - t;
        let axes: Vec<usize> =
            (0..r).filter(|&i| i < lead || (target.0[i - lead] == 1 && s.0[i] != 1)).collect();
        let summed = self.sum(grad, &axes, false)?;
        self.reshape(summed, target.clone())
    }

    /// Sums several contributions in the order given (deterministic output).
    pub fn sum_all(&mut self, parts: &[NodeId]) -> R {
        let mut acc = parts[0];
        for &p in &parts[1..] {
            acc = self.add(acc, p)?;
        }
        Ok(acc)
    }
}
