//! The runtime end to end on loops: an elementwise chain, a reduction with
//! a fused prologue, broadcasting, and params updated in place.

mod common;

use std::collections::BTreeMap;

use kiln_ir::{f32_shape, Graph, HostTensor};

#[test]
fn elementwise_and_reduce_match_the_interpreter() {
    if !common::gpu() {
        return;
    }
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([3, 70])).unwrap();
    let b = g.input("b", f32_shape([70])).unwrap();
    let s = g.add(x, b).unwrap();
    let r = g.relu(s).unwrap();
    let e = g.exp(r).unwrap();
    let sum = g.sum(e, &[1], false).unwrap();
    g.set_output("e", e).unwrap();
    g.set_output("sum", sum).unwrap();
    let inputs: BTreeMap<String, HostTensor> = [
        ("x".to_string(), HostTensor::from_f32([3, 70], common::values(210, 1)).unwrap()),
        ("b".to_string(), HostTensor::from_f32([70], common::values(70, 2)).unwrap()),
    ]
    .into_iter()
    .collect();
    common::assert_matches_interp(&g, &inputs, &BTreeMap::new(), 1e-5);
}

#[test]
fn a_param_updated_in_place_persists_across_runs() {
    if !common::gpu() {
        return;
    }
    let mut g = Graph::new();
    let w = g.param("w", f32_shape([100])).unwrap();
    let d = g.input("d", f32_shape([100])).unwrap();
    let nw = g.sub(w, d).unwrap();
    g.set_update("w", nw).unwrap();
    let l = g.sum(nw, &[0], false).unwrap();
    g.set_output("loss", l).unwrap();
    let mut exe = kiln_wgpu::WgpuBackend::new().compile_program(&g, None).unwrap();
    use kiln_ir::Executable;
    exe.set_state("w", HostTensor::from_f32([100], vec![1.0; 100]).unwrap()).unwrap();
    let inputs: BTreeMap<String, HostTensor> = [("d".to_string(), HostTensor::from_f32([100], vec![0.25; 100]).unwrap())].into_iter().collect();
    let a = exe.run(&inputs).unwrap();
    let b = exe.run(&inputs).unwrap();
    assert_eq!(a["loss"].scalar().unwrap(), 75.0);
    assert_eq!(b["loss"].scalar().unwrap(), 50.0);
    assert_eq!(exe.state("w").unwrap().as_f32().unwrap(), &[0.5; 100][..]);
}

#[test]
fn a_memory_limit_is_checked_before_any_device_buffer() {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([1000])).unwrap();
    let y = g.exp(x).unwrap();
    g.set_output("y", y).unwrap();
    let mut be = kiln_wgpu::WgpuBackend::new();
    be.max_memory = Some(1024);
    match be.compile_program(&g, None) {
        Err(kiln_wgpu::WgpuError::Limit(m)) => assert!(m.contains("limit of 1024"), "{m}"),
        Err(e) => panic!("expected a limit error, got {e}"),
        Ok(_) => panic!("a 1 KiB limit admitted an 8 KiB program"),
    }
}
