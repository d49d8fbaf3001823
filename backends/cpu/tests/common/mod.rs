//! Shared harness: run a graph on the CPU backend and on the reference
//! interpreter (f32 precision) and compare every output.
#![allow(dead_code)]

use std::collections::BTreeMap;

use kiln_cpu::CpuBackend;
use kiln_interp::{run_graph, Precision};
use kiln_ir::{Backend, DType, Graph, HostTensor, TensorData, TensorType};

/// Deterministic pseudo-random values in [-2, 2) (no external RNG needed).
pub fn values(seed: u64, n: usize) -> Vec<f32> {
    (0..n).map(|i| kiln_ir::random::uniform(seed, 7, i as u64, -2.0, 2.0)).collect()
}

pub fn tensor(seed: u64, ty: &TensorType) -> HostTensor {
    let n = ty.numel();
    let v = values(seed, n);
    match ty.dtype {
        DType::F32 => HostTensor::from_f32(ty.shape.clone(), v).unwrap(),
        DType::F64 => HostTensor::from_f64(ty.shape.clone(), v.iter().map(|&x| x as f64).collect()).unwrap(),
        DType::I64 => HostTensor::from_i64(ty.shape.clone(), v.iter().map(|&x| (x * 3.0) as i64).collect()).unwrap(),
        DType::I32 => HostTensor::new(ty.shape.clone(), TensorData::I32(v.iter().map(|&x| (x * 3.0) as i32).collect())).unwrap(),
        DType::Bool => HostTensor::new(ty.shape.clone(), TensorData::Bool(v.iter().map(|&x| (x > 0.0) as u8).collect())).unwrap(),
    }
}

/// Random values for every input/param/state of `g`.
pub fn random_inputs(g: &Graph, seed: u64) -> BTreeMap<String, HostTensor> {
    g.inputs().into_iter().enumerate().map(|(i, (id, name, _))| (name.to_string(), tensor(seed + i as u64 * 101, g.ty(id)))).collect()
}

/// |cpu - ref| <= atol + rtol * |ref| elementwise (NaN must match NaN).
pub fn assert_close(name: &str, got: &HostTensor, want: &HostTensor, rtol: f64, atol: f64) {
    assert_eq!(got.ty(), want.ty(), "{name}: type");
    let (a, b) = (got.to_f64_vec(), want.to_f64_vec());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let ok = (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= atol + rtol * y.abs();
        assert!(ok, "{name}[{i}]: cpu {x} vs interpreter {y} (rtol {rtol}, atol {atol})");
    }
}

/// Runs `g` once on both backends with `vals` (inputs and params/state) and
/// compares outputs and updated state. Runs the CPU program twice to check
/// that a second run (warm arena) gives the same answer.
pub fn check_with(be: &CpuBackend, g: &Graph, vals: &BTreeMap<String, HostTensor>, rtol: f64, atol: f64) {
    let want = run_graph(g, vals, Precision::F32).expect("interpreter runs");
    let mut exe = be.compile(g).expect("cpu compiles");
    let sig = exe.signature().clone();
    let mut inputs = BTreeMap::new();
    for i in &sig.inputs {
        if i.role.is_persistent() {
            exe.set_state(&i.name, vals[&i.name].clone()).unwrap();
        } else {
            inputs.insert(i.name.clone(), vals[&i.name].clone());
        }
    }
    let got = exe.run(&inputs).expect("cpu runs");
    for (name, w) in &want {
        let gt = got.get(name).unwrap_or_else(|| panic!("missing output {name}"));
        assert_close(name, gt, w, rtol, atol);
    }
}

pub fn check(g: &Graph, vals: &BTreeMap<String, HostTensor>, rtol: f64, atol: f64) {
    check_with(&CpuBackend::new(), g, vals, rtol, atol);
    check_with(&CpuBackend::new().with_jit(false).with_threads(1), g, vals, rtol, atol);
}

/// splitmix64: derives shapes and attributes from the proptest seed.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
    pub fn shape(&mut self, max_rank: usize, max_dim: usize) -> Vec<usize> {
        let r = self.range(0, max_rank);
        (0..r).map(|_| if self.next() % 4 == 0 { 1 } else { self.range(1, max_dim) }).collect()
    }
    /// A shape that broadcasts against `s`.
    pub fn broadcastable(&mut self, s: &[usize]) -> Vec<usize> {
        let drop = self.range(0, s.len());
        s[drop..].iter().map(|&d| if self.next() % 3 == 0 { 1 } else { d }).collect()
    }
    pub fn bit(&mut self) -> bool {
        self.next() % 2 == 0
    }
}
