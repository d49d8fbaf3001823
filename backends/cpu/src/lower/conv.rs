//! Generated f32 code around the convolution GEMM, per concrete shape:
//! im2col, col2im, and the row moves between the per-block GEMM layout and
//! NCHW (with the bias + activation epilogue fused into the move out).
//! Every bound, stride and padding edge is a constant: an im2col row is a
//! few f32x4 moves with its zero edges as constant stores, no per-element
//! index arithmetic and no `memcpy` call per row.
//!
//! Every function has the `JitFn` signature over a range of images of one
//! block (or, with row blocks, output rows of one image: see
//! `kernels::conv::row_block`); the slots it reads (`args`) are documented
//! per function and set by `kernels/conv.rs`.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;
use kiln_ir::{Activation, DType, Op};

use crate::kernels::conv::{block_cols, op_geom, row_block, ConvGeom};
use crate::lower::jit::Jit;
use crate::lower::vmath::{exp_v, tanh_v};
use crate::lower::util::*;
use crate::kernels::NativeOp;
use crate::CpuError;

/// Declares the generated functions of a conv op (indices into the JIT's
/// functions, at the positions `kernels::conv::{IM2COL, MOVE, PACK,
/// COL2IM}` name); empty when the op keeps the Rust path (non-f32 data).
pub fn declare(jit: &mut Jit, kernel: usize, n: &NativeOp) -> Result<Vec<usize>, CpuError> {
    if n.ins[0].1.dtype != DType::F32 || n.out.1.dtype != DType::F32 {
        return Ok(Vec::new());
    }
    let Some(gm) = op_geom(n) else { return Ok(Vec::new()) };
    let (pix, og, ld) = (gm.pix(), gm.og(), block_cols(&gm));
    let rb = row_block(&gm);
    let geo = format!("{gm:?} {rb:?}");
    let im2col = |jit: &mut Jit| jit.define(kernel, "im2col", &geo, |b, [args, lo, hi]| emit_cols(b, &gm, args, lo, hi, false));
    // A block's unit (an image, or an output row of one image with row
    // blocks): its stride in NCHW data, and its elements per channel.
    let (unit, ulen) = if rb.is_some() { (gm.wo, gm.wo) } else { (gm.o * pix, pix) };
    // dy (NCHW) -> the block's [og, units * ulen].
    let pack = |jit: &mut Jit| {
        let rows = Rows { src_img: unit, src_row: pix, dst_img: ulen, dst_row: ld, rows: og, len: ulen, bias: false, act: Activation::None };
        jit.define(kernel, "conv_pack", &format!("{rows:?}"), |b, [args, lo, hi]| emit_rows(b, &rows, args, lo, hi))
    };
    Ok(match &n.op {
        Op::Conv2d(_) | Op::Conv1d(_) | Op::FusedConv2d { .. } => {
            let (bias, act) = match n.op {
                Op::FusedConv2d { bias, act, .. } => (bias, act),
                _ => (false, Activation::None),
            };
            let rows = Rows { src_img: ulen, src_row: ld, dst_img: unit, dst_row: pix, rows: og, len: ulen, bias, act };
            let i = im2col(jit)?;
            let o = jit.define(kernel, "conv_out", &format!("{rows:?}"), |b, [args, lo, hi]| emit_rows(b, &rows, args, lo, hi))?;
            vec![i, o]
        }
        Op::Conv2dGradInput { .. } => {
            let p = pack(jit)?;
            let c = jit.define(kernel, "col2im", &geo, |b, [args, lo, hi]| emit_cols(b, &gm, args, lo, hi, true))?;
            vec![p, c]
        }
        Op::Conv2dGradWeight { .. } => {
            let i = im2col(jit)?;
            let p = pack(jit)?;
            vec![i, p]
        }
        _ => Vec::new(),
    })
}

/// im2col (`adjoint`: col2im) over images `[lo, hi)` of a block, or with
/// row blocks (`row_block`) over output rows `[lo, hi)` of one image.
/// args: [image data at the block's first image and the group's first
/// channel (x, or dx for col2im), the block's column matrix (with row
/// blocks: where output row 0 would be)]. Column rows are `block_cols`
/// apart; image `i` starts at column `i * pix`, output row `oh` of an
/// image at `oh * wo`.
///
/// Kernel rows `i` run as a loop (their valid output rows are computed
/// in the loop), kernel columns `j` are unrolled (each has its own
/// constant valid columns): the code grows with `kw`, not `kh * kw`,
/// which keeps the compile of a 5x5 conv short.
fn emit_cols(b: &mut FunctionBuilder, gm: &ConvGeom, args: Value, lo: Value, hi: Value, adjoint: bool) {
    let a = &gm.a;
    let (plane, pix, ld) = (gm.h * gm.w, gm.pix(), block_cols(gm));
    let img = arg(b, args, 0);
    let col = arg(b, args, 1);
    let (s0, wo) = (a.stride[0] as i64, gm.wo);
    let row_bytes = (wo * 4) as i64;
    // (images, output rows) this call covers.
    let ((ilo, ihi), (rlo, rhi)) = if row_block(gm).is_some() {
        ((b.ins().iconst(types::I64, 0), b.ins().iconst(types::I64, 1)), (lo, hi))
    } else {
        ((lo, hi), (b.ins().iconst(types::I64, 0), b.ins().iconst(types::I64, gm.ho as i64)))
    };
    for_ptrs(b, ilo, ihi, &[(img, (gm.c * plane * 4) as i64), (col, (pix * 4) as i64)], |b, _, p| {
        let (xi, ci) = (p[0], p[1]);
        for_ptrs_const(b, 0, gm.cg(), &[(xi, (plane * 4) as i64), (ci, (gm.kh * gm.kw * ld * 4) as i64)], |b, _, p| {
            let (xp, cp) = (p[0], p[1]);
            // x at input row `off` of kernel row i (may be before the
            // plane: only rows from oh_lo on are read).
            let xrow0 = plus(b, xp, -((a.padding[0] * gm.w * 4) as i64));
            let steps = [(cp, (gm.kw * ld * 4) as i64), (xrow0, (a.dilation[0] * gm.w * 4) as i64)];
            for_ptrs_const(b, 0, gm.kh, &steps, |b, i, p| {
                let (rows, xrow) = (p[0], p[1]);
                // Input row of output row oh: oh*s0 + off; valid output rows
                // [oh_lo, oh_hi) (as `ConvGeom::valid`, at run time).
                let di = b.ins().imul_imm_s(i, a.dilation[0] as i64);
                let off = b.ins().iadd_imm_s(di, -(a.padding[0] as i64));
                let zero = b.ins().iconst(types::I64, 0);
                let ceil_div = |b: &mut FunctionBuilder, v: Value| -> Value {
                    let v = b.ins().smax(v, zero);
                    if s0 == 1 {
                        return v;
                    }
                    let v = b.ins().iadd_imm_s(v, s0 - 1);
                    let d = b.ins().iconst(types::I64, s0);
                    b.ins().udiv(v, d)
                };
                let neg = b.ins().ineg(off);
                let oh_lo = ceil_div(b, neg);
                let hb = b.ins().iconst(types::I64, gm.h as i64);
                let rem = b.ins().isub(hb, off);
                let oh_hi = ceil_div(b, rem);
                // Clamped to the rows of this call: [rlo, rhi).
                let oh_lo = b.ins().smax(oh_lo, rlo);
                let oh_lo = b.ins().smin(oh_lo, rhi);
                let oh_hi = b.ins().smin(oh_hi, rhi);
                let oh_hi = b.ins().smax(oh_hi, oh_lo);
                for j in 0..gm.kw {
                    let row = plus(b, rows, ((j * ld) * 4) as i64);
                    let (ow_lo, ow_hi) = gm.valid(1, j, gm.wo, gm.w);
                    // Input column of output column ow: ow*s1 + col_off.
                    let col_off = (j * a.dilation[1]) as i64 - a.padding[1] as i64;
                    if !adjoint {
                        for_ptrs(b, rlo, oh_lo, &[(row, row_bytes)], |b, _, p| fill_zero(b, p[0], wo));
                        for_ptrs(b, oh_hi, rhi, &[(row, row_bytes)], |b, _, p| fill_zero(b, p[0], wo));
                    }
                    let src0 = plus(b, xrow, (ow_lo as i64 * a.stride[1] as i64 + col_off) * 4);
                    for_ptrs(b, oh_lo, oh_hi, &[(row, row_bytes), (src0, s0 * (gm.w * 4) as i64)], |b, _, p| {
                        let (dst, src) = (p[0], p[1]);
                        let len = ow_hi - ow_lo;
                        if adjoint {
                            let from = plus(b, dst, (ow_lo * 4) as i64);
                            move_run(b, from, src, len, a.stride[1], true);
                        } else {
                            fill_zero(b, dst, ow_lo);
                            let to = plus(b, dst, (ow_lo * 4) as i64);
                            move_run(b, src, to, len, a.stride[1], false);
                            let end = plus(b, dst, (ow_hi * 4) as i64);
                            fill_zero(b, end, wo - ow_hi);
                        }
                    });
                }
            });
        });
    });
}

/// A move of `rows` runs of `len` elements per image between two layouts
/// (element strides per image and per row), with `act(v + bias[row])`
/// applied on the way when asked.
#[derive(Debug, Clone, Copy)]
struct Rows {
    src_img: usize,
    src_row: usize,
    dst_img: usize,
    dst_row: usize,
    rows: usize,
    len: usize,
    bias: bool,
    act: Activation,
}

/// args: [source at the range's image 0, destination likewise, bias at the
/// group's first channel (when `bias`)]; runs over images `[lo, hi)`.
fn emit_rows(b: &mut FunctionBuilder, r: &Rows, args: Value, lo: Value, hi: Value) {
    let src = arg(b, args, 0);
    let dst = arg(b, args, 1);
    let bias = r.bias.then(|| arg(b, args, 2));
    let plain = !r.bias && r.act == Activation::None;
    for_range(b, lo, hi, |b, nn| {
        let si = offset(b, src, nn, (r.src_img * 4) as i64);
        let di = offset(b, dst, nn, (r.dst_img * 4) as i64);
        for_const(b, 0, r.rows, |b, o| {
            let s = offset(b, si, o, (r.src_row * 4) as i64);
            let d = offset(b, di, o, (r.dst_row * 4) as i64);
            if plain {
                move_run(b, s, d, r.len, 1, false);
                return;
            }
            let bv = bias.map(|p| {
                let a = offset(b, p, o, 4);
                let x = b.ins().load(types::F32, flags(), a, 0);
                (x, b.ins().splat(F32X4, x))
            });
            // Source and destination are distinct buffers: the last vector
            // may recompute elements already written.
            elems_tail(b, r.len, true, &mut |b, off, k, vec| {
                let (sa, da) = (at(b, s, off, k), at(b, d, off, k));
                let mut v = load(b, vec, sa);
                if let Some((s1, s4)) = bv {
                    v = b.ins().fadd(v, if vec { s4 } else { s1 });
                }
                let v = activate(b, r.act, v, vec);
                store(b, v, da);
            });
        });
    });
}

/// `act(v)`; sigmoid and tanh go through the f32x4 polynomials (a scalar
/// is splatted and lane 0 taken back).
fn activate(b: &mut FunctionBuilder, act: Activation, v: Value, vec: bool) -> Value {
    match act {
        Activation::None => v,
        Activation::Relu => {
            let z = fconst(b, vec, 0.0);
            // Unordered-or-greater keeps NaN, like the elementwise ReLU.
            let m = b.ins().fcmp(FloatCC::UnorderedOrGreaterThan, v, z);
            if vec {
                let mb = b.ins().bitcast(F32X4, le(), m);
                b.ins().band(v, mb)
            } else {
                b.ins().select(m, v, z)
            }
        }
        Activation::Sigmoid | Activation::Tanh => {
            let x = if vec { v } else { b.ins().splat(F32X4, v) };
            let y = if act == Activation::Tanh {
                tanh_v(b, x)
            } else {
                // 1/(1+e^-x): exp overflow to inf gives exactly 0.
                let nx = b.ins().fneg(x);
                let e = exp_v(b, nx);
                let one = fconst(b, true, 1.0);
                let d = b.ins().fadd(one, e);
                b.ins().fdiv(one, d)
            };
            if vec { y } else { b.ins().extractlane(y, 0) }
        }
    }
}
