//! The finite-difference gradient check shared by `gradcheck.rs` and
//! `gradcheck_zoo_layers.rs` (included with `#[path]`).
#![allow(dead_code)]

use std::collections::BTreeMap;

use kiln::init::Rng;
use kiln::{f32_shape, Builder, CompileOptions, HostTensor, Mode, NodeId, ParamStore, Spec};

/// N(0, 1) values of `shape`, as f64.
pub fn randn(rng: &mut Rng, shape: &[usize]) -> HostTensor {
    let n: usize = shape.iter().product();
    HostTensor::from_f64(shape.to_vec(), (0..n).map(|_| rng.normal()).collect()).unwrap()
}

/// The objective J = sum(forward(x) * w), `w` a second input of `y`'s
/// shape (fixed random weights, so every output element matters).
pub struct Objective {
    /// The forward graph with inputs `x`, `w` and output `j`.
    pub builder: Builder,
    /// The same graph with outputs `j`, `grad.x` and `grad.<param>` for
    /// every param of the store the forward uses (autodiff).
    pub grads: Spec,
    /// The params differentiated, in `grad.<param>` order.
    pub params: Vec<String>,
    /// The shape of `y` (and of `w`).
    pub y_shape: Vec<usize>,
}

/// Builds [`Objective`] for `forward` on an input `x` of `x_shape`.
pub fn objective(mode: Mode, x_shape: &[usize], store: &ParamStore, forward: impl Fn(&mut Builder, NodeId) -> kiln::Result<NodeId>) -> Objective {
    let mut b = Builder::new(mode);
    let x = b.input("x", f32_shape(x_shape.to_vec())).unwrap();
    let y = forward(&mut b, x).unwrap();
    let y_shape = b.ty(y).shape.0.clone();
    let w = b.input("w", f32_shape(y_shape.clone())).unwrap();
    let p = b.mul(y, w).unwrap();
    let j = b.sum_all(p).unwrap();
    b.output("j", j).unwrap();
    let mut g = b.graph().clone();
    let params: Vec<(String, NodeId)> = store.param_names().into_iter().filter_map(|n| g.find_input(&n).map(|id| (n, id))).collect();
    let mut wrt = vec![x];
    wrt.extend(params.iter().map(|(_, id)| *id));
    let grads = kiln::grad(&mut g, j, &wrt).unwrap();
    g.set_output("grad.x", grads[0]).unwrap();
    for ((n, _), gid) in params.iter().zip(&grads[1..]) {
        g.set_output(&format!("grad.{n}"), *gid).unwrap();
    }
    let grads = Spec::from_parts(g, store, b.init_values()).unwrap();
    Objective { builder: b, grads, params: params.into_iter().map(|(n, _)| n).collect(), y_shape }
}

/// Compares d J / d(x and every param) of [`objective`] from autodiff with
/// central differences (h = 1e-6), both on the f64 interpreter, with x and
/// w drawn from `Rng::new(seed)`: every element of tensors of up to
/// `samples` elements, about `samples` spread ones of larger tensors.
/// Returns how many elements were checked.
pub fn check_gradients(
    name: &str,
    mode: Mode,
    seed: u64,
    samples: usize,
    x_shape: &[usize],
    store: ParamStore,
    forward: impl Fn(&mut Builder, NodeId) -> kiln::Result<NodeId>,
) -> usize {
    let mut rng = Rng::new(seed);
    let obj = objective(mode, x_shape, &store, forward);
    let values_spec = kiln::inference(&obj.builder, &store).unwrap();
    let mut gp = kiln::compile(&obj.grads, CompileOptions::interp_f64()).unwrap();
    let mut vp = kiln::compile(&values_spec, CompileOptions::interp_f64()).unwrap();

    let xv = randn(&mut rng, x_shape);
    let wv = randn(&mut rng, &obj.y_shape);
    let state0 = vp.state_dict();
    let feed = BTreeMap::from([("x".to_string(), xv.clone()), ("w".to_string(), wv)]);
    let analytic = gp.run_map(&feed).unwrap();
    let h = 1e-6;
    let mut targets: Vec<(String, Option<String>)> = vec![("grad.x".into(), None)];
    targets.extend(obj.params.iter().map(|n| (format!("grad.{n}"), Some(n.clone()))));
    let mut checked = 0;
    for (gname, pname) in targets {
        let base = match &pname {
            None => xv.clone(),
            Some(p) => state0[p].cast(kiln::DType::F64),
        };
        let an = analytic[&gname].to_f64_vec();
        let vals = base.to_f64_vec();
        let stride = (vals.len() / samples).max(1);
        for i in (0..vals.len()).step_by(stride) {
            let mut num = [0.0; 2];
            for (k, sgn) in [1.0, -1.0].into_iter().enumerate() {
                let mut v = vals.clone();
                v[i] += sgn * h;
                let t = HostTensor::from_f64(base.shape().clone(), v).unwrap();
                let mut f = feed.clone();
                // Reset any state the forward updates (BatchNorm running
                // stats), then perturb.
                for (kk, vv) in &state0 {
                    vp.set_state(kk, vv.clone()).unwrap();
                }
                match &pname {
                    None => {
                        f.insert("x".into(), t);
                    }
                    Some(p) => vp.set_state(p, t).unwrap(),
                }
                num[k] = vp.run_map(&f).unwrap()["j"].scalar().unwrap();
            }
            let fd = (num[0] - num[1]) / (2.0 * h);
            assert!((fd - an[i]).abs() <= 1e-5 + 1e-4 * fd.abs(), "{name}: {gname}[{i}]: autodiff {} vs finite difference {fd}", an[i]);
            checked += 1;
        }
    }
    checked
}
