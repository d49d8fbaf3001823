//! Builder and shape inference on hostile attributes and shapes: every call
//! returns a typed error or a well-typed node, never a panic (overflowing
//! extents, zero sizes, out-of-range axes, zero strides/groups, empty concat).

use kiln_ir::*;
use proptest::prelude::*;

mod support;
use support::{any_op, no_panic};

const HUGE: usize = usize::MAX;

/// Extents that stress arithmetic: zero, small, and overflowing.
fn extent() -> impl Strategy<Value = usize> {
    prop_oneof![6 => 0usize..5, 1 => Just(HUGE), 1 => Just(HUGE / 2 + 1), 1 => Just(1usize << 32)]
}

fn small() -> impl Strategy<Value = usize> + Clone {
    prop_oneof![4 => 0usize..4, 1 => Just(HUGE), 1 => Just(HUGE / 2)]
}

fn shape() -> impl Strategy<Value = Shape> {
    prop::collection::vec(extent(), 0..5).prop_map(Shape)
}

fn dtype() -> impl Strategy<Value = DType> {
    prop_oneof![4 => Just(DType::F32), 1 => Just(DType::F64), 1 => Just(DType::I64), 1 => Just(DType::I32), 1 => Just(DType::Bool)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any op on any operand types: an `IrError::Type` naming the op, or a
    /// node whose type the verifier accepts and whose element count fits.
    #[test]
    fn apply_never_panics(op in any_op(small()), operands in prop::collection::vec((dtype(), shape()), 0..4)) {
        let what = format!("{op:?} on {operands:?}");
        no_panic(&what, || {
            let mut g = Graph::new();
            let mut ids = Vec::new();
            for (i, (d, s)) in operands.iter().enumerate() {
                match g.input(&format!("x{i}"), TensorType::new(*d, s.clone())) {
                    Ok(id) => ids.push(id),
                    Err(e) => {
                        // Only an input too large to address may be refused.
                        assert!(TensorType::new(*d, s.clone()).checked_size_bytes().is_none(), "{what}: input refused: {e}");
                        return;
                    }
                }
            }
            match g.apply(op.clone(), &ids) {
                Ok(id) => {
                    assert!(g.ty(id).checked_size_bytes().is_some(), "{what}: result {} overflows", g.ty(id));
                    verify(&g).unwrap();
                }
                Err(IrError::Type { op: name, operands, reason }) => {
                    assert_eq!(name, op.name());
                    assert_eq!(operands.len(), ids.len());
                    assert!(!reason.is_empty());
                }
                Err(e) => panic!("{what}: expected a type error, got {e:?}"),
            }
        });
    }
}

#[test]
fn huge_extents_are_type_errors() {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([2, 3])).unwrap();
    let cases: Vec<(Op, &str)> = vec![
        (Op::Pad { lo: vec![HUGE, 0], hi: vec![1, 0], value: 0.0 }, "pad"),
        (Op::OneHot { classes: HUGE }, "one_hot"),
        (Op::Reshape(Shape::new([HUGE, 2, 0])), "reshape"),
        (Op::BroadcastTo(Shape::new([HUGE, HUGE, 3])), "broadcast_to"),
        (Op::RandomUniform { seed: 0, low: 0.0, high: 1.0, shape: Shape::new([HUGE, 2]) }, "random_uniform"),
    ];
    for (op, name) in cases {
        let ids: Vec<NodeId> = match &op {
            Op::OneHot { .. } => vec![g.input(&format!("i{name}"), i64_shape([4])).unwrap()],
            Op::RandomUniform { .. } => vec![g.input(&format!("c{name}"), TensorType::i64(Shape::scalar())).unwrap()],
            _ => vec![x],
        };
        let e = no_panic(name, || g.apply(op.clone(), &ids)).unwrap_err();
        assert!(matches!(&e, IrError::Type { op, .. } if *op == name), "{name}: {e:?}");
    }
    let e = no_panic("concat", || g.concat(&[], 0)).unwrap_err();
    assert!(e.to_string().contains("at least one operand"), "{e}");
}

#[test]
fn conv_and_pool_with_overflowing_attributes_are_type_errors() {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([1, 2, 5, 5])).unwrap();
    let w = g.param("w", f32_shape([2, 2, 3, 3])).unwrap();
    let conv = [
        Conv2dAttrs { padding: [HUGE, 0], ..Default::default() },
        Conv2dAttrs { dilation: [HUGE, 1], ..Default::default() },
        Conv2dAttrs { groups: HUGE, ..Default::default() },
        Conv2dAttrs { groups: 0, ..Default::default() },
        Conv2dAttrs { stride: [0, 1], ..Default::default() },
    ];
    for a in conv {
        let e = no_panic(&format!("{a:?}"), || g.conv2d(x, w, a)).unwrap_err();
        assert!(matches!(e, IrError::Type { op: "conv2d", .. }), "{a:?}: {e:?}");
    }
    let pool = [
        Pool2dAttrs { kernel: [3, 3], stride: [1, 1], padding: [HUGE, 0] },
        Pool2dAttrs { kernel: [HUGE, 3], stride: [1, 1], padding: [HUGE / 2, 0] },
        Pool2dAttrs { kernel: [0, 3], stride: [1, 1], padding: [0, 0] },
        Pool2dAttrs { kernel: [9, 3], stride: [1, 1], padding: [0, 0] },
    ];
    for p in pool {
        let e = no_panic(&format!("{p:?}"), || g.max_pool2d(x, p)).unwrap_err();
        assert!(matches!(e, IrError::Type { op: "max_pool2d", .. }), "{p:?}: {e:?}");
    }
    let e = g.max_pool2d(x, Pool2dAttrs { kernel: [2, 2], stride: [0, 1], padding: [0, 0] }).unwrap_err().to_string();
    assert!(e.contains("stride [0, 1] must be >= 1"), "{e}");
    // A kernel larger than the input names both sizes.
    let big = g.param("big", f32_shape([2, 2, 7, 7])).unwrap();
    let e = g.conv2d(x, big, Conv2dAttrs::default()).unwrap_err().to_string();
    assert!(e.contains("7x7") && e.contains("5x5"), "{e}");
}

#[test]
fn inputs_too_large_to_address_are_refused() {
    let mut g = Graph::new();
    let e = g.input("x", f32_shape([HUGE, 3])).unwrap_err();
    assert!(e.to_string().contains("`x`"), "{e}");
    // Zero-size inputs are fine and keep working through ops.
    let z = g.input("z", f32_shape([0, 3])).unwrap();
    let s = g.sum(z, &[0], false).unwrap();
    assert_eq!(g.ty(s), &f32_shape([3]));
}

#[test]
fn host_tensor_with_an_overflowing_shape_is_an_error() {
    let e = no_panic("from_f32", || HostTensor::from_f32([HUGE, 2], vec![])).unwrap_err();
    assert!(matches!(e, IrError::TensorData(_)), "{e:?}");
    let t = HostTensor::from_f32([2, 3], vec![0.0; 6]).unwrap();
    let e = no_panic("reshaped", || t.reshaped([HUGE, 2, 3])).unwrap_err();
    assert!(matches!(e, IrError::TensorData(_)), "{e:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

    /// Garbage, truncated or bit-flipped safetensors bytes decode to tensors
    /// or to an `IrError::Safetensors`/`TensorData`, never a panic.
    #[test]
    fn safetensors_garbage_never_panics(
        garbage in prop::collection::vec(any::<u8>(), 0..64),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let mut m = std::collections::BTreeMap::new();
        m.insert("w".to_string(), HostTensor::from_f32([2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap());
        m.insert("i".to_string(), HostTensor::from_i64([3], vec![1, 2, 3]).unwrap());
        let good = safetensors_to_bytes(&m).unwrap();
        let mut flipped = good.clone();
        let k = flip.index(flipped.len());
        flipped[k] ^= 1 << bit;
        let truncated = &good[..cut.index(good.len())];
        for (what, bytes) in [("garbage", &garbage[..]), ("truncated", truncated), ("flipped", &flipped[..])] {
            match no_panic(what, || safetensors_from_bytes(bytes)) {
                Ok(ts) => {
                    // Whatever decodes is self-consistent.
                    for t in ts.values() {
                        prop_assert_eq!(t.shape().numel(), t.numel());
                    }
                }
                Err(e) => prop_assert!(matches!(e, IrError::Safetensors(_) | IrError::TensorData(_)), "{what}: {e:?}"),
            }
        }
        prop_assert!(safetensors_from_bytes(truncated).is_err(), "a strict prefix must not decode");
    }
}

#[test]
fn values_of_the_wrong_length_are_an_error() {
    let ty = f32_shape([2, 2]);
    let e = HostTensor::try_from_f64_values(&ty, &[1.0; 3]).unwrap_err();
    assert!(matches!(&e, IrError::TensorData(m) if m.contains("[2,2]") && m.contains("got 3")), "{e:?}");
    let t = HostTensor::try_from_f64_values(&TensorType::i64([3]), &[1.9, -1.9, 0.0]).unwrap();
    assert_eq!(t.as_i64().unwrap(), &[1, -1, 0]);
}
