//! Finite-difference gradient checking shared by the gradcheck test targets.
//!
//! `check` takes a graph whose node `out` is the op under test, forms the
//! scalar loss `L = sum(out * R)` with fixed random weights R (so every
//! output element gets a distinct upstream gradient), differentiates it with
//! `kiln_passes::autodiff::grad`, and compares each analytic gradient element
//! with the central difference `(L(x + h e_i) - L(x - h e_i)) / 2h`, both
//! evaluated by the reference interpreter in f64.
//!
//! Tolerance: `|analytic - numeric| <= ATOL + RTOL * |numeric|` with
//! h = 1e-6, ATOL = 1e-6, RTOL = 1e-5. In f64 the truncation error of the
//! central difference is O(h^2) ~ 1e-12 and the rounding error ~ 1e-16 |L| / h
//! ~ 1e-9, so a wrong rule (errors of order 1e-1) cannot hide, while the f32
//! constants the rules embed (e.g. 1/3 in a mean, rel. error ~3e-8) pass.
//! Inputs are drawn away from kinks (relu, abs, max) by more than h.
#![allow(dead_code)]

use std::collections::BTreeMap;

use kiln_interp::{run_graph, Precision};
use kiln_ir::{DType, Graph, HostTensor, NodeId, Shape, TensorType};
use kiln_passes::autodiff::grad;

pub const H: f64 = 1e-6;
pub const ATOL: f64 = 1e-6;
pub const RTOL: f64 = 1e-5;
/// Elements checked per input; larger inputs are sampled.
pub const MAX_ELEMS: usize = 24;

/// A tiny deterministic generator (SplitMix64), so a proptest seed fully
/// determines a case's data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
    /// Values with |v| in [lo, hi) and a random sign (away from 0).
    pub fn signed_away_from_zero(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let v = self.uniform(lo, hi);
                if self.next_u64() & 1 == 0 { v } else { -v }
            })
            .collect()
    }
}

/// Values for the named inputs of a case, as f64 tensors.
#[derive(Debug, Default, Clone)]
pub struct Inputs(pub BTreeMap<String, HostTensor>);

impl Inputs {
    pub fn new() -> Inputs {
        Inputs::default()
    }
    pub fn f(&mut self, name: &str, shape: impl Into<Shape>, v: Vec<f64>) -> &mut Self {
        self.0.insert(name.into(), HostTensor::from_f64(shape, v).expect("value count matches shape"));
        self
    }
    pub fn i(&mut self, name: &str, shape: impl Into<Shape>, v: Vec<i64>) -> &mut Self {
        self.0.insert(name.into(), HostTensor::from_i64(shape, v).expect("value count matches shape"));
        self
    }
}

/// Adds a float input `name` of `shape` to `g` and draws its values in [lo, hi).
pub fn input(g: &mut Graph, vals: &mut Inputs, rng: &mut Rng, name: &str, shape: &[usize], lo: f64, hi: f64) -> NodeId {
    let n: usize = shape.iter().product();
    let id = g.input(name, TensorType::f32(shape.to_vec())).unwrap();
    vals.f(name, shape.to_vec(), rng.vec(n, lo, hi));
    id
}

fn loss_value(g: &Graph, vals: &BTreeMap<String, HostTensor>) -> Result<f64, String> {
    let out = run_graph(g, vals, Precision::F64).map_err(|e| format!("forward run failed: {e}"))?;
    out["loss"].scalar().map_err(|e| e.to_string())
}

/// Gradient-checks every input in `wrt` (by name) of `out` in `g`.
pub fn check(mut g: Graph, out: NodeId, vals: &Inputs, wrt: &[&str], seed: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed.wrapping_add(0x5151));
    let ty = g.ty(out).clone();
    let w = HostTensor::from_f64_values(&ty, &rng.vec(ty.numel(), -1.0, 1.0));
    let w = g.constant(w).unwrap();
    let prod = g.mul(out, w).unwrap();
    let loss = g.sum_all(prod).unwrap();
    let mut fwd = g.clone();
    fwd.set_output("loss", loss).unwrap();

    let ids: Vec<NodeId> = wrt.iter().map(|n| g.find_input(n).unwrap_or_else(|| panic!("no input {n}"))).collect();
    let grads = grad(&mut g, loss, &ids).map_err(|e| format!("grad failed: {e}"))?;
    for (i, &gi) in grads.iter().enumerate() {
        g.set_output(&format!("grad{i}"), gi).unwrap();
    }
    g.set_output("loss", loss).unwrap();
    let got = run_graph(&g, &vals.0, Precision::F64).map_err(|e| {
        format!("gradient graph failed to run: {e}\n{}", kiln_ir::text::print(&g))
    })?;
    let base = got["loss"].scalar().unwrap();
    let base_fwd = loss_value(&fwd, &vals.0)?;
    if (base - base_fwd).abs() > 1e-12 * (1.0 + base.abs()) {
        return Err(format!("adding gradient nodes changed the loss: {base} vs {base_fwd}"));
    }

    for (i, name) in wrt.iter().enumerate() {
        let analytic = got[&format!("grad{i}")].to_f64_vec();
        let x0 = &vals.0[*name];
        let n = x0.numel();
        if analytic.len() != n {
            return Err(format!("grad of {name} has {} elements, the input {n}", analytic.len()));
        }
        let picks: Vec<usize> = if n <= MAX_ELEMS { (0..n).collect() } else { (0..MAX_ELEMS).map(|_| rng.below(n)).collect() };
        for k in picks {
            let at = |delta: f64| -> Result<f64, String> {
                let mut v = x0.to_f64_vec();
                v[k] += delta;
                let mut vv = vals.0.clone();
                vv.insert(name.to_string(), HostTensor::from_f64(x0.shape().clone(), v).unwrap());
                loss_value(&fwd, &vv)
            };
            let numeric = (at(H)? - at(-H)?) / (2.0 * H);
            let a = analytic[k];
            // Written so that a NaN on either side fails.
            let close = (a - numeric).abs() <= ATOL + RTOL * numeric.abs();
            if !close {
                return Err(format!(
                    "d loss / d {name}[{k}]: autodiff {a:.9e}, finite differences {numeric:.9e}\ngraph:\n{}",
                    kiln_ir::text::print(&g)
                ));
            }
        }
    }
    Ok(())
}

/// Shape helper for f32 graph types.
pub fn f32t(shape: &[usize]) -> TensorType {
    TensorType::new(DType::F32, shape.to_vec())
}

/// Case-count multiplier from `KILN_GRADCHECK_STRESS` (default 1): CI runs
/// a few cases per op; set it to e.g. 50 for a deep local run.
pub fn stress() -> u32 {
    std::env::var("KILN_GRADCHECK_STRESS").ok().and_then(|v| v.parse().ok()).unwrap_or(1)
}
