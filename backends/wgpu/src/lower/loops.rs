//! Elementwise and reduction kernels: kiln-passes' loop program (the same
//! one the CPU compiles) as a shader.
//!
//! An elementwise loop runs one invocation per point of the loop shape.
//! A reduction runs one invocation per output element, which walks the
//! reduced points in row-major order (a fixed order: bit-identical results
//! run to run) evaluating the fused prologue at each, storing any fused
//! value that is itself an output, and accumulating.

use std::fmt::Write as _;

use kiln_ir::{BinaryOp, CompareOp, DType, ReduceOp, UnaryOp};
use kiln_passes::loop_program::{build, Ins, Program};
use kiln_passes::partition::Kernel;

use crate::lower::wgsl::{self, lit, ty};
use crate::lower::{Cx, Shader};
use crate::WgpuError;

pub fn lower(cx: &Cx, k: &Kernel) -> Result<Shader, WgpuError> {
    let bad_slot = std::cell::Cell::new(None);
    let slot = |n| match cx.word(n) {
        Ok(w) => w as usize,
        Err(_) => {
            bad_slot.set(Some(n));
            0
        }
    };
    let scalar = |n| match cx.g.op(n) {
        kiln_ir::Op::Constant(t) if t.numel() == 1 && t.dtype().is_float() => Some(t.to_f64_vec()[0]),
        _ => None,
    };
    let prog = build(cx.g, k, &slot, &scalar).map_err(|e| WgpuError::Plan(e.to_string()))?;
    if let Some(n) = bad_slot.get() {
        return Err(WgpuError::Internal(format!("k{}: {n} has no place in the device buffer", k.id)));
    }
    let (dims, leaf_strides, store_strides) = prog.collapsed();
    let name = format!("k{}-{}", k.id, if prog.reduces() { "reduce" } else { "loop" });
    // Which collapsed dimensions a reduction walks (its store's stride is 0).
    let reduced: Vec<bool> = match prog.stores.iter().position(|s| s.reduce.is_some()) {
        Some(r) => (0..dims.len()).map(|d| store_strides[r][d] == 0 && dims[d] > 1).collect(),
        None => vec![false; dims.len()],
    };
    let kept: Vec<usize> = (0..dims.len()).filter(|&d| !reduced[d]).collect();
    let walked: Vec<usize> = (0..dims.len()).filter(|&d| reduced[d]).collect();
    let mut body = String::new();
    decompose(&mut body, "idx", &kept, &dims, "    ");
    let invocations: u64 = kept.iter().map(|&d| dims[d] as u64).product();

    let mut inner = String::new();
    let red = prog.stores.iter().find_map(|s| s.reduce.map(|op| (op, s)));
    if let Some((op, s)) = red {
        let t = ty(s.dtype)?;
        let init = identity(op, s.dtype)?;
        let _ = writeln!(body, "    var acc: {t} = {init};");
        let count: u64 = walked.iter().map(|&d| dims[d] as u64).product();
        let _ = writeln!(body, "    for (var r = 0u; r < {count}u; r = r + 1u) {{");
        decompose(&mut inner, "r", &walked, &dims, "        ");
    }
    let pad = if red.is_some() { "        " } else { "    " };
    eval(&mut inner, &prog, &leaf_strides, pad)?;
    for (s, st) in prog.stores.iter().zip(&store_strides) {
        let v = format!("v{}", s.instr);
        match s.reduce {
            None => {
                let w = address(s.slot as u64, 0, st);
                let _ = writeln!(inner, "{pad}{}", wgsl::store(s.dtype, &w, &v)?);
            }
            Some(op) => {
                let _ = writeln!(inner, "{pad}acc = {};", combine(op, s.dtype, "acc", &v));
            }
        }
    }
    body.push_str(&inner);
    if let Some((op, s)) = red {
        body.push_str("    }\n");
        let count: u64 = walked.iter().map(|&d| dims[d] as u64).product();
        let result = match (op, s.dtype) {
            (ReduceOp::Mean, DType::F32) => format!("acc / {}", wgsl::f32_lit(count as f32)),
            (ReduceOp::Mean, _) => format!("acc / {}", lit(s.dtype, count as f64)?),
            _ => "acc".to_string(),
        };
        let st = &store_strides[prog.stores.iter().position(|x| x.reduce.is_some()).unwrap_or(0)];
        let w = address(s.slot as u64, 0, st);
        let _ = writeln!(body, "    {}", wgsl::store(s.dtype, &w, &result)?);
    }
    cx.shader(name, "", &body, invocations)
}

/// `let c{d} = ...` for dimensions `ds` (row-major) from the linear `var_`.
fn decompose(out: &mut String, var_: &str, ds: &[usize], dims: &[usize], pad: &str) {
    let mut div = 1u64;
    for &d in ds.iter().rev() {
        let ext = dims[d] as u64;
        match (div, ext) {
            (_, 1) => {
                let _ = writeln!(out, "{pad}let c{d} = 0u;");
            }
            (1, _) if ds.len() == 1 => {
                let _ = writeln!(out, "{pad}let c{d} = {var_};");
            }
            (1, _) => {
                let _ = writeln!(out, "{pad}let c{d} = {var_} % {ext}u;");
            }
            _ => {
                let _ = writeln!(out, "{pad}let c{d} = ({var_} / {div}u) % {ext}u;");
            }
        }
        div *= ext;
    }
}

/// The word of a leaf/store: `base + offset + sum(c_d * stride_d)`.
fn address(base: u64, offset: u64, strides: &[isize]) -> String {
    let mut s = format!("{}u", base + offset);
    for (d, &st) in strides.iter().enumerate() {
        if st != 0 {
            let _ = write!(s, " + c{d} * {st}u");
        }
    }
    s
}

/// `let v{i}: T = ...;` for every instruction.
fn eval(out: &mut String, prog: &Program, leaf_strides: &[Vec<isize>], pad: &str) -> Result<(), WgpuError> {
    for (i, ins) in prog.instrs.iter().enumerate() {
        let d = ins.dtype;
        let t = ty(d)?;
        let dt = |j: usize| prog.instrs[j].dtype;
        let e = match ins.ins {
            Ins::Leaf(l) => {
                let leaf = &prog.leaves[l];
                match leaf.constant {
                    Some(c) => lit(d, c)?,
                    None => wgsl::load(leaf.dtype, &address(leaf.slot as u64, leaf.offset as u64, &leaf_strides[l]))?,
                }
            }
            Ins::Unary(u, a) => unary(u, d, &format!("v{a}")),
            Ins::Binary(b, x, y) => binary(b, d, &format!("v{x}"), &format!("v{y}")),
            Ins::Compare(c, x, y) => compare(c, dt(x), &format!("v{x}"), &format!("v{y}")),
            Ins::Select(m, a, b) => format!("select(v{b}, v{a}, v{m})"),
            Ins::Cast(a) => cast(dt(a), d, &format!("v{a}"))?,
            Ins::Copy(a) => format!("v{a}"),
        };
        let _ = writeln!(out, "{pad}let v{i}: {t} = {e};");
    }
    Ok(())
}

fn unary(u: UnaryOp, d: DType, x: &str) -> String {
    if !d.is_float() {
        return match u {
            UnaryOp::Neg => format!("-{x}"),
            UnaryOp::Abs => format!("abs({x})"),
            _ => format!("sign({x})"),
        };
    }
    match u {
        UnaryOp::Neg => format!("-{x}"),
        UnaryOp::Exp => format!("exp({x})"),
        UnaryOp::Log => format!("log({x})"),
        UnaryOp::Sqrt => format!("sqrt({x})"),
        UnaryOp::Rsqrt => format!("(1.0f / sqrt({x}))"),
        UnaryOp::Abs => format!("abs({x})"),
        UnaryOp::Sign => format!("k_sign({x})"),
        UnaryOp::Recip => format!("(1.0f / {x})"),
        UnaryOp::Relu => format!("k_relu({x})"),
        UnaryOp::Sigmoid => format!("k_sigmoid({x})"),
        UnaryOp::Tanh => format!("k_tanh({x})"),
        UnaryOp::Erf => format!("k_erf({x})"),
        UnaryOp::Sin => format!("sin({x})"),
        UnaryOp::Cos => format!("cos({x})"),
    }
}

fn binary(b: BinaryOp, d: DType, x: &str, y: &str) -> String {
    match (b, d.is_float()) {
        (BinaryOp::Add, _) => format!("{x} + {y}"),
        (BinaryOp::Sub, _) => format!("{x} - {y}"),
        (BinaryOp::Mul, _) => format!("{x} * {y}"),
        (BinaryOp::Div, _) => format!("{x} / {y}"),
        (BinaryOp::Pow, true) => format!("k_pow({x}, {y})"),
        (BinaryOp::Pow, false) => format!("k_ipow({x}, {y})"),
        (BinaryOp::Max, true) => format!("k_max({x}, {y})"),
        (BinaryOp::Min, true) => format!("k_min({x}, {y})"),
        (BinaryOp::Max, false) => format!("max({x}, {y})"),
        (BinaryOp::Min, false) => format!("min({x}, {y})"),
    }
}

fn compare(c: CompareOp, operand: DType, x: &str, y: &str) -> String {
    let (x, y) = if operand == DType::Bool { (format!("u32({x})"), format!("u32({y})")) } else { (x.to_string(), y.to_string()) };
    let op = match c {
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        CompareOp::Eq => "==",
        CompareOp::Ne => "!=",
    };
    format!("({x} {op} {y})")
}

/// A conversion with the interpreter's rules: float -> int truncates, NaN
/// gives 0; anything -> bool is `!= 0`.
pub fn cast(from: DType, to: DType, x: &str) -> Result<String, WgpuError> {
    let (f, t) = (ty(from)?, ty(to)?);
    Ok(match (f, t) {
        _ if f == t => x.to_string(),
        ("f32", "i32") => format!("select(i32({x}), 0i, k_isnan({x}))"),
        ("i32", "f32") => format!("f32({x})"),
        ("bool", "f32") => format!("select(0.0f, 1.0f, {x})"),
        ("bool", "i32") => format!("select(0i, 1i, {x})"),
        ("f32", "bool") => format!("({x} != 0.0f)"),
        ("i32", "bool") => format!("({x} != 0i)"),
        _ => return Err(WgpuError::Internal(format!("cast {f} -> {t}"))),
    })
}

pub fn identity(op: ReduceOp, d: DType) -> Result<String, WgpuError> {
    Ok(match (op, d.is_float()) {
        (ReduceOp::Sum | ReduceOp::Mean, _) => lit(d, 0.0)?,
        (ReduceOp::Max, true) => "-k_inf()".into(),
        (ReduceOp::Min, true) => "k_inf()".into(),
        (ReduceOp::Max, false) => "bitcast<i32>(0x80000000u)".into(),
        (ReduceOp::Min, false) => "0x7fffffffi".into(),
    })
}

pub fn combine(op: ReduceOp, d: DType, acc: &str, v: &str) -> String {
    match (op, d.is_float()) {
        (ReduceOp::Sum | ReduceOp::Mean, _) => format!("{acc} + {v}"),
        (ReduceOp::Max, true) => format!("k_max({acc}, {v})"),
        (ReduceOp::Min, true) => format!("k_min({acc}, {v})"),
        (ReduceOp::Max, false) => format!("max({acc}, {v})"),
        (ReduceOp::Min, false) => format!("min({acc}, {v})"),
    }
}
