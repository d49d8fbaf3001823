//! Ops driven by integer indices (gather, scatter_add, one_hot) and
//! random_uniform.
//!
//! Indices are checked as the interpreter checks them, all before any
//! result, first bad one reported: invocation 0 walks them in order
//! ([`check_indices`]); the other invocations skip a bad index (the runtime
//! discards the step when the flag is set).

use std::fmt::Write as _;

use kiln_ir::{DType, NodeId, Op};

use crate::lower::movement::{dims, numel, place, shader_name};
use crate::lower::wgsl::{self, f32_lit};
use crate::lower::{Cx, Shader};
use crate::WgpuError;

pub fn lower(cx: &Cx, n: NodeId) -> Result<Vec<Shader>, WgpuError> {
    let xs = cx.g.operands(n);
    let operand = |i: usize| {
        xs.get(i).copied().ok_or_else(|| WgpuError::Internal(format!("{n}: {} lacks operand {i}", cx.g.op(n).name())))
    };
    wgsl::ty(cx.g.ty(n).dtype)?;
    let out = place(cx, n)?;
    let od = dims(cx, n);
    let (body, fns, work) = match cx.g.op(n) {
        Op::Gather { axis } => {
            let (data, idx) = (operand(0)?, operand(1)?);
            let dd = dims(cx, data);
            let (outer, extent, inner) = split(&dd, *axis, n)?;
            let ni = cx.g.ty(idx).numel();
            let (d0, i0) = (place(cx, data)?, place(cx, idx)?);
            let mut b = check_indices(n, i0, ni, extent, outer * ni * inner);
            let _ = writeln!(b, "    let i = idx % {}u;", inner.max(1));
            let _ = writeln!(b, "    let j = (idx / {}u) % {}u;", inner.max(1), ni.max(1));
            let _ = writeln!(b, "    let o = idx / {}u;", (ni * inner).max(1));
            let _ = writeln!(b, "    let c = ld_i32({i0}u + j);");
            let _ = writeln!(b, "    var v = 0u;");
            let _ = writeln!(b, "    if (c >= 0i && u32(c) < {extent}u) {{ v = mem[{d0}u + (o * {extent}u + u32(c)) * {inner}u + i]; }}");
            let _ = writeln!(b, "    mem[{out}u + idx] = v;");
            (b, String::new(), numel(&od))
        }
        Op::ScatterAdd { axis, size } => {
            let (idx, upd) = (operand(0)?, operand(1)?);
            let ud = dims(cx, upd);
            let ir = cx.g.ty(idx).shape.rank();
            if axis + ir > ud.len() {
                return Err(WgpuError::Internal(format!("{n}: scatter_add indices do not fit the updates")));
            }
            let dt = cx.g.ty(n).dtype;
            let t = wgsl::ty(dt)?;
            let ni = cx.g.ty(idx).numel();
            let inner: usize = ud[axis + ir..].iter().product();
            let (i0, u0) = (place(cx, idx)?, place(cx, upd)?);
            let total = numel(&od) as usize;
            let mut b = check_indices(n, i0, ni, *size, total);
            let _ = writeln!(b, "    let i = idx % {}u;", inner.max(1));
            let _ = writeln!(b, "    let r = i32((idx / {}u) % {}u);", inner.max(1), size.max(&1));
            let _ = writeln!(b, "    let src = {u0}u + (idx / {}u) * {}u + i;", (size * inner).max(1), ni * inner);
            let _ = writeln!(b, "    var acc: {t} = {};", wgsl::lit(dt, 0.0)?);
            // Every index in order, so the sum's order is fixed.
            let _ = writeln!(b, "    for (var j = 0u; j < {ni}u; j = j + 1u) {{");
            let _ = writeln!(
                b,
                "        if (ld_i32({i0}u + j) == r) {{ acc = acc + {}; }}",
                wgsl::load(dt, &format!("src + j * {inner}u"))?
            );
            let _ = writeln!(b, "    }}");
            let _ = writeln!(b, "    {}", wgsl::store(dt, &format!("{out}u + idx"), "acc")?);
            (b, String::new(), numel(&od))
        }
        Op::OneHot { classes } => {
            let idx = operand(0)?;
            let ni = cx.g.ty(idx).numel();
            let i0 = place(cx, idx)?;
            let c = (*classes).max(1);
            let mut b = check_indices(n, i0, ni, *classes, ni * classes);
            let _ = writeln!(b, "    st_f32({out}u + idx, select(0.0f, 1.0f, ld_i32({i0}u + idx / {c}u) == i32(idx % {c}u)));");
            (b, String::new(), numel(&od))
        }
        Op::RandomUniform { seed, low, high, .. } => {
            let (fns, b) = random_uniform(cx, n, operand(0)?, *seed, *low, *high, out)?;
            (b, fns, numel(&od))
        }
        other => return Err(WgpuError::Internal(format!("{n}: {} is not an indexing op", other.name()))),
    };
    // Index checks need one invocation even when there is no output.
    let invocations = if matches!(cx.g.op(n), Op::RandomUniform { .. }) { work } else { work.max(1) };
    Ok(vec![cx.shader(shader_name(cx, n), &fns, &body, invocations)?])
}

/// `(outer, extent, inner)` of `d` around `axis`.
fn split(d: &[usize], axis: usize, n: NodeId) -> Result<(usize, usize, usize), WgpuError> {
    if axis >= d.len() {
        return Err(WgpuError::Internal(format!("{n}: axis {axis} of a rank-{} value", d.len())));
    }
    Ok((d[..axis].iter().product(), d[axis], d[axis + 1..].iter().product()))
}

/// Philox 4x32-10 in u32 arithmetic (WGSL has no 64-bit integers; the high
/// word of a 32x32 product comes from 16-bit halves).
const PHILOX: &str = r#"
fn mulhi(a: u32, b: u32) -> u32 {
    let al = a & 0xffffu; let ah = a >> 16u; let bl = b & 0xffffu; let bh = b >> 16u;
    let lh = al * bh; let hl = ah * bl;
    let mid = ((al * bl) >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
    return ah * bh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
}
fn philox(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = key;
    for (var r = 0u; r < 10u; r = r + 1u) {
        let h0 = mulhi(0xD2511F53u, c.x);
        let h1 = mulhi(0xCD9E8D57u, c.z);
        c = vec4<u32>(h1 ^ c.y ^ k.x, 0xCD9E8D57u * c.z, h0 ^ c.w ^ k.y, 0xD2511F53u * c.x);
        k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}
"#;

/// Unsigned 96-bit integers as (low, middle, high) words: enough for the
/// exact product of a 53-bit f64 significand and a 24-bit draw, and for an
/// f64 sum with 40 guard bits.
const WIDE: &str = r#"
fn shr96(q: vec3<u32>, s: u32) -> vec3<u32> {
    if (s >= 96u) { return vec3<u32>(0u); }
    var v = q;
    var k = s;
    if (k >= 64u) { v = vec3<u32>(v.z, 0u, 0u); k = k - 64u; }
    if (k >= 32u) { v = vec3<u32>(v.y, v.z, 0u); k = k - 32u; }
    if (k == 0u) { return v; }
    return vec3<u32>((v.x >> k) | (v.y << (32u - k)), (v.y >> k) | (v.z << (32u - k)), v.z >> k);
}
fn shl96(q: vec3<u32>, s: u32) -> vec3<u32> {
    if (s >= 96u) { return vec3<u32>(0u); }
    var v = q;
    var k = s;
    if (k >= 64u) { v = vec3<u32>(0u, 0u, v.x); k = k - 64u; }
    if (k >= 32u) { v = vec3<u32>(0u, v.x, v.y); k = k - 32u; }
    if (k == 0u) { return v; }
    return vec3<u32>(v.x << k, (v.y << k) | (v.x >> (32u - k)), (v.z << k) | (v.y >> (32u - k)));
}
fn add96(a: vec3<u32>, b: vec3<u32>) -> vec3<u32> {
    let x = a.x + b.x;
    let y0 = a.y + b.y;
    let y = y0 + select(0u, 1u, x < a.x);
    let cy = select(0u, 1u, y0 < a.y) + select(0u, 1u, y < y0);
    return vec3<u32>(x, y, a.z + b.z + cy);
}
fn sub96(a: vec3<u32>, b: vec3<u32>) -> vec3<u32> {
    let x = a.x - b.x;
    let y0 = a.y - b.y;
    let y = y0 - select(0u, 1u, a.x < b.x);
    let bw = select(0u, 1u, a.y < b.y) + select(0u, 1u, y > y0);
    return vec3<u32>(x, y, a.z - b.z - bw);
}
fn ge96(a: vec3<u32>, b: vec3<u32>) -> bool {
    if (a.z != b.z) { return a.z > b.z; }
    if (a.y != b.y) { return a.y > b.y; }
    return a.x >= b.x;
}
fn bits96(q: vec3<u32>) -> u32 {
    if (q.z != 0u) { return 96u - countLeadingZeros(q.z); }
    if (q.y != 0u) { return 64u - countLeadingZeros(q.y); }
    return 32u - countLeadingZeros(q.x);
}
// q / 2^s rounded to nearest, ties to even.
fn rne96(q: vec3<u32>, s: u32) -> vec3<u32> {
    if (s == 0u) { return q; }
    let r = shr96(q, s);
    let half = (shr96(q, s - 1u).x & 1u) == 1u;
    let sticky = any(shl96(shr96(q, s - 1u), s - 1u) != q) || (r.x & 1u) == 1u;
    if (half && sticky) { return add96(r, vec3<u32>(1u, 0u, 0u)); }
    return r;
}
// A 53-bit significand `m` (times 2^e) rounded to f32 bits, ties to even.
fn to_f32_bits(m: vec3<u32>, e: i32) -> u32 {
    var x = e + 52i;
    if (x >= -126i) {
        var f = rne96(m, 29u);
        if (f.x == 0x1000000u) { f.x = 0x800000u; x = x + 1i; }
        if (x > 127i) { return 0x7f800000u; }
        return (u32(x + 127i) << 23u) | (f.x & 0x7fffffu);
    }
    // Subnormal: a rounding up to 2^23 lands on the smallest normal's bits.
    return rne96(m, u32(29i - 126i - x)).x;
}
"#;

/// The f64 significand and exponent of a finite non-zero `v`: |v| = m * 2^e
/// with 2^52 <= m < 2^53.
fn decompose(v: f64) -> (u64, i32) {
    let bits = v.abs().to_bits();
    let (field, frac) = ((bits >> 52) as i32, bits & ((1u64 << 52) - 1));
    let (mut m, mut e) = if field == 0 { (frac, -1074) } else { (frac | (1 << 52), field - 1075) };
    while m < (1 << 52) {
        m <<= 1;
        e -= 1;
    }
    (m, e)
}

fn vec3_lit(m: u64) -> String {
    format!("vec3<u32>({}u, {}u, 0u)", m as u32, (m >> 32) as u32)
}

/// `low + (high - low) * u` exactly as the interpreter computes it: u is
/// 24 random bits over 2^24, the product and the sum are rounded to f64,
/// the sum to f32, and a result that rounds up to `high` becomes `low`.
/// The device has no f64, so both f64 roundings are done on integers.
fn random_uniform(cx: &Cx, n: NodeId, counter: NodeId, seed: u64, low: f64, high: f64, out: u32) -> Result<(String, String), WgpuError> {
    if cx.g.ty(counter).dtype != DType::I64 || cx.g.ty(counter).numel() != 1 {
        return Err(WgpuError::Internal(format!("{n}: random_uniform counter is not an i64 scalar")));
    }
    let d = high - low;
    if !(low.is_finite() && d.is_finite() && d >= 2f64.powi(-990)) {
        return Err(WgpuError::Unsupported(format!("{n}: random_uniform over [{low}, {high})")));
    }
    let c0 = place(cx, counter)?;
    let mut b = String::new();
    let _ = writeln!(b, "    let step = ld_i32({c0}u);");
    let _ = writeln!(
        b,
        "    let r = philox(vec4<u32>(idx, 0u, bitcast<u32>(step), select(0u, 0xffffffffu, step < 0i)), vec2<u32>({}u, {}u));",
        seed as u32,
        (seed >> 32) as u32
    );
    let _ = writeln!(b, "    let m = r.x >> 8u;");
    if low == 0.0 && high == 1.0 {
        let _ = writeln!(b, "    st_f32({out}u + idx, f32(m) * {});", f32_lit(1.0 / 16_777_216.0));
        return Ok((PHILOX.to_string(), b));
    }
    let (dm, de) = decompose(d);
    // The smallest f32 that is >= high as an f64.
    let h = high as f32;
    let ceil = if (h as f64) < high { f32::from_bits(if h >= 0.0 { h.to_bits() + 1 } else { h.to_bits() - 1 }) } else { h };
    let ceil = if h == 0.0 && (h as f64) < high { f32::from_bits(1) } else { ceil };
    // A draw of 0 is `low + 0`, which turns a low of -0 into +0.
    let _ = writeln!(b, "    var bits = {}u;", ((low + d * 0.0) as f32).to_bits());
    let _ = writeln!(b, "    if (m != 0u) {{");
    // The exact product d * m as 96 bits, then rounded to 53.
    let _ = writeln!(b, "        let dl = {}u; let dh = {}u;", dm as u32, (dm >> 32) as u32);
    let _ = writeln!(b, "        let ql = vec3<u32>(dl * m, mulhi(dl, m), 0u);");
    let _ = writeln!(b, "        let q = add96(ql, vec3<u32>(0u, dh * m, mulhi(dh, m)));");
    let _ = writeln!(b, "        let sp = bits96(q) - 53u;");
    let _ = writeln!(b, "        var pm = rne96(q, sp);");
    let _ = writeln!(b, "        var pe = {}i + i32(sp);", de - 24);
    let _ = writeln!(b, "        if (bits96(pm) > 53u) {{ pm = shr96(pm, 1u); pe = pe + 1i; }}");
    if low == 0.0 {
        let _ = writeln!(b, "        bits = to_f32_bits(pm, pe);");
    } else {
        let (lm, le) = decompose(low);
        let neg = low < 0.0;
        let _ = writeln!(b, "        let lm = {}; let le = {le}i;", vec3_lit(lm));
        // Align on the larger exponent with 40 guard bits; the smaller
        // operand's lost bits are jammed into bit 0 (sticky), which keeps
        // the rounding below exact.
        let _ = writeln!(b, "        let p_big = pe >= le;");
        let _ = writeln!(b, "        let a = shl96(select(lm, pm, p_big), 40u);");
        let _ = writeln!(b, "        let t = shl96(select(pm, lm, p_big), 40u);");
        let _ = writeln!(b, "        let delta = u32(abs(pe - le));");
        let _ = writeln!(b, "        var s = shr96(t, delta);");
        let _ = writeln!(b, "        if (any(shl96(s, delta) != t) || delta >= 96u) {{ s.x = s.x | 1u; }}");
        let _ = writeln!(b, "        let ebig = select(le, pe, p_big) - 40i;");
        let _ = writeln!(b, "        var neg = false;");
        let _ = writeln!(b, "        var sum = add96(a, s);");
        if neg {
            // |sum| = |big - small|; its sign is the larger magnitude's.
            let _ = writeln!(b, "        if (ge96(a, s)) {{ sum = sub96(a, s); neg = !p_big; }} else {{ sum = sub96(s, a); neg = p_big; }}");
        }
        let _ = writeln!(b, "        bits = 0u;");
        let _ = writeln!(b, "        let nb = bits96(sum);");
        let _ = writeln!(b, "        if (nb != 0u) {{");
        let _ = writeln!(b, "            var sm = shl96(sum, u32(max(53i - i32(nb), 0i)));");
        let _ = writeln!(b, "            var se = ebig + i32(nb) - 53i;");
        let _ = writeln!(b, "            if (nb > 53u) {{ sm = rne96(sum, nb - 53u); }}");
        let _ = writeln!(b, "            if (bits96(sm) > 53u) {{ sm = shr96(sm, 1u); se = se + 1i; }}");
        let _ = writeln!(b, "            bits = to_f32_bits(sm, se) | select(0u, 0x80000000u, neg);");
        let _ = writeln!(b, "        }}");
    }
    let _ = writeln!(b, "    }}");
    let _ = writeln!(b, "    var v = bitcast<f32>(bits);");
    let _ = writeln!(b, "    if (v >= {}) {{ v = {}; }}", f32_lit(ceil), f32_lit(low as f32));
    let _ = writeln!(b, "    st_f32({out}u + idx, v);");
    Ok((format!("{PHILOX}{WIDE}"), b))
}

/// The head of a shader that reads `count` integer indices at word `at`,
/// each to be in `0..bound`: invocation 0 walks them in order and reports
/// the first bad one (as the interpreter, which checks before computing),
/// then invocations past `work` (the real work items; the shader runs at
/// least one so the check runs even when there is no output) stop.
pub(crate) fn check_indices(n: NodeId, at: u32, count: usize, bound: usize, work: usize) -> String {
    let mut s = String::new();
    if count > 0 {
        let _ = writeln!(s, "    if (idx == 0u) {{");
        let _ = writeln!(s, "        for (var q = 0u; q < {count}u; q = q + 1u) {{");
        let _ = writeln!(s, "            let v = ld_i32({at}u + q);");
        let _ = writeln!(s, "            if (v < 0i || u32(v) >= {bound}u) {{ {} break; }}", wgsl::fail(n, "v"));
        let _ = writeln!(s, "        }}");
        let _ = writeln!(s, "    }}");
    }
    let _ = writeln!(s, "    if (idx >= {work}u) {{ return; }}");
    s
}
