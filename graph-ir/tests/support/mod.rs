//! Helpers shared by the no-panic tests of kiln-ir, kiln-interp and kiln.
//! Other crates include this file by path
//! (`#[path = "../../../graph-ir/tests/support/mod.rs"] mod support;`), so
//! it depends on nothing but kiln-ir and proptest.
#![allow(dead_code)]

use std::panic::{catch_unwind, AssertUnwindSafe};

use kiln_ir::*;
use proptest::prelude::*;

/// Runs `f`, turning a panic into a test failure that says what was called.
pub fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(p) => {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            panic!("panicked on {what}: {}", msg.unwrap_or_default());
        }
    }
}

/// Any op of the IR, every size-like attribute (axes, extents, strides,
/// paddings, groups, classes, shapes) drawn from `n`: small values make ops
/// that mostly run, extreme ones stress the arithmetic of shape inference.
pub fn any_op<S>(n: S) -> BoxedStrategy<Op>
where
    S: Strategy<Value = usize> + Clone + 'static,
{
    let list = prop::collection::vec(n.clone(), 0..5);
    let shape = list.clone().prop_map(Shape);
    let pair = [n.clone(), n.clone()];
    let conv = (pair.clone(), pair.clone(), pair.clone(), n.clone())
        .prop_map(|(stride, padding, dilation, groups)| Conv2dAttrs { stride, padding, dilation, groups });
    let pool = (pair.clone(), pair.clone(), pair.clone()).prop_map(|(kernel, stride, padding)| Pool2dAttrs { kernel, stride, padding });
    let sorted = list.clone().prop_map(|mut v| {
        v.sort();
        v
    });
    prop_oneof![
        prop::sample::select(UnaryOp::ALL.to_vec()).prop_map(Op::Unary),
        prop::sample::select(BinaryOp::ALL.to_vec()).prop_map(Op::Binary),
        prop::sample::select(CompareOp::ALL.to_vec()).prop_map(Op::Compare),
        Just(Op::Select),
        prop::sample::select(vec![DType::F32, DType::F64, DType::I64, DType::I32, DType::Bool]).prop_map(Op::Cast),
        (prop::sample::select(ReduceOp::ALL.to_vec()), sorted, any::<bool>())
            .prop_map(|(op, axes, keepdims)| Op::Reduce { op, axes, keepdims }),
        (n.clone(), any::<bool>()).prop_map(|(axis, keepdims)| Op::ArgMax { axis, keepdims }),
        shape.clone().prop_map(Op::Reshape),
        list.clone().prop_map(Op::Permute),
        shape.clone().prop_map(Op::BroadcastTo),
        (list.clone(), list.clone(), list.clone()).prop_map(|(start, end, step)| Op::Slice { start, end, step }),
        n.clone().prop_map(|axis| Op::Concat { axis }),
        (list.clone(), list).prop_map(|(lo, hi)| Op::Pad { lo, hi, value: -1.5 }),
        (any::<bool>(), any::<bool>()).prop_map(|(trans_a, trans_b)| Op::MatMul { trans_a, trans_b }),
        conv.clone().prop_map(Op::Conv2d),
        (conv.clone(), pair.clone()).prop_map(|(attrs, input_hw)| Op::Conv2dGradInput { attrs, input_hw }),
        (conv.clone(), pair.clone()).prop_map(|(attrs, kernel_hw)| Op::Conv2dGradWeight { attrs, kernel_hw }),
        (n.clone(), n.clone(), n.clone(), n.clone())
            .prop_map(|(stride, padding, dilation, groups)| Op::Conv1d(Conv1dAttrs { stride, padding, dilation, groups })),
        pool.clone().prop_map(Op::MaxPool2d),
        pool.clone().prop_map(Op::MaxPool2dGrad),
        (pool.clone(), any::<bool>()).prop_map(|(pool, count_include_pad)| Op::AvgPool2d { pool, count_include_pad }),
        (pool, any::<bool>(), pair)
            .prop_map(|(pool, count_include_pad, input_hw)| Op::AvgPool2dGrad { pool, count_include_pad, input_hw }),
        n.clone().prop_map(|axis| Op::Gather { axis }),
        (n.clone(), n.clone()).prop_map(|(axis, size)| Op::ScatterAdd { axis, size }),
        n.prop_map(|classes| Op::OneHot { classes }),
        shape.prop_map(|shape| Op::RandomUniform { seed: 7, low: -1.0, high: 1.0, shape }),
        (any::<bool>(), any::<bool>(), prop::sample::select(Activation::ALL.to_vec()))
            .prop_map(|(trans_b, bias, act)| Op::FusedDense { trans_b, bias, act }),
        (conv, any::<bool>(), prop::sample::select(Activation::ALL.to_vec()))
            .prop_map(|(attrs, bias, act)| Op::FusedConv2d { attrs, bias, act }),
        Just(Op::SoftmaxCrossEntropy),
    ]
    .boxed()
}
