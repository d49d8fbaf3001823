//! Finite-difference checks of composite layers: autodiff gradients of
//! J = sum(y * w) (w fixed random weights) against central differences, both
//! on the f64 interpreter.

use kiln::nn::{self, Module};
use kiln::{Builder, Mode, NodeId, ParamStore};

#[path = "common/gradcheck.rs"]
mod common;

/// [`common::check_gradients`] (seed 42, about 24 elements a tensor).
fn check(name: &str, mode: Mode, x_shape: &[usize], store: ParamStore, forward: impl Fn(&mut Builder, NodeId) -> kiln::Result<NodeId>) {
    common::check_gradients(name, mode, 42, 24, x_shape, store, forward);
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
