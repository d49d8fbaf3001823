//! Kernel partitioning: which nodes fuse into which kernel.

use kiln_ir::*;
use kiln_passes::partition::{partition, KernelKind, PartitionReport};
use kiln_passes::{Pass, PassCx};

#[test]
fn elementwise_chain_with_broadcast_is_one_kernel() {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([4, 5])).unwrap();
    let b = g.input("b", f32_shape([5])).unwrap();
    let y = g.add(x, b).unwrap();
    let e = g.exp(y).unwrap();
    let zero = g.scalar_f32(0.0).unwrap();
    let m = g.compare(CompareOp::Gt, e, zero).unwrap();
    let s = g.select(m, e, y).unwrap();
    let c = g.cast(s, DType::F32).unwrap(); // same-dtype cast: a view
    g.set_output("out", c).unwrap();
    let p = partition(&g).unwrap();
    assert_eq!(p.kernels.len(), 1, "{}", p.to_text(&g));
    let k = &p.kernels[0];
    assert_eq!(k.kind, KernelKind::Elementwise);
    assert_eq!(k.fused, vec![y, e, m, s]);
    assert_eq!(k.outputs, vec![s]);
    assert_eq!(k.inputs, vec![x, b, zero]);
    assert_eq!(p.views, vec![(c, s)]);
}

#[test]
fn a_value_used_by_two_kernels_is_stored_once() {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([3])).unwrap();
    let a = g.exp(x).unwrap();
    let s1 = g.sum(a, &[0], false).unwrap();
    let w = g.input("w", f32_shape([3, 2])).unwrap();
    let a2 = g.reshape(a, [1, 3]).unwrap();
    let mm = g.matmul(a2, w).unwrap();
    g.set_output("s1", s1).unwrap();
    g.set_output("mm", mm).unwrap();
    let p = partition(&g).unwrap();
    let ka = p.kernels.iter().find(|k| k.fused.contains(&a)).unwrap();
    assert_eq!(ka.kind, KernelKind::Elementwise, "{}", p.to_text(&g));
    assert_eq!(ka.outputs, vec![a]);
}

#[test]
fn reductions_take_their_elementwise_prologue() {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([8, 6])).unwrap();
    let m = g.reduce_max(x, &[1], true).unwrap();
    let d = g.sub(x, m).unwrap();
    let e = g.exp(d).unwrap();
    let s = g.sum(e, &[1], false).unwrap();
    g.set_output("s", s).unwrap();
    let p = partition(&g).unwrap();
    assert_eq!(p.kernels.len(), 2, "{}", p.to_text(&g));
    let k = &p.kernels[1];
    assert_eq!((k.kind, k.anchor), (KernelKind::Reduce, Some(s)));
    assert_eq!(k.fused, vec![d, e]);
    assert_eq!(k.shape, Shape::from([8, 6]));
    assert_eq!(k.inputs, vec![x, m]);
}

#[test]
fn matmul_takes_bias_and_activation_as_epilogue() {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([4, 3])).unwrap();
    let w = g.param("w", f32_shape([3, 5])).unwrap();
    let b = g.param("b", f32_shape([5])).unwrap();
    let r = g.input("r", f32_shape([4, 5])).unwrap();
    let y = g.matmul(x, w).unwrap();
    let yb = g.add(y, b).unwrap();
    let res = g.add(yb, r).unwrap();
    let act = g.relu(res).unwrap();
    g.set_output("y", act).unwrap();
    let p = partition(&g).unwrap();
    assert_eq!(p.kernels.len(), 1, "{}", p.to_text(&g));
    let k = &p.kernels[0];
    assert_eq!((k.kind, k.anchor), (KernelKind::Contraction, Some(y)));
    assert_eq!(k.fused, vec![yb, res, act]);
    assert_eq!(k.outputs, vec![y, act]);
}

#[test]
fn kernels_are_in_dependency_order_and_the_report_lists_them() {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([2, 2])).unwrap();
    let a = g.neg(x).unwrap();
    let b = g.matmul(a, a).unwrap();
    let c = g.tanh(b).unwrap();
    let d = g.matmul(c, a).unwrap();
    g.set_output("d", d).unwrap();
    let p = partition(&g).unwrap();
    let pos = |n: NodeId| p.kernels.iter().position(|k| k.nodes().contains(&n)).unwrap();
    assert!(pos(a) < pos(b) && pos(b) <= pos(c) && pos(c) < pos(d), "{}", p.to_text(&g));
    let mut cx = PassCx::default();
    PartitionReport.run(&mut g, &mut cx).unwrap();
    assert_eq!(cx.reports.len(), 1);
    assert!(cx.reports[0].1.contains("anchor %2 (matmul)"), "{}", cx.reports[0].1);
}

#[test]
fn an_activation_joins_its_producer_when_the_preactivation_is_kept() {
    // The pre-activation is read again later (as a backward pass would), so
    // the ReLU cannot be fused into a consumer; it joins the GEMM epilogue.
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([4, 3])).unwrap();
    let w = g.param("w", f32_shape([3, 5])).unwrap();
    let b = g.param("b", f32_shape([5])).unwrap();
    let y = g.matmul(x, w).unwrap();
    let yb = g.add(y, b).unwrap();
    let r = g.relu(yb).unwrap();
    let w2 = g.param("w2", f32_shape([5, 2])).unwrap();
    let z = g.matmul(r, w2).unwrap();
    let zero = g.scalar_f32(0.0).unwrap();
    let mask = g.compare(CompareOp::Gt, yb, zero).unwrap();
    let mf = g.cast(mask, DType::F32).unwrap();
    let s = g.sum_all(mf).unwrap();
    g.set_output("z", z).unwrap();
    g.set_output("s", s).unwrap();
    let p = partition(&g).unwrap();
    let k = p.kernels.iter().find(|k| k.anchor == Some(y)).unwrap();
    assert_eq!(k.fused, vec![yb, r], "{}", p.to_text(&g));
    assert_eq!(k.outputs, vec![y, yb, r]);
}

#[test]
fn slices_fuse_as_strided_reads_of_a_stored_operand() {
    // LSTM gates: a GEMM [4, 12] sliced into [4, 3] chunks feeding one loop.
    let mut g = Graph::new();
    let h = g.input("h", f32_shape([4, 3])).unwrap();
    let w = g.input("w", f32_shape([3, 12])).unwrap();
    let gates = g.matmul(h, w).unwrap();
    let i = g.slice(gates, &[0, 0], &[4, 3], &[1, 1]).unwrap();
    let f = g.slice(gates, &[0, 3], &[4, 6], &[1, 1]).unwrap();
    let si = g.sigmoid(i).unwrap();
    let sf = g.sigmoid(f).unwrap();
    let c = g.mul(si, sf).unwrap();
    // A column range of an elementwise value: the value is stored and the
    // loop reading it is a separate kernel.
    let t = g.tanh(c).unwrap();
    let ts = g.slice(t, &[0, 1], &[4, 3], &[1, 1]).unwrap();
    let y = g.exp(ts).unwrap();
    g.set_output("y", y).unwrap();
    let p = partition(&g).unwrap();
    let text = p.to_text(&g);
    let kg = p.kernels.iter().find(|k| k.fused.contains(&i)).unwrap();
    assert_eq!(kg.kind, KernelKind::Elementwise, "{text}");
    assert_eq!(kg.fused, vec![i, f, si, sf, c, t], "{text}");
    assert_eq!(kg.inputs, vec![gates], "{text}");
    assert_eq!(kg.outputs, vec![t], "{text}");
    let ky = p.kernels.iter().find(|k| k.fused.contains(&ts)).unwrap();
    assert_eq!(ky.fused, vec![ts, y], "{text}");
    assert_eq!(ky.inputs, vec![t], "{text}");
    assert!(p.kernels.iter().all(|k| k.anchor.is_none_or(|a| g.op(a).name() != "slice")), "{text}");
}

#[test]
fn contiguous_slices_are_views_at_a_byte_offset() {
    // [T, B, 4H] input projection read one time step at a time.
    let mut g = Graph::new();
    let xp = g.input("xp", f32_shape([3, 2, 8])).unwrap();
    let w = g.input("w", f32_shape([8, 4])).unwrap();
    let t1 = g.slice(xp, &[1, 0, 0], &[2, 2, 8], &[1, 1, 1]).unwrap();
    let r = g.reshape(t1, [2, 8]).unwrap();
    let mm = g.matmul(r, w).unwrap();
    // Rows 1..2 of step 2 (unit axis, partial axis, whole axis): contiguous.
    let rows = g.slice(xp, &[2, 1, 0], &[3, 2, 8], &[1, 1, 1]).unwrap();
    // A column range is not contiguous: a strided read, not a view.
    let cols = g.slice(xp, &[0, 0, 2], &[1, 2, 4], &[1, 1, 1]).unwrap();
    let e = g.exp(cols).unwrap();
    g.set_output("mm", mm).unwrap();
    g.set_output("rows", rows).unwrap();
    g.set_output("e", e).unwrap();
    let p = partition(&g).unwrap();
    let text = p.to_text(&g);
    assert_eq!(p.views, vec![(t1, xp), (r, xp), (rows, xp)], "{text}");
    assert_eq!(p.offset(t1), 16 * 4, "{text}");
    assert_eq!(p.offset(r), 16 * 4, "{text}");
    assert_eq!(p.offset(rows), (32 + 8) * 4, "{text}");
    assert_eq!(p.offset(cols), 0, "{text}");
    assert!(text.contains(&format!("view {rows} (slice) aliases {xp} at byte 160")), "{text}");
    let ke = p.kernels.iter().find(|k| k.fused.contains(&e)).unwrap();
    assert_eq!((ke.fused.clone(), ke.inputs.clone()), (vec![cols, e], vec![xp]), "{text}");
}
