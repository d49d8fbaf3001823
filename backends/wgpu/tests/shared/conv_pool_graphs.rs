//! The convolution and pooling graphs that `conv_pool_parity.rs` runs on the
//! device and `lower_conv_pool.rs` lowers without one (included with
//! `#[path]`): every op of a family on one geometry, in one graph.

use kiln_ir::*;

pub fn attrs(stride: [usize; 2], padding: [usize; 2], dilation: [usize; 2], groups: usize) -> Conv2dAttrs {
    Conv2dAttrs { stride, padding, dilation, groups }
}

/// conv2d of `x` by `o` filters of `k`, both gradients (input `dy`), and
/// the fused variants (bias or not, every activation), each an output.
/// Returns the graph and its nodes: conv2d, grad input, grad weight, then
/// the fused ones.
pub fn conv_family(x: [usize; 4], o: usize, k: [usize; 2], a: Conv2dAttrs) -> (Graph, Vec<NodeId>) {
    let mut g = Graph::new();
    let xi = g.input("x", f32_shape(x)).unwrap();
    let wi = g.param("w", f32_shape([o, x[1] / a.groups, k[0], k[1]])).unwrap();
    let bi = g.param("b", f32_shape([o])).unwrap();
    let y = g.conv2d(xi, wi, a).unwrap();
    g.set_output("y", y).unwrap();
    let dy = g.input("dy", g.ty(y).clone()).unwrap();
    let dx = g.apply(Op::Conv2dGradInput { attrs: a, input_hw: [x[2], x[3]] }, &[dy, wi]).unwrap();
    let dw = g.apply(Op::Conv2dGradWeight { attrs: a, kernel_hw: k }, &[xi, dy]).unwrap();
    g.set_output("dx", dx).unwrap();
    g.set_output("dw", dw).unwrap();
    let mut nodes = vec![y, dx, dw];
    for (i, act) in Activation::ALL.into_iter().enumerate() {
        let bias = i % 2 == 0;
        let ops: &[NodeId] = if bias { &[xi, wi, bi] } else { &[xi, wi] };
        let f = g.apply(Op::FusedConv2d { attrs: a, bias, act }, ops).unwrap();
        g.set_output(&format!("fused_{}", act.name()), f).unwrap();
        nodes.push(f);
    }
    (g, nodes)
}

/// Max pooling and its gradient, then average pooling and its gradient
/// without and with count_include_pad, of `x` (gradients of input `dy`),
/// each an output. Returns the graph and those six nodes in that order.
pub fn pool_family(x: [usize; 4], p: Pool2dAttrs) -> (Graph, Vec<NodeId>) {
    let mut g = Graph::new();
    let xi = g.input("x", f32_shape(x)).unwrap();
    let mp = g.max_pool2d(xi, p).unwrap();
    g.set_output("max", mp).unwrap();
    let dy = g.input("dy", g.ty(mp).clone()).unwrap();
    let mg = g.apply(Op::MaxPool2dGrad(p), &[xi, dy]).unwrap();
    g.set_output("max_grad", mg).unwrap();
    let mut nodes = vec![mp, mg];
    for incl in [false, true] {
        let ap = g.avg_pool2d(xi, p, incl).unwrap();
        let ag = g.apply(Op::AvgPool2dGrad { pool: p, count_include_pad: incl, input_hw: [x[2], x[3]] }, &[dy]).unwrap();
        g.set_output(&format!("avg_{incl}"), ap).unwrap();
        g.set_output(&format!("avg_grad_{incl}"), ag).unwrap();
        nodes.extend([ap, ag]);
    }
    (g, nodes)
}
