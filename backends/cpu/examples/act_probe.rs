//! Probe: JIT-compiled exp, sigmoid, tanh and the LSTM cell (3 sigmoids,
//! 2 tanhs) on one thread; prints ns per element.
//! `cargo run --release -p kiln-cpu --example act_probe`.
use std::collections::BTreeMap;
use std::time::Instant;

use kiln_ir::*;

fn main() {
    let n = 32 * 256;
    let vals = |n: usize, s: f32| (0..n).map(|i| (((i * 7919) % 1000) as f32 / 500.0 - 1.0) * s).collect::<Vec<f32>>();
    let cases: [(&str, fn(&mut Graph, NodeId, NodeId) -> NodeId); 5] = [
        ("neg", |g, x, _| g.neg(x).unwrap()),
        ("exp", |g, x, _| g.exp(x).unwrap()),
        ("sigmoid", |g, x, _| g.sigmoid(x).unwrap()),
        ("tanh", |g, x, _| g.tanh(x).unwrap()),
        ("lstm cell", |g, x, c| {
            let gates: Vec<NodeId> = (0..4).map(|i| g.slice_axis(x, 1, i * 256, (i + 1) * 256).unwrap()).collect();
            let (i, f, gg, o) = (g.sigmoid(gates[0]).unwrap(), g.sigmoid(gates[1]).unwrap(), g.tanh(gates[2]).unwrap(), g.sigmoid(gates[3]).unwrap());
            let fc = g.mul(f, c).unwrap();
            let ig = g.mul(i, gg).unwrap();
            let c2 = g.add(fc, ig).unwrap();
            let tc = g.tanh(c2).unwrap();
            g.mul(o, tc).unwrap()
        }),
    ];
    for (name, build) in cases {
        let mut g = Graph::new();
        let x = g.input("x", f32_shape([32, 1024])).unwrap();
        let c = g.input("c", f32_shape([32, 256])).unwrap();
        let y = build(&mut g, x, c);
        g.set_output("y", y).unwrap();
        if name != "lstm cell" {
            let s = g.sum(c, &[0, 1], false).unwrap();
            g.set_output("s", s).unwrap();
        }
        let inp: BTreeMap<String, HostTensor> =
            [("x".to_string(), HostTensor::from_f32([32, 1024], vals(4 * n, 4.0)).unwrap()), ("c".to_string(), HostTensor::from_f32([32, 256], vals(n, 1.0)).unwrap())].into_iter().collect();
        let mut be = kiln_cpu::CpuBackend::new().with_threads(1);
        if let Ok(d) = std::env::var("DUMP") {
            be = be.with_dump(format!("{d}/{}", name.replace(' ', "_")));
        }
        let mut exe = be.compile_cpu(&g).unwrap();
        let elems = if name == "lstm cell" { n } else { 4 * n };
        let mut best = f64::MAX;
        for _ in 0..400 {
            let t = Instant::now();
            exe.run(&inp).unwrap();
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("{name:>10}: {:.2} ns per element ({:.1} us per call, best of 400)", best * 1e9 / elems as f64, best * 1e6);
    }
}
