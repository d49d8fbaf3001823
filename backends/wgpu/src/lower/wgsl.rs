//! The WGSL text every shader shares: the one storage binding, typed loads
//! and stores of 32-bit words, literals, the error flag, and the entry
//! point's linear index.

use kiln_ir::{Activation, DType, NodeId};

use crate::WgpuError;

/// Invocations per workgroup of every kiln shader. 64 is a multiple of
/// every subgroup size in use (8 on lavapipe, 32 and 64 on GPUs) without
/// the shader assuming any.
pub const WORKGROUP_SIZE: u32 = 64;

/// One compute dispatch: a complete WGSL module with entry point `main`,
/// run for `invocations` work items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shader {
    pub name: String,
    pub wgsl: String,
    pub invocations: u64,
}

/// Functions every module has. `mem` is the program's one buffer.
const PRELUDE: &str = r#"@group(0) @binding(0) var<storage, read_write> mem: array<u32>;

fn ld_f32(i: u32) -> f32 { return bitcast<f32>(mem[i]); }
fn ld_i32(i: u32) -> i32 { return bitcast<i32>(mem[i]); }
fn ld_bool(i: u32) -> bool { return mem[i] != 0u; }
fn st_f32(i: u32, v: f32) { mem[i] = bitcast<u32>(v); }
fn st_i32(i: u32, v: i32) { mem[i] = bitcast<u32>(v); }
fn st_bool(i: u32, v: bool) { mem[i] = select(0u, 1u, v); }
// An index out of range: record which node and index (the runtime turns
// it into RunError::IndexOutOfRange and rolls the step back).
// The first failing kernel wins, as in the interpreter, which stops there.
fn fail(node: u32, index: i32) {
    if (mem[ERR] == 0u) { mem[ERR] = node + 1u; mem[ERR + 1u] = bitcast<u32>(index); }
}

// Scalar functions with the interpreter's semantics where WGSL's builtins
// leave a case undefined or drift (NaN propagation, negative bases, -0).
fn k_nan() -> f32 { return bitcast<f32>(0x7fc00000u); }
// By the bits: drivers (lavapipe among them) fold `x != x` to false.
fn k_isnan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn k_inf() -> f32 { return bitcast<f32>(0x7f800000u); }
fn k_relu(x: f32) -> f32 { return select(x, 0.0f, 0.0f > x); }
fn k_sigmoid(x: f32) -> f32 { return 1.0f / (1.0f + exp(-x)); }
// Builtin tanh may form exp(2x) and overflow to NaN for large |x|.
fn k_tanh(x: f32) -> f32 { return select(tanh(x), sign(x), abs(x) > 9.0f); }
fn k_sign(x: f32) -> f32 {
    if (x > 0.0f) { return 1.0f; }
    if (x < 0.0f) { return -1.0f; }
    return x;
}
fn k_max(a: f32, b: f32) -> f32 {
    if (k_isnan(a)) { return a; }
    if (k_isnan(b)) { return b; }
    return max(a, b);
}
fn k_min(a: f32, b: f32) -> f32 {
    if (k_isnan(a)) { return a; }
    if (k_isnan(b)) { return b; }
    return min(a, b);
}
// Series near 0 (relative accuracy), Abramowitz-Stegun 7.1.26 beyond.
fn k_erf(x: f32) -> f32 {
    let a = abs(x);
    if (a < 0.5f) {
        let x2 = x * x;
        return 1.1283791671f * x * (1.0f + x2 * (-0.3333333333f + x2 * (0.1f + x2 * (-0.0238095238f + x2 * 0.0046296296f))));
    }
    let t = 1.0f / (1.0f + 0.3275911f * a);
    let y = 1.0f - t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f)))) * exp(-a * a);
    return select(y, -y, x < 0.0f);
}
// powf: a negative base takes an integer exponent's sign, else NaN.
fn k_pow(a: f32, b: f32) -> f32 {
    if (b == 0.0f) { return 1.0f; }
    if (k_isnan(a) || k_isnan(b)) { return k_nan(); }
    let odd = fract(b * 0.5f) != 0.0f && abs(b) < 16777216.0f;
    if (a == 0.0f) {
        let z = select(0.0f, k_inf(), b < 0.0f);
        return select(z, -z, odd && bitcast<u32>(a) == 0x80000000u);
    }
    let m = pow(abs(a), b);
    if (a < 0.0f) {
        if (fract(b) != 0.0f) { return k_nan(); }
        return select(m, -m, odd);
    }
    return m;
}
fn k_ipow(a: i32, b: i32) -> i32 {
    var r = 1i;
    var base = a;
    var e = u32(max(b, 0i));
    loop {
        if (e == 0u) { break; }
        if ((e & 1u) == 1u) { r = r * base; }
        base = base * base;
        e = e >> 1u;
    }
    return r;
}
"#;

/// A full module: constants, prelude, `fns`, then `main` running `body`
/// with `idx: u32` in `0..invocations`.
pub fn shader(name: String, err_word: u64, fns: &str, body: &str, invocations: u64) -> Result<Shader, WgpuError> {
    if invocations > u32::MAX as u64 {
        return Err(WgpuError::Limit(format!("{name}: {invocations} work items exceed one dispatch's 2^32")));
    }
    let err = u32_word(err_word)?;
    let wgsl = format!(
        "// kiln kernel {name}\nconst ERR: u32 = {err}u;\nconst N: u32 = {invocations}u;\n{PRELUDE}\n{fns}\n\
         @compute @workgroup_size({WORKGROUP_SIZE})\n\
         fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{\n\
         \x20   let idx = gid.x + gid.y * nwg.x * {WORKGROUP_SIZE}u;\n\
         \x20   if (idx >= N) {{ return; }}\n{body}}}\n"
    );
    Ok(Shader { name, wgsl, invocations })
}

/// A word offset as a WGSL `u32` (the buffer is indexed in 32-bit words).
pub fn u32_word(w: u64) -> Result<u32, WgpuError> {
    u32::try_from(w).map_err(|_| WgpuError::Limit(format!("word offset {w} exceeds 2^32 words")))
}

/// The WGSL type of a dtype on the device.
pub fn ty(d: DType) -> Result<&'static str, WgpuError> {
    match d {
        DType::F32 => Ok("f32"),
        DType::I64 | DType::I32 => Ok("i32"),
        DType::Bool => Ok("bool"),
        DType::F64 => Err(WgpuError::Unsupported("f64 values (the device computes in f32)".into())),
    }
}

/// `ld_<ty>(word)`: the element at word index expression `word`.
pub fn load(d: DType, word: &str) -> Result<String, WgpuError> {
    Ok(format!("ld_{}({word})", ty(d)?))
}

/// `st_<ty>(word, value);`
pub fn store(d: DType, word: &str, value: &str) -> Result<String, WgpuError> {
    Ok(format!("st_{}({word}, {value});", ty(d)?))
}

/// An f32 literal, exact (shortest round-trip form); infinities and NaN,
/// which WGSL has no literal for, by their bits.
pub fn f32_lit(v: f32) -> String {
    if v.is_finite() {
        format!("{v:?}f")
    } else {
        format!("bitcast<f32>({:#010x}u)", v.to_bits())
    }
}

/// An i32 literal.
pub fn i32_lit(v: i32) -> String {
    if v == i32::MIN { "bitcast<i32>(0x80000000u)".to_string() } else { format!("{v}i") }
}

/// A literal of dtype `d` holding `v`.
pub fn lit(d: DType, v: f64) -> Result<String, WgpuError> {
    match d {
        DType::F32 => Ok(f32_lit(v as f32)),
        DType::I64 | DType::I32 => {
            let i = v as i64;
            i32::try_from(i).map(i32_lit).map_err(|_| WgpuError::Unsupported(format!("integer {i} does not fit the device's i32")))
        }
        DType::Bool => Ok(if v != 0.0 { "true".into() } else { "false".into() }),
        DType::F64 => Err(WgpuError::Unsupported("f64 values".into())),
    }
}

/// A fused op's activation applied to the f32 expression `x`.
pub fn activation(act: Activation, x: &str) -> String {
    match act {
        Activation::None => x.to_string(),
        // torch.relu: NaN and -0 pass through.
        Activation::Relu => format!("k_relu({x})"),
        Activation::Sigmoid => format!("k_sigmoid({x})"),
        Activation::Tanh => format!("k_tanh({x})"),
    }
}

/// `fail(node, index)`: for shaders that check an index.
pub fn fail(node: NodeId, index: &str) -> String {
    format!("fail({}u, {index});", node.index())
}
