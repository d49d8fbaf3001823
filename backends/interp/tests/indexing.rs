//! gather, scatter_add, one_hot, softmax cross-entropy, random_uniform.

mod common;
use common::*;
use kiln_ir::{DType, Op, Shape};

#[test]
fn gather_is_numpy_take() {
    // data [[1,2],[3,4],[5,6]]
    let d = iota(&[3, 2]);
    let r = ev(Op::Gather { axis: 0 }, &[&d, &ti64(&[2], &[2, 0])]);
    assert_eq!(dims(&r), vec![2, 2]);
    exact(&r, &[5.0, 6.0, 1.0, 2.0]);
    // Along axis 1 with 2-D indices [[1,0],[1,1]]: shape [3,2,2].
    let r = ev(Op::Gather { axis: 1 }, &[&d, &ti64(&[2, 2], &[1, 0, 1, 1])]);
    assert_eq!(dims(&r), vec![3, 2, 2]);
    exact(&r, &[2.0, 1.0, 2.0, 2.0, 4.0, 3.0, 4.0, 4.0, 6.0, 5.0, 6.0, 6.0]);
    // Scalar index drops the axis; i32 indices work too.
    let idx = kiln_ir::HostTensor::new(Vec::<usize>::new(), kiln_ir::TensorData::I32(vec![1])).unwrap();
    let r = ev(Op::Gather { axis: 0 }, &[&d, &idx]);
    assert_eq!(dims(&r), vec![2]);
    exact(&r, &[3.0, 4.0]);
}

#[test]
fn gather_rejects_out_of_range_and_negative_indices() {
    let d = iota(&[3, 2]);
    let e = ev_err(Op::Gather { axis: 0 }, &[&d, &ti64(&[2], &[0, 3])]);
    assert!(e.contains("index 3 out of range 0..3"), "{e}");
    let e = ev_err(Op::Gather { axis: 1 }, &[&d, &ti64(&[1], &[-1])]);
    assert!(e.contains("index -1 out of range 0..2"), "{e}");
}

#[test]
fn scatter_add_accumulates_repeated_indices() {
    // rows 2, 0, 2 of updates [[1,2],[3,4],[5,6]] into 3 zero rows.
    let r = ev(Op::ScatterAdd { axis: 0, size: 3 }, &[&ti64(&[3], &[2, 0, 2]), &iota(&[3, 2])]);
    assert_eq!(dims(&r), vec![3, 2]);
    exact(&r, &[3.0, 4.0, 0.0, 0.0, 6.0, 8.0]);
    // Along axis 1 with 2-D indices [[0,0]]: updates [2,1,2] -> [2,2].
    let r = ev(Op::ScatterAdd { axis: 1, size: 2 }, &[&ti64(&[1, 2], &[0, 0]), &iota(&[2, 1, 2])]);
    assert_eq!(dims(&r), vec![2, 2]);
    exact(&r, &[3.0, 0.0, 7.0, 0.0]);
    let e = ev_err(Op::ScatterAdd { axis: 0, size: 2 }, &[&ti64(&[3], &[0, 1, 2]), &iota(&[3, 2])]);
    assert!(e.contains("index 2 out of range 0..2"), "{e}");
}

/// <gather(d, i), u> = <d, scatter_add(i, u)>: scatter_add is gather's adjoint.
#[test]
fn scatter_add_is_adjoint_to_gather() {
    for axis in 0..3 {
        let dd = [4, 3, 5];
        let d = t64(&dd, &noise(60, axis as u64));
        let idx = ti64(&[2, 3], &[0, 2, 1, 2, 2, 0].map(|i: i64| i % dd[axis] as i64));
        let g = ev64(Op::Gather { axis }, &[&d, &idx]);
        let u = t64(&dims(&g), &noise(g.numel(), 10 + axis as u64));
        let s = ev64(Op::ScatterAdd { axis, size: dd[axis] }, &[&idx, &u]);
        assert_eq!(dims(&s), dd.to_vec());
        assert!((dot(&vals(&g), &vals(&u)) - dot(&vals(&d), &vals(&s))).abs() < 1e-12, "axis {axis}");
    }
}

#[test]
fn one_hot_rows() {
    let r = ev(Op::OneHot { classes: 3 }, &[&ti64(&[3], &[0, 2, 1])]);
    assert_eq!(r.dtype(), DType::F32);
    assert_eq!(dims(&r), vec![3, 3]);
    exact(&r, &[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0]);
    let r = ev(Op::OneHot { classes: 2 }, &[&ti64(&[2, 1], &[1, 0])]);
    assert_eq!(dims(&r), vec![2, 1, 2]);
    exact(&r, &[0.0, 1.0, 1.0, 0.0]);
    let e = ev_err(Op::OneHot { classes: 3 }, &[&ti64(&[1], &[3])]);
    assert!(e.contains("out of range"), "{e}");
}

#[test]
fn softmax_cross_entropy_hand_worked_and_stable() {
    // Row 0 uniform: ln 3. Row 1 [1,2,3] label 2: ln(e + e^2 + e^3) - 3 = ln(1 + e^-1 + e^-2).
    let logits = t32(&[2, 3], &[0.0, 0.0, 0.0, 1.0, 2.0, 3.0]);
    let r = ev64(Op::SoftmaxCrossEntropy, &[&logits, &ti64(&[2], &[0, 2])]);
    let e = std::f64::consts::E;
    close(&vals(&r), &[3f64.ln(), (1.0 + 1.0 / e + 1.0 / (e * e)).ln()], 1e-15);
    // Huge logits neither overflow nor lose the answer.
    let big = t32(&[2, 2], &[1000.0, 0.0, 1000.0, 0.0]);
    let r = ev(Op::SoftmaxCrossEntropy, &[&big, &ti64(&[2], &[0, 1])]);
    exact(&r, &[0.0, 1000.0]);
    let e = ev_err(Op::SoftmaxCrossEntropy, &[&logits, &ti64(&[2], &[0, 3])]);
    assert!(e.contains("index 3 out of range 0..3"), "{e}");
}

fn rand(seed: u64, counter: i64, n: usize, low: f64, high: f64) -> Vec<f64> {
    vals(&ev(Op::RandomUniform { seed, low, high, shape: Shape::from([n]) }, &[&ti64(&[], &[counter])]))
}

#[test]
fn random_uniform_is_a_pure_function_of_seed_counter_index() {
    let a = rand(7, 3, 64, -1.0, 2.0);
    assert_eq!(a, rand(7, 3, 64, -1.0, 2.0));
    assert_ne!(a, rand(7, 4, 64, -1.0, 2.0), "the counter changes the numbers");
    assert_ne!(a, rand(8, 3, 64, -1.0, 2.0), "the seed changes the numbers");
    assert!(a.iter().all(|&v| (-1.0..2.0).contains(&v)));
    // Exactly the shared Philox stream every backend uses.
    for (i, &v) in a.iter().enumerate() {
        assert_eq!(v, kiln_ir::random::uniform(7, 3, i as u64, -1.0, 2.0) as f64);
    }
    // A longer draw extends a shorter one.
    assert_eq!(rand(7, 3, 8, -1.0, 2.0), a[..8].to_vec());
    let r = ev(Op::RandomUniform { seed: 1, low: 0.0, high: 1.0, shape: Shape::from([2, 3]) }, &[&ti64(&[], &[0])]);
    assert_eq!((r.dtype(), dims(&r)), (DType::F32, vec![2, 3]));
    // f64 mode returns the same (f32-exact) numbers as f64.
    let r64 = ev64(Op::RandomUniform { seed: 7, low: -1.0, high: 2.0, shape: Shape::from([64]) }, &[&ti64(&[], &[3])]);
    assert_eq!(r64.dtype(), DType::F64);
    assert_eq!(vals(&r64), a);
}
