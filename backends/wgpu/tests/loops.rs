//! Loop kernels (elementwise chains and reductions) on wgpu against the
//! f32 interpreter: every unary, binary and compare op, select, casts,
//! every reduction over several axis sets, broadcasting and size-1 dims,
//! sizes that are not multiples of the workgroup, and a tensor large
//! enough to need more than 65,535 workgroups in one dimension.

mod common;

use std::collections::BTreeMap;

use kiln_ir::{f32_shape, BinaryOp, CompareOp, DType, Graph, HostTensor, ReduceOp, TensorType, UnaryOp};

fn inputs(list: &[(&str, HostTensor)]) -> BTreeMap<String, HostTensor> {
    list.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

fn t(shape: &[usize], seed: u64, f: impl Fn(f32) -> f32) -> HostTensor {
    let n = shape.iter().product();
    HostTensor::from_f32(shape.to_vec(), common::values(n, seed).into_iter().map(f).collect()).unwrap()
}

#[test]
fn every_unary_op() {
    if !common::gpu() {
        return;
    }
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([5, 67])).unwrap();
    let pos = g.input("pos", f32_shape([5, 67])).unwrap();
    for u in UnaryOp::ALL {
        // Logs and roots of positive values; the rest over [-4, 4).
        let src = if matches!(u, UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt) { pos } else { x };
        let y = g.unary(u, src).unwrap();
        g.set_output(u.name(), y).unwrap();
    }
    let xs = t(&[5, 67], 3, |v| v * 4.0);
    let ps = t(&[5, 67], 4, |v| v.abs() * 3.0 + 0.01);
    common::assert_matches_interp(&g, &inputs(&[("x", xs), ("pos", ps)]), &BTreeMap::new(), 2e-6);
}

#[test]
fn erf_tanh_sigmoid_across_their_range() {
    if !common::gpu() {
        return;
    }
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([401])).unwrap();
    for u in [UnaryOp::Erf, UnaryOp::Tanh, UnaryOp::Sigmoid, UnaryOp::Exp] {
        let y = g.unary(u, x).unwrap();
        g.set_output(u.name(), y).unwrap();
    }
    // -20 .. 20 with tiny values around 0 (relative accuracy there).
    let v: Vec<f32> = (0..401).map(|i| { let s = (i as f32 - 200.0) / 10.0; if i % 7 == 0 { s * 1e-4 } else { s } }).collect();
    common::assert_matches_interp(&g, &inputs(&[("x", HostTensor::from_f32([401], v).unwrap())]), &BTreeMap::new(), 2e-6);
}

#[test]
fn every_binary_and_compare_op_with_broadcasting() {
    if !common::gpu() {
        return;
    }
    let mut g = Graph::new();
    let a = g.input("a", f32_shape([3, 1, 33])).unwrap();
    let b = g.input("b", f32_shape([4, 1])).unwrap();
    for op in BinaryOp::ALL {
        let y = g.binary(op, a, b).unwrap();
        g.set_output(op.name(), y).unwrap();
    }
    for c in CompareOp::ALL {
        let m = g.compare(c, a, b).unwrap();
        g.set_output(c.name(), m).unwrap();
        let s = g.select(m, a, b).unwrap();
        g.set_output(&format!("select_{}", c.name()), s).unwrap();
    }
    // Integer-valued entries so eq/ne and pow's negative bases are exercised.
    let av = t(&[3, 1, 33], 5, |v| if (v * 100.0) as i32 % 3 == 0 { (v * 3.0).round() } else { v * 3.0 });
    let bv = HostTensor::from_f32([4, 1], vec![2.0, -1.0, 0.5, 3.0]).unwrap();
    common::assert_matches_interp(&g, &inputs(&[("a", av), ("b", bv)]), &BTreeMap::new(), 2e-6);
}

#[test]
fn casts_and_integer_arithmetic() {
    if !common::gpu() {
        return;
    }
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([70])).unwrap();
    let i = g.cast(x, DType::I64).unwrap();
    let two = g.scalar(2.0, DType::I64).unwrap();
    let j = g.mul(i, two).unwrap();
    let k = g.sub(j, i).unwrap();
    let kp = g.pow(k, two).unwrap();
    let kn = g.neg(kp).unwrap();
    let ka = g.abs(kn).unwrap();
    let b = g.cast(x, DType::Bool).unwrap();
    let bf = g.cast(b, DType::F32).unwrap();
    let back = g.cast(ka, DType::F32).unwrap();
    let i32v = g.cast(x, DType::I32).unwrap();
    let mx = g.maximum(i, two).unwrap();
    for (n, v) in [("k", k), ("ka", ka), ("b", b), ("bf", bf), ("back", back), ("i32", i32v), ("mx", mx)] {
        g.set_output(n, v).unwrap();
    }
    let mut xs = t(&[70], 6, |v| v * 50.0);
    xs.as_f32_mut().unwrap()[3] = 0.0;
    xs.as_f32_mut().unwrap()[4] = -0.0;
    common::assert_matches_interp(&g, &inputs(&[("x", xs)]), &BTreeMap::new(), 0.0);
}

#[test]
fn every_reduction_over_axis_sets_with_a_fused_prologue() {
    if !common::gpu() {
        return;
    }
    let shape = [3usize, 1, 20, 7];
    let mut g = Graph::new();
    let x = g.input("x", f32_shape(shape)).unwrap();
    let e = g.mul(x, x).unwrap();
    let p = g.sub(e, x).unwrap();
    g.set_output("prologue", p).unwrap();
    let sets: [&[usize]; 6] = [&[0], &[2], &[3], &[0, 2, 3], &[0, 1, 2, 3], &[1, 3]];
    for op in ReduceOp::ALL {
        for (si, axes) in sets.iter().enumerate() {
            for keep in [false, true] {
                let r = g.reduce(op, p, axes, keep).unwrap();
                g.set_output(&format!("{}_{si}_{keep}", op.name()), r).unwrap();
            }
        }
    }
    common::assert_matches_interp(&g, &inputs(&[("x", t(&shape, 7, |v| v))]), &BTreeMap::new(), 1e-5);
}

#[test]
fn more_than_65535_workgroups_in_one_dimension() {
    if !common::gpu() {
        return;
    }
    // 64 * 65,535 = 4,194,240 invocations fit one dimension; this needs more.
    let n = 4_200_007usize;
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([n])).unwrap();
    let y = g.mul_scalar(x, 3.0).unwrap();
    let y = g.add_scalar(y, 1.0).unwrap();
    g.set_output("y", y).unwrap();
    let xs: Vec<f32> = (0..n).map(|i| (i % 1013) as f32).collect();
    let out = common::run_on(&kiln_wgpu::WgpuBackend::new(), &g, &inputs(&[("x", HostTensor::from_f32([n], xs).unwrap())]), &BTreeMap::new());
    let y = out["y"].as_f32().unwrap();
    assert_eq!(y.len(), n);
    for i in [0, 1, 4_194_239, 4_194_240, 4_194_241, n - 1] {
        assert_eq!(y[i], (i % 1013) as f32 * 3.0 + 1.0, "element {i}");
    }
    assert!(y.iter().enumerate().all(|(i, &v)| v == (i % 1013) as f32 * 3.0 + 1.0));
}

#[test]
fn the_same_program_gives_the_same_bits_every_run() {
    if !common::gpu() {
        return;
    }
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([37, 129])).unwrap();
    let e = g.exp(x).unwrap();
    let s = g.sum(e, &[0, 1], false).unwrap();
    let m = g.mean(e, &[0], false).unwrap();
    g.set_output("s", s).unwrap();
    g.set_output("m", m).unwrap();
    let ins = inputs(&[("x", t(&[37, 129], 9, |v| v))]);
    let mut exe = kiln_wgpu::WgpuBackend::new().compile_program(&g, None).unwrap();
    use kiln_ir::Executable;
    let first = exe.run(&ins).unwrap();
    for _ in 0..3 {
        assert_eq!(exe.run(&ins).unwrap(), first);
    }
}

#[test]
fn an_f64_graph_is_refused_before_any_device() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::new(DType::F64, [4])).unwrap();
    let y = g.exp(x).unwrap();
    g.set_output("y", y).unwrap();
    let e = kiln_wgpu::lower_graph(&g).unwrap_err();
    assert!(matches!(e, kiln_wgpu::WgpuError::Unsupported(_)), "{e}");
}

/// Without any device: every loop kernel kind lowers and naga accepts it
/// (`lower_graph` validates every shader).
#[test]
fn loop_kernels_validate_without_a_device() {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([2, 3, 5])).unwrap();
    let b = g.input("b", f32_shape([5])).unwrap();
    let mut last = x;
    for u in UnaryOp::ALL {
        last = g.unary(u, last).unwrap();
    }
    for op in BinaryOp::ALL {
        last = g.binary(op, last, b).unwrap();
    }
    let m = g.compare(CompareOp::Lt, last, b).unwrap();
    let s = g.select(m, last, x).unwrap();
    g.set_output("s", s).unwrap();
    let i = g.cast(s, DType::I64).unwrap();
    g.set_output("i", i).unwrap();
    for op in ReduceOp::ALL {
        let r = g.reduce(op, s, &[0, 2], true).unwrap();
        g.set_output(op.name(), r).unwrap();
        if op != ReduceOp::Mean {
            let ri = g.reduce(op, i, &[1], false).unwrap();
            g.set_output(&format!("{}_i", op.name()), ri).unwrap();
        }
    }
    let l = kiln_wgpu::lower_graph(&g).unwrap();
    assert!(l.shaders.len() >= 8, "{:?}", l.shaders.iter().map(|s| &s.name).collect::<Vec<_>>());
    assert!(l.shaders.iter().any(|s| s.name.contains("reduce")));
}

/// NaN (from a constant: inputs refuse it) propagates through maximum,
/// minimum and max/min reductions and casts to integer 0, as in the
/// interpreter: shaders test NaN by its bits, since drivers fold `x != x`.
#[test]
fn nan_propagates_like_the_interpreter() {
    if !common::gpu() {
        return;
    }
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([6])).unwrap();
    let c = g.constant(HostTensor::from_f32([6], vec![f32::NAN, 1.0, -2.0, f32::NAN, 0.5, 3.0]).unwrap()).unwrap();
    let mx = g.maximum(c, x).unwrap();
    let mn = g.minimum(x, c).unwrap();
    let rmax = g.reduce(ReduceOp::Max, c, &[0], false).unwrap();
    let rmin = g.reduce(ReduceOp::Min, mx, &[0], false).unwrap();
    let ci = g.cast(c, DType::I64).unwrap();
    let p = g.pow(c, x).unwrap();
    for (n, v) in [("mx", mx), ("mn", mn), ("rmax", rmax), ("rmin", rmin), ("ci", ci), ("p", p)] {
        g.set_output(n, v).unwrap();
    }
    let xs = HostTensor::from_f32([6], vec![2.0, 0.0, 1.0, -1.0, 7.0, 2.0]).unwrap();
    common::assert_matches_interp(&g, &inputs(&[("x", xs)]), &BTreeMap::new(), 1e-6);
}
