//! ReLU, max/min-shaped selects, max/min against constants and ReLU's
//! gradient lower to single SSE instructions (`maxps`, `minps`, `andps`)
//! whose NaN and signed-zero behaviour is the ops' defined meaning: checked
//! in the disassembly the dump writes and bit for bit against the
//! interpreter on NaN, ±0 and ±inf. Also: reductions that keep the channel
//! axis run split across threads with bitwise the same result as one thread.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::*;
use kiln_cpu::CpuBackend;
use kiln_interp::{run_graph, Precision};
use kiln_ir::*;

/// (numerator, denominator) pairs whose quotient is NaN, ±0, ±inf or an
/// ordinary number: inputs must be finite, so specials are made in the graph.
const SPECIALS: [(f32, f32); 12] = [
    (0.0, 0.0),
    (-0.0, 1.0),
    (0.0, 1.0),
    (-1.5, 1.0),
    (1.5, 1.0),
    (-1.0, 0.0),
    (1.0, 0.0),
    (0.25, 1.0),
    (0.0, -1.0),
    (0.0, 0.0),
    (2.0, 1.0),
    (-2.0, 1.0),
];

/// An input `name` of `shape` holding specials (NaN, ±0, ±inf) then
/// ordinary values, as `name_n / name_d`; its values are added to `vals`.
fn special(g: &mut Graph, vals: &mut BTreeMap<String, HostTensor>, name: &str, shape: &[usize], seed: u64) -> NodeId {
    let n: usize = shape.iter().product();
    let (mut num, mut den) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let (a, d) = if i < SPECIALS.len() { SPECIALS[(i + seed as usize) % SPECIALS.len()] } else { (kiln_ir::random::uniform(seed, 3, i as u64, -2.0, 2.0), 1.0) };
        num.push(a);
        den.push(d);
    }
    let a = g.input(&format!("{name}_n"), f32_shape(shape.to_vec())).unwrap();
    let d = g.input(&format!("{name}_d"), f32_shape(shape.to_vec())).unwrap();
    vals.insert(format!("{name}_n"), HostTensor::from_f32(shape.to_vec(), num).unwrap());
    vals.insert(format!("{name}_d"), HostTensor::from_f32(shape.to_vec(), den).unwrap());
    g.div(a, d).unwrap()
}

/// Same value, same sign of zero, NaN where the interpreter has NaN.
fn assert_bitwise(name: &str, got: &HostTensor, want: &HostTensor) {
    let (a, b) = (got.as_f32().unwrap(), want.as_f32().unwrap());
    assert_eq!(a.len(), b.len(), "{name}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let ok = if y.is_nan() { x.is_nan() } else { x.to_bits() == y.to_bits() };
        assert!(ok, "{name}[{i}]: cpu {x:?} vs interpreter {y:?}");
    }
}

/// Runs `g` on the JIT (2 threads), the portable evaluator and the
/// interpreter; every output must agree bit for bit.
fn check_bitwise(g: &Graph, inputs: &BTreeMap<String, HostTensor>) {
    let want = run_graph(g, inputs, Precision::F32).expect("interpreter runs");
    for be in [CpuBackend::new().with_threads(2), CpuBackend::new().with_jit(false).with_threads(1)] {
        let got = be.compile_cpu(g).expect("compiles").run(inputs).expect("runs");
        for (name, w) in &want {
            assert_bitwise(name, &got[name], w);
        }
    }
}

/// Vector or scalar float compares in a listing (`cmpltps`, `ucomiss`, ...).
fn float_compares(asm: &str) -> usize {
    asm.lines().filter(|l| (l.contains("cmp") || l.contains("comis")) && (l.contains("ps ") || l.contains("ss "))).count()
}

/// Compiles `g` with the dump on; returns every `.s` listing's text.
fn disassembly(g: &Graph, tag: &str) -> String {
    let dir: PathBuf = std::env::temp_dir().join(format!("kiln-cpu-minmax-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    CpuBackend::new().with_dump(&dir).compile_cpu(g).expect("compiles");
    let mut asm = String::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "s") {
            asm.push_str(&std::fs::read_to_string(&p).unwrap());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!asm.is_empty(), "the dump has no disassembly");
    asm
}

#[test]
fn relu_is_one_maxps_and_keeps_nan_and_negative_zero() {
    let mut g = Graph::new();
    let mut inputs = BTreeMap::new();
    let x = special(&mut g, &mut inputs, "x", &[37], 0);
    let y = g.relu(x).unwrap();
    g.set_output("y", y).unwrap();
    // ReLU spelled as compare + select (`x > 0 ? x : 0`, so NaN gives 0).
    let zero = g.scalar_like(0.0, x).unwrap();
    let pos = g.compare(CompareOp::Gt, x, zero).unwrap();
    let sel = g.select(pos, x, zero).unwrap();
    g.set_output("sel", sel).unwrap();
    let asm = disassembly(&g, "relu");
    // Per form, one maxps per vector in the 2x-unrolled and the
    // single-vector loop and one maxss in the scalar tail, and no float
    // compare anywhere (an `fmax` would be two maxps, a cmpunordps and
    // bit fixups).
    assert_eq!(asm.matches("maxps").count(), 6, "{asm}");
    assert_eq!(asm.matches("maxss").count(), 2, "{asm}");
    assert_eq!(float_compares(&asm), 0, "{asm}");
    check_bitwise(&g, &inputs);
    let out = CpuBackend::new().compile_cpu(&g).unwrap().run(&inputs).unwrap();
    let v = out["y"].as_f32().unwrap();
    // relu(x) = 0 > x ? 0 : x, as torch computes it.
    assert!(v[0].is_nan());
    assert!(v[1] == 0.0 && v[1].is_sign_negative(), "relu(-0) is -0");
    assert_eq!(v[3].to_bits(), 0f32.to_bits(), "relu(-1.5) is +0");
    assert_eq!((v[5], v[6]), (0.0, f32::INFINITY));
    let s = out["sel"].as_f32().unwrap();
    assert_eq!(s[0].to_bits(), 0f32.to_bits(), "NaN > 0 is false");
}

#[test]
fn selects_of_their_compare_operands_are_maxps_and_minps() {
    let mut g = Graph::new();
    let mut inputs = BTreeMap::new();
    let a = special(&mut g, &mut inputs, "a", &[5, 9], 0);
    let b = special(&mut g, &mut inputs, "b", &[5, 9], 5);
    let forms = [
        ("gt_ab", CompareOp::Gt, false),
        ("gt_ba", CompareOp::Gt, true),
        ("lt_ab", CompareOp::Lt, false),
        ("lt_ba", CompareOp::Lt, true),
    ];
    for (name, c, swap) in forms {
        let m = g.compare(c, a, b).unwrap();
        let s = if swap { g.select(m, b, a) } else { g.select(m, a, b) }.unwrap();
        g.set_output(name, s).unwrap();
    }
    let asm = disassembly(&g, "select");
    assert!(asm.contains("maxps") && asm.contains("minps"), "{asm}");
    assert_eq!(float_compares(&asm), 0, "{asm}");
    assert!(!asm.contains("blend"), "{asm}");
    check_bitwise(&g, &inputs);
}

#[test]
fn relu_gradient_is_one_and_and_max_against_a_constant_is_maxps() {
    let mut g = Graph::new();
    let mut inputs = BTreeMap::new();
    let x = special(&mut g, &mut inputs, "x", &[4, 11], 0);
    let dy = special(&mut g, &mut inputs, "dy", &[4, 11], 7);
    let zero = g.scalar_like(0.0, x).unwrap();
    let pos = g.compare(CompareOp::Gt, x, zero).unwrap();
    let gx = g.select(pos, dy, zero).unwrap();
    g.set_output("gx", gx).unwrap();
    let neg = g.select(pos, zero, dy).unwrap();
    g.set_output("neg", neg).unwrap();
    let lo = g.scalar_like(-1.0, x).unwrap();
    let hi = g.scalar_like(1.25, x).unwrap();
    let up = g.maximum(x, lo).unwrap();
    let clamp = g.minimum(hi, up).unwrap();
    g.set_output("clamp", clamp).unwrap();
    let asm = disassembly(&g, "grad");
    assert!(asm.contains("andps") && asm.contains("andnps") && !asm.contains("blend"), "{asm}");
    assert!(asm.contains("maxps") && asm.contains("minps"), "{asm}");
    check_bitwise(&g, &inputs);
}

/// Sums over the batch and spatial axes (BatchNorm statistics, conv bias
/// gradients) and over the batch axis of a matrix (dense bias gradients):
/// big enough to be split across threads by the kept axis.
#[test]
fn reductions_keeping_channels_split_across_threads_bitwise_deterministically() {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([16, 24, 13, 13])).unwrap();
    let m = g.input("m", f32_shape([600, 70])).unwrap();
    let xx = g.mul(x, x).unwrap();
    let s = g.mean(xx, &[0, 2, 3], true).unwrap();
    g.set_output("bn_var", s).unwrap();
    let mx = g.reduce_max(x, &[0, 2, 3], false).unwrap();
    g.set_output("bn_max", mx).unwrap();
    let bias = g.sum(m, &[0], false).unwrap();
    g.set_output("bias_grad", bias).unwrap();
    let inputs = random_inputs(&g, 3);
    let serial = CpuBackend::new().with_threads(1).compile_cpu(&g).unwrap().run(&inputs).unwrap();
    let mut exe = CpuBackend::new().with_threads(2).compile_cpu(&g).unwrap();
    for _ in 0..3 {
        let split = exe.run(&inputs).unwrap();
        for (name, t) in &serial {
            assert_eq!(split[name], *t, "{name}: 2 threads vs 1");
        }
    }
    check(&g, &inputs, 1e-5, 1e-6);
}
