//! Inline f32x4 exp and tanh for the JIT (Cephes-style polynomials, a few
//! ulp); sigmoid is built on `exp_v` where it is lowered.
//!
//! These are long chains of dependent instructions, so fewer and shorter
//! steps pay directly: multiply-adds are fused where the host has FMA,
//! n = round(x log2 e) comes from adding 1.5 * 2^23 (the sum's low mantissa
//! bits hold n) instead of a round plus Cranelift's seven-instruction
//! saturating conversion, and exp's polynomial is evaluated by Estrin's
//! scheme (`examples/act_probe.rs`, one thread on a Zen 4, ns per element:
//! exp 1.83 -> 1.31 -> 1.24 after the first two and then Estrin, LSTM cell
//! 15.1 -> 12.2 -> 11.5). Building two vectors' chains side by side does
//! not help: Cranelift's e-graph pass re-places pure instructions depth
//! first from each store, so one chain is emitted whole before the next.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

use super::util::{le, pmax, pmin, F32X4};

/// Whether the host has FMA. Cranelift's native ISA sets `has_fma` from the
/// same detection (without it, `fma` would become four libcalls), and the
/// stored-code key carries the ISA flags, so code built here is only
/// reinstalled where FMA exists.
fn host_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("fma") && std::is_x86_feature_detected!("avx")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn splat_f(b: &mut FunctionBuilder, v: f32) -> Value {
    let s = b.ins().f32const(v);
    b.ins().splat(F32X4, s)
}

/// x * y + z: one fused instruction (one rounding) where the host has FMA.
fn mul_add(b: &mut FunctionBuilder, fma: bool, x: Value, y: Value, z: Value) -> Value {
    if fma {
        b.ins().fma(x, y, z)
    } else {
        let m = b.ins().fmul(x, y);
        b.ins().fadd(m, z)
    }
}

/// e^x (Cephes expf: range reduction by ln 2, degree-6 polynomial, scaling
/// by 2^n in two halves so results down to the denormals stay right);
/// about 1 ulp, NaN in -> NaN out.
pub(crate) fn exp_v(b: &mut FunctionBuilder, x: Value) -> Value {
    let fma = host_fma();
    let hi = splat_f(b, 88.722_84);
    let lo = splat_f(b, -103.972_08);
    // One minps and one maxps; Cranelift's NaN-exact `fmin`/`fmax` are five
    // or six instructions each.
    let xc = pmin(b, true, hi, x);
    let xc = pmax(b, true, lo, xc);
    let log2e = splat_f(b, std::f32::consts::LOG2_E);
    let magic = splat_f(b, 12_582_912.0);
    let t = mul_add(b, fma, xc, log2e, magic);
    let fx = b.ins().fsub(t, magic);
    let c1 = splat_f(b, -0.693_359_4);
    let c2 = splat_f(b, 2.121_944_4e-4);
    let r = mul_add(b, fma, fx, c1, xc);
    let r = mul_add(b, fma, fx, c2, r);
    // The degree-5 polynomial by Estrin's scheme, (c0 + c1 r) + z (c2 + c3 r)
    // + z^2 (c4 + c5 r): three multiply-adds deep instead of Horner's five,
    // and the chain's latency is what a transcendental-heavy kernel waits on.
    let z = b.ins().fmul(r, r);
    let [c0, c1, c2, c3, c4, c5] = [5.000_000_1e-1f32, 1.666_666_5e-1, 4.166_579_6e-2, 8.333_452e-3, 1.398_199_9e-3, 1.987_569_1e-4].map(|c| splat_f(b, c));
    let p01 = mul_add(b, fma, c1, r, c0);
    let p23 = mul_add(b, fma, c3, r, c2);
    let p45 = mul_add(b, fma, c5, r, c4);
    let q = mul_add(b, fma, p45, z, p23);
    let p = mul_add(b, fma, q, z, p01);
    let y = mul_add(b, fma, p, z, r);
    let one = splat_f(b, 1.0);
    let mut y = b.ins().fadd(y, one);
    let tb = b.ins().bitcast(types::I32X4, le(), t);
    let mb = b.ins().iconst(types::I32, 12_582_912f32.to_bits() as i64);
    let mb = b.ins().splat(types::I32X4, mb);
    let n = b.ins().isub(tb, mb);
    let n1 = b.ins().sshr_imm_s(n, 1);
    let n2 = b.ins().isub(n, n1);
    let bias = b.ins().iconst(types::I32, 127);
    let bias = b.ins().splat(types::I32X4, bias);
    for e in [n1, n2] {
        let e = b.ins().iadd(e, bias);
        let e = b.ins().ishl_imm_s(e, 23);
        let f = b.ins().bitcast(F32X4, le(), e);
        y = b.ins().fmul(y, f);
    }
    // Beyond the largest finite result: +inf, like the f64 reference rounded.
    let over = b.ins().fcmp(FloatCC::GreaterThan, x, hi);
    let over = b.ins().bitcast(F32X4, le(), over);
    let inf = splat_f(b, f32::INFINITY);
    b.ins().bitselect(over, inf, y)
}

/// tanh: an odd polynomial below |x| = 0.625 (Cephes tanhf), 1 -
/// 2/(e^{2x}+1) above.
pub(crate) fn tanh_v(b: &mut FunctionBuilder, x: Value) -> Value {
    let fma = host_fma();
    let z = b.ins().fmul(x, x);
    let mut p = splat_f(b, -5.704_988_7e-3);
    for c in [2.063_908_9e-2f32, -5.373_971_6e-2, 1.333_144_2e-1, -3.333_328_2e-1] {
        let k = splat_f(b, c);
        p = mul_add(b, fma, p, z, k);
    }
    let p = b.ins().fmul(p, z);
    let small = mul_add(b, fma, p, x, x);
    let x2 = b.ins().fadd(x, x);
    let e = exp_v(b, x2);
    let one = splat_f(b, 1.0);
    let two = splat_f(b, 2.0);
    let d = b.ins().fadd(e, one);
    let q = b.ins().fdiv(two, d);
    let large = b.ins().fsub(one, q);
    let ax = b.ins().fabs(x);
    let lim = splat_f(b, 0.625);
    let m = b.ins().fcmp(FloatCC::LessThan, ax, lim);
    let m = b.ins().bitcast(F32X4, le(), m);
    b.ins().bitselect(m, small, large)
}
