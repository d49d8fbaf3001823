//! Generated f32 pooling kernels (max/avg, forward and gradient), per
//! concrete shape and attributes. A function runs planes (image x channel)
//! `[lo, hi)`, so `kernels/pooling.rs` keeps splitting planes across the pool.
//!
//! Each plane is emitted as edge rows/columns (windows cut by the padding
//! or the border: constant positions, each with its own window) around an
//! interior of full windows that loops over rows and, within a row, over
//! groups of 4 outputs in f32x4: unit-stride windows load 4 lanes at once,
//! stride-2 windows load 8 and keep the even lanes (`shufps`), other
//! strides gather 4 scalars. The max keeps the reference's rule (the first
//! maximum in row-major window order wins; a NaN wins and stays) with
//! compare masks; the gradient of max tracks the winning index per lane and
//! scatters lane by lane, so overlapping windows add in a fixed order
//! (except the 2x2/stride-2 pool, whose windows tile the input: a gather,
//! `lower/maxgrad2.rs`).

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;
use kiln_ir::{DType, Op, Pool2dAttrs};

use crate::lower::jit::Jit;
use crate::lower::util::*;
use crate::kernels::NativeOp;
use crate::CpuError;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// args: [x, y]
    Max,
    /// args: [x, dx, dy]
    MaxGrad,
    /// args: [x, y]
    Avg { incl: bool },
    /// args: [dy, dx]
    AvgGrad { incl: bool },
}

#[derive(Debug, Clone, Copy)]
struct Geom {
    kind: Kind,
    p: Pool2dAttrs,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
}

/// A window along one axis: first input index and length.
fn window(p: &Pool2dAttrs, axis: usize, o: usize, bound: usize) -> (usize, usize) {
    let start = (o * p.stride[axis]) as isize - p.padding[axis] as isize;
    let end = (start + p.kernel[axis] as isize).min(bound as isize);
    let s = start.max(0);
    (s as usize, (end - s).max(0) as usize)
}

/// The outputs `[lo, hi)` along `axis` whose window is whole (contiguous:
/// only the ends are cut by padding or the border).
fn full(p: &Pool2dAttrs, axis: usize, out: usize, bound: usize) -> (usize, usize) {
    let ok = |o: usize| window(p, axis, o, bound).1 == p.kernel[axis] && (o * p.stride[axis]) >= p.padding[axis];
    let lo = (0..out).find(|&o| ok(o)).unwrap_or(out);
    let hi = (lo..out).find(|&o| !ok(o)).unwrap_or(out);
    (lo, hi)
}

/// Declares the generated function of a pooling op (`[index]`), or nothing
/// when the op keeps the Rust path (non-f32 data, an empty window).
pub fn declare(jit: &mut Jit, kernel: usize, n: &NativeOp) -> Result<Vec<usize>, CpuError> {
    if n.ins.iter().any(|i| i.1.dtype != DType::F32) || n.out.1.dtype != DType::F32 {
        return Ok(Vec::new());
    }
    let (kind, p, big, small) = match &n.op {
        Op::MaxPool2d(p) => (Kind::Max, *p, &n.ins[0].1, &n.out.1),
        Op::MaxPool2dGrad(p) => (Kind::MaxGrad, *p, &n.ins[0].1, &n.ins[1].1),
        Op::AvgPool2d { pool, count_include_pad } => (Kind::Avg { incl: *count_include_pad }, *pool, &n.ins[0].1, &n.out.1),
        Op::AvgPool2dGrad { pool, count_include_pad, .. } => (Kind::AvgGrad { incl: *count_include_pad }, *pool, &n.out.1, &n.ins[0].1),
        _ => return Ok(Vec::new()),
    };
    let (b, s) = (&big.shape.0, &small.shape.0);
    let g = Geom { kind, p, h: b[2], w: b[3], ho: s[2], wo: s[3] };
    let empty = (0..g.ho).any(|o| window(&p, 0, o, g.h).1 == 0) || (0..g.wo).any(|o| window(&p, 1, o, g.w).1 == 0);
    if empty || g.h * g.w == 0 || g.ho * g.wo == 0 {
        return Ok(Vec::new());
    }
    let name = match kind {
        Kind::Max => "maxpool",
        Kind::MaxGrad => "maxpool_grad",
        Kind::Avg { .. } => "avgpool",
        Kind::AvgGrad { .. } => "avgpool_grad",
    };
    Ok(vec![jit.define(kernel, name, &format!("{g:?}"), |b, [args, lo, hi]| emit(b, &g, args, lo, hi))?])
}

/// A position along one axis: a constant, or a loop counter.
#[derive(Clone, Copy)]
enum Pos {
    Const(usize),
    Dyn(Value),
}

/// Plane pointers: the tapped plane (x, or dx for the avg gradient), the
/// output-shaped plane (y or dy) and, for the max gradient, dx.
struct Planes {
    tap: Value,
    outp: Value,
    dx: Option<Value>,
}

fn emit(b: &mut FunctionBuilder, g: &Geom, args: Value, lo: Value, hi: Value) {
    let (a0, a1) = (arg(b, args, 0), arg(b, args, 1));
    let a2 = (g.kind == Kind::MaxGrad).then(|| arg(b, args, 2));
    let (big, small) = ((g.h * g.w * 4) as i64, (g.ho * g.wo * 4) as i64);
    for_range(b, lo, hi, |b, pl| {
        if g.kind == Kind::MaxGrad && crate::lower::maxgrad2::applies(&g.p) {
            let (x, dx, dy) = (offset(b, a0, pl, big), offset(b, a1, pl, big), offset(b, a2.expect("dy"), pl, small));
            crate::lower::maxgrad2::emit_plane(b, [g.h, g.w, g.ho, g.wo], x, dx, dy);
            return;
        }
        let pp = match g.kind {
            Kind::Max | Kind::Avg { .. } => Planes { tap: offset(b, a0, pl, big), outp: offset(b, a1, pl, small), dx: None },
            Kind::MaxGrad => {
                let dx = offset(b, a1, pl, big);
                fill_zero(b, dx, g.h * g.w);
                Planes { tap: offset(b, a0, pl, big), outp: offset(b, a2.expect("dy"), pl, small), dx: Some(dx) }
            }
            Kind::AvgGrad { .. } => {
                let dx = offset(b, a1, pl, big);
                fill_zero(b, dx, g.h * g.w);
                Planes { tap: dx, outp: offset(b, a0, pl, small), dx: None }
            }
        };
        let (rf_lo, rf_hi) = full(&g.p, 0, g.ho, g.h);
        for oh in 0..rf_lo {
            emit_row(b, g, &pp, Pos::Const(oh));
        }
        for_const(b, rf_lo, rf_hi, |b, oh| emit_row(b, g, &pp, Pos::Dyn(oh)));
        for oh in rf_hi.max(rf_lo)..g.ho {
            emit_row(b, g, &pp, Pos::Const(oh));
        }
    });
}

/// Byte offset (or element index with `scale` 1) of `pos * stride + add`.
fn lin(b: &mut FunctionBuilder, pos: Pos, stride: usize, add: isize, scale: i64) -> Value {
    match pos {
        Pos::Const(o) => b.ins().iconst(types::I64, ((o * stride) as isize + add) as i64 * scale),
        Pos::Dyn(v) => {
            let m = b.ins().imul_imm_s(v, stride as i64 * scale);
            b.ins().iadd_imm_s(m, add as i64 * scale)
        }
    }
}

/// One output row: its window rows, then edge columns, interior groups of
/// 4, the scalar tail and the right edge.
fn emit_row(b: &mut FunctionBuilder, g: &Geom, pp: &Planes, oh: Pos) {
    let p = &g.p;
    // First window row and count.
    let (r0, rc) = match oh {
        Pos::Const(o) => {
            let (s, c) = window(p, 0, o, g.h);
            (Pos::Const(s), c)
        }
        Pos::Dyn(_) => (oh, p.kernel[0]),
    };
    let r0_add = if matches!(oh, Pos::Dyn(_)) { -(p.padding[0] as isize) } else { 0 };
    let r0_stride = if matches!(oh, Pos::Dyn(_)) { p.stride[0] } else { 1 };
    // Element index of each window row's start within the plane.
    let rows: Vec<Value> = (0..rc).map(|i| lin(b, r0, r0_stride * g.w, (r0_add + i as isize) * g.w as isize, 1)).collect();
    let orow = lin(b, oh, g.wo, 0, 1);
    // Byte pointers of the window rows and the output row, once per row:
    // every tap of a constant column is then a constant offset.
    let ptrs = rows
        .iter()
        .map(|&e| {
            let o = b.ins().ishl_imm_s(e, 2);
            b.ins().iadd(pp.tap, o)
        })
        .collect();
    let optr = {
        let o = b.ins().ishl_imm_s(orow, 2);
        b.ins().iadd(pp.outp, o)
    };
    let ctx = Row { rows, ptrs, optr };
    let (cf_lo, cf_hi) = full(p, 1, g.wo, g.w);
    for ow in 0..cf_lo {
        emit_pos(b, g, pp, &ctx, Pos::Const(ow), false);
    }
    // Vector groups in the interior; a stride-2 group reads one element
    // past its last window, which must stay inside the row.
    let s1 = p.stride[1];
    let safe = |ow: usize| s1 != 2 || ((ow + 3) * 2 + p.kernel[1] - p.padding[1]) < g.w;
    let mut nv = 0;
    while cf_lo + 4 * (nv + 1) <= cf_hi && safe(cf_lo + 4 * nv) {
        nv += 1;
    }
    if nv > 4 {
        for_const(b, 0, nv, |b, gi| {
            let m = b.ins().imul_imm_s(gi, 4);
            let ow = b.ins().iadd_imm_s(m, cf_lo as i64);
            emit_pos(b, g, pp, &ctx, Pos::Dyn(ow), true);
        });
    } else {
        for gi in 0..nv {
            emit_pos(b, g, pp, &ctx, Pos::Const(cf_lo + 4 * gi), true);
        }
    }
    for ow in cf_lo + 4 * nv..cf_hi.max(cf_lo) {
        emit_pos(b, g, pp, &ctx, Pos::Const(ow), false);
    }
    for ow in cf_hi.max(cf_lo)..g.wo {
        emit_pos(b, g, pp, &ctx, Pos::Const(ow), false);
    }
}

struct Row {
    /// Plane element index of each window row's first element.
    rows: Vec<Value>,
    /// Their addresses in the tapped plane.
    ptrs: Vec<Value>,
    /// The output row's address (y, or dy for gradients).
    optr: Value,
}

/// The output at column `ow` (4 outputs `ow..ow+4` when `vec`; those are
/// interior, full windows).
fn emit_pos(b: &mut FunctionBuilder, g: &Geom, pp: &Planes, r: &Row, ow: Pos, vec: bool) {
    let p = &g.p;
    let s1 = p.stride[1];
    // First window column: a constant, or a value in a loop over groups.
    let (cconst, cc): (Option<isize>, usize) = match (ow, vec) {
        (Pos::Const(o), false) => {
            let (s, c) = window(p, 1, o, g.w);
            (Some(s as isize), c)
        }
        (Pos::Const(o), true) => (Some((o * s1) as isize - p.padding[1] as isize), p.kernel[1]),
        (Pos::Dyn(_), _) => (None, p.kernel[1]),
    };
    let c0 = match cconst {
        Some(c) => b.ins().iconst(types::I64, c as i64),
        None => lin(b, ow, s1, -(p.padding[1] as isize), 1),
    };
    let tap_addr = |b: &mut FunctionBuilder, i: usize, j: usize| -> Addr {
        match cconst {
            Some(c) => Addr(r.ptrs[i], ((c + j as isize) * 4) as i32),
            None => {
                let o = b.ins().ishl_imm_s(c0, 2);
                Addr(b.ins().iadd(r.ptrs[i], o), (j * 4) as i32)
            }
        }
    };
    // Element index of tap (i, j) (lane 0).
    let tap_index = |b: &mut FunctionBuilder, i: usize, j: usize| -> Value {
        let e = b.ins().iadd(r.rows[i], c0);
        plus(b, e, j as i64)
    };
    let addr_of = |b: &mut FunctionBuilder, base: Value, e: Value| -> Value {
        let o = b.ins().ishl_imm_s(e, 2);
        b.ins().iadd(base, o)
    };
    let oaddr = match ow {
        Pos::Const(o) => Addr(r.optr, (o * 4) as i32),
        Pos::Dyn(v) => {
            let o = b.ins().ishl_imm_s(v, 2);
            Addr(b.ins().iadd(r.optr, o), 0)
        }
    };
    // Lanes of window tap (i, j).
    let load_tap = |b: &mut FunctionBuilder, i: usize, j: usize| -> Value {
        let a = tap_addr(b, i, j);
        if !vec {
            return load(b, false, a);
        }
        match s1 {
            1 => load(b, true, a),
            2 => {
                let x = load(b, true, a);
                let y = load(b, true, Addr(a.0, a.1 + 16));
                evens(b, x, y)
            }
            _ => {
                let x0 = load(b, false, a);
                let mut v = b.ins().splat(F32X4, x0);
                for l in 1..4u8 {
                    let al = Addr(a.0, a.1 + (l as usize * s1 * 4) as i32);
                    let xl = load(b, false, al);
                    v = b.ins().insertlane(v, xl, l);
                }
                v
            }
        }
    };
    let rc = r.rows.len();
    let div = match g.kind {
        Kind::Avg { incl: true } | Kind::AvgGrad { incl: true } => (p.kernel[0] * p.kernel[1]) as f32,
        _ => (rc * cc) as f32,
    };
    match g.kind {
        Kind::Max | Kind::MaxGrad => {
            let grad = g.kind == Kind::MaxGrad;
            let lanes = if vec { Some(i32x4_const(b, [0, s1 as i32, 2 * s1 as i32, 3 * s1 as i32])) } else { None };
            let index = |b: &mut FunctionBuilder, e: Value| -> Value {
                match lanes {
                    Some(l) => {
                        let e32 = b.ins().ireduce(types::I32, e);
                        let s = b.ins().splat(types::I32X4, e32);
                        b.ins().iadd(s, l)
                    }
                    None => e,
                }
            };
            let mut bv = load_tap(b, 0, 0);
            let mut bi = if grad {
                let e0 = tap_index(b, 0, 0);
                Some(index(b, e0))
            } else {
                None
            };
            for i in 0..rc {
                for j in 0..cc {
                    if i == 0 && j == 0 {
                        continue;
                    }
                    let v = load_tap(b, i, j);
                    // v replaces the best when greater or NaN, unless the
                    // best is already NaN (the first NaN stays).
                    let gt = b.ins().fcmp(FloatCC::UnorderedOrGreaterThan, v, bv);
                    let ord = b.ins().fcmp(FloatCC::Ordered, bv, bv);
                    let m = b.ins().band(gt, ord);
                    if vec {
                        let mf = b.ins().bitcast(F32X4, le(), m);
                        bv = b.ins().bitselect(mf, v, bv);
                        if let Some(old) = bi {
                            let e = tap_index(b, i, j);
                            let ni = index(b, e);
                            bi = Some(b.ins().bitselect(m, ni, old));
                        }
                    } else {
                        bv = b.ins().select(m, v, bv);
                        if let Some(old) = bi {
                            let e = tap_index(b, i, j);
                            bi = Some(b.ins().select(m, e, old));
                        }
                    }
                }
            }
            match (bi, pp.dx) {
                (Some(bi), Some(dx)) => {
                    let gv = load(b, vec, oaddr);
                    let lanes: Vec<(Value, Value)> = if vec {
                        (0..4u8)
                            .map(|l| {
                                let i32v = b.ins().extractlane(bi, l);
                                let e = b.ins().sextend(types::I64, i32v);
                                (e, b.ins().extractlane(gv, l))
                            })
                            .collect()
                    } else {
                        vec![(bi, gv)]
                    };
                    for (e, gl) in lanes {
                        let a = addr_of(b, dx, e);
                        let o = load(b, false, a);
                        let s = b.ins().fadd(o, gl);
                        store(b, s, a);
                    }
                }
                _ => store(b, bv, oaddr),
            }
        }
        Kind::Avg { .. } => {
            let mut sum: Option<Value> = None;
            for i in 0..rc {
                for j in 0..cc {
                    let v = load_tap(b, i, j);
                    sum = Some(match sum {
                        Some(s) => b.ins().fadd(s, v),
                        None => v,
                    });
                }
            }
            let d = fconst(b, vec, div);
            let v = b.ins().fdiv(sum.expect("a non-empty window"), d);
            store(b, v, oaddr);
        }
        Kind::AvgGrad { .. } => {
            let dy = load(b, vec, oaddr);
            let d = fconst(b, vec, div);
            let gv = b.ins().fdiv(dy, d);
            let glanes: Vec<Value> = if vec && s1 != 1 { (0..4u8).map(|l| b.ins().extractlane(gv, l)).collect() } else { Vec::new() };
            for i in 0..rc {
                for j in 0..cc {
                    let a = tap_addr(b, i, j);
                    if !vec || s1 == 1 {
                        // Unit stride: the 4 lanes of one tap are 4 distinct
                        // neighbouring elements.
                        let o = load(b, vec, a);
                        let s = b.ins().fadd(o, gv);
                        store(b, s, a);
                    } else {
                        for (l, &gl) in glanes.iter().enumerate() {
                            let al = Addr(a.0, a.1 + (l * s1 * 4) as i32);
                            let o = load(b, false, al);
                            let s = b.ins().fadd(o, gl);
                            store(b, s, al);
                        }
                    }
                }
            }
        }
    }
}
