//! Recurrent layers: Elman RNN (tanh or relu), LSTM and GRU, unrolled over a
//! static sequence length. Parameters follow PyTorch exactly:
//! `weight_ih_l{k}[_reverse]` [G*H, in], `weight_hh_l{k}` [G*H, H] and two
//! bias vectors, gate rows in order i,f,g,o (LSTM) and r,z,n (GRU); all drawn
//! from U(-1/sqrt(H), 1/sqrt(H)). Input is (seq, batch, feature) unless
//! `batch_first`.

use kiln_ir::{InputRole, NodeId};

use super::{pname, Module};
use crate::init::Init;
use crate::{Builder, Error, ParamStore, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RnnKind {
    Tanh,
    Relu,
    Lstm,
    Gru,
}

impl RnnKind {
    pub(crate) fn gates(self) -> usize {
        match self {
            RnnKind::Tanh | RnnKind::Relu => 1,
            RnnKind::Lstm => 4,
            RnnKind::Gru => 3,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RnnConfig {
    pub kind: RnnKind,
    pub input_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub bias: bool,
    pub bidirectional: bool,
    pub batch_first: bool,
    /// Dropout on every layer's output but the last, in train mode (PyTorch's `dropout`).
    pub dropout: f64,
    seed: u64,
}

impl RnnConfig {
    pub fn num_layers(mut self, n: usize) -> Self {
        self.num_layers = n;
        self
    }
    pub fn bias(mut self, on: bool) -> Self {
        self.bias = on;
        self
    }
    pub fn bidirectional(mut self, on: bool) -> Self {
        self.bidirectional = on;
        self
    }
    pub fn batch_first(mut self, on: bool) -> Self {
        self.batch_first = on;
        self
    }
    pub fn dropout(mut self, p: f64) -> Self {
        self.dropout = p;
        self
    }
    pub fn relu(mut self) -> Self {
        self.kind = RnnKind::Relu;
        self
    }

    pub fn build(mut self, store: &mut ParamStore, name: &str) -> Result<Rnn> {
        if self.num_layers == 0 || self.hidden_size == 0 {
            return Err(Error::Config(format!("rnn `{name}`: num_layers and hidden_size must be positive")));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Config(format!("rnn `{name}`: dropout must be in [0, 1), got {}", self.dropout)));
        }
        self.seed = store.next_seed();
        let h = self.hidden_size;
        let gh = self.kind.gates().checked_mul(h).ok_or_else(|| Error::Config(format!("rnn `{name}`: hidden_size {h} is too large")))?;
        let init = Init::torch_default(h);
        let rnn = Rnn { name: name.to_string(), cfg: self };
        for l in 0..rnn.cfg.num_layers {
            for d in 0..rnn.dirs() {
                let sfx = suffix(l, d);
                store.register(&rnn.p("weight_ih", &sfx), InputRole::Param, [gh, rnn.layer_input(l)], init)?;
                store.register(&rnn.p("weight_hh", &sfx), InputRole::Param, [gh, h], init)?;
                if rnn.cfg.bias {
                    store.register(&rnn.p("bias_ih", &sfx), InputRole::Param, [gh], init)?;
                    store.register(&rnn.p("bias_hh", &sfx), InputRole::Param, [gh], init)?;
                }
            }
        }
        Ok(rnn)
    }
}

fn suffix(layer: usize, dir: usize) -> String {
    if dir == 0 { format!("_l{layer}") } else { format!("_l{layer}_reverse") }
}

/// Per-step outputs `out` [T, B, dirs*H] (or [B, T, ..] if batch_first),
/// final hidden states `h_n` [layers*dirs, B, H], and for LSTM `c_n`.
#[derive(Debug, Clone, Copy)]
pub struct RnnOutput {
    pub out: NodeId,
    pub h_n: NodeId,
    pub c_n: Option<NodeId>,
}

#[derive(Debug, Clone)]
pub struct Rnn {
    pub name: String,
    pub cfg: RnnConfig,
}

/// LSTM constructors.
pub struct Lstm;
/// GRU constructors.
pub struct Gru;

#[allow(clippy::new_ret_no_self)]
impl Lstm {
    pub fn config(input_size: usize, hidden_size: usize) -> RnnConfig {
        Rnn::config_of(RnnKind::Lstm, input_size, hidden_size)
    }
    pub fn new(store: &mut ParamStore, name: &str, input_size: usize, hidden_size: usize) -> Result<Rnn> {
        Self::config(input_size, hidden_size).build(store, name)
    }
}

#[allow(clippy::new_ret_no_self)]
impl Gru {
    pub fn config(input_size: usize, hidden_size: usize) -> RnnConfig {
        Rnn::config_of(RnnKind::Gru, input_size, hidden_size)
    }
    pub fn new(store: &mut ParamStore, name: &str, input_size: usize, hidden_size: usize) -> Result<Rnn> {
        Self::config(input_size, hidden_size).build(store, name)
    }
}

impl Rnn {
    /// An Elman RNN with tanh (`.relu()` for relu).
    pub fn config(input_size: usize, hidden_size: usize) -> RnnConfig {
        Self::config_of(RnnKind::Tanh, input_size, hidden_size)
    }
    pub fn config_of(kind: RnnKind, input_size: usize, hidden_size: usize) -> RnnConfig {
        RnnConfig { kind, input_size, hidden_size, num_layers: 1, bias: true, bidirectional: false, batch_first: false, dropout: 0.0, seed: 0 }
    }
    pub fn new(store: &mut ParamStore, name: &str, input_size: usize, hidden_size: usize) -> Result<Rnn> {
        Self::config(input_size, hidden_size).build(store, name)
    }

    fn dirs(&self) -> usize {
        if self.cfg.bidirectional { 2 } else { 1 }
    }
    fn layer_input(&self, l: usize) -> usize {
        if l == 0 { self.cfg.input_size } else { self.cfg.hidden_size * self.dirs() }
    }
    fn p(&self, leaf: &str, sfx: &str) -> String {
        pname(&self.name, &format!("{leaf}{sfx}"))
    }

    /// Runs the whole sequence. `h0`/`c0` are [layers*dirs, B, H] (zeros
    /// when absent; `c0` only for LSTM).
    pub fn forward_seq(&self, cx: &mut Builder, x: NodeId, h0: Option<NodeId>, c0: Option<NodeId>) -> Result<RnnOutput> {
        let cfg = &self.cfg;
        let s = super::shape_of(cx, x)?;
        if s.rank() != 3 || s.0[2] != cfg.input_size {
            return Err(Error::Config(format!(
                "rnn `{}`({x}: {}): expected [seq, batch, {}]{}",
                self.name,
                cx.ty(x),
                cfg.input_size,
                if cfg.batch_first { " (batch_first: [batch, seq, feature])" } else { "" }
            )));
        }
        let x = if cfg.batch_first { cx.permute(x, &[1, 0, 2])? } else { x };
        let s = super::shape_of(cx, x)?;
        let (t_len, b) = (s.0[0], s.0[1]);
        let h = cfg.hidden_size;
        let nstate = cfg.num_layers * self.dirs();
        for (init, what) in [(h0, "h0"), (c0, "c0")] {
            if let Some(i) = init
                && super::shape_of(cx, i)?.0 != [nstate, b, h]
            {
                return Err(Error::Config(format!("rnn `{}`: {what} {i}: {} must be [{nstate}, {b}, {h}]", self.name, cx.ty(i))));
            }
        }
        if c0.is_some() && cfg.kind != RnnKind::Lstm {
            return Err(Error::Config(format!("rnn `{}`: c0 is only for LSTM", self.name)));
        }
        let zeros = {
            let z = cx.scalar_f32(0.0)?;
            cx.broadcast_to(z, [b, h])?
        };
        let init_state = |cx: &mut Builder, src: Option<NodeId>, k: usize| -> Result<NodeId> {
            match src {
                Some(t) => {
                    let sl = cx.slice_axis(t, 0, k, k + 1)?;
                    Ok(cx.reshape(sl, [b, h])?)
                }
                None => Ok(zeros),
            }
        };
        let mut layer_in = x;
        let mut h_fin = Vec::new();
        let mut c_fin = Vec::new();
        for l in 0..cfg.num_layers {
            let mut dir_outs = Vec::new();
            for d in 0..self.dirs() {
                let k = l * self.dirs() + d;
                let hs = init_state(cx, h0, k)?;
                let cs = if cfg.kind == RnnKind::Lstm { Some(init_state(cx, c0, k)?) } else { None };
                let (steps, hn, cn) = self.run_direction(cx, layer_in, l, d, hs, cs, t_len, b)?;
                let parts: Vec<NodeId> =
                    steps.iter().map(|&st| cx.reshape(st, [1, b, h])).collect::<std::result::Result<_, _>>()?;
                dir_outs.push(if parts.len() == 1 { parts[0] } else { cx.concat(&parts, 0)? });
                h_fin.push(cx.reshape(hn, [1, b, h])?);
                if let Some(c) = cn {
                    c_fin.push(cx.reshape(c, [1, b, h])?);
                }
            }
            layer_in = if dir_outs.len() == 1 { dir_outs[0] } else { cx.concat(&dir_outs, 2)? };
            if l + 1 < cfg.num_layers && cfg.dropout > 0.0 {
                layer_in = super::dropout(cx, layer_in, cfg.dropout, cfg.seed.wrapping_add(l as u64))?;
            }
        }
        let cat0 = |cx: &mut Builder, v: &[NodeId]| -> Result<NodeId> {
            Ok(if v.len() == 1 { v[0] } else { cx.concat(v, 0)? })
        };
        let h_n = cat0(cx, &h_fin)?;
        let c_n = if c_fin.is_empty() { None } else { Some(cat0(cx, &c_fin)?) };
        let out = if cfg.batch_first { cx.permute(layer_in, &[1, 0, 2])? } else { layer_in };
        Ok(RnnOutput { out, h_n, c_n })
    }

    /// One layer, one direction. Returns the per-step hidden states in time
    /// order, the final h and (LSTM) the final c.
    #[allow(clippy::too_many_arguments)]
    fn run_direction(
        &self,
        cx: &mut Builder,
        x: NodeId,
        l: usize,
        d: usize,
        mut hs: NodeId,
        mut cs: Option<NodeId>,
        t_len: usize,
        b: usize,
    ) -> Result<(Vec<NodeId>, NodeId, Option<NodeId>)> {
        let h = self.cfg.hidden_size;
        let gh = self.cfg.kind.gates() * h;
        let sfx = suffix(l, d);
        let w_ih = cx.param(&self.p("weight_ih", &sfx), [gh, self.layer_input(l)])?;
        let w_hh = cx.param(&self.p("weight_hh", &sfx), [gh, h])?;
        let (b_ih, b_hh) = if self.cfg.bias {
            (Some(cx.param(&self.p("bias_ih", &sfx), [gh])?), Some(cx.param(&self.p("bias_hh", &sfx), [gh])?))
        } else {
            (None, None)
        };
        // The input projection of every step in one matmul.
        let mut xw = cx.matmul_t(x, w_ih, false, true)?;
        if let Some(bi) = b_ih {
            xw = cx.add(xw, bi)?;
        }
        let mut outs = vec![hs; t_len];
        let order: Vec<usize> = if d == 0 { (0..t_len).collect() } else { (0..t_len).rev().collect() };
        for t in order {
            let xt = cx.slice_axis(xw, 0, t, t + 1)?;
            let xt = cx.reshape(xt, [b, gh])?;
            let (hn, cn) = cell_update(cx, self.cfg.kind, xt, hs, cs, w_hh, b_hh, h)?;
            hs = hn;
            cs = cn;
            outs[t] = hs;
        }
        Ok((outs, hs, cs))
    }
}

impl Module for Rnn {
    /// The per-step outputs with zero initial state.
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        Ok(self.forward_seq(cx, x, None, None)?.out)
    }
}

/// One recurrent step shared by the sequence layers and the cells: `xt` is
/// the input projection `x W_ih^T + b_ih` `[B, G*H]`, `hs` (and for LSTM
/// `cs`) the state `[B, H]`. Gate order i,f,g,o (LSTM) and r,z,n (GRU), as
/// PyTorch's. Returns the new h and (LSTM) c.
#[allow(clippy::too_many_arguments)]
pub(crate) fn cell_update(
    cx: &mut Builder,
    kind: RnnKind,
    xt: NodeId,
    mut hs: NodeId,
    mut cs: Option<NodeId>,
    w_hh: NodeId,
    b_hh: Option<NodeId>,
    h: usize,
) -> Result<(NodeId, Option<NodeId>)> {
    let mut hw = cx.matmul_t(hs, w_hh, false, true)?;
    if let Some(bh) = b_hh {
        hw = cx.add(hw, bh)?;
    }
    let gate = |cx: &mut Builder, v: NodeId, k: usize| -> Result<NodeId> { Ok(cx.slice_axis(v, 1, k * h, (k + 1) * h)?) };
    match kind {
        RnnKind::Tanh | RnnKind::Relu => {
            let a = cx.add(xt, hw)?;
            hs = if kind == RnnKind::Tanh { cx.tanh(a)? } else { cx.relu(a)? };
        }
        RnnKind::Lstm => {
            let a = cx.add(xt, hw)?;
            let (i, f, g, o) = (gate(cx, a, 0)?, gate(cx, a, 1)?, gate(cx, a, 2)?, gate(cx, a, 3)?);
            let i = cx.sigmoid(i)?;
            let f = cx.sigmoid(f)?;
            let g = cx.tanh(g)?;
            let o = cx.sigmoid(o)?;
            let c_prev = cs.ok_or_else(|| Error::Config("an LSTM step needs a cell state".into()))?;
            let fc = cx.mul(f, c_prev)?;
            let ig = cx.mul(i, g)?;
            let c = cx.add(fc, ig)?;
            let tc = cx.tanh(c)?;
            hs = cx.mul(o, tc)?;
            cs = Some(c);
        }
        RnnKind::Gru => {
            let (xr, xz, xn) = (gate(cx, xt, 0)?, gate(cx, xt, 1)?, gate(cx, xt, 2)?);
            let (hr, hz, hn) = (gate(cx, hw, 0)?, gate(cx, hw, 1)?, gate(cx, hw, 2)?);
            let r = cx.add(xr, hr)?;
            let r = cx.sigmoid(r)?;
            let z = cx.add(xz, hz)?;
            let z = cx.sigmoid(z)?;
            let rn = cx.mul(r, hn)?;
            let n = cx.add(xn, rn)?;
            let n = cx.tanh(n)?;
            // h' = (1 - z) * n + z * h = n + z * (h - n)
            let dh = cx.sub(hs, n)?;
            let zdh = cx.mul(z, dh)?;
            hs = cx.add(n, zdh)?;
        }
    }
    Ok((hs, cs))
}
