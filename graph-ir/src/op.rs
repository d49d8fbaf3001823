//! The closed op set. Every op has shape inference (`infer.rs`), an
//! interpreter rule (kiln-interp), a gradient rule (kiln-passes autodiff) and
//! a text form (`text/`). Adding a variant here breaks each of those
//! exhaustive matches until the op is handled everywhere.

use crate::{DType, HostTensor, Shape};

/// What a named graph input is: per-call data, a trained parameter, or other
/// persistent state (optimizer moments, running statistics, step counters).
/// Parameters and state are kept by the runtime between calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputRole {
    Input,
    Param,
    State,
}

impl InputRole {
    pub fn name(self) -> &'static str {
        match self {
            InputRole::Input => "input",
            InputRole::Param => "param",
            InputRole::State => "state",
        }
    }

    pub fn is_persistent(self) -> bool {
        !matches!(self, InputRole::Input)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Abs,
    Sign,
    Recip,
    /// `0 > x ? 0 : x` (torch.relu): NaN and -0 pass through
    /// ([`crate::scalar::relu`]).
    Relu,
    Sigmoid,
    Tanh,
    Erf,
    Sin,
    Cos,
}

impl UnaryOp {
    pub const ALL: [UnaryOp; 14] = [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Abs,
        UnaryOp::Sign,
        UnaryOp::Recip,
        UnaryOp::Relu,
        UnaryOp::Sigmoid,
        UnaryOp::Tanh,
        UnaryOp::Erf,
        UnaryOp::Sin,
        UnaryOp::Cos,
    ];

    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Abs => "abs",
            UnaryOp::Sign => "sign",
            UnaryOp::Recip => "recip",
            UnaryOp::Relu => "relu",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Erf => "erf",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
}

impl BinaryOp {
    pub const ALL: [BinaryOp; 7] =
        [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Pow, BinaryOp::Max, BinaryOp::Min];

    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Pow => "pow",
            BinaryOp::Max => "max",
            BinaryOp::Min => "min",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl CompareOp {
    pub const ALL: [CompareOp; 6] =
        [CompareOp::Lt, CompareOp::Le, CompareOp::Gt, CompareOp::Ge, CompareOp::Eq, CompareOp::Ne];

    pub fn name(self) -> &'static str {
        match self {
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
    Min,
}

impl ReduceOp {
    pub const ALL: [ReduceOp; 4] = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min];

    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "reduce_sum",
            ReduceOp::Mean => "reduce_mean",
            ReduceOp::Max => "reduce_max",
            ReduceOp::Min => "reduce_min",
        }
    }
}

/// The activation applied by a fused op's epilogue. Each is chosen so its
/// derivative can be computed from the op's output alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    None,
    Relu,
    Sigmoid,
    Tanh,
}

impl Activation {
    pub const ALL: [Activation; 4] = [Activation::None, Activation::Relu, Activation::Sigmoid, Activation::Tanh];

    pub fn name(self) -> &'static str {
        match self {
            Activation::None => "none",
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
        }
    }
}

/// conv2d attributes, NCHW input and OIHW weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dAttrs {
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
}

impl Default for Conv2dAttrs {
    fn default() -> Self {
        Conv2dAttrs { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1 }
    }
}

impl Conv2dAttrs {
    /// Output extent along one spatial axis, `None` if the window does not fit.
    pub fn out_dim(&self, axis: usize, input: usize, kernel: usize) -> Option<usize> {
        let span = self.dilation[axis].checked_mul(kernel.checked_sub(1)?)?.checked_add(1)?;
        let padded = self.padding[axis].checked_mul(2)?.checked_add(input)?;
        if padded < span || self.stride[axis] == 0 {
            return None;
        }
        Some((padded - span) / self.stride[axis] + 1)
    }
}

/// conv1d attributes, NCL input and OIL weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv1dAttrs {
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
}

impl Default for Conv1dAttrs {
    fn default() -> Self {
        Conv1dAttrs { stride: 1, padding: 0, dilation: 1, groups: 1 }
    }
}

impl Conv1dAttrs {
    /// The same convolution as a conv2d over a height-1 image.
    pub fn as_conv2d(&self) -> Conv2dAttrs {
        Conv2dAttrs {
            stride: [1, self.stride],
            padding: [0, self.padding],
            dilation: [1, self.dilation],
            groups: self.groups,
        }
    }
}

/// Pooling window attributes (NCHW). ceil_mode is always false.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pool2dAttrs {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
}

impl Pool2dAttrs {
    pub fn out_dim(&self, axis: usize, input: usize) -> Option<usize> {
        let padded = self.padding[axis].checked_mul(2)?.checked_add(input)?;
        if self.kernel[axis] == 0 || self.stride[axis] == 0 || padded < self.kernel[axis] {
            return None;
        }
        Some((padded - self.kernel[axis]) / self.stride[axis] + 1)
    }
}

/// One operation. Operand order and meaning is documented per variant and in
/// `docs/kir.md`.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// A named graph input (no operands). The node's type is declared.
    Input { name: String, role: InputRole },
    /// A literal tensor (no operands).
    Constant(HostTensor),
    /// `(x)`, float x.
    Unary(UnaryOp),
    /// `(a, b)` with NumPy broadcasting, equal dtypes.
    Binary(BinaryOp),
    /// `(a, b)` broadcasting, result is a bool mask.
    Compare(CompareOp),
    /// `(mask, a, b)`: `mask ? a : b`, all three broadcast.
    Select,
    /// `(x)` converted to the dtype.
    Cast(DType),
    /// `(x)`: identity forward, zero gradient.
    StopGradient,
    /// `(x)` reduced over `axes` (sorted, unique).
    Reduce { op: ReduceOp, axes: Vec<usize>, keepdims: bool },
    /// `(x)`: index of the first maximum along `axis`, i64.
    ArgMax { axis: usize, keepdims: bool },
    /// `(x)` with the same elements in a new shape.
    Reshape(Shape),
    /// `(x)` with axes permuted: output axis i is input axis `perm[i]`.
    Permute(Vec<usize>),
    /// `(x)` broadcast (NumPy rules) to the shape.
    BroadcastTo(Shape),
    /// `(x)[start:end:step]` per axis, step >= 1.
    Slice { start: Vec<usize>, end: Vec<usize>, step: Vec<usize> },
    /// `(x0, x1, ...)` joined along `axis`.
    Concat { axis: usize },
    /// `(x)` padded with `value`: `lo[i]` before and `hi[i]` after axis i.
    Pad { lo: Vec<usize>, hi: Vec<usize>, value: f64 },
    /// `(a, b)`: batched matrix product over the last two axes; batch axes
    /// broadcast. `trans_a`/`trans_b` read that operand's last two axes swapped.
    MatMul { trans_a: bool, trans_b: bool },
    /// `(x[N,C,H,W], w[O,C/g,kh,kw])`.
    Conv2d(Conv2dAttrs),
    /// `(dy[N,O,Ho,Wo], w[O,C/g,kh,kw])` -> dx[N,C,H,W] with `input_hw` = [H,W].
    Conv2dGradInput { attrs: Conv2dAttrs, input_hw: [usize; 2] },
    /// `(x[N,C,H,W], dy[N,O,Ho,Wo])` -> dw[O,C/g,kh,kw] with `kernel_hw` = [kh,kw].
    Conv2dGradWeight { attrs: Conv2dAttrs, kernel_hw: [usize; 2] },
    /// `(x[N,C,L], w[O,C/g,k])`.
    Conv1d(Conv1dAttrs),
    /// `(x[N,C,H,W])`, padding acts as -inf.
    MaxPool2d(Pool2dAttrs),
    /// `(x, dy)` -> dx: dy routed to the first maximum of each window.
    MaxPool2dGrad(Pool2dAttrs),
    /// `(x[N,C,H,W])`.
    AvgPool2d { pool: Pool2dAttrs, count_include_pad: bool },
    /// `(dy)` -> dx[N,C,H,W] with `input_hw` = [H,W].
    AvgPool2dGrad { pool: Pool2dAttrs, count_include_pad: bool, input_hw: [usize; 2] },
    /// `(data, indices)`: NumPy `take(data, indices, axis)`; output shape is
    /// `data[..axis] ++ indices ++ data[axis+1..]`. Out-of-range indices are
    /// a run-time error.
    Gather { axis: usize },
    /// `(indices, updates)`: the adjoint of gather. Output shape is
    /// `updates[..axis] ++ [size] ++ updates[axis+indices.rank..]`, zeros
    /// plus every update added at its index.
    ScatterAdd { axis: usize, size: usize },
    /// `(indices)` integer -> f32 `indices.shape ++ [classes]`.
    OneHot { classes: usize },
    /// `(counter: i64[])` -> f32 `shape` uniform in [low, high), a pure
    /// function of (seed, counter, element index) (Philox 4x32-10).
    RandomUniform { seed: u64, low: f64, high: f64, shape: Shape },
    /// `(x[...,K], w[K,N] or w[N,K] if trans_b, bias[N]?)`: act(x @ w + bias).
    FusedDense { trans_b: bool, bias: bool, act: Activation },
    /// `(x, w, bias[O]?)`: act(conv2d(x, w) + bias).
    FusedConv2d { attrs: Conv2dAttrs, bias: bool, act: Activation },
    /// `(logits[N,C], labels int[N])` -> f32[N]: -log_softmax(logits)[i, label_i].
    SoftmaxCrossEntropy,
}

impl Op {
    /// The op's text-format keyword.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input { role, .. } => role.name(),
            Op::Constant(_) => "const",
            Op::Unary(u) => u.name(),
            Op::Binary(b) => b.name(),
            Op::Compare(c) => c.name(),
            Op::Select => "select",
            Op::Cast(_) => "cast",
            Op::StopGradient => "stop_gradient",
            Op::Reduce { op, .. } => op.name(),
            Op::ArgMax { .. } => "argmax",
            Op::Reshape(_) => "reshape",
            Op::Permute(_) => "permute",
            Op::BroadcastTo(_) => "broadcast_to",
            Op::Slice { .. } => "slice",
            Op::Concat { .. } => "concat",
            Op::Pad { .. } => "pad",
            Op::MatMul { .. } => "matmul",
            Op::Conv2d(_) => "conv2d",
            Op::Conv2dGradInput { .. } => "conv2d_grad_input",
            Op::Conv2dGradWeight { .. } => "conv2d_grad_weight",
            Op::Conv1d(_) => "conv1d",
            Op::MaxPool2d(_) => "max_pool2d",
            Op::MaxPool2dGrad(_) => "max_pool2d_grad",
            Op::AvgPool2d { .. } => "avg_pool2d",
            Op::AvgPool2dGrad { .. } => "avg_pool2d_grad",
            Op::Gather { .. } => "gather",
            Op::ScatterAdd { .. } => "scatter_add",
            Op::OneHot { .. } => "one_hot",
            Op::RandomUniform { .. } => "random_uniform",
            Op::FusedDense { .. } => "fused_dense",
            Op::FusedConv2d { .. } => "fused_conv2d",
            Op::SoftmaxCrossEntropy => "softmax_cross_entropy",
        }
    }

    /// Elementwise ops (one output element per broadcast input position) that
    /// loop fusion may merge into a neighbouring kernel.
    pub fn is_elementwise(&self) -> bool {
        matches!(
            self,
            Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Select | Op::Cast(_) | Op::StopGradient
        )
    }

    pub fn is_input(&self) -> bool {
        matches!(self, Op::Input { .. })
    }

    /// Whether the op has no operands (a graph source).
    pub fn is_source(&self) -> bool {
        matches!(self, Op::Input { .. } | Op::Constant(_))
    }
}
