//! Shape and dtype inference: one rule per op. Errors are plain reasons; the
//! graph wraps them with the op name and the operands' `%N`s and types.

use crate::op::*;
use crate::{DType, Shape, TensorType};

type R = Result<TensorType, String>;

fn arity(operands: &[TensorType], n: usize) -> Result<(), String> {
    if operands.len() != n {
        return Err(format!("expects {n} operand(s), got {}", operands.len()));
    }
    Ok(())
}

fn float(t: &TensorType, what: &str) -> Result<(), String> {
    if !t.dtype.is_float() {
        return Err(format!("{what} must be a float tensor, got {t}"));
    }
    Ok(())
}

fn int(t: &TensorType, what: &str) -> Result<(), String> {
    if !t.dtype.is_int() {
        return Err(format!("{what} must be an integer tensor (i64 or i32), got {t}"));
    }
    Ok(())
}

fn same_dtype(a: &TensorType, b: &TensorType) -> Result<(), String> {
    if a.dtype != b.dtype {
        return Err(format!("operand dtypes differ: {} vs {}", a.dtype, b.dtype));
    }
    Ok(())
}

fn broadcast(a: &Shape, b: &Shape) -> Result<Shape, String> {
    Shape::broadcast(a, b).ok_or_else(|| format!("shapes {a} and {b} do not broadcast"))
}

fn check_axis(axis: usize, rank: usize) -> Result<(), String> {
    if axis >= rank {
        return Err(format!("axis {axis} out of range for rank {rank}"));
    }
    Ok(())
}

fn rank_is(t: &TensorType, r: usize, what: &str) -> Result<(), String> {
    if t.shape.rank() != r {
        return Err(format!("{what} must have rank {r}, got {t}"));
    }
    Ok(())
}

fn same_len(what: &str, n: usize, rank: usize) -> Result<(), String> {
    if n != rank {
        return Err(format!("{what} has {n} entries but the operand has rank {rank}"));
    }
    Ok(())
}

/// Refuses a type whose byte size no allocation could hold, so that the
/// element-count arithmetic of later passes and backends cannot overflow.
pub fn check_addressable(t: &TensorType) -> Result<(), String> {
    if t.checked_size_bytes().is_none() {
        return Err(format!("{t} has more elements than fit in memory"));
    }
    Ok(())
}

/// Infers the result type of `op` applied to operands of the given types.
/// `Input` nodes carry a declared type and are not inferred.
pub fn infer_type(op: &Op, operands: &[TensorType]) -> R {
    for t in operands {
        check_addressable(t)?;
    }
    let ty = infer_unchecked(op, operands)?;
    check_addressable(&ty)?;
    Ok(ty)
}

fn infer_unchecked(op: &Op, operands: &[TensorType]) -> R {
    match op {
        Op::Input { .. } => Err("inputs have a declared type, not an inferred one".into()),
        Op::Constant(t) => {
            arity(operands, 0)?;
            Ok(t.ty())
        }
        Op::Unary(u) => {
            arity(operands, 1)?;
            let x = &operands[0];
            if !(x.dtype.is_float() || (matches!(u, UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign) && x.dtype.is_int())) {
                return Err(format!("operand must be a float tensor, got {x}"));
            }
            Ok(x.clone())
        }
        Op::Binary(_) => {
            arity(operands, 2)?;
            let (a, b) = (&operands[0], &operands[1]);
            same_dtype(a, b)?;
            if a.dtype == DType::Bool {
                return Err("arithmetic on bool masks; cast them first".into());
            }
            Ok(TensorType::new(a.dtype, broadcast(&a.shape, &b.shape)?))
        }
        Op::Compare(_) => {
            arity(operands, 2)?;
            let (a, b) = (&operands[0], &operands[1]);
            same_dtype(a, b)?;
            Ok(TensorType::new(DType::Bool, broadcast(&a.shape, &b.shape)?))
        }
        Op::Select => {
            arity(operands, 3)?;
            let (m, a, b) = (&operands[0], &operands[1], &operands[2]);
            if m.dtype != DType::Bool {
                return Err(format!("select mask must be bool, got {m}"));
            }
            same_dtype(a, b)?;
            let s = broadcast(&broadcast(&m.shape, &a.shape)?, &b.shape)?;
            Ok(TensorType::new(a.dtype, s))
        }
        Op::Cast(d) => {
            arity(operands, 1)?;
            Ok(TensorType::new(*d, operands[0].shape.clone()))
        }
        Op::StopGradient => {
            arity(operands, 1)?;
            Ok(operands[0].clone())
        }
        Op::Reduce { op, axes, keepdims } => {
            arity(operands, 1)?;
            let x = &operands[0];
            if x.dtype == DType::Bool {
                return Err("cannot reduce a bool mask; cast it first".into());
            }
            if matches!(op, ReduceOp::Mean) {
                float(x, "reduce_mean operand")?;
            }
            reduced_shape(&x.shape, axes, *keepdims).map(|s| TensorType::new(x.dtype, s))
        }
        Op::ArgMax { axis, keepdims } => {
            arity(operands, 1)?;
            let x = &operands[0];
            if x.shape.0.get(*axis) == Some(&0) {
                return Err(format!("argmax over axis {axis} of extent 0 has no answer"));
            }
            reduced_shape(&x.shape, &[*axis], *keepdims).map(|s| TensorType::new(DType::I64, s))
        }
        Op::Reshape(s) => {
            arity(operands, 1)?;
            let x = &operands[0];
            check_addressable(&TensorType::new(x.dtype, s.clone()))?;
            if s.numel() != x.numel() {
                return Err(format!("cannot reshape {} ({} elements) to {s} ({} elements)", x, x.numel(), s.numel()));
            }
            Ok(TensorType::new(x.dtype, s.clone()))
        }
        Op::Permute(perm) => {
            arity(operands, 1)?;
            let x = &operands[0];
            same_len("perm", perm.len(), x.shape.rank())?;
            let mut seen = vec![false; perm.len()];
            for &p in perm {
                if p >= perm.len() || seen[p] {
                    return Err(format!("perm {perm:?} is not a permutation of 0..{}", perm.len()));
                }
                seen[p] = true;
            }
            Ok(TensorType::new(x.dtype, Shape(perm.iter().map(|&p| x.shape.0[p]).collect())))
        }
        Op::BroadcastTo(s) => {
            arity(operands, 1)?;
            let x = &operands[0];
            if !x.shape.broadcasts_to(s) {
                return Err(format!("{} does not broadcast to {s}", x.shape));
            }
            Ok(TensorType::new(x.dtype, s.clone()))
        }
        Op::Slice { start, end, step } => {
            arity(operands, 1)?;
            let x = &operands[0];
            let r = x.shape.rank();
            same_len("start", start.len(), r)?;
            same_len("end", end.len(), r)?;
            same_len("step", step.len(), r)?;
            let mut out = Vec::with_capacity(r);
            for i in 0..r {
                if step[i] == 0 {
                    return Err(format!("step must be >= 1 on axis {i}"));
                }
                if start[i] > end[i] || end[i] > x.shape.0[i] {
                    return Err(format!(
                        "slice {}:{} out of range on axis {i} of extent {}",
                        start[i], end[i], x.shape.0[i]
                    ));
                }
                out.push((end[i] - start[i]).div_ceil(step[i]));
            }
            Ok(TensorType::new(x.dtype, Shape(out)))
        }
        Op::Concat { axis } => {
            if operands.is_empty() {
                return Err("concat needs at least one operand".into());
            }
            let first = &operands[0];
            check_axis(*axis, first.shape.rank())?;
            let mut dims = first.shape.0.clone();
            for (k, t) in operands.iter().enumerate().skip(1) {
                same_dtype(first, t)?;
                if t.shape.rank() != first.shape.rank()
                    || (0..dims.len()).any(|i| i != *axis && t.shape.0[i] != first.shape.0[i])
                {
                    return Err(format!("operand {k} {} does not match {} outside axis {axis}", t, first));
                }
                dims[*axis] = dims[*axis]
                    .checked_add(t.shape.0[*axis])
                    .ok_or_else(|| format!("concatenated extent on axis {axis} overflows"))?;
            }
            Ok(TensorType::new(first.dtype, Shape(dims)))
        }
        Op::Pad { lo, hi, .. } => {
            arity(operands, 1)?;
            let x = &operands[0];
            same_len("lo", lo.len(), x.shape.rank())?;
            same_len("hi", hi.len(), x.shape.rank())?;
            let dims = x
                .shape
                .0
                .iter()
                .enumerate()
                .map(|(i, &d)| d.checked_add(lo[i])?.checked_add(hi[i]))
                .collect::<Option<Vec<usize>>>()
                .ok_or_else(|| format!("padding {lo:?}/{hi:?} of {x} overflows"))?;
            Ok(TensorType::new(x.dtype, Shape(dims)))
        }
        Op::MatMul { trans_a, trans_b } => {
            arity(operands, 2)?;
            matmul_type(&operands[0], &operands[1], *trans_a, *trans_b)
        }
        Op::Conv2d(attrs) => {
            arity(operands, 2)?;
            conv2d_type(&operands[0], &operands[1], attrs)
        }
        Op::Conv2dGradInput { attrs, input_hw } => {
            arity(operands, 2)?;
            let (dy, w) = (&operands[0], &operands[1]);
            float(dy, "dy")?;
            same_dtype(dy, w)?;
            rank_is(dy, 4, "dy")?;
            rank_is(w, 4, "weight")?;
            let c = w.shape.0[1]
                .checked_mul(attrs.groups)
                .ok_or_else(|| format!("groups {} times weight {w}'s input channels overflows", attrs.groups))?;
            let x = TensorType::new(dy.dtype, [dy.shape.0[0], c, input_hw[0], input_hw[1]]);
            let y = conv2d_type(&x, w, attrs)?;
            if y != *dy {
                return Err(format!("dy {dy} does not match the forward output {y} for input {x}"));
            }
            Ok(x)
        }
        Op::Conv2dGradWeight { attrs, kernel_hw } => {
            arity(operands, 2)?;
            let (x, dy) = (&operands[0], &operands[1]);
            float(x, "input")?;
            same_dtype(x, dy)?;
            rank_is(x, 4, "input")?;
            rank_is(dy, 4, "dy")?;
            if attrs.groups == 0 || x.shape.0[1] % attrs.groups != 0 {
                return Err(format!("groups {} must divide the input channels of {x}", attrs.groups));
            }
            let w = TensorType::new(x.dtype, [dy.shape.0[1], x.shape.0[1] / attrs.groups, kernel_hw[0], kernel_hw[1]]);
            let y = conv2d_type(x, &w, attrs)?;
            if y != *dy {
                return Err(format!("dy {dy} does not match the forward output {y} for weight {w}"));
            }
            Ok(w)
        }
        Op::Conv1d(attrs) => {
            arity(operands, 2)?;
            let (x, w) = (&operands[0], &operands[1]);
            rank_is(x, 3, "conv1d input")?;
            rank_is(w, 3, "conv1d weight")?;
            let x4 = TensorType::new(x.dtype, [x.shape.0[0], x.shape.0[1], 1, x.shape.0[2]]);
            let w4 = TensorType::new(w.dtype, [w.shape.0[0], w.shape.0[1], 1, w.shape.0[2]]);
            let y = conv2d_type(&x4, &w4, &attrs.as_conv2d())?;
            Ok(TensorType::new(y.dtype, [y.shape.0[0], y.shape.0[1], y.shape.0[3]]))
        }
        Op::MaxPool2d(p) => {
            arity(operands, 1)?;
            pool_type(&operands[0], p)
        }
        Op::MaxPool2dGrad(p) => {
            arity(operands, 2)?;
            let (x, dy) = (&operands[0], &operands[1]);
            let y = pool_type(x, p)?;
            if y != *dy {
                return Err(format!("dy {dy} does not match the pooled output {y}"));
            }
            Ok(x.clone())
        }
        Op::AvgPool2d { pool, .. } => {
            arity(operands, 1)?;
            pool_type(&operands[0], pool)
        }
        Op::AvgPool2dGrad { pool, input_hw, .. } => {
            arity(operands, 1)?;
            let dy = &operands[0];
            rank_is(dy, 4, "dy")?;
            let x = TensorType::new(dy.dtype, [dy.shape.0[0], dy.shape.0[1], input_hw[0], input_hw[1]]);
            let y = pool_type(&x, pool)?;
            if y != *dy {
                return Err(format!("dy {dy} does not match the pooled output {y} of input {x}"));
            }
            Ok(x)
        }
        Op::Gather { axis } => {
            arity(operands, 2)?;
            let (data, idx) = (&operands[0], &operands[1]);
            int(idx, "indices")?;
            check_axis(*axis, data.shape.rank())?;
            let mut dims = data.shape.0[..*axis].to_vec();
            dims.extend_from_slice(&idx.shape.0);
            dims.extend_from_slice(&data.shape.0[axis + 1..]);
            Ok(TensorType::new(data.dtype, Shape(dims)))
        }
        Op::ScatterAdd { axis, size } => {
            arity(operands, 2)?;
            let (idx, upd) = (&operands[0], &operands[1]);
            int(idx, "indices")?;
            if upd.dtype == DType::Bool {
                return Err("scatter_add updates must be numeric".into());
            }
            let ir = idx.shape.rank();
            if axis.checked_add(ir).is_none_or(|end| end > upd.shape.rank())
                || upd.shape.0[*axis..axis + ir] != idx.shape.0[..]
            {
                return Err(format!(
                    "updates {upd} must have the indices' shape {} at axis {axis}",
                    idx.shape
                ));
            }
            let mut dims = upd.shape.0[..*axis].to_vec();
            dims.push(*size);
            dims.extend_from_slice(&upd.shape.0[axis + ir..]);
            Ok(TensorType::new(upd.dtype, Shape(dims)))
        }
        Op::OneHot { classes } => {
            arity(operands, 1)?;
            let idx = &operands[0];
            int(idx, "one_hot indices")?;
            if *classes == 0 {
                return Err("one_hot needs classes >= 1".into());
            }
            let mut dims = idx.shape.0.clone();
            dims.push(*classes);
            Ok(TensorType::new(DType::F32, Shape(dims)))
        }
        Op::RandomUniform { low, high, shape, .. } => {
            arity(operands, 1)?;
            let c = &operands[0];
            if c.dtype != DType::I64 || c.shape.rank() != 0 {
                return Err(format!("random_uniform counter must be i64[], got {c}"));
            }
            if !(low.is_finite() && high.is_finite() && low < high) {
                return Err(format!("random_uniform needs finite low < high, got [{low}, {high})"));
            }
            Ok(TensorType::new(DType::F32, shape.clone()))
        }
        Op::FusedDense { trans_b, bias, .. } => {
            arity(operands, 2 + *bias as usize)?;
            let (x, w) = (&operands[0], &operands[1]);
            rank_is(w, 2, "fused_dense weight")?;
            let y = matmul_type(x, w, false, *trans_b)?;
            if *bias {
                check_bias(&operands[2], &y, y.shape.rank() - 1)?;
            }
            Ok(y)
        }
        Op::FusedConv2d { attrs, bias, .. } => {
            arity(operands, 2 + *bias as usize)?;
            let y = conv2d_type(&operands[0], &operands[1], attrs)?;
            if *bias {
                check_bias(&operands[2], &y, 1)?;
            }
            Ok(y)
        }
        Op::SoftmaxCrossEntropy => {
            arity(operands, 2)?;
            let (logits, labels) = (&operands[0], &operands[1]);
            float(logits, "logits")?;
            rank_is(logits, 2, "logits")?;
            int(labels, "labels")?;
            if labels.shape.0 != [logits.shape.0[0]] {
                return Err(format!("labels {labels} must be [{}] for logits {logits}", logits.shape.0[0]));
            }
            Ok(TensorType::new(logits.dtype, [logits.shape.0[0]]))
        }
    }
}

fn check_bias(b: &TensorType, y: &TensorType, axis: usize) -> Result<(), String> {
    if b.dtype != y.dtype || b.shape.0 != [y.shape.0[axis]] {
        return Err(format!("bias {b} must be {}[{}]", y.dtype, y.shape.0[axis]));
    }
    Ok(())
}

/// The shape after reducing `axes` (must be unique and in range).
pub fn reduced_shape(s: &Shape, axes: &[usize], keepdims: bool) -> Result<Shape, String> {
    let mut seen = vec![false; s.rank()];
    for &a in axes {
        check_axis(a, s.rank())?;
        if seen[a] {
            return Err(format!("axis {a} listed twice"));
        }
        seen[a] = true;
    }
    let dims = s
        .0
        .iter()
        .enumerate()
        .filter_map(|(i, &d)| if seen[i] { keepdims.then_some(1) } else { Some(d) })
        .collect();
    Ok(Shape(dims))
}

pub fn matmul_type(a: &TensorType, b: &TensorType, trans_a: bool, trans_b: bool) -> R {
    float(a, "matmul lhs")?;
    same_dtype(a, b)?;
    if a.shape.rank() < 2 || b.shape.rank() < 2 {
        return Err(format!("matmul operands need rank >= 2, got {a} and {b}"));
    }
    let (ra, rb) = (a.shape.rank(), b.shape.rank());
    let (m, ka) = if trans_a { (a.shape.0[ra - 1], a.shape.0[ra - 2]) } else { (a.shape.0[ra - 2], a.shape.0[ra - 1]) };
    let (kb, n) = if trans_b { (b.shape.0[rb - 1], b.shape.0[rb - 2]) } else { (b.shape.0[rb - 2], b.shape.0[rb - 1]) };
    if ka != kb {
        return Err(format!("inner dimensions differ: {ka} vs {kb} ({a} @ {b})"));
    }
    let batch = broadcast(&Shape(a.shape.0[..ra - 2].to_vec()), &Shape(b.shape.0[..rb - 2].to_vec()))?;
    let mut dims = batch.0;
    dims.push(m);
    dims.push(n);
    Ok(TensorType::new(a.dtype, Shape(dims)))
}

pub fn conv2d_type(x: &TensorType, w: &TensorType, attrs: &Conv2dAttrs) -> R {
    float(x, "conv input")?;
    same_dtype(x, w)?;
    rank_is(x, 4, "conv2d input")?;
    rank_is(w, 4, "conv2d weight")?;
    let (n, c, h, wd) = (x.shape.0[0], x.shape.0[1], x.shape.0[2], x.shape.0[3]);
    let (o, ci, kh, kw) = (w.shape.0[0], w.shape.0[1], w.shape.0[2], w.shape.0[3]);
    let g = attrs.groups;
    if g == 0 || c % g != 0 || o % g != 0 {
        return Err(format!("groups {g} must divide input channels {c} and output channels {o}"));
    }
    if ci.checked_mul(g) != Some(c) {
        // u128: a hostile graph's channels times groups may not fit a usize.
        return Err(format!("weight {w} expects {} input channels, input {x} has {c}", ci as u128 * g as u128));
    }
    if attrs.stride.contains(&0) || attrs.dilation.contains(&0) {
        return Err("stride and dilation must be >= 1".into());
    }
    let ho = attrs.out_dim(0, h, kh);
    let wo = attrs.out_dim(1, wd, kw);
    match (ho, wo) {
        (Some(ho), Some(wo)) => Ok(TensorType::new(x.dtype, [n, o, ho, wo])),
        _ => Err(format!("kernel {kh}x{kw} (dilation {:?}) does not fit input {h}x{wd} with padding {:?}", attrs.dilation, attrs.padding)),
    }
}

pub fn pool_type(x: &TensorType, p: &Pool2dAttrs) -> R {
    float(x, "pool input")?;
    rank_is(x, 4, "pool input")?;
    if p.kernel.contains(&0) || p.stride.contains(&0) {
        return Err(format!("kernel {:?} and stride {:?} must be >= 1", p.kernel, p.stride));
    }
    if p.padding[0] > p.kernel[0] / 2 || p.padding[1] > p.kernel[1] / 2 {
        return Err(format!("padding {:?} must be at most half the kernel {:?}", p.padding, p.kernel));
    }
    match (p.out_dim(0, x.shape.0[2]), p.out_dim(1, x.shape.0[3])) {
        (Some(ho), Some(wo)) => Ok(TensorType::new(x.dtype, [x.shape.0[0], x.shape.0[1], ho, wo])),
        _ => Err(format!("window {:?} stride {:?} does not fit input {x}", p.kernel, p.stride)),
    }
}
