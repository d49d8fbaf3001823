//! One-step recurrent cells a user's own loop can call: PyTorch's
//! `nn.RNNCell(input_size, hidden_size, bias, nonlinearity)`,
//! `nn.LSTMCell(input_size, hidden_size, bias)` and
//! `nn.GRUCell(input_size, hidden_size, bias)`. Parameters `weight_ih`
//! `[G*H, in]`, `weight_hh` `[G*H, H]`, `bias_ih`, `bias_hh` `[G*H]`, gate
//! rows i,f,g,o (LSTM) and r,z,n (GRU), all U(-1/sqrt(H), 1/sqrt(H)); the
//! step is the one the sequence layers of `rnn.rs` unroll.
//!
//! Inputs are `x` `[B, in]` and state `[B, H]`, or unbatched `[in]` and
//! `[H]`; an absent state is zeros. Applying a cell at every step of a loop
//! shares its parameters.

use kiln_ir::{InputRole, NodeId};

use super::rnn::cell_update;
use super::{pname, shape_of, Module, RnnKind};
use crate::init::Init;
use crate::{Builder, Error, ParamStore, Result};

/// A recurrent cell of one kind (see the module docs).
#[derive(Debug, Clone)]
pub struct RnnCellBase {
    pub name: String,
    pub kind: RnnKind,
    pub input_size: usize,
    pub hidden_size: usize,
    pub bias: bool,
}

impl RnnCellBase {
    fn build(store: &mut ParamStore, name: &str, kind: RnnKind, input_size: usize, hidden_size: usize, bias: bool) -> Result<RnnCellBase> {
        if input_size == 0 || hidden_size == 0 {
            return Err(Error::Config(format!("{} `{name}`: input_size and hidden_size must be positive", kind_name(kind))));
        }
        let gh = kind
            .gates()
            .checked_mul(hidden_size)
            .ok_or_else(|| Error::Config(format!("{} `{name}`: hidden_size {hidden_size} is too large", kind_name(kind))))?;
        let init = Init::torch_default(hidden_size);
        store.register(&pname(name, "weight_ih"), InputRole::Param, [gh, input_size], init)?;
        store.register(&pname(name, "weight_hh"), InputRole::Param, [gh, hidden_size], init)?;
        if bias {
            store.register(&pname(name, "bias_ih"), InputRole::Param, [gh], init)?;
            store.register(&pname(name, "bias_hh"), InputRole::Param, [gh], init)?;
        }
        Ok(RnnCellBase { name: name.to_string(), kind, input_size, hidden_size, bias })
    }

    /// One step: the new h and (LSTM) c.
    pub fn step(&self, cx: &mut Builder, x: NodeId, h: Option<NodeId>, c: Option<NodeId>) -> Result<(NodeId, Option<NodeId>)> {
        let what = format!("{} `{}`", kind_name(self.kind), self.name);
        let (i, hd) = (self.input_size, self.hidden_size);
        let xs = shape_of(cx, x)?;
        let unbatched = xs.rank() == 1;
        if !(xs.rank() == 1 || xs.rank() == 2) || xs.0[xs.rank() - 1] != i {
            return Err(Error::Config(format!("{what}: input {x}: {} must be [batch, {i}] or [{i}]", cx.ty(x))));
        }
        let b = if unbatched { 1 } else { xs.0[0] };
        let want: Vec<usize> = if unbatched { vec![hd] } else { vec![b, hd] };
        if c.is_some() && self.kind != RnnKind::Lstm {
            return Err(Error::Config(format!("{what}: only an LSTM cell has a cell state")));
        }
        let state = |cx: &mut Builder, s: Option<NodeId>, role: &str| -> Result<NodeId> {
            match s {
                Some(s) => {
                    if shape_of(cx, s)?.0 != want {
                        return Err(Error::Config(format!("{what}: {role} {s}: {} must be {want:?} for input {x}: {}", cx.ty(s), cx.ty(x))));
                    }
                    Ok(if unbatched { cx.reshape(s, [1, hd])? } else { s })
                }
                None => {
                    let z = cx.scalar_f32(0.0)?;
                    Ok(cx.broadcast_to(z, [b, hd])?)
                }
            }
        };
        let hs = state(cx, h, "h")?;
        let cs = if self.kind == RnnKind::Lstm { Some(state(cx, c, "c")?) } else { None };
        let x2 = if unbatched { cx.reshape(x, [1, i])? } else { x };
        let gh = self.kind.gates() * hd;
        let w_ih = cx.param(&pname(&self.name, "weight_ih"), [gh, i])?;
        let w_hh = cx.param(&pname(&self.name, "weight_hh"), [gh, hd])?;
        let mut xw = cx.matmul_t(x2, w_ih, false, true)?;
        let b_hh = if self.bias {
            let bi = cx.param(&pname(&self.name, "bias_ih"), [gh])?;
            xw = cx.add(xw, bi)?;
            Some(cx.param(&pname(&self.name, "bias_hh"), [gh])?)
        } else {
            None
        };
        let (hn, cn) = cell_update(cx, self.kind, xw, hs, cs, w_hh, b_hh, hd)?;
        if unbatched {
            let hn = cx.reshape(hn, [hd])?;
            let cn = match cn {
                Some(c) => Some(cx.reshape(c, [hd])?),
                None => None,
            };
            return Ok((hn, cn));
        }
        Ok((hn, cn))
    }
}

fn kind_name(k: RnnKind) -> &'static str {
    match k {
        RnnKind::Tanh | RnnKind::Relu => "rnn_cell",
        RnnKind::Lstm => "lstm_cell",
        RnnKind::Gru => "gru_cell",
    }
}

/// PyTorch's `nn.RNNCell`: `h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`
/// (relu with [`RnnCell::relu`]).
#[derive(Debug, Clone)]
pub struct RnnCell(pub RnnCellBase);

impl RnnCell {
    /// tanh, with bias.
    pub fn new(store: &mut ParamStore, name: &str, input_size: usize, hidden_size: usize) -> Result<RnnCell> {
        Self::with(store, name, input_size, hidden_size, true, false)
    }
    /// `relu` picks PyTorch's `nonlinearity="relu"`.
    pub fn with(store: &mut ParamStore, name: &str, input_size: usize, hidden_size: usize, bias: bool, relu: bool) -> Result<RnnCell> {
        let kind = if relu { RnnKind::Relu } else { RnnKind::Tanh };
        Ok(RnnCell(RnnCellBase::build(store, name, kind, input_size, hidden_size, bias)?))
    }
    /// The next hidden state from `x` and `h` (zeros when `None`).
    pub fn step(&self, cx: &mut Builder, x: NodeId, h: Option<NodeId>) -> Result<NodeId> {
        Ok(self.0.step(cx, x, h, None)?.0)
    }
}

/// PyTorch's `nn.LSTMCell`: returns `(h', c')`.
#[derive(Debug, Clone)]
pub struct LstmCell(pub RnnCellBase);

impl LstmCell {
    pub fn new(store: &mut ParamStore, name: &str, input_size: usize, hidden_size: usize) -> Result<LstmCell> {
        Self::with(store, name, input_size, hidden_size, true)
    }
    pub fn with(store: &mut ParamStore, name: &str, input_size: usize, hidden_size: usize, bias: bool) -> Result<LstmCell> {
        Ok(LstmCell(RnnCellBase::build(store, name, RnnKind::Lstm, input_size, hidden_size, bias)?))
    }
    /// The next `(h, c)` from `x` and the state (zeros when `None`).
    pub fn step(&self, cx: &mut Builder, x: NodeId, h: Option<NodeId>, c: Option<NodeId>) -> Result<(NodeId, NodeId)> {
        let (h, c) = self.0.step(cx, x, h, c)?;
        Ok((h, c.ok_or_else(|| Error::Config("lstm_cell: no cell state".into()))?))
    }
}

/// PyTorch's `nn.GRUCell`: `h' = (1 - z) n + z h`.
#[derive(Debug, Clone)]
pub struct GruCell(pub RnnCellBase);

impl GruCell {
    pub fn new(store: &mut ParamStore, name: &str, input_size: usize, hidden_size: usize) -> Result<GruCell> {
        Self::with(store, name, input_size, hidden_size, true)
    }
    pub fn with(store: &mut ParamStore, name: &str, input_size: usize, hidden_size: usize, bias: bool) -> Result<GruCell> {
        Ok(GruCell(RnnCellBase::build(store, name, RnnKind::Gru, input_size, hidden_size, bias)?))
    }
    /// The next hidden state from `x` and `h` (zeros when `None`).
    pub fn step(&self, cx: &mut Builder, x: NodeId, h: Option<NodeId>) -> Result<NodeId> {
        Ok(self.0.step(cx, x, h, None)?.0)
    }
}

/// One step from a zero state.
impl Module for RnnCell {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        self.step(cx, x, None)
    }
}

/// One step from a zero state (returns h).
impl Module for GruCell {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        self.step(cx, x, None)
    }
}

/// One step from a zero state (returns h).
impl Module for LstmCell {
    fn forward(&self, cx: &mut Builder, x: NodeId) -> Result<NodeId> {
        Ok(self.step(cx, x, None, None)?.0)
    }
}
