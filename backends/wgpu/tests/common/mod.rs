//! Shared by the GPU tests: whether a device exists (under CI one must),
//! and running a graph on wgpu and on the interpreter.
#![allow(dead_code)]

use std::collections::BTreeMap;

use kiln_ir::{Backend, Graph, HostTensor};

/// Whether wgpu finds an adapter. Under `CI=true` a missing adapter fails
/// the test (CI installs Mesa's software Vulkan); elsewhere the test is
/// skipped with the reason printed.
pub fn gpu() -> bool {
    match kiln_wgpu::runtime::device::Gpu::open() {
        Ok(_) => true,
        Err(e) => {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but the GPU backend has no adapter: {e}");
            eprintln!("skipping: {e}");
            false
        }
    }
}

/// Runs `g` once on the backend with `inputs` (data) and `state` (params/state).
pub fn run_on(
    be: &dyn Backend,
    g: &Graph,
    inputs: &BTreeMap<String, HostTensor>,
    state: &BTreeMap<String, HostTensor>,
) -> BTreeMap<String, HostTensor> {
    let mut exe = be.compile(g).unwrap_or_else(|e| panic!("{} compile: {e}", be.name()));
    for (k, v) in state {
        exe.set_state(k, v.clone()).unwrap();
    }
    exe.run(inputs).unwrap_or_else(|e| panic!("{} run: {e}", be.name()))
}

/// Every output of `g` on wgpu equals the f32 interpreter's within
/// `|a - b| <= tol * (1 + |b|)`.
pub fn assert_matches_interp(g: &Graph, inputs: &BTreeMap<String, HostTensor>, state: &BTreeMap<String, HostTensor>, tol: f64) {
    let want = run_on(&kiln_interp::Interpreter::new(kiln_interp::Precision::F32), g, inputs, state);
    let got = run_on(&kiln_wgpu::WgpuBackend::new(), g, inputs, state);
    assert_close(&got, &want, tol);
}

pub fn assert_close(got: &BTreeMap<String, HostTensor>, want: &BTreeMap<String, HostTensor>, tol: f64) {
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (k, w) in want {
        let g = &got[k];
        assert_eq!(g.ty(), w.ty(), "output `{k}`");
        for (i, (a, b)) in g.to_f64_vec().iter().zip(w.to_f64_vec()).enumerate() {
            let ok = a == &b || (a - b).abs() <= tol * (1.0 + b.abs()) || (a.is_nan() && b.is_nan());
            assert!(ok, "output `{k}`[{i}]: wgpu {a} vs interpreter {b}");
        }
    }
}

/// Deterministic pseudo-random values in [-1, 1).
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}
