//! Slice, permute, concat and pad: every shader validates with naga, and
//! where a wgpu adapter exists the results equal the interpreter's.

mod common;
mod lower_common;

use kiln_ir::*;
use lower_common::*;

fn f32s(d: &[usize]) -> TensorType {
    TensorType::new(DType::F32, Shape(d.to_vec()))
}

fn i64s(d: &[usize]) -> TensorType {
    TensorType::new(DType::I64, Shape(d.to_vec()))
}

/// Lowers (naga-validates) `g`, then checks exact parity on the device.
fn check(g: &Graph, op: &str) {
    lower_expect(g, op);
    parity(g, &inputs(g, 7, 5), 0.0);
}

#[test]
fn slice_strided_and_partial() {
    for (shape, start, end, step) in [
        (vec![5, 7], vec![1, 0], vec![5, 7], vec![2, 3]),
        (vec![3, 4, 65], vec![0, 1, 3], vec![3, 4, 64], vec![1, 2, 5]),
        (vec![2, 9, 1], vec![0, 2, 0], vec![2, 7, 1], vec![1, 1, 1]),
        (vec![70], vec![3], vec![69], vec![4]),
    ] {
        let mut g = Graph::new();
        let x = g.input("x", f32s(&shape)).unwrap();
        let y = g.slice(x, &start, &end, &step).unwrap();
        g.set_output("y", y).unwrap();
        check(&g, "slice");
    }
}

#[test]
fn permute_axes() {
    for (shape, perm) in [
        (vec![3, 5], vec![1, 0]),
        (vec![2, 3, 4, 5], vec![0, 2, 3, 1]),
        (vec![1, 67, 1], vec![2, 1, 0]),
        (vec![4, 1, 3], vec![1, 2, 0]),
    ] {
        let mut g = Graph::new();
        let x = g.input("x", f32s(&shape)).unwrap();
        let y = g.permute(x, &perm).unwrap();
        g.set_output("y", y).unwrap();
        check(&g, "permute");
    }
    // Integer values move as words.
    let mut g = Graph::new();
    let x = g.input("x", i64s(&[3, 4])).unwrap();
    let y = g.permute(x, &[1, 0]).unwrap();
    g.set_output("y", y).unwrap();
    check(&g, "permute");
}

#[test]
fn concat_operands_and_axes() {
    for (shapes, axis) in [
        (vec![vec![2, 3], vec![2, 5]], 1),
        (vec![vec![2, 3], vec![4, 3], vec![1, 3]], 0),
        (vec![vec![2, 1, 4], vec![2, 3, 4], vec![2, 0, 4], vec![2, 2, 4]], 1),
        (vec![vec![3, 2, 65], vec![3, 2, 1]], 2),
        (vec![vec![5]], 0),
    ] {
        let mut g = Graph::new();
        let xs: Vec<NodeId> =
            shapes.iter().enumerate().map(|(i, s)| g.input(&format!("x{i}"), f32s(s)).unwrap()).collect();
        // Each piece computed by a kernel too, so in-place concats are covered.
        let ys: Vec<NodeId> = xs.iter().map(|&x| g.exp(x).unwrap()).collect();
        let a = g.concat(&xs, axis).unwrap();
        let b = g.concat(&ys, axis).unwrap();
        g.set_output("a", a).unwrap();
        g.set_output("b", b).unwrap();
        lower_expect(&g, "concat");
        parity(&g, &inputs(&g, 3, 5), 1e-6);
    }
}

#[test]
fn pad_edges_and_values() {
    for (shape, lo, hi, value) in [
        (vec![3, 4], vec![1, 2], vec![2, 0], 0.0),
        (vec![2, 3, 5, 5], vec![0, 0, 2, 1], vec![0, 0, 1, 2], -1.5),
        (vec![1, 1], vec![0, 3], vec![4, 0], f64::NEG_INFINITY),
        (vec![66], vec![0], vec![0], 2.0),
    ] {
        let mut g = Graph::new();
        let x = g.input("x", f32s(&shape)).unwrap();
        let y = g.pad(x, &lo, &hi, value).unwrap();
        g.set_output("y", y).unwrap();
        check(&g, "pad");
    }
    let mut g = Graph::new();
    let x = g.input("x", i64s(&[2, 3])).unwrap();
    let y = g.pad(x, &[1, 1], &[0, 2], 7.0).unwrap();
    g.set_output("y", y).unwrap();
    check(&g, "pad");
}

#[test]
fn f64_is_unsupported() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::new(DType::F64, Shape(vec![2, 3]))).unwrap();
    let y = g.permute(x, &[1, 0]).unwrap();
    g.set_output("y", y).unwrap();
    let part = kiln_passes::partition::partition(&g).unwrap();
    let plan = kiln_passes::memory_plan::plan_memory_with(&g, &part, &|_| 0, &|_| 4).unwrap();
    let layout = kiln_wgpu::layout::Layout::build(&g, &part, &plan).unwrap();
    let cx = kiln_wgpu::lower::Cx { g: &g, layout: &layout };
    let errs: Vec<_> = part.kernels.iter().filter_map(|k| kiln_wgpu::lower::lower_kernel(&cx, k).err()).collect();
    assert!(matches!(errs.first(), Some(kiln_wgpu::WgpuError::Unsupported(_))), "{errs:?}");
}
