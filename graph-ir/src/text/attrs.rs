//! Op keyword + `name=value` attributes -> `Op`. The defaults here are the
//! ones docs/kir.md lists; `print` always writes every attribute.

use crate::op::*;
use crate::{DType, Shape};

use super::numbers::parse_float_f64;
use super::suggest::hint;
use super::syntax::E;

pub(crate) enum AttrVal {
    Word(String, usize),
    List(Vec<(String, usize)>),
}

struct Attr {
    name: String,
    col: usize,
    val: AttrVal,
    used: bool,
}

/// The attributes written on one line; each getter marks its attribute used
/// so `finish` can reject the ones the op does not have.
#[derive(Default)]
pub(crate) struct Attrs {
    list: Vec<Attr>,
    missing_col: usize,
    /// Every attribute name the op asked for: what it accepts.
    known: Vec<&'static str>,
}

impl Attrs {
    pub fn insert(&mut self, name: String, col: usize, val: AttrVal) -> Result<(), E> {
        if self.list.iter().any(|a| a.name == name) {
            return Err((col, format!("attribute `{name}` is given twice")));
        }
        self.list.push(Attr { name, col, val, used: false });
        Ok(())
    }

    /// Rejects attributes the op does not take.
    pub fn finish(&self, op: &str) -> Result<(), E> {
        let Some(a) = self.list.iter().find(|a| !a.used) else { return Ok(()) };
        let accepts = if self.known.is_empty() {
            format!("`{op}` takes no attributes")
        } else {
            format!("`{op}` takes {}", self.known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "))
        };
        Err((a.col, format!("unknown attribute `{}` for op `{op}`{}; {accepts}", a.name, hint(&a.name, &self.known))))
    }

    fn take(&mut self, name: &'static str) -> Option<&Attr> {
        if !self.known.contains(&name) {
            self.known.push(name);
        }
        let a = self.list.iter_mut().find(|a| a.name == name)?;
        a.used = true;
        Some(a)
    }

    fn missing(&self, name: &'static str) -> E {
        (self.missing_col, format!("missing attribute `{name}`"))
    }

    fn word<T>(&mut self, name: &'static str, what: &str, f: impl Fn(&str) -> Option<T>) -> Result<Option<T>, E> {
        let Some(a) = self.take(name) else { return Ok(None) };
        match &a.val {
            AttrVal::Word(w, c) => f(w).map(Some).ok_or_else(|| (*c, format!("attribute `{name}` expects {what}, got `{w}`"))),
            AttrVal::List(_) => Err((a.col, format!("attribute `{name}` expects {what}, got a list"))),
        }
    }

    fn usize_opt(&mut self, name: &'static str) -> Result<Option<usize>, E> {
        self.word(name, "a non-negative integer", |w| w.parse().ok())
    }

    fn usize(&mut self, name: &'static str) -> Result<usize, E> {
        self.usize_opt(name)?.ok_or_else(|| self.missing(name))
    }

    fn usize_or(&mut self, name: &'static str, default: usize) -> Result<usize, E> {
        Ok(self.usize_opt(name)?.unwrap_or(default))
    }

    fn bool_or(&mut self, name: &'static str, default: bool) -> Result<bool, E> {
        let v = self.word(name, "`true` or `false`", |w| match w {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        })?;
        Ok(v.unwrap_or(default))
    }

    fn f64_or(&mut self, name: &'static str, default: f64) -> Result<f64, E> {
        Ok(self.word(name, "a number", parse_float_f64)?.unwrap_or(default))
    }

    fn list_opt(&mut self, name: &'static str) -> Result<Option<Vec<usize>>, E> {
        let Some(a) = self.take(name) else { return Ok(None) };
        match &a.val {
            AttrVal::List(items) => items
                .iter()
                .map(|(w, c)| w.parse().map_err(|_| (*c, format!("attribute `{name}`: `{w}` is not a non-negative integer"))))
                .collect::<Result<Vec<usize>, E>>()
                .map(Some),
            AttrVal::Word(w, c) => Err((*c, format!("attribute `{name}` expects a list `[...]`, got `{w}`"))),
        }
    }

    fn list(&mut self, name: &'static str) -> Result<Vec<usize>, E> {
        self.list_opt(name)?.ok_or_else(|| self.missing(name))
    }

    fn pair_opt(&mut self, name: &'static str) -> Result<Option<[usize; 2]>, E> {
        let col = self.list.iter().find(|a| a.name == name).map_or(0, |a| a.col);
        match self.list_opt(name)? {
            None => Ok(None),
            Some(v) => <[usize; 2]>::try_from(v.as_slice())
                .map(Some)
                .map_err(|_| (col, format!("attribute `{name}` expects two values `[h,w]`, got {}", v.len()))),
        }
    }

    fn pair(&mut self, name: &'static str) -> Result<[usize; 2], E> {
        self.pair_opt(name)?.ok_or_else(|| self.missing(name))
    }

    fn pair_or(&mut self, name: &'static str, default: [usize; 2]) -> Result<[usize; 2], E> {
        Ok(self.pair_opt(name)?.unwrap_or(default))
    }

    fn conv2d(&mut self) -> Result<Conv2dAttrs, E> {
        Ok(Conv2dAttrs {
            stride: self.pair_or("stride", [1, 1])?,
            padding: self.pair_or("pad", [0, 0])?,
            dilation: self.pair_or("dilation", [1, 1])?,
            groups: self.usize_or("groups", 1)?,
        })
    }

    fn pool(&mut self) -> Result<Pool2dAttrs, E> {
        let kernel = self.pair("kernel")?;
        Ok(Pool2dAttrs { kernel, stride: self.pair_or("stride", kernel)?, padding: self.pair_or("pad", [0, 0])? })
    }

    fn act(&mut self) -> Result<Activation, E> {
        let names: Vec<&str> = Activation::ALL.iter().map(|a| a.name()).collect();
        let what = format!("one of {}", names.join(", "));
        Ok(self.word("act", &what, |w| Activation::ALL.into_iter().find(|a| a.name() == w))?.unwrap_or(Activation::None))
    }
}

const OTHER_OPS: [&str; 25] = [
    "input",
    "param",
    "state",
    "const",
    "select",
    "cast",
    "stop_gradient",
    "argmax",
    "reshape",
    "permute",
    "broadcast_to",
    "slice",
    "concat",
    "pad",
    "matmul",
    "conv2d",
    "conv2d_grad_input",
    "conv2d_grad_weight",
    "conv1d",
    "max_pool2d",
    "max_pool2d_grad",
    "avg_pool2d",
    "avg_pool2d_grad",
    "gather",
    "scatter_add",
];

const MORE_OPS: [&str; 5] = ["one_hot", "random_uniform", "fused_dense", "fused_conv2d", "softmax_cross_entropy"];

/// Every op keyword, for "did you mean" hints.
pub(crate) fn op_names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = OTHER_OPS.iter().chain(MORE_OPS.iter()).copied().collect();
    v.extend(UnaryOp::ALL.iter().map(|u| u.name()));
    v.extend(BinaryOp::ALL.iter().map(|b| b.name()));
    v.extend(CompareOp::ALL.iter().map(|c| c.name()));
    v.extend(ReduceOp::ALL.iter().map(|r| r.name()));
    v
}

pub(crate) fn is_op_name(name: &str) -> bool {
    OTHER_OPS.contains(&name)
        || MORE_OPS.contains(&name)
        || UnaryOp::ALL.iter().any(|u| u.name() == name)
        || BinaryOp::ALL.iter().any(|b| b.name() == name)
        || CompareOp::ALL.iter().any(|c| c.name() == name)
        || ReduceOp::ALL.iter().any(|r| r.name() == name)
}

/// Builds any op except `input`/`param`/`state`/`const` (which the syntax
/// layer handles) from its keyword and attributes. `missing_col` is where a
/// "missing attribute" error points (the op keyword).
pub(crate) fn build_op(name: &str, a: &mut Attrs, missing_col: usize) -> Result<Op, E> {
    a.missing_col = missing_col;
    if let Some(u) = UnaryOp::ALL.into_iter().find(|u| u.name() == name) {
        return Ok(Op::Unary(u));
    }
    if let Some(b) = BinaryOp::ALL.into_iter().find(|b| b.name() == name) {
        return Ok(Op::Binary(b));
    }
    if let Some(c) = CompareOp::ALL.into_iter().find(|c| c.name() == name) {
        return Ok(Op::Compare(c));
    }
    if let Some(op) = ReduceOp::ALL.into_iter().find(|r| r.name() == name) {
        let axes = a.list("axes")?;
        return Ok(Op::Reduce { op, axes, keepdims: a.bool_or("keepdims", false)? });
    }
    Ok(match name {
        "select" => Op::Select,
        "stop_gradient" => Op::StopGradient,
        "softmax_cross_entropy" => Op::SoftmaxCrossEntropy,
        "cast" => {
            let to = a.word("to", "a dtype (f32, f64, i64, i32, bool)", DType::from_name)?;
            Op::Cast(to.ok_or_else(|| a.missing("to"))?)
        }
        "argmax" => Op::ArgMax { axis: a.usize("axis")?, keepdims: a.bool_or("keepdims", false)? },
        "reshape" => Op::Reshape(Shape(a.list("shape")?)),
        "broadcast_to" => Op::BroadcastTo(Shape(a.list("shape")?)),
        "permute" => Op::Permute(a.list("perm")?),
        "slice" => {
            let start = a.list("start")?;
            let end = a.list("end")?;
            let step = a.list_opt("step")?.unwrap_or_else(|| vec![1; start.len()]);
            Op::Slice { start, end, step }
        }
        "concat" => Op::Concat { axis: a.usize("axis")? },
        "pad" => Op::Pad { lo: a.list("lo")?, hi: a.list("hi")?, value: a.f64_or("value", 0.0)? },
        "matmul" => Op::MatMul { trans_a: a.bool_or("trans_a", false)?, trans_b: a.bool_or("trans_b", false)? },
        "conv2d" => Op::Conv2d(a.conv2d()?),
        "conv2d_grad_input" => Op::Conv2dGradInput { attrs: a.conv2d()?, input_hw: a.pair("input_hw")? },
        "conv2d_grad_weight" => Op::Conv2dGradWeight { attrs: a.conv2d()?, kernel_hw: a.pair("kernel_hw")? },
        "conv1d" => Op::Conv1d(Conv1dAttrs {
            stride: a.usize_or("stride", 1)?,
            padding: a.usize_or("pad", 0)?,
            dilation: a.usize_or("dilation", 1)?,
            groups: a.usize_or("groups", 1)?,
        }),
        "max_pool2d" => Op::MaxPool2d(a.pool()?),
        "max_pool2d_grad" => Op::MaxPool2dGrad(a.pool()?),
        "avg_pool2d" => Op::AvgPool2d { pool: a.pool()?, count_include_pad: a.bool_or("count_include_pad", true)? },
        "avg_pool2d_grad" => Op::AvgPool2dGrad {
            pool: a.pool()?,
            count_include_pad: a.bool_or("count_include_pad", true)?,
            input_hw: a.pair("input_hw")?,
        },
        "gather" => Op::Gather { axis: a.usize("axis")? },
        "scatter_add" => Op::ScatterAdd { axis: a.usize("axis")?, size: a.usize("size")? },
        "one_hot" => Op::OneHot { classes: a.usize("classes")? },
        "random_uniform" => {
            let seed = a.word("seed", "an unsigned 64-bit integer", |w| w.parse::<u64>().ok())?;
            Op::RandomUniform {
                seed: seed.ok_or_else(|| a.missing("seed"))?,
                low: a.f64_or("low", 0.0)?,
                high: a.f64_or("high", 1.0)?,
                shape: Shape(a.list("shape")?),
            }
        }
        "fused_dense" => {
            Op::FusedDense { trans_b: a.bool_or("trans_b", false)?, bias: a.bool_or("bias", false)?, act: a.act()? }
        }
        "fused_conv2d" => {
            Op::FusedConv2d { attrs: a.conv2d()?, bias: a.bool_or("bias", false)?, act: a.act()? }
        }
        other => return Err((missing_col, format!("unknown op `{other}`"))),
    })
}
