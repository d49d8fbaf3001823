//! Lowering loop programs to Cranelift: one function per kernel,
//! `fn(args: *const *mut u8, lo: i64, hi: i64)` running dimension 0 of the
//! collapsed loop nest over `[lo, hi)` (so the runtime can split it across
//! threads). `args` holds one pointer per leaf then one per store.
//!
//! The innermost loop is vectorized by hand: f32x4 over 4 points at a time
//! (Cranelift has no auto-vectorizer and no wider vectors), then a scalar
//! tail. Broadcast leaves (stride 0) are loaded once per inner loop and
//! splatted; one-element constants become immediates; reductions over the
//! innermost dimension accumulate in a vector register and combine lanes at
//! the end. ReLU (`0 > x ? 0 : x`), selects that pick the larger or smaller
//! of their compare's operands, and max/min against a nonzero constant lower
//! to one `maxps`/`minps` (`maxss`/`minss` in tails): the CLIF is written in
//! the exact operand order Cranelift's x64 backend matches, and those ops are
//! defined so that the instruction's NaN and ±0 behaviour is their meaning.
//! General max/min keep `fmax`/`fmin` (a longer sequence with IEEE ±0 and
//! NaN-propagation rules). `select(m, x, 0)` (ReLU's gradient) is one AND.
//! exp, sigmoid and tanh are inlined as f32x4 polynomials (Cephes-style,
//! a few ulp; `lower/vmath.rs`); the other transcendentals (log, erf, sin,
//! cos, pow) and every scalar tail call a scalar Rust function per lane
//! (computed in f64, like the interpreter).

use std::collections::HashMap;

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, FuncRef, InstBuilder, Value};
use cranelift_frontend::{FunctionBuilder, Variable};
use kiln_ir::{BinaryOp, CompareOp, DType, ReduceOp, UnaryOp};

use super::util::{flags, le, pmax, pmin, F32X4};
use super::vmath::{exp_v, tanh_v};
use crate::kernels::program::{reduce_identity, Ins, Program};

/// A value in the vector (f32x4 / i32x4 mask) or scalar (f32 / i8) domain.
pub(super) struct Emitter<'a> {
    p: &'a Program,
    dims: Vec<usize>,
    ls: Vec<Vec<isize>>,
    ss: Vec<Vec<isize>>,
    pub(super) bases: Vec<Value>,
    calls: HashMap<UnaryOp, FuncRef>,
    pow: Option<FuncRef>,
    /// The collapsed dimension that runs over the function's `[lo, hi)`
    /// ([`Program::split`]); every other dimension runs its full extent.
    split: usize,
}

impl<'a> Emitter<'a> {
    pub(super) fn new(p: &'a Program, calls: HashMap<UnaryOp, FuncRef>, pow: Option<FuncRef>) -> Emitter<'a> {
        let (dims, ls, ss) = p.collapsed();
        Emitter { p, dims, ls, ss, bases: Vec::new(), calls, pow, split: p.split().0 }
    }

    fn nl(&self) -> usize {
        self.p.leaves.len()
    }

    fn stride(&self, i: usize, d: usize) -> isize {
        if i < self.nl() { self.ls[i][d] } else { self.ss[i - self.nl()][d] }
    }

    pub(super) fn level(&mut self, b: &mut FunctionBuilder, d: usize, rows: Vec<Value>, lo: Value, hi: Value) {
        let r = self.dims.len();
        // `lo`/`hi` (the function's range) travel down to the split dimension.
        let (range_lo, range_hi) = (lo, hi);
        let (lo, hi) = if d == self.split {
            (lo, hi)
        } else {
            (b.ins().iconst(types::I64, 0), b.ins().iconst(types::I64, self.dims[d] as i64))
        };
        if d + 1 == r {
            self.inner(b, d, rows, lo, hi);
            return;
        }
        let strides: Vec<isize> = (0..rows.len()).map(|i| self.stride(i, d)).collect();
        // Row pointers are bumped by their stride each iteration (loop-carried
        // variables). Written as `row + i * stride`, Cranelift's egraph
        // placed those multiplies and adds inside the innermost loop body,
        // recomputing every address chain per vector: it does not hoist an
        // `imul` by a constant out of a loop.
        let vars: Vec<Option<Variable>> = rows
            .iter()
            .zip(&strides)
            .map(|(&p, &s)| {
                (s != 0).then(|| {
                    let v = b.declare_var(types::I64);
                    let start = if d == self.split {
                        let m = b.ins().imul_imm_s(lo, (s * 4) as i64);
                        b.ins().iadd(p, m)
                    } else {
                        p
                    };
                    b.def_var(v, start);
                    v
                })
            })
            .collect();
        // The loop body needs `self` mutably; collect what it needs first.
        let this: *mut Emitter = self;
        crate::lower::util::for_step(b, lo, hi, 1, |b, _i| {
            let cur: Vec<Value> = rows.iter().zip(&vars).map(|(&p, v)| v.map_or(p, |v| b.use_var(v))).collect();
            // SAFETY: `this` is the unique emitter; the closure runs synchronously.
            unsafe { (*this).level(b, d + 1, cur.clone(), range_lo, range_hi) };
            for ((&p, v), &s) in cur.iter().zip(&vars).zip(&strides) {
                if let Some(v) = v {
                    let n = b.ins().iadd_imm_s(p, (s * 4) as i64);
                    b.def_var(*v, n);
                }
            }
        });
    }

    fn inner(&mut self, b: &mut FunctionBuilder, d: usize, rows: Vec<Value>, lo: Value, hi: Value) {
        let n = rows.len();
        let nl = self.nl();
        let strides: Vec<isize> = (0..n).map(|i| self.stride(i, d)).collect();
        let vectorizable = strides.iter().all(|&s| s == 0 || s == 1)
            && self.p.stores.iter().enumerate().all(|(si, st)| st.reduce.is_some() || strides[nl + si] == 1);
        // Loop-invariant row pointers (one per leaf and store): one add per
        // access inside the loop.
        let ptrs: Vec<Value> = rows;
        // Hoisted broadcast leaves and constants.
        let mut hoisted: Vec<Option<(Value, Value)>> = vec![None; nl];
        for (li, leaf) in self.p.leaves.iter().enumerate() {
            if let Some(c) = leaf.constant {
                let s = b.ins().f32const(c as f32);
                let v = b.ins().splat(F32X4, s);
                hoisted[li] = Some((s, v));
            } else if strides[li] == 0 {
                let s = b.ins().load(types::F32, flags(), ptrs[li], 0);
                let v = b.ins().splat(F32X4, s);
                hoisted[li] = Some((s, v));
            }
        }
        // Register accumulators (two vectors for ILP, one scalar) for
        // reductions along this dimension.
        let mut accs: Vec<Option<(ReduceOp, [Variable; 2], Variable)>> = vec![None; self.p.stores.len()];
        for (si, st) in self.p.stores.iter().enumerate() {
            if let Some(op) = st.reduce
                && strides[nl + si] == 0
            {
                let id = b.ins().f32const(reduce_identity(op) as f32);
                let idv = b.ins().splat(F32X4, id);
                let v0 = b.declare_var(F32X4);
                let v1 = b.declare_var(F32X4);
                b.def_var(v0, idv);
                b.def_var(v1, idv);
                let vs = b.declare_var(types::F32);
                b.def_var(vs, id);
                accs[si] = Some((op, [v0, v1], vs));
            }
        }
        let this: *mut Emitter = self;
        // One vector body at element `i` for each sub-block offset in `subs`.
        let vec_body = |b: &mut FunctionBuilder, i: Value, subs: &[i32]| {
            // SAFETY: `this` is the unique emitter; closures run synchronously.
            let me = unsafe { &mut *this };
            let bo = b.ins().ishl_imm_u(i, 2);
            let addrs: Vec<Option<Value>> = (0..n).map(|j| (strides[j] == 1).then(|| b.ins().iadd(ptrs[j], bo))).collect();
            for (u, &so) in subs.iter().enumerate() {
                let vals = me.eval(b, true, &hoisted, &|b, li| b.ins().load(F32X4, flags(), addrs[li].expect("stride-1 leaf"), so));
                for (si, st) in me.p.stores.iter().enumerate() {
                    let v = vals[st.instr];
                    match (st.reduce, accs[si]) {
                        (_, Some((op, vv, _))) => {
                            let acc = b.use_var(vv[u.min(1)]);
                            let nv = combine(b, op, acc, v);
                            b.def_var(vv[u.min(1)], nv);
                        }
                        (Some(op), None) => {
                            let a = addrs[nl + si].expect("stride-1 store");
                            let o = b.ins().load(F32X4, flags(), a, so);
                            let nv = combine(b, op, o, v);
                            b.ins().store(flags(), nv, a, so);
                        }
                        (None, None) => {
                            b.ins().store(flags(), v, addrs[nl + si].expect("stride-1 store"), so);
                        }
                    }
                }
            }
        };
        let mut start = lo;
        if vectorizable {
            let len = b.ins().isub(hi, lo);
            let l8 = b.ins().band_imm_s(len, !7i64);
            let end8 = b.ins().iadd(lo, l8);
            let l4 = b.ins().band_imm_s(len, !3i64);
            let end4 = b.ins().iadd(lo, l4);
            let mid = crate::lower::util::for_step(b, lo, end8, 8, |b, i| vec_body(b, i, &[0, 16]));
            start = crate::lower::util::for_step(b, mid, end4, 4, |b, i| vec_body(b, i, &[0]));
        }
        crate::lower::util::for_step(b, start, hi, 1, |b, i| {
            // SAFETY: as above.
            let me = unsafe { &mut *this };
            let addr = |b: &mut FunctionBuilder, j: usize| -> Value {
                if strides[j] == 0 {
                    ptrs[j]
                } else {
                    let m = b.ins().imul_imm_s(i, (strides[j] * 4) as i64);
                    b.ins().iadd(ptrs[j], m)
                }
            };
            let vals = me.eval(b, false, &hoisted, &|b, li| {
                let a = addr(b, li);
                b.ins().load(types::F32, flags(), a, 0)
            });
            for (si, st) in me.p.stores.iter().enumerate() {
                let v = vals[st.instr];
                match (st.reduce, accs[si]) {
                    (_, Some((op, _, vs))) => {
                        let acc = b.use_var(vs);
                        let nv = combine(b, op, acc, v);
                        b.def_var(vs, nv);
                    }
                    (Some(op), None) => {
                        let a = addr(b, nl + si);
                        let o = b.ins().load(types::F32, flags(), a, 0);
                        let nv = combine(b, op, o, v);
                        b.ins().store(flags(), nv, a, 0);
                    }
                    (None, None) => {
                        let a = addr(b, nl + si);
                        b.ins().store(flags(), v, a, 0);
                    }
                }
            }
        });
        // Fold register accumulators into the output element.
        for (si, acc) in accs.iter().enumerate() {
            if let Some((op, vv, vs)) = *acc {
                let v0 = b.use_var(vv[0]);
                let v1 = b.use_var(vv[1]);
                let v = combine(b, op, v0, v1);
                let mut t = b.use_var(vs);
                for lane in 0..4u8 {
                    let x = b.ins().extractlane(v, lane);
                    t = combine(b, op, t, x);
                }
                let a = ptrs[nl + si];
                let o = b.ins().load(types::F32, flags(), a, 0);
                let nv = combine(b, op, o, t);
                b.ins().store(flags(), nv, a, 0);
            }
        }
    }

    /// Evaluates every instruction at one point (4 lanes when `vec`).
    fn eval(
        &self,
        b: &mut FunctionBuilder,
        vec: bool,
        hoisted: &[Option<(Value, Value)>],
        load: &dyn Fn(&mut FunctionBuilder, usize) -> Value,
    ) -> Vec<Value> {
        let fty = if vec { F32X4 } else { types::F32 };
        let fconst = |b: &mut FunctionBuilder, c: f32| -> Value {
            let s = b.ins().f32const(c);
            if vec { b.ins().splat(F32X4, s) } else { s }
        };
        // A mask as float bits (vector) for bitwise use.
        let mask_bits = |b: &mut FunctionBuilder, m: Value| -> Value { b.ins().bitcast(F32X4, le(), m) };
        let sel = |b: &mut FunctionBuilder, m: Value, x: Value, y: Value| -> Value {
            if vec {
                let mb = b.ins().bitcast(F32X4, le(), m);
                b.ins().bitselect(mb, x, y)
            } else {
                b.ins().select(m, x, y)
            }
        };
        let mut vals: Vec<Value> = Vec::with_capacity(self.p.instrs.len());
        for ins in &self.p.instrs {
            let v = match ins.ins {
                Ins::Leaf(li) => match hoisted[li] {
                    Some((s, v)) => {
                        if vec {
                            v
                        } else {
                            s
                        }
                    }
                    None => load(b, li),
                },
                Ins::Copy(a) => vals[a],
                Ins::Unary(u, a) => {
                    let x = vals[a];
                    match u {
                        UnaryOp::Neg => b.ins().fneg(x),
                        UnaryOp::Abs => b.ins().fabs(x),
                        UnaryOp::Sqrt => b.ins().sqrt(x),
                        UnaryOp::Rsqrt => {
                            let s = b.ins().sqrt(x);
                            let one = fconst(b, 1.0);
                            b.ins().fdiv(one, s)
                        }
                        UnaryOp::Recip => {
                            let one = fconst(b, 1.0);
                            b.ins().fdiv(one, x)
                        }
                        // `0 > x ? 0 : x`: one maxps (NaN and -0 pass through,
                        // as `scalar::relu` defines).
                        UnaryOp::Relu => {
                            let z = fconst(b, 0.0);
                            pmax(b, vec, z, x)
                        }
                        UnaryOp::Sign => {
                            let z = fconst(b, 0.0);
                            let one = fconst(b, 1.0);
                            let mone = fconst(b, -1.0);
                            let gt = b.ins().fcmp(FloatCC::GreaterThan, x, z);
                            let lt = b.ins().fcmp(FloatCC::LessThan, x, z);
                            let t = sel(b, lt, mone, x);
                            sel(b, gt, one, t)
                        }
                        UnaryOp::Exp if vec => exp_v(b, x),
                        UnaryOp::Sigmoid if vec => {
                            // 1/(1+e^-x): exp overflow to inf gives exactly 0.
                            let nx = b.ins().fneg(x);
                            let e = exp_v(b, nx);
                            let one = fconst(b, 1.0);
                            let d = b.ins().fadd(one, e);
                            b.ins().fdiv(one, d)
                        }
                        UnaryOp::Tanh if vec => tanh_v(b, x),
                        _ => {
                            let f = self.calls[&u];
                            self.per_lane(b, vec, &[x], f)
                        }
                    }
                }
                Ins::Binary(op, ins_x, ins_y) => {
                    let (x, y) = (vals[ins_x], vals[ins_y]);
                    match op {
                        BinaryOp::Add => b.ins().fadd(x, y),
                        BinaryOp::Sub => b.ins().fsub(x, y),
                        BinaryOp::Mul => b.ins().fmul(x, y),
                        BinaryOp::Div => b.ins().fdiv(x, y),
                        // Against a nonzero constant `c`, `c > x ? c : x` is
                        // exactly torch.maximum (x NaN gives x) in one maxps;
                        // otherwise fmax's exact NaN and +-0 rules are needed.
                        BinaryOp::Max => match self.nonzero_const(ins_y, ins_x) {
                            Some((c, v)) => pmax(b, vec, vals[c], vals[v]),
                            None => b.ins().fmax(x, y),
                        },
                        BinaryOp::Min => match self.nonzero_const(ins_y, ins_x) {
                            Some((c, v)) => pmin(b, vec, vals[c], vals[v]),
                            None => b.ins().fmin(x, y),
                        },
                        BinaryOp::Pow => self.per_lane(b, vec, &[x, y], self.pow.expect("pow is imported when used")),
                    }
                }
                Ins::Compare(c, x, y) => {
                    let cc = match c {
                        CompareOp::Lt => FloatCC::LessThan,
                        CompareOp::Le => FloatCC::LessThanOrEqual,
                        CompareOp::Gt => FloatCC::GreaterThan,
                        CompareOp::Ge => FloatCC::GreaterThanOrEqual,
                        CompareOp::Eq => FloatCC::Equal,
                        CompareOp::Ne => FloatCC::NotEqual,
                    };
                    b.ins().fcmp(cc, vals[x], vals[y])
                }
                Ins::Select(m, x, y) => match self.select_form(m, x, y) {
                    SelectForm::Max(u, w) => pmax(b, vec, vals[u], vals[w]),
                    SelectForm::Min(u, w) => pmin(b, vec, vals[u], vals[w]),
                    // `m ? x : +0` is `x & m` (relu's gradient), bit for bit.
                    SelectForm::OrZero if vec => {
                        let mb = mask_bits(b, vals[m]);
                        b.ins().band(vals[x], mb)
                    }
                    SelectForm::ZeroOr if vec => {
                        let mb = mask_bits(b, vals[m]);
                        b.ins().band_not(vals[y], mb)
                    }
                    _ => sel(b, vals[m], vals[x], vals[y]),
                },
                Ins::Cast(a) => {
                    let from = self.p.instrs[a].dtype;
                    match (from, ins.dtype) {
                        (DType::Bool, _) => {
                            let one = fconst(b, 1.0);
                            let z = fconst(b, 0.0);
                            sel(b, vals[a], one, z)
                        }
                        (_, DType::Bool) => {
                            let z = fconst(b, 0.0);
                            b.ins().fcmp(FloatCC::NotEqual, vals[a], z)
                        }
                        _ => vals[a],
                    }
                }
            };
            vals.push(v);
        }
        let _ = fty;
        vals
    }

    /// The constant instruction behind `i` (through broadcasts), if any.
    fn constant(&self, mut i: usize) -> Option<f64> {
        loop {
            match self.p.instrs[i].ins {
                Ins::Copy(a) => i = a,
                Ins::Leaf(l) => return self.p.leaves[l].constant,
                _ => return None,
            }
        }
    }

    /// `(c, v)` when one of `a`, `b` is a constant other than zero and NaN
    /// (whichever operand order the graph used).
    fn nonzero_const(&self, a: usize, b: usize) -> Option<(usize, usize)> {
        let ok = |i: usize| self.constant(i).is_some_and(|c| c as f32 != 0.0 && !c.is_nan());
        if ok(a) {
            Some((a, b))
        } else if ok(b) {
            Some((b, a))
        } else {
            None
        }
    }

    /// Which cheaper instruction computes `select(m, x, y)` exactly.
    fn select_form(&self, m: usize, x: usize, y: usize) -> SelectForm {
        if let Ins::Compare(c, a, b) = self.p.instrs[m].ins {
            // `a > b ? a : b` is maxps(a, b): b when they are equal or either
            // is NaN, exactly as the compare decides; likewise for the others.
            match (c, (a, b) == (x, y), (a, b) == (y, x)) {
                (CompareOp::Gt, true, _) => return SelectForm::Max(x, y),
                (CompareOp::Gt, _, true) => return SelectForm::Min(x, y),
                (CompareOp::Lt, true, _) => return SelectForm::Min(x, y),
                (CompareOp::Lt, _, true) => return SelectForm::Max(x, y),
                _ => {}
            }
        }
        let pos_zero = |i: usize| self.constant(i).is_some_and(|c| c.to_bits() == 0);
        if pos_zero(y) {
            SelectForm::OrZero
        } else if pos_zero(x) {
            SelectForm::ZeroOr
        } else {
            SelectForm::Plain
        }
    }

    /// Calls a scalar function on each lane (or once for scalars).
    fn per_lane(&self, b: &mut FunctionBuilder, vec: bool, args: &[Value], f: FuncRef) -> Value {
        if !vec {
            let c = b.ins().call(f, args);
            return b.inst_results(c)[0];
        }
        let mut out = args[0];
        for lane in 0..4u8 {
            let la: Vec<Value> = args.iter().map(|&a| b.ins().extractlane(a, lane)).collect();
            let c = b.ins().call(f, &la);
            let r = b.inst_results(c)[0];
            out = b.ins().insertlane(out, r, lane);
        }
        out
    }
}

/// How a select is lowered ([`Emitter::select_form`]).
enum SelectForm {
    /// `u > w ? u : w`.
    Max(usize, usize),
    /// `u < w ? u : w`.
    Min(usize, usize),
    /// `m ? x : +0`.
    OrZero,
    /// `m ? +0 : y`.
    ZeroOr,
    Plain,
}


fn combine(b: &mut FunctionBuilder, op: ReduceOp, acc: Value, v: Value) -> Value {
    match op {
        ReduceOp::Sum | ReduceOp::Mean => b.ins().fadd(acc, v),
        ReduceOp::Max => b.ins().fmax(acc, v),
        ReduceOp::Min => b.ins().fmin(acc, v),
    }
}
