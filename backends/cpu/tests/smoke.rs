mod common;
use common::*;
use kiln_ir::*;

#[test]
fn elementwise_chain_with_broadcast() {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([3, 7])).unwrap();
    let b = g.input("b", f32_shape([7])).unwrap();
    let y = g.add(x, b).unwrap();
    let r = g.relu(y).unwrap();
    let e = g.exp(r).unwrap();
    let s = g.sum(e, &[1], false).unwrap();
    g.set_output("r", r).unwrap();
    g.set_output("s", s).unwrap();
    check(&g, &random_inputs(&g, 1), 1e-5, 1e-6);
}

#[test]
fn fused_kernels_are_jit_compiled_and_dumped() {
    let dir = std::env::temp_dir().join(format!("kiln-cpu-dump-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([4, 6])).unwrap();
    let w = g.param("w", f32_shape([6, 5])).unwrap();
    let b = g.param("b", f32_shape([5])).unwrap();
    let y = g.matmul(x, w).unwrap();
    let yb = g.add(y, b).unwrap();
    let r = g.relu(yb).unwrap();
    g.set_output("r", r).unwrap();
    let e = g.exp(x).unwrap();
    let s = g.sum(e, &[1], false).unwrap();
    g.set_output("s", s).unwrap();
    let exe = kiln_cpu::CpuBackend::new().with_dump(&dir).compile_cpu(&g).unwrap();
    // matmul + bias + relu is one contraction kernel; the sum is a reduction.
    let part = exe.partition_text();
    assert!(part.contains("contraction") && part.contains("fused   %") && part.contains("reduce"), "{part}");
    assert_eq!(exe.kernel_code().len(), 2, "{part}");
    assert!(exe.kernel_code()[0].clif.contains("f32x4"), "{}", exe.kernel_code()[0].clif);
    assert!(exe.peak_bytes() >= (30 + 5) * 4);
    let files: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(files.iter().any(|f| f.ends_with("partition.txt")), "{files:?}");
    assert!(files.iter().any(|f| f.ends_with("memory-plan.txt")), "{files:?}");
    assert_eq!(files.iter().filter(|f| f.ends_with(".clif")).count(), 2, "{files:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Shapes big enough to take the parallel paths (split GEMM, chunked loops,
/// parallel reductions) on a multi-core machine.
#[test]
fn large_shapes_take_parallel_paths() {
    let mut g = Graph::new();
    let a = g.input("a", f32_shape([150, 70])).unwrap();
    let b = g.input("b", f32_shape([70, 90])).unwrap();
    let c = g.input("c", f32_shape([90, 150])).unwrap();
    let ab = g.matmul(a, b).unwrap();
    let r = g.relu(ab).unwrap();
    // b^T [90,70] @ a^T [70,150] -> [90,150], plus c: a transposed GEMM with an epilogue.
    let bt_at = g.matmul_t(b, a, true, true).unwrap();
    let z = g.add(bt_at, c).unwrap();
    g.set_output("z", z).unwrap();
    let x = g.input("x", f32_shape([300, 211])).unwrap();
    let y = g.input("y", f32_shape([211])).unwrap();
    let xy = g.mul(x, y).unwrap();
    let t = g.tanh(xy).unwrap();
    let s0 = g.sum(t, &[0], false).unwrap();
    let s1 = g.reduce_max(t, &[1], true).unwrap();
    g.set_output("r", r).unwrap();
    g.set_output("t", t).unwrap();
    g.set_output("s0", s0).unwrap();
    g.set_output("s1", s1).unwrap();
    check(&g, &random_inputs(&g, 9), 1e-4, 1e-3);
}

/// The plan (partition, buffers, CLIF) is a deterministic function of the
/// graph: a program rebuilt from a saved graph has the same code.
#[test]
fn plan_is_deterministic() {
    #[path = "common/models.rs"]
    mod models;
    let g = models::mlp_train(4, &[6, 5, 3], models::Optim::Adam { lr: 1e-3, b1: 0.9, b2: 0.999, eps: 1e-8 });
    let a = kiln_cpu::CpuBackend::new().compile(&g).unwrap();
    let b = kiln_cpu::CpuBackend::new().compile(&g).unwrap();
    assert_eq!(a.plan_text(), b.plan_text());
    assert!(a.plan_text().unwrap().contains("call fn"), "transcendentals call helpers");
    assert!(a.peak_bytes().unwrap() > 0);
}

/// The inline f32x4 exp/sigmoid/tanh over their whole range (overflow,
/// underflow to denormals and zero, tiny arguments) stay within a few ulp
/// of the f64 reference rounded to f32.
#[test]
fn vector_transcendentals_cover_the_full_range() {
    let n = 403;
    let vals: Vec<f32> = (0..n).map(|i| -110.0 + 220.0 * i as f32 / (n - 1) as f32).chain([0.0, -0.0, 1e-8, -1e-8, 0.3, -0.6, 88.7, 88.73, -87.5, -103.0]).collect();
    let len = vals.len();
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([len])).unwrap();
    for u in [UnaryOp::Exp, UnaryOp::Sigmoid, UnaryOp::Tanh] {
        let y = g.unary(u, x).unwrap();
        g.set_output(u.name(), y).unwrap();
    }
    let mut m = std::collections::BTreeMap::new();
    m.insert("x".to_string(), HostTensor::from_f32([len], vals).unwrap());
    check(&g, &m, 4e-6, 1e-30);
}

/// More images than one im2col block (8), with groups, stride and padding.
#[test]
fn convolution_over_several_image_blocks() {
    let attrs = Conv2dAttrs { stride: [2, 1], padding: [1, 2], dilation: [1, 2], groups: 2 };
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([11, 4, 9, 7])).unwrap();
    let w = g.input("w", f32_shape([6, 2, 3, 2])).unwrap();
    let y = g.conv2d(x, w, attrs).unwrap();
    let dy = g.input("dy", g.ty(y).clone()).unwrap();
    let dx = g.apply(Op::Conv2dGradInput { attrs, input_hw: [9, 7] }, &[dy, w]).unwrap();
    let dw = g.apply(Op::Conv2dGradWeight { attrs, kernel_hw: [3, 2] }, &[x, dy]).unwrap();
    g.set_output("y", y).unwrap();
    g.set_output("dx", dx).unwrap();
    g.set_output("dw", dw).unwrap();
    check(&g, &random_inputs(&g, 4), 1e-4, 2e-3);
}

/// The unrolled 2x2/stride-2 max pool: ties pick the first maximum, NaN
/// (made inside the graph, since `run` rejects non-finite inputs) wins, and
/// the gradient goes to that element.
#[test]
fn two_by_two_max_pool_ties_and_nan() {
    let pool = Pool2dAttrs { kernel: [2, 2], stride: [2, 2], padding: [0, 0] };
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([2, 3, 6, 5])).unwrap();
    let lx = g.log(x).unwrap(); // log of negatives: NaN, of 0: -inf
    let y = g.max_pool2d(lx, pool).unwrap();
    let dy = g.input("dy", g.ty(y).clone()).unwrap();
    let dx = g.apply(Op::MaxPool2dGrad(pool), &[lx, dy]).unwrap();
    g.set_output("y", y).unwrap();
    g.set_output("dx", dx).unwrap();
    let mut vals = random_inputs(&g, 3);
    let xs: Vec<f32> = (0..180).map(|i| ((i * 7) % 5) as f32 - if i % 13 == 0 { 9.0 } else { 0.0 }).collect();
    vals.insert("x".into(), HostTensor::from_f32([2, 3, 6, 5], xs).unwrap());
    check(&g, &vals, 1e-6, 0.0);
}

/// Tensors with a zero extent past the first axis have no elements; every
/// loop kind (JIT f32, portable evaluator for ints/f64/bools, reductions)
/// must produce the interpreter's empty (or identity) results, not divide
/// by the zero extent.
#[test]
fn zero_extent_tensors_match_the_interpreter() {
    let mut g = Graph::new();
    let a = g.input("a", f32_shape([2, 0, 3])).unwrap();
    let i = g.input("i", TensorType::new(DType::I64, [2, 0, 1])).unwrap();
    let m = g.input("m", TensorType::new(DType::Bool, [3, 0])).unwrap();
    let b = g.input("b", f32_shape([3, 0])).unwrap();
    let d = g.input("d", TensorType::new(DType::F64, [3, 3, 0, 3])).unwrap();
    let to_i32 = g.cast(a, DType::I32).unwrap();
    let neg = g.neg(i).unwrap();
    let zero = g.scalar_f32(0.0).unwrap();
    let sel = g.select(m, b, zero).unwrap();
    let sq = g.sqrt(d).unwrap();
    let mx = g.reduce_max(d, &[2], false).unwrap();
    let s = g.sum(a, &[1], false).unwrap();
    let e = g.exp(a).unwrap();
    for (n, id) in [("to_i32", to_i32), ("neg", neg), ("sel", sel), ("sq", sq), ("mx", mx), ("s", s), ("e", e)] {
        g.set_output(n, id).unwrap();
    }
    check(&g, &random_inputs(&g, 5), 0.0, 0.0);
}

/// NaN or inf anywhere in a data input (past the first chunks the check
/// folds too) is a typed error naming the input, not a silent result.
#[test]
fn non_finite_inputs_are_rejected_by_name() {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([1000])).unwrap();
    let y = g.relu(x).unwrap();
    g.set_output("y", y).unwrap();
    let mut exe = kiln_cpu::CpuBackend::new().compile_cpu(&g).unwrap();
    for (at, bad) in [(0, f32::NAN), (777, f32::INFINITY), (999, f32::NEG_INFINITY)] {
        let mut v = vec![1.0f32; 1000];
        v[at] = bad;
        let m = [("x".to_string(), HostTensor::from_f32([1000], v).unwrap())].into_iter().collect();
        assert_eq!(exe.run(&m).unwrap_err(), RunError::NonFinite { name: "x".into() }, "{bad} at {at}");
    }
    let m = [("x".to_string(), HostTensor::from_f32([1000], vec![1.0; 1000]).unwrap())].into_iter().collect();
    assert!(exe.run(&m).is_ok());
}
