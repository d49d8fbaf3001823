//! The gradient of a 2x2, stride-2, unpadded max pool (the common CNN
//! pool) as a gather: windows tile the input, so every dx element gets
//! its window's dy or 0 and is written once. No zero fill of the whole
//! plane and no scatter: per 4 outputs, the 2x8 input block is split into
//! its four taps (even/odd lanes), the winning tap per lane is found with
//! the reference's rule (first maximum in row-major window order, a NaN
//! wins and stays), and the masked dy values are interleaved back into
//! two rows of 8.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, ConstantData, InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

use crate::lower::util::*;

/// Whether [`emit_plane`] applies to this pool.
pub fn applies(p: &kiln_ir::Pool2dAttrs) -> bool {
    p.kernel == [2, 2] && p.stride == [2, 2] && p.padding == [0, 0]
}

/// Lanes `lanes` (0-3 of `x`, 4-7 of `y`) as one f32x4.
fn shuffle(b: &mut FunctionBuilder, x: Value, y: Value, lanes: [u8; 4]) -> Value {
    let xi = b.ins().bitcast(types::I8X16, le(), x);
    let yi = b.ins().bitcast(types::I8X16, le(), y);
    let mask: Vec<u8> = lanes.iter().flat_map(|&l| (0..4).map(move |k| l * 4 + k)).collect();
    let m = b.func.dfg.immediates.push(ConstantData::from(mask));
    let s = b.ins().shuffle(xi, yi, m);
    b.ins().bitcast(F32X4, le(), s)
}

/// Per lane: whether `v` replaces `best` (greater, or NaN over a non-NaN).
fn better(b: &mut FunctionBuilder, v: Value, best: Value) -> Value {
    let gt = b.ins().fcmp(FloatCC::UnorderedOrGreaterThan, v, best);
    let ord = b.ins().fcmp(FloatCC::Ordered, best, best);
    b.ins().band(gt, ord)
}

/// dy masked to the lanes where each tap (00, 01, 10, 11) wins.
fn winners(b: &mut FunctionBuilder, taps: [Value; 4], g: Value, vec: bool) -> [Value; 4] {
    let sel = |b: &mut FunctionBuilder, m: Value, x: Value, y: Value| -> Value {
        if vec {
            let mf = b.ins().bitcast(F32X4, le(), m);
            b.ins().bitselect(mf, x, y)
        } else {
            b.ins().select(m, x, y)
        }
    };
    let mut best = taps[0];
    let mut m = [taps[0]; 3];
    for t in 1..4 {
        m[t - 1] = better(b, taps[t], best);
        best = sel(b, m[t - 1], taps[t], best);
    }
    // The last tap that replaced the best wins.
    let later2 = m[2];
    let later1 = b.ins().bor(m[1], m[2]);
    let later0 = b.ins().bor(m[0], later1);
    let w10 = b.ins().band_not(m[1], later2);
    let w01 = b.ins().band_not(m[0], later1);
    let zero = fconst(b, vec, 0.0);
    let v11 = sel(b, m[2], g, zero);
    let v10 = sel(b, w10, g, zero);
    let v01 = sel(b, w01, g, zero);
    let v00 = sel(b, later0, zero, g);
    [v00, v01, v10, v11]
}

/// dx of one plane (`h x w`, output `ho x wo`) from x and dy.
pub fn emit_plane(b: &mut FunctionBuilder, [h, w, ho, wo]: [usize; 4], x: Value, dx: Value, dy: Value) {
    let (row, orow) = ((w * 4) as i64, (wo * 4) as i64);
    // Groups of 4 outputs read 8 whole input columns.
    let nv = (wo / 4).min(w / 8);
    let zero = b.ins().iconst(types::I64, 0);
    let hob = b.ins().iconst(types::I64, ho as i64);
    for_ptrs(b, zero, hob, &[(x, 2 * row), (dx, 2 * row), (dy, orow)], |b, _, p| {
        let (x0, d0, gy) = (p[0], p[1], p[2]);
        let (x1, d1) = (plus(b, x0, row), plus(b, d0, row));
        let group = |b: &mut FunctionBuilder, xa: Value, xb: Value, da: Value, db: Value, ga: Addr| {
            let a0 = load(b, true, xa);
            let a1 = load(b, true, Addr(xa, 16));
            let b0 = load(b, true, xb);
            let b1 = load(b, true, Addr(xb, 16));
            let taps = [shuffle(b, a0, a1, [0, 2, 4, 6]), shuffle(b, a0, a1, [1, 3, 5, 7]), shuffle(b, b0, b1, [0, 2, 4, 6]), shuffle(b, b0, b1, [1, 3, 5, 7])];
            let g = load(b, true, ga);
            let [v00, v01, v10, v11] = winners(b, taps, g, true);
            for (d, l, r) in [(da, v00, v01), (db, v10, v11)] {
                let lo = shuffle(b, l, r, [0, 4, 1, 5]);
                let hi = shuffle(b, l, r, [2, 6, 3, 7]);
                store(b, lo, d);
                store(b, hi, Addr(d, 16));
            }
        };
        if nv > 4 {
            let n = b.ins().iconst(types::I64, nv as i64);
            for_ptrs(b, zero, n, &[(x0, 32), (x1, 32), (d0, 32), (d1, 32), (gy, 16)], |b, _, q| group(b, q[0], q[1], q[2], q[3], Addr(q[4], 0)));
        } else {
            for gi in 0..nv {
                let o = (32 * gi) as i64;
                let (xa, xb, da, db) = (plus(b, x0, o), plus(b, x1, o), plus(b, d0, o), plus(b, d1, o));
                group(b, xa, xb, da, db, Addr(gy, (16 * gi) as i32));
            }
        }
        for ow in 4 * nv..wo {
            let k = (8 * ow) as i32;
            let taps = [load(b, false, Addr(x0, k)), load(b, false, Addr(x0, k + 4)), load(b, false, Addr(x1, k)), load(b, false, Addr(x1, k + 4))];
            let g = load(b, false, Addr(gy, (4 * ow) as i32));
            let v = winners(b, taps, g, false);
            for (t, (d, o)) in [(d0, 0), (d0, 4), (d1, 0), (d1, 4)].into_iter().enumerate() {
                store(b, v[t], Addr(d, k + o));
            }
        }
        // An odd last column belongs to no window.
        if w > 2 * wo {
            for d in [d0, d1] {
                let r = plus(b, d, (8 * wo) as i64);
                fill_zero(b, r, w - 2 * wo);
            }
        }
    });
    // An odd last row likewise.
    if h > 2 * ho {
        let r = plus(b, dx, 2 * ho as i64 * row);
        fill_zero(b, r, (h - 2 * ho) * w);
    }
}
