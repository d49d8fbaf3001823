//! Shared by the lower_* tests (which also declare `mod common;`): lower a
//! graph the way the backend does (partition, memory plan with 4-byte
//! words, layout), validate every shader with naga, and compare the
//! backend with the interpreter on random inputs.

#![allow(dead_code)]

use std::collections::BTreeMap;

use kiln_ir::{DType, Graph, HostTensor, Op};
use kiln_passes::memory_plan::plan_memory_with;
use kiln_passes::partition::partition;
use kiln_wgpu::layout::Layout;
use kiln_wgpu::lower::{lower_anchor, lower_kernel, validate::validate, Cx, Shader};

pub struct Lowered {
    pub layout: Layout,
    pub shaders: Vec<Shader>,
}

/// Every kernel's shaders, each validated by naga.
pub fn lower(g: &Graph) -> Lowered {
    lower_with(g, false)
}

/// As [`lower`]; with `slices_alone`, a kernel that is one slice (which the
/// partition runs as a strided loop) is lowered as a standalone slice
/// instead, so that lowering is exercised too.
pub fn lower_with(g: &Graph, slices_alone: bool) -> Lowered {
    let part = partition(g).expect("partition");
    let plan = plan_memory_with(g, &part, &|_| 0, &|_| 4).expect("memory plan");
    let layout = Layout::build(g, &part, &plan).expect("layout");
    let cx = Cx { g, layout: &layout };
    let mut shaders = Vec::new();
    for k in &part.kernels {
        let alone = match k.fused[..] {
            [n] if slices_alone && k.anchor.is_none() && matches!(g.op(n), Op::Slice { .. }) => Some(n),
            _ => None,
        };
        let s = match alone {
            Some(n) => lower_anchor(&cx, n),
            None => lower_kernel(&cx, k),
        }
        .unwrap_or_else(|e| panic!("lowering kernel {}: {e}", k.id));
        for sh in &s {
            if let Err(e) = validate(sh) {
                panic!("{e}");
            }
        }
        shaders.extend(s);
    }
    Lowered { layout, shaders }
}

/// Lowers and checks that some shader has `name` (the op really became a
/// shader of its own rather than a view or a loop).
pub fn lower_expect(g: &Graph, name: &str) -> Lowered {
    let l = lower_with(g, true);
    assert!(l.shaders.iter().any(|s| s.name.contains(name)), "no `{name}` shader in {:?}", names(&l));
    l
}

pub fn names(l: &Lowered) -> Vec<String> {
    l.shaders.iter().map(|s| s.name.clone()).collect()
}

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [-1, 1).
    pub fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random values for every input of `g`: floats in [-1, 1), integers in
/// `0..int_bound`, bools at random.
pub fn inputs(g: &Graph, seed: u64, int_bound: u64) -> BTreeMap<String, HostTensor> {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut m = BTreeMap::new();
    for (id, name, _) in g.inputs() {
        let ty = g.ty(id);
        let v: Vec<f64> = (0..ty.numel())
            .map(|_| match ty.dtype {
                DType::F32 | DType::F64 => r.f() as f64,
                DType::Bool => r.below(2) as f64,
                _ => r.below(int_bound) as f64,
            })
            .collect();
        m.insert(name.to_string(), HostTensor::from_f64_values(ty, &v));
    }
    m
}

/// `vals` split into per-call inputs and params/state, as a backend takes them.
pub fn split(g: &Graph, vals: &BTreeMap<String, HostTensor>) -> (BTreeMap<String, HostTensor>, BTreeMap<String, HostTensor>) {
    let (mut inputs, mut state) = (BTreeMap::new(), BTreeMap::new());
    for (_, name, role) in g.inputs() {
        let v = vals[name].clone();
        if role.is_persistent() { state.insert(name.to_string(), v) } else { inputs.insert(name.to_string(), v) };
    }
    (inputs, state)
}

/// Every output of `g` on wgpu equals the f32 interpreter's within
/// `tol * (1 + |want|)` (equal infinities and NaNs agree), when this
/// machine has an adapter (under CI it must).
pub fn parity(g: &Graph, vals: &BTreeMap<String, HostTensor>, tol: f64) {
    parity_runs(g, std::slice::from_ref(vals), tol);
}

/// [`parity`] for several input sets, each backend compiling `g` once
/// (lavapipe compiles slowly).
pub fn parity_runs(g: &Graph, runs: &[BTreeMap<String, HostTensor>], tol: f64) {
    if !crate::common::gpu() {
        return;
    }
    let compile = |be: &dyn kiln_ir::Backend| be.compile(g).unwrap_or_else(|e| panic!("{} compile: {e}", be.name()));
    let mut want_exe = compile(&kiln_interp::Interpreter::new(kiln_interp::Precision::F32));
    let mut got_exe = compile(&kiln_wgpu::WgpuBackend::new());
    for vals in runs {
        let (inputs, state) = split(g, vals);
        let run = |exe: &mut Box<dyn kiln_ir::Executable>| {
            for (k, v) in &state {
                exe.set_state(k, v.clone()).unwrap();
            }
            exe.run(&inputs).unwrap_or_else(|e| panic!("run: {e}"))
        };
        let (want, got) = (run(&mut want_exe), run(&mut got_exe));
        for (k, w) in &want {
            assert_eq!(got[k].ty(), w.ty(), "output `{k}`");
            for (i, (a, b)) in got[k].to_f64_vec().iter().zip(w.to_f64_vec()).enumerate() {
                let ok = *a == b || (a - b).abs() <= tol * (1.0 + b.abs()) || (a.is_nan() && b.is_nan());
                assert!(ok, "output `{k}`[{i}]: wgpu {a} vs interpreter {b}");
            }
        }
    }
}

/// Both backends fail each run with the same error (an index out of range
/// names the same node, index and bound).
pub fn same_errors(g: &Graph, runs: &[BTreeMap<String, HostTensor>]) {
    if !crate::common::gpu() {
        return;
    }
    let compile = |be: &dyn kiln_ir::Backend| be.compile(g).unwrap_or_else(|e| panic!("{} compile: {e}", be.name()));
    let mut want_exe = compile(&kiln_interp::Interpreter::new(kiln_interp::Precision::F32));
    let mut got_exe = compile(&kiln_wgpu::WgpuBackend::new());
    for vals in runs {
        let (inputs, state) = split(g, vals);
        let run = |exe: &mut Box<dyn kiln_ir::Executable>| {
            for (k, v) in &state {
                exe.set_state(k, v.clone()).unwrap();
            }
            exe.run(&inputs).expect_err("the run must fail")
        };
        assert_eq!(run(&mut got_exe), run(&mut want_exe));
    }
}
