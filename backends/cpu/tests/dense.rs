//! Dense layers and matmuls at the sizes where the CPU backend changes
//! strategy (dot products for a few rows times a transposed weight, rows
//! of B streamed for a few rows times an [in, out] weight, the
//! pool split by columns or by rows, the block epilogue), against the
//! reference interpreter; and run-to-run determinism of those paths.

mod common;

use std::collections::BTreeMap;

use common::*;
use kiln_cpu::CpuBackend;
use kiln_ir::{f32_shape, Activation, Backend, Graph, HostTensor, Op};

/// Every activation, with and without bias, weight in both layouts; plus a
/// plain matmul with a transposed B.
fn dense_graph(m: usize, k: usize, n: usize) -> Graph {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([m, k])).unwrap();
    let bias = g.input("bias", f32_shape([n])).unwrap();
    let w = g.input("w", f32_shape([k, n])).unwrap();
    let wt = g.input("wt", f32_shape([n, k])).unwrap();
    for (i, act) in Activation::ALL.into_iter().enumerate() {
        for (tb, wv) in [(false, w), (true, wt)] {
            let with_bias = (i + tb as usize).is_multiple_of(2);
            let mut ops = vec![x, wv];
            if with_bias {
                ops.push(bias);
            }
            let d = g.apply(Op::FusedDense { trans_b: tb, bias: with_bias, act }, &ops).unwrap();
            g.set_output(&format!("dense_{}_{tb}", act.name()), d).unwrap();
        }
    }
    let y = g.matmul_t(x, wt, false, true).unwrap();
    g.set_output("matmul_tb", y).unwrap();
    g
}

/// Past the few-row kernels: (5..=64 rows, `small_gemm.rs`) with rows not a
/// multiple of the tiles, columns not a multiple of 16 and odd k, with the
/// dot tiles' depth bound (k 256 or more) on both sides, more rows than
/// columns (split by rows into 32 + 4: the 4-row block keeps the whole
/// product's kernel); then 65 rows (`matrixmultiply` again).
const SHAPES: [(usize, usize, usize); 15] = [
    (1, 784, 512),
    (2, 100, 37),
    (4, 65, 16),
    (3, 7, 130),
    (5, 33, 200),
    (130, 200, 70),
    (97, 64, 300),
    (40, 30, 10),
    (300, 50, 15),
    (33, 257, 70),
    (13, 255, 37),
    (64, 301, 129),
    (7, 1, 9),
    (65, 256, 80),
    (36, 300, 20),
];

#[test]
fn dense_layers_match_the_interpreter_across_strategies() {
    for (m, k, n) in SHAPES {
        let g = dense_graph(m, k, n);
        let vals = random_inputs(&g, (m * 1000 + n) as u64);
        let atol = 1e-4 * (k as f64).sqrt();
        for threads in [1, 2] {
            check_with(&CpuBackend::new().with_threads(threads), &g, &vals, 1e-4, atol);
        }
        check_with(&CpuBackend::new().with_jit(false).with_threads(1), &g, &vals, 1e-4, atol);
    }
}

fn run(be: &CpuBackend, g: &Graph, vals: &BTreeMap<String, HostTensor>) -> BTreeMap<String, Vec<u32>> {
    let mut exe = be.compile(g).unwrap();
    let out = exe.run(vals).unwrap();
    exe.run(vals).unwrap().into_iter().zip(out).map(|((k, b), (_, a))| {
        let bits: Vec<u32> = a.as_f32().unwrap().iter().map(|v| v.to_bits()).collect();
        assert_eq!(bits, b.as_f32().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "{k}: second run differs");
        (k, bits)
    }).collect()
}

/// Two runs give identical bits, and a product of up to a few dozen rows
/// gives the same bits on one thread as on two (each thread's block takes
/// the whole product's kernel, which sums a column the same way wherever
/// the block starts).
#[test]
fn dense_results_are_deterministic() {
    for (m, k, n) in SHAPES {
        let g = dense_graph(m, k, n);
        let vals = random_inputs(&g, 7);
        let two = run(&CpuBackend::new().with_threads(2), &g, &vals);
        let one = run(&CpuBackend::new().with_threads(1), &g, &vals);
        // Dot-product paths: few rows, or few columns of a transposed weight.
        if m <= 4 || n < 16 {
            assert_eq!(two["dense_relu_true"], one["dense_relu_true"], "m{m} k{k} n{n}: threads change the bits");
        }
        // No-pack dot tiles: a few dozen rows, deep enough.
        if (5..=64).contains(&m) && k >= 256 {
            assert_eq!(two["dense_relu_true"], one["dense_relu_true"], "m{m} k{k} n{n}: threads change the bits");
            assert_eq!(two["matmul_tb"], one["matmul_tb"], "m{m} k{k} n{n}: threads change the bits");
        }
        // Up to a few dozen rows times an [in, out] weight: rows of B
        // streamed or read a panel at a time in place, columns split.
        if m <= 64 {
            assert_eq!(two["dense_relu_false"], one["dense_relu_false"], "m{m} k{k} n{n}: threads change the bits");
        }
    }
}
