//! Training-step graphs built from raw kiln_ir ops + autodiff (shared by the
//! trajectory tests and the private bench example).
#![allow(dead_code)]

use std::collections::BTreeMap;

use kiln_ir::*;

#[derive(Debug, Clone, Copy)]
pub enum Optim {
    Sgd { lr: f64, momentum: f64 },
    Adam { lr: f64, b1: f64, b2: f64, eps: f64 },
}

/// Appends the optimizer update of every param (with its gradient) and
/// declares the updates.
pub fn add_optimizer(g: &mut Graph, params: &[(String, NodeId)], grads: &[NodeId], opt: Optim) {
    let t_new = if let Optim::Adam { .. } = opt {
        let t = g.state_input("adam.t", f32_shape([])).unwrap();
        let t1 = g.add_scalar(t, 1.0).unwrap();
        g.set_update("adam.t", t1).unwrap();
        Some(t1)
    } else {
        None
    };
    for ((name, p), &gr) in params.iter().zip(grads) {
        let ty = g.ty(*p).clone();
        match opt {
            Optim::Sgd { lr, momentum } => {
                let bname = format!("{name}.momentum");
                let buf = g.state_input(&bname, ty).unwrap();
                let mb = g.mul_scalar(buf, momentum).unwrap();
                let nb = g.add(mb, gr).unwrap();
                let step = g.mul_scalar(nb, lr).unwrap();
                let np = g.sub(*p, step).unwrap();
                g.set_update(&bname, nb).unwrap();
                g.set_update(name, np).unwrap();
            }
            Optim::Adam { lr, b1, b2, eps } => {
                let t1 = t_new.unwrap();
                let (mn, vn) = (format!("{name}.m"), format!("{name}.v"));
                let m = g.state_input(&mn, ty.clone()).unwrap();
                let v = g.state_input(&vn, ty).unwrap();
                let m_a = g.mul_scalar(m, b1).unwrap();
                let g_a = g.mul_scalar(gr, 1.0 - b1).unwrap();
                let m1 = g.add(m_a, g_a).unwrap();
                let v_a = g.mul_scalar(v, b2).unwrap();
                let gg = g.mul(gr, gr).unwrap();
                let g_b = g.mul_scalar(gg, 1.0 - b2).unwrap();
                let v1 = g.add(v_a, g_b).unwrap();
                let cb1 = g.scalar_f32(b1 as f32).unwrap();
                let cb2 = g.scalar_f32(b2 as f32).unwrap();
                let p1 = g.pow(cb1, t1).unwrap();
                let p2 = g.pow(cb2, t1).unwrap();
                let one = g.scalar_f32(1.0).unwrap();
                let bc1 = g.sub(one, p1).unwrap();
                let bc2 = g.sub(one, p2).unwrap();
                let lr_c = g.scalar_f32(lr as f32).unwrap();
                let step_size = g.div(lr_c, bc1).unwrap();
                let sbc2 = g.sqrt(bc2).unwrap();
                let sv = g.sqrt(v1).unwrap();
                let den0 = g.div(sv, sbc2).unwrap();
                let den = g.add_scalar(den0, eps).unwrap();
                let ratio = g.div(m1, den).unwrap();
                let upd = g.mul(ratio, step_size).unwrap();
                let np = g.sub(*p, upd).unwrap();
                g.set_update(&mn, m1).unwrap();
                g.set_update(&vn, v1).unwrap();
                g.set_update(name, np).unwrap();
            }
        }
    }
}

/// MLP `sizes[0] - ... - sizes[n]` with ReLU, mean softmax cross-entropy,
/// backward and the optimizer: one training step. Output `loss`.
pub fn mlp_train(batch: usize, sizes: &[usize], opt: Optim) -> Graph {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([batch, sizes[0]])).unwrap();
    let y = g.input("y", i64_shape([batch])).unwrap();
    let mut h = x;
    let mut params = Vec::new();
    for l in 0..sizes.len() - 1 {
        let w = g.param(&format!("l{l}.w"), f32_shape([sizes[l], sizes[l + 1]])).unwrap();
        let b = g.param(&format!("l{l}.b"), f32_shape([sizes[l + 1]])).unwrap();
        params.push((format!("l{l}.w"), w));
        params.push((format!("l{l}.b"), b));
        let z = g.matmul(h, w).unwrap();
        let zb = g.add(z, b).unwrap();
        h = if l + 2 < sizes.len() { g.relu(zb).unwrap() } else { zb };
    }
    let ce = g.apply(Op::SoftmaxCrossEntropy, &[h, y]).unwrap();
    let loss = g.mean_all(ce).unwrap();
    g.set_output("loss", loss).unwrap();
    let wrt: Vec<NodeId> = params.iter().map(|(_, p)| *p).collect();
    let grads = kiln_passes::autodiff::grad(&mut g, loss, &wrt).unwrap();
    add_optimizer(&mut g, &params, &grads, opt);
    g
}

/// LeNet-5 (1x28x28, conv 5x5 pad 2 -> relu -> maxpool 2, conv 5x5 -> relu
/// -> maxpool 2, 400-120-84-10) training step.
pub fn lenet_train(batch: usize, opt: Optim) -> Graph {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([batch, 1, 28, 28])).unwrap();
    let y = g.input("y", i64_shape([batch])).unwrap();
    let mut params = Vec::new();
    let mut p = |g: &mut Graph, name: &str, s: Vec<usize>| {
        let id = g.param(name, f32_shape(s)).unwrap();
        params.push((name.to_string(), id));
        id
    };
    let pool = Pool2dAttrs { kernel: [2, 2], stride: [2, 2], padding: [0, 0] };
    let w1 = p(&mut g, "c1.w", vec![6, 1, 5, 5]);
    let b1 = p(&mut g, "c1.b", vec![6, 1, 1]);
    let c1 = g.conv2d(x, w1, Conv2dAttrs { padding: [2, 2], ..Default::default() }).unwrap();
    let c1 = g.add(c1, b1).unwrap();
    let r1 = g.relu(c1).unwrap();
    let p1 = g.max_pool2d(r1, pool).unwrap();
    let w2 = p(&mut g, "c2.w", vec![16, 6, 5, 5]);
    let b2 = p(&mut g, "c2.b", vec![16, 1, 1]);
    let c2 = g.conv2d(p1, w2, Conv2dAttrs::default()).unwrap();
    let c2 = g.add(c2, b2).unwrap();
    let r2 = g.relu(c2).unwrap();
    let p2 = g.max_pool2d(r2, pool).unwrap();
    let mut h = g.reshape(p2, [batch, 400]).unwrap();
    let sizes = [400, 120, 84, 10];
    for l in 0..3 {
        let w = p(&mut g, &format!("f{l}.w"), vec![sizes[l], sizes[l + 1]]);
        let b = p(&mut g, &format!("f{l}.b"), vec![sizes[l + 1]]);
        let z = g.matmul(h, w).unwrap();
        let zb = g.add(z, b).unwrap();
        h = if l < 2 { g.relu(zb).unwrap() } else { zb };
    }
    let ce = g.apply(Op::SoftmaxCrossEntropy, &[h, y]).unwrap();
    let loss = g.mean_all(ce).unwrap();
    g.set_output("loss", loss).unwrap();
    let wrt: Vec<NodeId> = params.iter().map(|(_, p)| *p).collect();
    let grads = kiln_passes::autodiff::grad(&mut g, loss, &wrt).unwrap();
    add_optimizer(&mut g, &params, &grads, opt);
    g
}

/// PyTorch-default-like init: params U(±1/sqrt(fan_in)), state zeros.
pub fn init_state(g: &Graph, seed: u64) -> BTreeMap<String, HostTensor> {
    let mut m = BTreeMap::new();
    for (i, (id, name, role)) in g.inputs().into_iter().enumerate() {
        let ty = g.ty(id);
        let t = match role {
            InputRole::Param => {
                let fan_in: usize = if ty.shape.rank() >= 2 { ty.shape.0[1..].iter().product::<usize>().max(ty.shape.0[0] * (ty.shape.rank() == 2) as usize) } else { ty.numel() };
                let fan_in = if ty.shape.rank() == 2 { ty.shape.0[0] } else { fan_in };
                let bound = 1.0 / (fan_in as f64).sqrt();
                let v = (0..ty.numel()).map(|j| random::uniform(seed + i as u64, 0, j as u64, -bound, bound)).collect();
                HostTensor::from_f32(ty.shape.clone(), v).unwrap()
            }
            InputRole::State => HostTensor::zeros(ty),
            InputRole::Input => continue,
        };
        m.insert(name.to_string(), t);
    }
    m
}

/// A fixed synthetic batch: standard-normal-ish inputs, labels in 0..classes.
pub fn batch(g: &Graph, classes: usize, seed: u64) -> BTreeMap<String, HostTensor> {
    let xt = g.ty(g.find_input("x").unwrap()).clone();
    let yt = g.ty(g.find_input("y").unwrap()).clone();
    let x = (0..xt.numel()).map(|i| random::uniform(seed, 1, i as u64, -1.7, 1.7)).collect();
    let y = (0..yt.numel()).map(|i| (random::uniform01(seed, 2, i as u64) * classes as f32) as i64 % classes as i64).collect();
    let mut m = BTreeMap::new();
    m.insert("x".to_string(), HostTensor::from_f32(xt.shape.clone(), x).unwrap());
    m.insert("y".to_string(), HostTensor::from_i64(yt.shape.clone(), y).unwrap());
    m
}

/// MLP forward only (inference): output `logits`.
pub fn mlp_infer(batch: usize, sizes: &[usize]) -> Graph {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([batch, sizes[0]])).unwrap();
    let mut h = x;
    for l in 0..sizes.len() - 1 {
        let w = g.param(&format!("l{l}.w"), f32_shape([sizes[l], sizes[l + 1]])).unwrap();
        let b = g.param(&format!("l{l}.b"), f32_shape([sizes[l + 1]])).unwrap();
        let z = g.matmul(h, w).unwrap();
        let zb = g.add(z, b).unwrap();
        h = if l + 2 < sizes.len() { g.relu(zb).unwrap() } else { zb };
    }
    g.set_output("logits", h).unwrap();
    g
}
