//! The generated conv packing/epilogue and pooling kernels (`lower/conv.rs`,
//! `lower/pool.rs`) against the interpreter on shapes the small property
//! tests in `ops.rs` do not reach: rows longer than the unrolled limit,
//! several image blocks with a partial last one, interior column loops,
//! stride-2 and stride-3 pooling groups; max pooling on ties and NaN.

mod common;

use std::collections::BTreeMap;

use common::*;
use kiln_cpu::CpuBackend;
use kiln_ir::*;
use proptest::prelude::*;

fn names(g: &Graph) -> Vec<String> {
    CpuBackend::new().compile_cpu(g).unwrap().kernel_code().iter().map(|k| k.name.clone()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn large_convolutions(seed in any::<u64>()) {
        let mut r = Rng(seed);
        let groups = r.range(1, 2);
        let (c, o) = (groups * r.range(1, 2), groups * r.range(1, 3));
        let (kh, kw) = (r.range(1, 5), r.range(1, 5));
        let attrs = Conv2dAttrs {
            stride: [r.range(1, 3), r.range(1, 3)],
            padding: [r.range(0, 3), r.range(0, 3)],
            dilation: [r.range(1, 2), r.range(1, 2)],
            groups,
        };
        let (h, w) = (r.range(2 * kh + 4, 30), r.range(2 * kw + 60, 90));
        // 1 to 3 blocks of CONV_BATCH (4) images, the last one partial.
        let n = r.range(1, 10);
        let mut g = Graph::new();
        let x = g.input("x", f32_shape([n, c, h, w])).unwrap();
        let wt = g.input("w", f32_shape([o, c / groups, kh, kw])).unwrap();
        let bias = g.input("bias", f32_shape([o])).unwrap();
        let y = g.conv2d(x, wt, attrs).unwrap();
        g.set_output("conv", y).unwrap();
        let dy = g.input("dy", g.ty(y).clone()).unwrap();
        let dx = g.apply(Op::Conv2dGradInput { attrs, input_hw: [h, w] }, &[dy, wt]).unwrap();
        g.set_output("grad_input", dx).unwrap();
        let dw = g.apply(Op::Conv2dGradWeight { attrs, kernel_hw: [kh, kw] }, &[x, dy]).unwrap();
        g.set_output("grad_weight", dw).unwrap();
        let act = Activation::ALL[r.range(0, 3)];
        let fc = g.apply(Op::FusedConv2d { attrs, bias: true, act }, &[x, wt, bias]).unwrap();
        g.set_output("fused", fc).unwrap();
        let k = names(&g);
        for f in ["im2col", "conv_out", "conv_pack", "col2im"] {
            prop_assert!(k.iter().any(|n| n == f), "{f} not generated: {k:?}");
        }
        let atol = 2e-4 * ((c * kh * kw * 9) as f64).sqrt() * (n as f64).sqrt();
        check(&g, &random_inputs(&g, seed), 1e-4, atol);
    }

    #[test]
    fn large_pooling(seed in any::<u64>()) {
        let mut r = Rng(seed);
        let kernel = [r.range(1, 4), r.range(1, 4)];
        let pool = Pool2dAttrs {
            kernel,
            stride: [r.range(1, 3), r.range(1, 3)],
            padding: [r.range(0, kernel[0] / 2), r.range(0, kernel[1] / 2)],
        };
        let (n, c, h, w) = (r.range(1, 3), r.range(1, 4), r.range(kernel[0], 20), r.range(40, 100));
        let mut g = Graph::new();
        let x = g.input("x", f32_shape([n, c, h, w])).unwrap();
        let mp = g.max_pool2d(x, pool).unwrap();
        g.set_output("max", mp).unwrap();
        let dy = g.input("dy", g.ty(mp).clone()).unwrap();
        let mg = g.apply(Op::MaxPool2dGrad(pool), &[x, dy]).unwrap();
        g.set_output("max_grad", mg).unwrap();
        for incl in [false, true] {
            let ap = g.avg_pool2d(x, pool, incl).unwrap();
            g.set_output(&format!("avg_{incl}"), ap).unwrap();
            let ag = g.apply(Op::AvgPool2dGrad { pool, count_include_pad: incl, input_hw: [h, w] }, &[dy]).unwrap();
            g.set_output(&format!("avg_grad_{incl}"), ag).unwrap();
        }
        let k = names(&g);
        for f in ["maxpool", "maxpool_grad", "avgpool", "avgpool_grad"] {
            prop_assert!(k.iter().any(|n| n == f), "{f} not generated: {k:?}");
        }
        check(&g, &random_inputs(&g, seed), 1e-5, 1e-6);
    }
}

/// Ties pick the first maximum in window order and a NaN wins (the first
/// NaN of a window), in the values and in where the gradient goes: values
/// on a coarse grid tie often; NaN is made in the graph as 0/0.
#[test]
fn max_pool_ties_and_nan_follow_the_reference() {
    // 2x2/2 has its own gather kernel: odd and even sizes, with and
    // without a loop over groups of 4 outputs and a scalar tail.
    for (stride, kernel, padding, h, w) in [(2, 2, 0, 13, 50), (2, 2, 0, 8, 13), (2, 2, 0, 3, 2), (1, 3, 1, 13, 50), (2, 3, 1, 13, 50), (3, 3, 0, 13, 50)] {
        let pool = Pool2dAttrs { kernel: [kernel; 2], stride: [stride; 2], padding: [padding; 2] };
        let (n, c) = (2, 3);
        let mut g = Graph::new();
        let x = g.input("x", f32_shape([n, c, h, w])).unwrap();
        let z = g.input("z", f32_shape([n, c, h, w])).unwrap();
        let xn = g.div(x, z).unwrap();
        let mp = g.max_pool2d(xn, pool).unwrap();
        g.set_output("max", mp).unwrap();
        let dy = g.input("dy", g.ty(mp).clone()).unwrap();
        let mg = g.apply(Op::MaxPool2dGrad(pool), &[xn, dy]).unwrap();
        g.set_output("max_grad", mg).unwrap();
        let numel = n * c * h * w;
        let mut xs: Vec<f32> = values(3, numel).iter().map(|v| (v * 1.5).round() / 2.0).collect();
        let mut zs = vec![1f32; numel];
        for i in (0..numel).step_by(37) {
            xs[i] = 0.0;
            zs[i] = 0.0;
        }
        let mut vals = BTreeMap::new();
        vals.insert("x".to_string(), HostTensor::from_f32([n, c, h, w], xs).unwrap());
        vals.insert("z".to_string(), HostTensor::from_f32([n, c, h, w], zs).unwrap());
        let dyt = g.ty(dy).clone();
        vals.insert("dy".to_string(), tensor(5, &dyt));
        // Where a gradient gathers several dy, f32 sums differ from the
        // f64 reference by an ulp; a wrong winner is off by a whole dy.
        check(&g, &vals, 1e-6, 1e-6);
    }
}

/// The generated conv and pooling functions are stored per kernel and
/// function name and installed again without codegen (a conv kernel has
/// several: im2col, its epilogue, the loop of its fused consumers).
#[test]
fn generated_conv_and_pool_code_is_stored_and_installed() {
    let attrs = Conv2dAttrs { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1 };
    let pool = Pool2dAttrs { kernel: [2, 2], stride: [2, 2], padding: [0, 0] };
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([5, 3, 12, 12])).unwrap();
    let w = g.input("w", f32_shape([4, 3, 3, 3])).unwrap();
    let b = g.input("b", f32_shape([4])).unwrap();
    let y = g.apply(Op::FusedConv2d { attrs, bias: true, act: Activation::Relu }, &[x, w, b]).unwrap();
    let p = g.max_pool2d(y, pool).unwrap();
    let e = g.exp(p).unwrap();
    g.set_output("p", e).unwrap();
    let dy = g.input("dy", g.ty(y).clone()).unwrap();
    let dx = g.apply(Op::Conv2dGradInput { attrs, input_hw: [12, 12] }, &[dy, w]).unwrap();
    g.set_output("dx", dx).unwrap();
    let mut first = CpuBackend::new().compile_cpu(&g).unwrap();
    let code = first.kernel_code().to_vec();
    for f in ["im2col", "conv_out", "maxpool", "conv_pack", "col2im"] {
        assert!(code.iter().any(|k| k.name == f && k.machine.is_some()), "{f}: {:?}", code.iter().map(|k| &k.name).collect::<Vec<_>>());
    }
    // SAFETY: `code` is what this backend just compiled from these CLIFs.
    let mut again = unsafe { CpuBackend::new().compile_cpu_with_code(&g, &code) }.unwrap();
    assert_eq!(again.codegen_counts(), (0, code.len()), "every function installed");
    assert_eq!(again.kernel_code(), &code[..]);
    let vals = random_inputs(&g, 9);
    let (a, b) = (first.run(&vals).unwrap(), again.run(&vals).unwrap());
    for k in ["p", "dx"] {
        let bits = |t: &HostTensor| t.as_f32().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a[k]), bits(&b[k]), "{k}");
    }
    // A function's code stored under another function's name of the same
    // kernel (its CLIF differs) is compiled, not installed.
    let conv = code.iter().find(|k| k.name == "im2col").unwrap().kernel;
    let mut swapped: Vec<_> = code.iter().filter(|k| !(k.kernel == conv && k.name == "conv_out")).cloned().collect();
    for k in swapped.iter_mut().filter(|k| k.kernel == conv && k.name == "im2col") {
        k.name = "conv_out".into();
    }
    // SAFETY: every entry is this backend's own code for the CLIF it names.
    let exe = unsafe { CpuBackend::new().compile_cpu_with_code(&g, &swapped) }.unwrap();
    assert_eq!(exe.codegen_counts(), (2, code.len() - 2), "im2col and conv_out compiled");
    assert_eq!(exe.kernel_code(), &code[..]);
}

/// f64 convolution and pooling keep the Rust path (no generated code) and
/// agree with the interpreter; the f32 functions appear in the dump.
#[test]
fn f64_keeps_the_rust_path_and_f32_code_is_dumped() {
    let attrs = Conv2dAttrs { stride: [2, 1], padding: [1, 2], dilation: [1, 2], groups: 1 };
    let pool = Pool2dAttrs { kernel: [3, 2], stride: [2, 2], padding: [1, 1] };
    let build = |dt: DType| {
        let mut g = Graph::new();
        let x = g.input("x", TensorType::new(dt, [3, 2, 11, 13])).unwrap();
        let w = g.input("w", TensorType::new(dt, [3, 2, 3, 3])).unwrap();
        let y = g.conv2d(x, w, attrs).unwrap();
        let p = g.max_pool2d(y, pool).unwrap();
        let a = g.avg_pool2d(y, pool, false).unwrap();
        g.set_output("p", p).unwrap();
        g.set_output("a", a).unwrap();
        g
    };
    let g64 = build(DType::F64);
    assert!(CpuBackend::new().compile_cpu(&g64).unwrap().kernel_code().is_empty());
    check(&g64, &random_inputs(&g64, 4), 1e-9, 1e-9);
    let dir = std::env::temp_dir().join(format!("kiln-cpu-conv-dump-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    CpuBackend::new().with_dump(&dir).compile_cpu(&build(DType::F32)).unwrap();
    let files: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    for f in ["-im2col.clif", "-conv_out.clif", "-maxpool.clif", "-avgpool.clif"] {
        assert!(files.iter().any(|n| n.ends_with(f)), "{f} in {files:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fused conv (bias + ReLU) of `n` images of `c` x `hw`, `o` filters of
/// `k` x `k`, with its input and weight gradients as outputs (`dy` an input).
fn fused_conv_and_gradients(n: usize, c: usize, o: usize, hw: [usize; 2], k: usize, attrs: Conv2dAttrs) -> Graph {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([n, c, hw[0], hw[1]])).unwrap();
    let wt = g.input("w", f32_shape([o, c / attrs.groups, k, k])).unwrap();
    let bias = g.input("bias", f32_shape([o])).unwrap();
    let y = g.apply(Op::FusedConv2d { attrs, bias: true, act: Activation::Relu }, &[x, wt, bias]).unwrap();
    g.set_output("fused", y).unwrap();
    let dy = g.input("dy", g.ty(y).clone()).unwrap();
    let dx = g.apply(Op::Conv2dGradInput { attrs, input_hw: hw }, &[dy, wt]).unwrap();
    g.set_output("grad_input", dx).unwrap();
    let dw = g.apply(Op::Conv2dGradWeight { attrs, kernel_hw: [k, k] }, &[x, dy]).unwrap();
    g.set_output("grad_weight", dw).unwrap();
    g
}

/// Convolutions with small outputs run in blocks of more than 4 images
/// (`conv::block_images`: 6 images of 5x5, 16 of 1x1, 16 of 2x2 strided
/// and grouped), the last block partial.
#[test]
fn small_image_blocks() {
    for (n, c, o, hw, k, stride, pad, groups) in [(37, 8, 6, 5, 3, 1, 1, 1), (37, 16, 12, 1, 3, 1, 1, 1), (21, 12, 8, 4, 3, 2, 1, 4)] {
        let attrs = Conv2dAttrs { stride: [stride; 2], padding: [pad; 2], dilation: [1; 2], groups };
        let g = fused_conv_and_gradients(n, c, o, [hw, hw], k, attrs);
        let kd = c / groups * k * k;
        let atol = 2e-4 * ((kd * 9) as f64).sqrt() * (n as f64).sqrt();
        check(&g, &random_inputs(&g, 5), 1e-4, atol.max(1e-4));
    }
}

/// Convolutions whose per-image column matrix is over the budget run in
/// blocks of output rows (`conv::row_block`), a partial last one included;
/// the input gradient's row blocks add into overlapping input rows. The
/// 192-channel case gets more rows than the budget allows (a block keeps
/// 128 columns: 8 rows of 17, then 6); `conv::tests` checks the blocks.
#[test]
fn row_blocked_convolutions() {
    for (n, c, o, hw, k, stride, pad, dil, groups) in [(5, 16, 6, 40, 3, 1, 1, 1, 1), (2, 24, 4, 57, 5, 2, 2, 1, 2), (1, 32, 3, 33, 3, 1, 0, 2, 1), (2, 192, 5, 14, 3, 1, 1, 1, 1)] {
        let attrs = Conv2dAttrs { stride: [stride; 2], padding: [pad; 2], dilation: [dil; 2], groups };
        let g = fused_conv_and_gradients(n, c, o, [hw, hw + 3], k, attrs);
        let kd = c / groups * k * k;
        let atol = 2e-4 * ((kd * 9) as f64).sqrt() * ((n * hw * hw) as f64).sqrt() / 8.0;
        check(&g, &random_inputs(&g, 11), 1e-4, atol.max(1e-4));
    }
}

/// Weight gradients whose per-block partials would outweigh a block's
/// column matrix add their blocks into dW one after another, each block's
/// GEMM split by 128 columns of dW (`conv::dw_in_place`: ResNet-18's 256-
/// and 512-channel layers), a partial last block and column range included,
/// grouped too. The result matches the reference and is bitwise the same on
/// one thread and on two.
#[test]
fn weight_gradients_added_in_place() {
    for (n, c, o, hw, groups) in [(20, 16, 48, 4, 1), (24, 32, 64, 4, 2), (17, 64, 40, 2, 1)] {
        let attrs = Conv2dAttrs { stride: [1; 2], padding: [1; 2], dilation: [1; 2], groups };
        let g = fused_conv_and_gradients(n, c, o, [hw, hw], 3, attrs);
        let kd = c / groups * 9;
        let vals = random_inputs(&g, 13);
        let atol = 2e-4 * ((kd * 9) as f64).sqrt() * (n as f64).sqrt();
        check(&g, &vals, 1e-4, atol.max(1e-4));
        let one = CpuBackend::new().with_threads(1).compile_cpu(&g).unwrap().run(&vals).unwrap();
        let two = CpuBackend::new().with_threads(2).compile_cpu(&g).unwrap().run(&vals).unwrap();
        assert_eq!(one["grad_weight"].as_f32().unwrap(), two["grad_weight"].as_f32().unwrap(), "{n}x{c}x{hw}x{hw}, {o} filters, {groups} groups");
    }
}
