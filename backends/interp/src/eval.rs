//! The interpreter rule of every op, in one exhaustive `match`: adding an
//! `Op` variant fails to compile here until it has a rule.

use kiln_ir::scalar::unary;
use kiln_ir::{DType, HostTensor, Op, TensorType};

use crate::conv::{bias_act, conv2d, conv2d_grad_input, conv2d_grad_weight, Geom};
use crate::elementwise::{binary, cast, compare, select};
use crate::indexing::{gather, one_hot, scatter_add, softmax_cross_entropy};
use crate::linalg::{fused_dense, matmul};
use crate::pool::{avg_pool, avg_pool_grad, max_pool, max_pool_grad, PoolGeom};
use crate::shape_ops::{argmax, broadcast_to, concat, pad, permute, reduce, slice};
use crate::value::{finish, Val};
use crate::{InterpError, Precision};

/// Evaluates `op` on operand values whose types have already been checked
/// against the op (by the verifier or by `eval_op`), producing a value of
/// type `ty`, rounded/truncated to its dtype.
pub(crate) fn eval(op: &Op, ty: &TensorType, args: &[&Val], precision: Precision) -> Result<Val, InterpError> {
    // A result no allocation can hold is an error here rather than an
    // abort inside the allocator (every value is one f64 per element).
    let mut probe: Vec<f64> = Vec::new();
    probe
        .try_reserve_exact(ty.numel())
        .map_err(|e| InterpError::Invalid(format!("the result {ty} does not fit in memory ({e})")))?;
    drop(probe);
    let out = ty.shape.dims();
    let mut data = match op {
        Op::Input { name, .. } => {
            return Err(InterpError::Invalid(format!("input `{name}` has no rule; its value comes from the caller")));
        }
        Op::Constant(t) => t.to_f64_vec(),
        Op::Unary(u) => args[0].data.iter().map(|&x| unary(*u, x)).collect(),
        Op::Binary(b) => binary(*b, args[0], args[1], out)?,
        Op::Compare(c) => compare(*c, args[0], args[1], out),
        Op::Select => select(args[0], args[1], args[2], out),
        Op::Cast(d) => cast(args[0], *d),
        Op::StopGradient => args[0].data.clone(),
        Op::Reduce { op, axes, .. } => reduce(*op, args[0], axes, ty.numel()),
        Op::ArgMax { axis, .. } => argmax(args[0], *axis)?,
        Op::Reshape(_) => args[0].data.clone(),
        Op::Permute(perm) => permute(args[0], perm),
        Op::BroadcastTo(_) => broadcast_to(args[0], out),
        Op::Slice { start, step, .. } => slice(args[0], start, step, out),
        Op::Concat { axis } => concat(args, *axis, out),
        Op::Pad { lo, value, .. } => pad(args[0], lo, *value, out),
        Op::MatMul { trans_a, trans_b } => matmul(args[0], args[1], *trans_a, *trans_b, out),
        Op::Conv2d(attrs) => {
            let g = Geom::new(args[0].dims(), args[1].dims(), out, *attrs);
            conv2d(&args[0].data, &args[1].data, &g)
        }
        Op::Conv2dGradInput { attrs, .. } => {
            let g = Geom::new(out, args[1].dims(), args[0].dims(), *attrs);
            conv2d_grad_input(&args[0].data, &args[1].data, &g)
        }
        Op::Conv2dGradWeight { attrs, .. } => {
            let g = Geom::new(args[0].dims(), out, args[1].dims(), *attrs);
            conv2d_grad_weight(&args[0].data, &args[1].data, &g)
        }
        Op::Conv1d(attrs) => {
            let (x, w) = (args[0].dims(), args[1].dims());
            let g = Geom::new(&[x[0], x[1], 1, x[2]], &[w[0], w[1], 1, w[2]], &[out[0], out[1], 1, out[2]], attrs.as_conv2d());
            conv2d(&args[0].data, &args[1].data, &g)
        }
        Op::MaxPool2d(p) => max_pool(&args[0].data, &PoolGeom::new(args[0].dims(), out, *p)),
        Op::MaxPool2dGrad(p) => {
            max_pool_grad(&args[0].data, &args[1].data, &PoolGeom::new(args[0].dims(), args[1].dims(), *p))
        }
        Op::AvgPool2d { pool, count_include_pad } => {
            avg_pool(&args[0].data, &PoolGeom::new(args[0].dims(), out, *pool), *count_include_pad)
        }
        Op::AvgPool2dGrad { pool, count_include_pad, .. } => {
            avg_pool_grad(&args[0].data, &PoolGeom::new(out, args[0].dims(), *pool), *count_include_pad)
        }
        Op::Gather { axis } => gather(args[0], args[1], *axis)?,
        Op::ScatterAdd { axis, size } => scatter_add(args[0], args[1], *axis, *size)?,
        Op::OneHot { classes } => one_hot(args[0], *classes)?,
        Op::RandomUniform { seed, low, high, shape } => {
            // The counter is a step number; its two's-complement bits are the
            // Philox step, exactly as every other backend reads it.
            let step = args[0].data[0] as i64 as u64;
            (0..shape.numel() as u64).map(|i| kiln_ir::random::uniform(*seed, step, i, *low, *high) as f64).collect()
        }
        Op::FusedDense { trans_b, bias, act } => {
            fused_dense(args[0], args[1], bias.then(|| args[2]), *trans_b, *act, out)
        }
        Op::FusedConv2d { attrs, bias, act } => {
            let g = Geom::new(args[0].dims(), args[1].dims(), out, *attrs);
            let mut y = conv2d(&args[0].data, &args[1].data, &g);
            bias_act(&mut y, bias.then(|| args[2].data.as_slice()), g.o, g.ho * g.wo, *act);
            y
        }
        Op::SoftmaxCrossEntropy => softmax_cross_entropy(args[0], args[1])?,
    };
    finish(ty.dtype, &mut data, precision);
    Ok(Val { ty: ty.clone(), data })
}

/// In f64 mode f32 and f64 are the same thing to the interpreter: compare
/// and infer types with every float read as f32.
fn loose(t: &TensorType, precision: Precision) -> TensorType {
    match (precision, t.dtype) {
        (Precision::F64, DType::F64) => TensorType::new(DType::F32, t.shape.clone()),
        _ => t.clone(),
    }
}

/// Evaluates one op on host tensors (constant folding calls this). Checks the
/// operands against the op's type rule and `ty` first, so a bad call is an
/// error, never a panic. Float results come back as `ty`'s dtype in f32 mode
/// and as f64 in f64 mode.
pub fn eval_op(op: &Op, ty: &TensorType, operands: &[&HostTensor], precision: Precision) -> Result<HostTensor, String> {
    if let Op::Input { name, .. } = op {
        return Err(format!("input `{name}` cannot be evaluated on its own"));
    }
    let tys: Vec<TensorType> = operands.iter().map(|t| loose(&t.ty(), precision)).collect();
    let want = kiln_ir::infer::infer_type(op, &tys).map_err(|r| format!("{}: {r}", op.name()))?;
    if want != loose(ty, precision) {
        return Err(format!("{}: operands give type {want}, not the requested {ty}", op.name()));
    }
    let vals: Vec<Val> = operands.iter().map(|t| Val::from_host(t)).collect();
    let refs: Vec<&Val> = vals.iter().collect();
    let v = eval(op, ty, &refs, precision).map_err(|e| format!("{}: {e}", op.name()))?;
    Ok(v.to_host(precision))
}
