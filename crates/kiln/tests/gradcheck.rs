//! Finite-difference checks of composite layers: autodiff gradients of
//! J = sum(y * w) (w fixed random weights) against central differences, both
//! on the f64 interpreter.

use std::collections::BTreeMap;

use kiln::init::Rng;
use kiln::nn::{self, Module};
use kiln::{Builder, CompileOptions, HostTensor, Mode, NodeId, ParamStore, Program, Spec, f32_shape};

fn randn(rng: &mut Rng, shape: &[usize], scale: f64) -> HostTensor {
    let n: usize = shape.iter().product();
    HostTensor::from_f64(shape.to_vec(), (0..n).map(|_| rng.normal() * scale).collect()).unwrap()
}

/// Builds J = sum(forward(x) * w), compiles gradient and value programs, and
/// compares d J / d(x and every param) with central differences.
fn check(name: &str, mode: Mode, x_shape: &[usize], store: ParamStore, forward: impl Fn(&mut Builder, NodeId) -> kiln::Result<NodeId>) {
    let mut rng = Rng::new(42);
    let mut b = Builder::new(mode);
    let x = b.input("x", f32_shape(x_shape.to_vec())).unwrap();
    let y = forward(&mut b, x).unwrap();
    let yshape = b.ty(y).shape.clone();
    let w = b.input("w", f32_shape(yshape.0.clone())).unwrap();
    let p = b.mul(y, w).unwrap();
    let j = b.sum_all(p).unwrap();
    b.output("j", j).unwrap();
    let values_spec = kiln::inference(&b, &store).unwrap();

    let mut g = b.graph().clone();
    let params: Vec<(String, NodeId)> =
        store.param_names().into_iter().filter_map(|n| g.find_input(&n).map(|id| (n, id))).collect();
    let mut wrt = vec![x];
    wrt.extend(params.iter().map(|(_, id)| *id));
    let grads = kiln::grad(&mut g, j, &wrt).unwrap();
    g.set_output("grad.x", grads[0]).unwrap();
    for ((n, _), gid) in params.iter().zip(&grads[1..]) {
        g.set_output(&format!("grad.{n}"), *gid).unwrap();
    }
    let grad_spec = Spec::from_parts(g, &store, b.init_values()).unwrap();
    let mut gp = kiln::compile(&grad_spec, CompileOptions::interp_f64()).unwrap();
    let mut vp = kiln::compile(&values_spec, CompileOptions::interp_f64()).unwrap();

    let xv = randn(&mut rng, x_shape, 1.0);
    let wv = randn(&mut rng, &yshape.0, 1.0);
    let state0 = vp.state_dict();
    let mut feed = BTreeMap::from([("x".to_string(), xv.clone()), ("w".to_string(), wv.clone())]);
    let analytic = gp.run_map(&feed).unwrap();

    let eval = |vp: &mut Program, feed: &BTreeMap<String, HostTensor>| -> f64 {
        // Reset any state the forward updates (BatchNorm running stats).
        for (k, v) in &state0 {
            vp.set_state(k, v.clone()).unwrap();
        }
        vp.run_map(feed).unwrap()["j"].scalar().unwrap()
    };
    let h = 1e-6;
    let mut targets: Vec<(String, Option<String>)> = vec![("grad.x".into(), None)];
    targets.extend(params.iter().map(|(n, _)| (format!("grad.{n}"), Some(n.clone()))));
    for (gname, pname) in targets {
        let base = match &pname {
            None => xv.clone(),
            Some(p) => state0[p].cast(kiln::DType::F64),
        };
        let an = analytic[&gname].to_f64_vec();
        let vals = base.to_f64_vec();
        // Every element for small tensors, a spread sample for larger ones.
        let stride = (vals.len() / 24).max(1);
        for i in (0..vals.len()).step_by(stride) {
            let mut num = [0.0; 2];
            for (k, sgn) in [1.0, -1.0].into_iter().enumerate() {
                let mut v = vals.clone();
                v[i] += sgn * h;
                let t = HostTensor::from_f64(base.shape().clone(), v).unwrap();
                match &pname {
                    None => {
                        feed.insert("x".into(), t);
                        num[k] = eval(&mut vp, &feed);
                    }
                    Some(p) => {
                        let mut s0 = state0.clone();
                        s0.insert(p.clone(), t.clone());
                        for (kk, vv) in &s0 {
                            vp.set_state(kk, vv.clone()).unwrap();
                        }
                        num[k] = vp.run_map(&feed).unwrap()["j"].scalar().unwrap();
                    }
                }
            }
            feed.insert("x".into(), xv.clone());
            let fd = (num[0] - num[1]) / (2.0 * h);
            let err = (fd - an[i]).abs();
            assert!(err <= 1e-5 + 1e-4 * fd.abs(), "{name}: {gname}[{i}]: autodiff {} vs finite difference {fd}", an[i]);
        }
    }
}

#[test]
fn batchnorm2d_train() {
    let mut s = ParamStore::new(1);
    let bn = nn::BatchNorm::new2d(&mut s, "bn", 3).unwrap();
    s.reinit("bn.weight", kiln::init::Init::Uniform { low: 0.5, high: 1.5 }).unwrap();
    s.reinit("bn.bias", kiln::init::Init::Uniform { low: -0.5, high: 0.5 }).unwrap();
    check("batchnorm2d train", Mode::Train, &[4, 3, 3, 3], s, move |b, x| bn.forward(b, x));
}

#[test]
fn layernorm() {
    let mut s = ParamStore::new(2);
    let ln = nn::LayerNorm::new(&mut s, "ln", &[3, 4]).unwrap();
    s.reinit("ln.weight", kiln::init::Init::Uniform { low: 0.5, high: 1.5 }).unwrap();
    s.reinit("ln.bias", kiln::init::Init::Uniform { low: -0.5, high: 0.5 }).unwrap();
    check("layernorm", Mode::Train, &[2, 3, 4], s, move |b, x| ln.forward(b, x));
}

#[test]
fn lstm_two_layers_bidirectional() {
    let mut s = ParamStore::new(3);
    let l = nn::Lstm::config(3, 4).num_layers(2).bidirectional(true).build(&mut s, "lstm").unwrap();
    check("lstm", Mode::Train, &[4, 2, 3], s, move |b, x| {
        let o = l.forward_seq(b, x, None, None)?;
        // Fold h_n and c_n into the objective too.
        let h = b.sum_all(o.h_n)?;
        let c = b.sum_all(o.c_n.unwrap())?;
        let hc = b.add(h, c)?;
        Ok(b.add(o.out, hc)?)
    });
}

#[test]
fn gru_with_initial_state() {
    let mut s = ParamStore::new(4);
    let l = nn::Gru::config(3, 4).num_layers(2).build(&mut s, "gru").unwrap();
    s.register("h0", kiln::InputRole::Param, [2, 2, 4], kiln::init::Init::Normal { mean: 0.0, std: 0.5 }).unwrap();
    check("gru", Mode::Train, &[3, 2, 3], s, move |b, x| {
        let h0 = b.param("h0", [2, 2, 4])?;
        let o = l.forward_seq(b, x, Some(h0), None)?;
        let h = b.sum_all(o.h_n)?;
        Ok(b.add(o.out, h)?)
    });
}

#[test]
fn dropout_in_eval_is_identity_with_identity_gradient() {
    let mut s = ParamStore::new(5);
    let d = nn::Dropout::new(&mut s, 0.5).unwrap();
    let fc = nn::Linear::new(&mut s, "fc", 4, 3).unwrap();
    check("dropout eval", Mode::Eval, &[2, 4], s, move |b, x| {
        let h = d.forward(b, x)?;
        let h = nn::gelu(b, h, false)?;
        fc.forward(b, h)
    });
}

#[test]
fn conv_pool_softplus_stack() {
    let mut s = ParamStore::new(6);
    let c = nn::Conv2d::config(2, 3, 3).padding(1).stride(2).build(&mut s, "conv").unwrap();
    check("conv stack", Mode::Train, &[2, 2, 6, 6], s, move |b, x| {
        let y = c.forward(b, x)?;
        let y = nn::softplus(b, y, 2.0, 5.0)?;
        nn::adaptive_avg_pool2d(b, y, [2, 1])
    });
}
