//! Emission helpers shared by the generated conv and pooling kernels
//! (`lower/conv.rs`, `lower/pool.rs`): counted loops and runs of a constant
//! number of f32 elements, f32x4 steps then a scalar tail, unrolled when
//! short (a 28-element image row is seven vector moves, no loop).

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, ConstantData, Endianness, InstBuilder, MemFlagsData as MemFlags, Type, Value};
use cranelift_frontend::{FunctionBuilder, Variable};

pub const F32X4: Type = types::F32X4;

/// Runs at most this long are unrolled; longer ones loop over 8 elements.
const UNROLL: usize = 64;

pub fn flags() -> MemFlags {
    MemFlags::new().with_notrap()
}

pub fn le() -> MemFlags {
    MemFlags::new().with_endianness(Endianness::Little)
}

/// The pointer in `args` slot `i`.
pub fn arg(b: &mut FunctionBuilder, args: Value, i: usize) -> Value {
    b.ins().load(types::I64, MemFlags::trusted(), args, (i * 8) as i32)
}

/// `base + i * stride` (bytes), `base` when `stride` is 0.
pub fn offset(b: &mut FunctionBuilder, base: Value, i: Value, stride: i64) -> Value {
    if stride == 0 {
        return base;
    }
    let m = b.ins().imul_imm_s(i, stride);
    b.ins().iadd(base, m)
}

/// `base + k` (bytes), `base` when `k` is 0.
pub fn plus(b: &mut FunctionBuilder, base: Value, k: i64) -> Value {
    if k == 0 { base } else { b.ins().iadd_imm_s(base, k) }
}

/// `for i in lo..hi` (step 1) with `body(b, i)`.
pub fn for_range(b: &mut FunctionBuilder, lo: Value, hi: Value, body: impl FnMut(&mut FunctionBuilder, Value)) {
    for_step(b, lo, hi, 1, body);
}

/// `for i in lo..hi step` with `body(b, i)`; returns the counter's final
/// value (the first index the loop did not run, where a tail loop starts).
pub fn for_step(b: &mut FunctionBuilder, lo: Value, hi: Value, step: i64, mut body: impl FnMut(&mut FunctionBuilder, Value)) -> Value {
    let var: Variable = b.declare_var(types::I64);
    b.def_var(var, lo);
    let header = b.create_block();
    let blk = b.create_block();
    let exit = b.create_block();
    b.ins().jump(header, &[]);
    b.switch_to_block(header);
    let i = b.use_var(var);
    let c = b.ins().icmp(IntCC::SignedLessThan, i, hi);
    b.ins().brif(c, blk, &[], exit, &[]);
    b.switch_to_block(blk);
    b.seal_block(blk);
    body(b, i);
    let n = b.ins().iadd_imm_s(i, step);
    b.def_var(var, n);
    b.ins().jump(header, &[]);
    b.seal_block(header);
    b.switch_to_block(exit);
    b.seal_block(exit);
    b.use_var(var)
}

/// `for i in lo..hi` with pointers `p + i * step` for each `(p, step)` as
/// loop-carried values (`body(b, i, ptrs)`): Cranelift would otherwise
/// recompute an address chain from the outer counters inside the loop
/// (it rematerializes pure arithmetic next to its uses).
pub fn for_ptrs(b: &mut FunctionBuilder, lo: Value, hi: Value, ptrs: &[(Value, i64)], mut body: impl FnMut(&mut FunctionBuilder, Value, &[Value])) {
    let vars: Vec<(Variable, i64)> = ptrs
        .iter()
        .map(|&(p, step)| {
            let v = b.declare_var(types::I64);
            let start = offset(b, p, lo, step);
            b.def_var(v, start);
            (v, step)
        })
        .collect();
    for_range(b, lo, hi, |b, i| {
        let cur: Vec<Value> = vars.iter().map(|&(v, _)| b.use_var(v)).collect();
        body(b, i, &cur);
        for (&(v, step), &c) in vars.iter().zip(&cur) {
            let n = b.ins().iadd_imm_s(c, step);
            b.def_var(v, n);
        }
    });
}

/// [`for_ptrs`] over constant bounds; no loop at all for one iteration.
pub fn for_ptrs_const(b: &mut FunctionBuilder, lo: usize, hi: usize, ptrs: &[(Value, i64)], body: impl FnMut(&mut FunctionBuilder, Value, &[Value])) {
    if hi <= lo {
        return;
    }
    let l = b.ins().iconst(types::I64, lo as i64);
    let h = b.ins().iconst(types::I64, hi as i64);
    if hi == lo + 1 {
        let mut body = body;
        let cur: Vec<Value> = ptrs.iter().map(|&(p, step)| offset(b, p, l, step)).collect();
        body(b, l, &cur);
        return;
    }
    for_ptrs(b, l, h, ptrs, body);
}

/// `for i in lo..hi` over constants; no loop at all for one iteration.
pub fn for_const(b: &mut FunctionBuilder, lo: usize, hi: usize, mut body: impl FnMut(&mut FunctionBuilder, Value)) {
    if hi <= lo {
        return;
    }
    let l = b.ins().iconst(types::I64, lo as i64);
    if hi == lo + 1 {
        body(b, l);
        return;
    }
    let h = b.ins().iconst(types::I64, hi as i64);
    for_range(b, l, h, body);
}

/// The body of a run: `(builder, byte offset, element offset, vector)`.
pub type RunBody<'a> = dyn FnMut(&mut FunctionBuilder, Option<Value>, usize, bool) + 'a;

/// Emits `body(b, off, k, vec)` over elements `0..len` of a run: `off` is
/// a byte offset to add to every pointer of the run (`None`: 0) plus the
/// constant element offset `k`; `vec` says 4 lanes (f32x4) or one (f32).
pub fn elems(b: &mut FunctionBuilder, len: usize, body: &mut RunBody) {
    elems_tail(b, len, false, body)
}

/// [`elems`]; with `overlap`, a run of 4 or more ends with one vector over
/// its last 4 elements instead of a scalar tail (for idempotent bodies:
/// copies and fills, which write the same value twice).
pub fn elems_tail(b: &mut FunctionBuilder, len: usize, overlap: bool, body: &mut RunBody) {
    let mut done = 0;
    if len > UNROLL {
        let blocks = len / 8;
        let (lo, hi) = (b.ins().iconst(types::I64, 0), b.ins().iconst(types::I64, blocks as i64));
        for_range(b, lo, hi, |b, i| {
            let off = b.ins().imul_imm_s(i, 32);
            body(b, Some(off), 0, true);
            body(b, Some(off), 4, true);
        });
        done = blocks * 8;
    }
    while done + 4 <= len {
        body(b, None, done, true);
        done += 4;
    }
    if overlap && len >= 4 && done < len {
        body(b, None, len - 4, true);
        return;
    }
    while done < len {
        body(b, None, done, false);
        done += 1;
    }
}

/// An address: a pointer plus a constant byte offset, which goes into the
/// load or store itself (half the IR of a separate add: compile time).
#[derive(Clone, Copy)]
pub struct Addr(pub Value, pub i32);

impl From<Value> for Addr {
    fn from(v: Value) -> Addr {
        Addr(v, 0)
    }
}

/// `p + off + 4 k`.
pub fn at(b: &mut FunctionBuilder, p: Value, off: Option<Value>, k: usize) -> Addr {
    let q = match off {
        Some(o) => b.ins().iadd(p, o),
        None => p,
    };
    Addr(q, 4 * k as i32)
}

pub fn load(b: &mut FunctionBuilder, vec: bool, a: impl Into<Addr>) -> Value {
    let Addr(p, k) = a.into();
    b.ins().load(if vec { F32X4 } else { types::F32 }, flags(), p, k)
}

pub fn store(b: &mut FunctionBuilder, v: Value, a: impl Into<Addr>) {
    let Addr(p, k) = a.into();
    b.ins().store(flags(), v, p, k);
}

pub fn fconst(b: &mut FunctionBuilder, vec: bool, c: f32) -> Value {
    let s = b.ins().f32const(c);
    if vec { b.ins().splat(F32X4, s) } else { s }
}

/// Stores 0.0 over `len` elements at `p`.
pub fn fill_zero(b: &mut FunctionBuilder, p: Value, len: usize) {
    if len == 0 {
        return;
    }
    let z4 = fconst(b, true, 0.0);
    let z1 = fconst(b, false, 0.0);
    elems_tail(b, len, true, &mut |b, off, k, vec| {
        let a = at(b, p, off, k);
        store(b, if vec { z4 } else { z1 }, a);
    });
}

/// `dst[e] = src[e * stride]` (`add`: `dst[e * stride] += src[e]`, the
/// adjoint) over `len` elements; unit strides move 4 lanes at a time.
pub fn move_run(b: &mut FunctionBuilder, src: Value, dst: Value, len: usize, stride: usize, add: bool) {
    if stride == 1 {
        elems_tail(b, len, !add, &mut |b, off, k, vec| {
            let (s, d) = (at(b, src, off, k), at(b, dst, off, k));
            let v = load(b, vec, s);
            let v = if add {
                let o = load(b, vec, d);
                b.ins().fadd(o, v)
            } else {
                v
            };
            store(b, v, d);
        });
        return;
    }
    let one = |b: &mut FunctionBuilder, off: Option<Value>, e: usize| {
        let (s, d) = if add {
            let s = at(b, src, off, e);
            let d = match off {
                Some(o) => {
                    let o = b.ins().imul_imm_s(o, stride as i64);
                    at(b, dst, Some(o), e * stride)
                }
                None => at(b, dst, None, e * stride),
            };
            (s, d)
        } else {
            let s = match off {
                Some(o) => {
                    let o = b.ins().imul_imm_s(o, stride as i64);
                    at(b, src, Some(o), e * stride)
                }
                None => at(b, src, None, e * stride),
            };
            (s, at(b, dst, off, e))
        };
        let v = load(b, false, s);
        let v = if add {
            let o = load(b, false, d);
            b.ins().fadd(o, v)
        } else {
            v
        };
        store(b, v, d);
    };
    // Strided: scalar moves, 4 per step of the run.
    elems(b, len, &mut |b, off, k, vec| {
        for l in 0..if vec { 4 } else { 1 } {
            one(b, off, k + l);
        }
    });
}

/// An `i32x4` constant.
pub fn i32x4_const(b: &mut FunctionBuilder, lanes: [i32; 4]) -> Value {
    let bytes: Vec<u8> = lanes.iter().flat_map(|v| v.to_le_bytes()).collect();
    let c = b.func.dfg.constants.insert(ConstantData::from(bytes));
    b.ins().vconst(types::I32X4, c)
}

/// Lanes 0 and 2 of `x` then of `y` (the even elements of 8 consecutive
/// floats): one `shufps`.
pub fn evens(b: &mut FunctionBuilder, x: Value, y: Value) -> Value {
    let xi = b.ins().bitcast(types::I8X16, le(), x);
    let yi = b.ins().bitcast(types::I8X16, le(), y);
    let mask: Vec<u8> = [0u8, 2, 4, 6].iter().flat_map(|&lane| (0..4).map(move |k| lane * 4 + k)).collect();
    let m = b.func.dfg.immediates.push(ConstantData::from(mask));
    let s = b.ins().shuffle(xi, yi, m);
    b.ins().bitcast(F32X4, le(), s)
}

/// `x > y ? x : y`, written in the operand order Cranelift's x64 backend
/// matches (its lowering of wasm's `f32x4.pmax`) so it becomes one
/// `maxps x, y` (`maxss` for scalars): y when either is NaN or they are equal.
pub fn pmax(b: &mut FunctionBuilder, vec: bool, x: Value, y: Value) -> Value {
    let m = b.ins().fcmp(FloatCC::LessThan, y, x);
    if vec {
        let mb = b.ins().bitcast(F32X4, le(), m);
        b.ins().bitselect(mb, x, y)
    } else {
        b.ins().select(m, x, y)
    }
}

/// `x < y ? x : y`: one `minps x, y` (`minss`), as [`pmax`].
pub fn pmin(b: &mut FunctionBuilder, vec: bool, x: Value, y: Value) -> Value {
    let m = b.ins().fcmp(FloatCC::LessThan, x, y);
    if vec {
        let mb = b.ins().bitcast(F32X4, le(), m);
        b.ins().bitselect(mb, x, y)
    } else {
        b.ins().select(m, x, y)
    }
}
