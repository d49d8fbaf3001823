//! The WGSL of the convolution and pooling families on every attribute
//! (stride, padding, dilation, groups incl. depthwise, non-square kernels,
//! bias and activations, count_include_pad, size-1 dims), validated by naga
//! with no device.

#[path = "shared/conv_pool_graphs.rs"]
mod conv_pool_graphs;

use conv_pool_graphs::attrs;
use kiln_ir::*;
use kiln_passes::memory_plan::plan_memory_with;
use kiln_passes::partition::partition;
use kiln_wgpu::layout::Layout;
use kiln_wgpu::lower::{lower_kernel, validate::validate, Cx, Shader};
use kiln_wgpu::WgpuError;

/// Every shader of every kernel of `g`, each validated.
fn lower_all(g: &Graph) -> Result<Vec<Shader>, WgpuError> {
    let part = partition(g).expect("partition");
    let plan = plan_memory_with(g, &part, &|_| 0, &|_| 4).expect("memory plan");
    let layout = Layout::build(g, &part, &plan)?;
    let cx = Cx { g, layout: &layout };
    let mut out = Vec::new();
    for k in &part.kernels {
        for s in lower_kernel(&cx, k)? {
            validate(&s).unwrap_or_else(|e| panic!("{e}"));
            out.push(s);
        }
    }
    Ok(out)
}

/// Lowers `g` and checks a shader named after each of `nodes` was made.
fn check(g: &Graph, nodes: &[NodeId]) -> Vec<Shader> {
    let shaders = lower_all(g).unwrap_or_else(|e| panic!("lowering failed: {e}"));
    for &n in nodes {
        let name = format!("n{}-{}", n.index(), g.op(n).name());
        assert!(shaders.iter().any(|s| s.name == name), "no shader {name} in {:?}", shaders.iter().map(|s| &s.name).collect::<Vec<_>>());
    }
    shaders
}

/// [`conv_pool_graphs::conv_family`] for one geometry, lowered.
fn conv_family(x: [usize; 4], o: usize, k: [usize; 2], a: Conv2dAttrs) {
    let (g, nodes) = conv_pool_graphs::conv_family(x, o, k, a);
    let y = nodes[0];
    let shaders = check(&g, &nodes);
    // Every extent is a constant in the text, not a runtime parameter.
    let fwd = shaders.iter().find(|s| s.name == format!("n{}-conv2d", y.index())).unwrap();
    assert!(fwd.wgsl.contains(&format!("const SH: u32 = {}u;", a.stride[0])), "{}", fwd.wgsl);
    assert!(fwd.wgsl.contains(&format!("const DW: u32 = {}u;", a.dilation[1])));
    assert_eq!(fwd.invocations, g.ty(y).numel() as u64);
}

#[test]
fn conv_plain() {
    conv_family([2, 3, 7, 6], 4, [3, 3], Conv2dAttrs::default());
}

#[test]
fn conv_stride_padding_dilation_non_square() {
    conv_family([2, 3, 11, 9], 5, [3, 2], attrs([2, 3], [1, 2], [2, 1], 1));
    conv_family([1, 2, 8, 13], 3, [1, 4], attrs([3, 1], [0, 3], [1, 3], 1));
}

#[test]
fn conv_groups_and_depthwise() {
    conv_family([2, 4, 6, 7], 6, [3, 3], attrs([1, 2], [1, 1], [1, 1], 2));
    // Depthwise, and depthwise with a channel multiplier of 2.
    conv_family([1, 5, 9, 8], 5, [3, 3], attrs([2, 2], [1, 1], [1, 1], 5));
    conv_family([2, 3, 5, 5], 6, [2, 3], attrs([1, 1], [1, 0], [2, 1], 3));
}

#[test]
fn conv_size_one_dims() {
    // One image, one channel, one row; 1x1 kernel; output 1x1.
    conv_family([1, 1, 1, 9], 1, [1, 3], Conv2dAttrs::default());
    conv_family([1, 1, 4, 4], 1, [1, 1], Conv2dAttrs::default());
    conv_family([3, 2, 5, 5], 1, [5, 5], Conv2dAttrs::default());
}

#[test]
fn conv1d_attrs() {
    for (a, k) in [
        (Conv1dAttrs::default(), 3),
        (Conv1dAttrs { stride: 2, padding: 2, dilation: 3, groups: 1 }, 3),
        (Conv1dAttrs { stride: 1, padding: 1, dilation: 1, groups: 4 }, 2),
    ] {
        let mut g = Graph::new();
        let x = g.input("x", f32_shape([2, 4, 17])).unwrap();
        let w = g.param("w", f32_shape([8, 4 / a.groups, k])).unwrap();
        let y = g.conv1d(x, w, a).unwrap();
        g.set_output("y", y).unwrap();
        let s = check(&g, &[y]);
        assert!(s[0].wgsl.contains(&format!("const SW: u32 = {}u;", a.stride)) && s[0].wgsl.contains("const XH: u32 = 1u;"));
    }
}

#[test]
fn conv_with_loop_epilogue() {
    // conv + relu: the conv shader, then the fused loop reading its output.
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([1, 2, 5, 5])).unwrap();
    let w = g.param("w", f32_shape([3, 2, 3, 3])).unwrap();
    let y = g.conv2d(x, w, attrs([1, 1], [1, 1], [1, 1], 1)).unwrap();
    let r = g.relu(y).unwrap();
    g.set_output("r", r).unwrap();
    let s = check(&g, &[y]);
    assert_eq!(s.len(), 2, "{:?}", s.iter().map(|s| &s.name).collect::<Vec<_>>());
}

/// [`conv_pool_graphs::pool_family`] for one geometry, lowered.
fn pool_family(x: [usize; 4], p: Pool2dAttrs) {
    let (g, nodes) = conv_pool_graphs::pool_family(x, p);
    let mg = nodes[1];
    let shaders = check(&g, &nodes);
    let name = |n: NodeId| format!("n{}-{}", n.index(), g.op(n).name());
    let text = |n: NodeId| &shaders.iter().find(|s| s.name == name(n)).unwrap().wgsl;
    // count_include_pad divides by the whole kernel, a constant.
    let full = format!("{:?}f", (p.kernel[0] * p.kernel[1]) as f32);
    assert!(text(nodes[4]).contains(&full) && !text(nodes[2]).contains(&format!("/ {full}")));
    assert_eq!(shaders.iter().find(|s| s.name == name(mg)).unwrap().invocations, x.iter().product::<usize>() as u64);
}

#[test]
fn pool_plain() {
    pool_family([2, 3, 8, 8], Pool2dAttrs { kernel: [2, 2], stride: [2, 2], padding: [0, 0] });
}

#[test]
fn pool_stride_padding_non_square() {
    pool_family([2, 3, 9, 7], Pool2dAttrs { kernel: [3, 2], stride: [2, 1], padding: [1, 1] });
    pool_family([1, 2, 10, 11], Pool2dAttrs { kernel: [5, 3], stride: [3, 2], padding: [2, 0] });
    // Overlapping windows (stride < kernel).
    pool_family([1, 1, 6, 6], Pool2dAttrs { kernel: [3, 3], stride: [1, 1], padding: [1, 1] });
}

#[test]
fn pool_size_one_dims() {
    pool_family([1, 1, 1, 5], Pool2dAttrs { kernel: [1, 2], stride: [1, 1], padding: [0, 1] });
    pool_family([1, 1, 3, 3], Pool2dAttrs { kernel: [1, 1], stride: [1, 1], padding: [0, 0] });
    pool_family([2, 1, 4, 4], Pool2dAttrs { kernel: [4, 4], stride: [1, 1], padding: [0, 0] });
}

#[test]
fn f64_is_an_error_not_a_panic() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::new(DType::F64, [1, 1, 4, 4])).unwrap();
    let w = g.input("w", TensorType::new(DType::F64, [1, 1, 3, 3])).unwrap();
    let y = g.conv2d(x, w, Conv2dAttrs::default()).unwrap();
    let p = g.max_pool2d(x, Pool2dAttrs { kernel: [2, 2], stride: [2, 2], padding: [0, 0] }).unwrap();
    g.set_output("y", y).unwrap();
    g.set_output("p", p).unwrap();
    match lower_all(&g) {
        Err(WgpuError::Unsupported(_)) => {}
        other => panic!("expected Unsupported, got {other:?}"),
    }
}
