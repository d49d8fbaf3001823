//! Numerical checks of the e-graph pass: every golden case's input graph
//! and its optimized graph give the same outputs and updates on random
//! inputs, run by the reference interpreter. Also: limits are reported stop
//! reasons, the report explains fusions, and random graphs keep their
//! values.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use kiln_ir::{f32_shape, DType, Graph, HostTensor, Op, TensorType};
use kiln_passes::egraph::{optimize, EGraphConfig, EGraphPass, StopReason};
use common::Rng;
use kiln_passes::{Pass, PassCx, PassManager};

/// Upper bound for integer inputs: the class count of a one_hot or
/// softmax_cross_entropy that uses them.
fn int_range(g: &Graph, id: kiln_ir::NodeId) -> i64 {
    for u in g.users(id) {
        match g.op(u) {
            Op::OneHot { classes } => return *classes as i64,
            Op::SoftmaxCrossEntropy => return g.ty(g.operands(u)[0]).shape.0[1] as i64,
            _ => {}
        }
    }
    2
}

fn random_inputs(g: &Graph, seed: u64) -> BTreeMap<String, HostTensor> {
    let mut rng = Rng(seed | 1);
    let mut vals = BTreeMap::new();
    for (id, name, _) in g.inputs() {
        let ty = g.ty(id).clone();
        // Variances must be positive for rsqrt/sqrt to be meaningful.
        let (lo, hi) = if name.contains("var") { (0.5, 2.0) } else { (-2.0, 2.0) };
        let v: Vec<f64> = match ty.dtype {
            DType::I64 | DType::I32 => {
                let n = int_range(g, id);
                (0..ty.numel()).map(|_| (rng.next() * n as f64).floor().min((n - 1) as f64)).collect()
            }
            _ => (0..ty.numel()).map(|_| lo + (hi - lo) * rng.next()).collect(),
        };
        vals.insert(name.to_string(), HostTensor::from_f64_values(&ty, &v));
    }
    vals
}

fn close(a: &HostTensor, b: &HostTensor) -> Result<(), String> {
    if a.ty() != b.ty() {
        return Err(format!("types differ: {} vs {}", a.ty(), b.ty()));
    }
    for (i, (p, q)) in a.to_f64_vec().iter().zip(b.to_f64_vec()).enumerate() {
        let ok = *p == q || (p.is_nan() && q.is_nan()) || (p - q).abs() <= 1e-4 * p.abs().max(q.abs()) + 1e-4;
        if !ok {
            return Err(format!("element {i}: {p} vs {q}"));
        }
    }
    Ok(())
}

/// Runs `before` and `after` on the same random inputs; every output and
/// update must agree.
fn check_same(before: &Graph, after: &Graph, what: &str) {
    for seed in [7u64, 1234, 99991] {
        let vals = random_inputs(before, seed);
        let p = kiln_interp::Precision::F32;
        let r0 = kiln_interp::run_graph_full(before, &vals, p).unwrap_or_else(|e| panic!("{what}: before: {e}"));
        let r1 = kiln_interp::run_graph_full(after, &vals, p).unwrap_or_else(|e| panic!("{what}: after: {e}"));
        assert_eq!(r0.outputs.keys().collect::<Vec<_>>(), r1.outputs.keys().collect::<Vec<_>>(), "{what}");
        for (k, v) in r0.outputs.iter().chain(&r0.updates) {
            let w = r1.outputs.get(k).or_else(|| r1.updates.get(k)).unwrap_or_else(|| panic!("{what}: `{k}` missing"));
            if let Err(e) = close(v, w) {
                panic!("{what}: `{k}` differs after the e-graph pass ({e}):\n{}", kiln_ir::text::print(after));
            }
        }
    }
}

/// The pipeline of a golden case, with the e-graph pass and without it: any
/// other pass in the header (autodiff) runs in both.
fn pipelines(passes: &[String]) -> (Vec<String>, Vec<String>) {
    let without: Vec<String> = passes.iter().filter(|p| *p != "egraph").cloned().collect();
    (without, passes.to_vec())
}

#[test]
fn every_golden_case_keeps_its_values() {
    let files = common::golden::case_files("egraph");
    assert!(files.len() >= 10, "expected the egraph golden cases");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let case = common::GoldenCase::parse(&f, &text).unwrap();
        let g0 = kiln_ir::text::parse(&case.input, &f.display().to_string()).unwrap();
        let (without, with) = pipelines(&case.passes);
        let mut before = g0.clone();
        PassManager::from_names(&without).unwrap().run(&mut before, &mut PassCx::new()).unwrap();
        let mut after = g0.clone();
        let mut cx = PassCx::new().with_evaluator(common::InterpEvaluator);
        PassManager::from_names(&with).unwrap().run(&mut after, &mut cx).unwrap();
        check_same(&before, &after, &f.display().to_string());
    }
}

/// Searching only where the last round changed the e-graph must find what
/// searching everywhere finds: same rules fired, same e-graph, same result,
/// on every golden case's graph (after autodiff where the case asks for it).
#[test]
fn incremental_search_finds_what_a_full_search_finds() {
    let mut compared = 0;
    for dir in ["egraph", "autodiff", "row_stack", "slab_concat", "const_fold", "cse"] {
        for f in common::golden::case_files(dir) {
            let text = std::fs::read_to_string(&f).unwrap();
            let case = common::GoldenCase::parse(&f, &text).unwrap();
            let mut g0 = kiln_ir::text::parse(&case.input, &f.display().to_string()).unwrap();
            // The error cases of autodiff have no graph to optimize.
            if !g0.grad_requests().is_empty() && PassManager::from_names(&["autodiff"]).unwrap().run(&mut g0, &mut PassCx::new()).is_err() {
                continue;
            }
            let run = |incremental: bool| {
                let mut g = g0.clone();
                let cfg = EGraphConfig { incremental, ..Default::default() };
                let r = optimize(&mut g, &cfg, Some(&common::InterpEvaluator)).unwrap();
                (r.fired.clone(), r.enodes, r.eclasses, r.stop, kiln_ir::text::print(&g))
            };
            let (full, incr) = (run(false), run(true));
            assert_eq!(full, incr, "{}: incremental search differs from the full search", f.display());
            compared += 1;
        }
    }
    assert!(compared >= 40, "expected the golden cases, compared {compared}");
}

fn small_mlp() -> Graph {
    let text = "%0 = input \"x\" : f32[4,3]
%1 = param \"w\" : f32[3,5]
%2 = param \"b\" : f32[5]
%3 = matmul %0, %1 : f32[4,5]
%4 = add %3, %2 : f32[4,5]
%5 = relu %4 : f32[4,5]
output \"y\" = %5
";
    kiln_ir::text::parse(text, "mlp").unwrap()
}

#[test]
fn limits_are_reported_stop_reasons_not_errors() {
    let mut g = small_mlp();
    let cfg = EGraphConfig { iter_limit: 1, ..Default::default() };
    let r = optimize(&mut g, &cfg, None).unwrap();
    assert_eq!(r.stop, StopReason::IterationLimit(1));
    assert_eq!(r.iterations, 1);
    kiln_ir::verify(&g).unwrap();

    let mut g = small_mlp();
    let cfg = EGraphConfig { node_limit: 3, ..Default::default() };
    let r = optimize(&mut g, &cfg, None).unwrap();
    assert_eq!(r.stop, StopReason::NodeLimit(3));
    kiln_ir::verify(&g).unwrap();

    let mut g = small_mlp();
    let cfg = EGraphConfig { time_limit: Duration::ZERO, ..Default::default() };
    let r = optimize(&mut g, &cfg, None).unwrap();
    assert_eq!(r.stop, StopReason::TimeLimit(Duration::ZERO));
    assert!(!r.changed, "no rule ran, so nothing changed");

    let mut g = small_mlp();
    let r = optimize(&mut g, &EGraphConfig::default(), None).unwrap();
    assert_eq!(r.stop, StopReason::Saturated);
    assert!(r.cost_after < r.cost_before, "{r}");
}

#[test]
fn the_dump_report_explains_fusions_and_counts() {
    let mut g = small_mlp();
    let mut cx = PassCx::new();
    cx.dump_dir = Some(std::env::temp_dir());
    let changed = EGraphPass::default().run(&mut g, &mut cx).unwrap();
    assert!(changed.changed());
    let (name, text) = cx.reports.iter().find(|(n, _)| n == "egraph-report.txt").expect("report pushed");
    assert_eq!(name, "egraph-report.txt");
    for want in ["stop reason:  saturated", "e-graph size:", "est. cost:", "live nodes:   6 -> 4", "[fusion]", "dense-from-matmul", "dense-bias", "dense-relu"] {
        assert!(text.contains(want), "report lacks `{want}`:\n{text}");
    }
    let line = text.lines().find(|l| l.contains("fused_dense")).unwrap_or_else(|| panic!("no fused line:\n{text}"));
    assert!(line.contains("dense-relu <- dense-bias <- dense-from-matmul"), "{line}");

    // Without a dump dir nothing is pushed.
    let mut g = small_mlp();
    let mut cx = PassCx::new();
    EGraphPass::default().run(&mut g, &mut cx).unwrap();
    assert!(cx.reports.is_empty());
}

#[test]
fn disabled_groups_do_not_fire() {
    let mut g = small_mlp();
    let cfg = EGraphConfig { groups: vec![kiln_passes::egraph::Group::Algebra], ..Default::default() };
    let r = optimize(&mut g, &cfg, None).unwrap();
    assert!(!r.changed);
    assert_eq!(r.fired("dense-relu"), 0);
    assert!(g.node_ids().iter().all(|&id| !matches!(g.op(id), Op::FusedDense { .. })));
}

/// A chain of random elementwise ops over a few inputs: the optimized graph
/// computes the same values (and the pass never fails).
#[test]
fn random_elementwise_graphs_keep_their_values() {
    use kiln_ir::{BinaryOp, UnaryOp};
    let unary = [UnaryOp::Neg, UnaryOp::Exp, UnaryOp::Log, UnaryOp::Relu, UnaryOp::Tanh, UnaryOp::Sigmoid];
    let binary = [BinaryOp::Add, BinaryOp::Mul, BinaryOp::Sub, BinaryOp::Div];
    for seed in 1..40u64 {
        let mut rng = Rng(seed * 7919);
        let mut g = Graph::new();
        let mut nodes = vec![
            g.input("x", f32_shape([2, 3])).unwrap(),
            g.input("y", f32_shape([3])).unwrap(),
            g.scalar_f32(0.0).unwrap(),
            g.scalar_f32(1.0).unwrap(),
            g.scalar_f32(2.0).unwrap(),
        ];
        for _ in 0..12 {
            let pick = |r: f64, n: &Vec<_>| n[(r * n.len() as f64) as usize % n.len()];
            let a = pick(rng.next(), &nodes);
            let b = pick(rng.next(), &nodes);
            let id = if rng.next() < 0.4 {
                g.unary(unary[(rng.next() * 6.0) as usize % 6], a).unwrap()
            } else if rng.next() < 0.1 {
                let t = g.ty(a).clone();
                let p: Vec<usize> = (0..t.shape.rank()).rev().collect();
                g.permute(a, &p).unwrap()
            } else {
                match g.binary(binary[(rng.next() * 4.0) as usize % 4], a, b) {
                    Ok(id) => id,
                    Err(_) => continue,
                }
            };
            nodes.push(id);
        }
        let last = *nodes.last().unwrap();
        g.set_output("o", last).unwrap();
        let mid = nodes[nodes.len() / 2 + 2];
        if g.ty(mid) != &TensorType::new(DType::F32, []) {
            g.set_output("m", mid).unwrap();
        }
        let before = g.clone();
        let mut after = g.clone();
        let mut cx = PassCx::new().with_evaluator(common::InterpEvaluator);
        PassManager::from_names(&["egraph", "dce"]).unwrap().run(&mut after, &mut cx).unwrap();
        check_same(&before, &after, &format!("random graph {seed}"));
    }
}

/// Every other golden input in this crate (autodiff, cse, dce, ...) and the
/// example `.kir` files, after their own pipeline, then through the e-graph
/// pass: no error, no panic, same values.
#[test]
fn other_golden_inputs_keep_their_values() {
    let mut files = Vec::new();
    for dir in common::golden::golden_dirs() {
        if dir != "egraph" {
            files.extend(common::golden::case_files(&dir));
        }
    }
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kir");
    if let Ok(rd) = std::fs::read_dir(&examples) {
        files.extend(rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "kir")));
    }
    let mut checked = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let passes = common::GoldenCase::parse(&f, &text).map(|c| c.passes).unwrap_or_default();
        let Ok(g0) = kiln_ir::text::parse(&text, &f.display().to_string()) else { continue };
        let mut before = g0.clone();
        let Ok(pm) = PassManager::from_names(&passes) else { continue };
        if pm.run(&mut before, &mut PassCx::new().with_evaluator(common::InterpEvaluator)).is_err() {
            continue; // a case that expects an error
        }
        if !before.grad_requests().is_empty() {
            continue;
        }
        // Graphs whose run is itself an error (out-of-range indices) have no
        // values to compare.
        if kiln_interp::run_graph_full(&before, &random_inputs(&before, 7), kiln_interp::Precision::F32).is_err() {
            continue;
        }
        let mut after = before.clone();
        let mut cx = PassCx::new().with_evaluator(common::InterpEvaluator);
        PassManager::from_names(&["egraph", "dce"])
            .unwrap()
            .run(&mut after, &mut cx)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        check_same(&before, &after, &f.display().to_string());
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} graphs checked");
}

/// The report says why a conv+ReLU did not fuse when the pre-activation is
/// needed elsewhere.
#[test]
fn the_report_explains_a_fusion_that_did_not_happen() {
    let text = "%0 = input \"x\" : f32[1,2,5,5]
%1 = param \"w\" : f32[3,2,3,3]
%2 = conv2d %0, %1 stride=[1,1] pad=[1,1] dilation=[1,1] groups=1 : f32[1,3,5,5]
%3 = relu %2 : f32[1,3,5,5]
output \"pre\" = %2
output \"y\" = %3
";
    let mut g = kiln_ir::text::parse(text, "shared").unwrap();
    let r = optimize(&mut g, &EGraphConfig::default(), None).unwrap();
    let text = r.to_string();
    let line = text.lines().find(|l| l.contains("%2 = conv2d")).unwrap_or_else(|| panic!("no why-not line:\n{text}"));
    assert!(line.contains("also needed by") && line.contains("graph output"), "{line}");
    assert!(!r.changed, "{text}");
}

/// With `reassociate: false`, value-changing algebra is off but fusion and
/// exact simplifications still happen.
#[test]
fn reassociate_off_keeps_fusion_and_exact_rules_only() {
    let text = "%0 = input \"x\" : f32[4,3]
%1 = param \"w\" : f32[3,5]
%2 = param \"b\" : f32[5]
%3 = const 2 : f32[]
%4 = const 3 : f32[]
%5 = mul %0, %3 : f32[4,3]
%6 = mul %5, %4 : f32[4,3]
%7 = neg %6 : f32[4,3]
%8 = neg %7 : f32[4,3]
%9 = matmul %8, %1 : f32[4,5]
%10 = add %9, %2 : f32[4,5]
%11 = relu %10 : f32[4,5]
output \"y\" = %11
";
    let mut g = kiln_ir::text::parse(text, "strict").unwrap();
    let cfg = EGraphConfig { reassociate: false, ..Default::default() };
    let r = optimize(&mut g, &cfg, None).unwrap();
    assert_eq!(r.fired("neg-neg"), 1, "{r}");
    assert_eq!(r.fired("dense-relu"), 1, "{r}");
    assert!(!r.fired.contains_key("scalar-mul-mul") && !r.fired.contains_key("matmul-scalar-hoist"), "{r}");
    let mut g2 = kiln_ir::text::parse(text, "fast").unwrap();
    let r2 = optimize(&mut g2, &EGraphConfig::default(), None).unwrap();
    assert_eq!(r2.fired("scalar-mul-mul"), 1, "{r2}");
}

/// The pass may also run before autodiff: grad requests are roots, and the
/// fused ops it introduces have gradient rules, so the gradients match.
#[test]
fn egraph_before_autodiff_gives_the_same_gradients() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kir/mlp_grad.kir");
    let Ok(text) = std::fs::read_to_string(&path) else { return };
    let g0 = kiln_ir::text::parse(&text, "mlp_grad").unwrap();
    let mut plain = g0.clone();
    PassManager::from_names(&["autodiff"]).unwrap().run(&mut plain, &mut PassCx::new()).unwrap();
    let mut fused = g0.clone();
    let mut cx = PassCx::new().with_evaluator(common::InterpEvaluator);
    let rep = PassManager::from_names(&["egraph", "autodiff", "dce"]).unwrap().run(&mut fused, &mut cx).unwrap();
    let _ = rep;
    assert!(fused.node_ids().iter().any(|&id| matches!(fused.op(id), Op::FusedDense { .. })), "{}", kiln_ir::text::print(&fused));
    check_same(&plain, &fused, "mlp_grad: egraph before autodiff");
}

/// Integer, bool, empty and scalar values go through the pass untouched or
/// correctly simplified, without errors or panics.
#[test]
fn odd_dtypes_and_shapes_are_handled() {
    let text = "%0 = input \"i\" : i64[3]
%1 = const 0 : i64[]
%2 = add %0, %1 : i64[3]
%3 = const 1 : i64[]
%4 = mul %2, %3 : i64[3]
%5 = input \"e\" : f32[0,4]
%6 = const 0 : f32[]
%7 = add %5, %6 : f32[0,4]
%8 = permute %7 perm=[1,0] : f32[4,0]
%9 = permute %8 perm=[1,0] : f32[0,4]
%10 = input \"s\" : f32[]
%11 = exp %10 : f32[]
%12 = log %11 : f32[]
%13 = gt %12, %6 : bool[]
%14 = neg %0 : i64[3]
%15 = neg %14 : i64[3]
%16 = cast %13 to=f32 : f32[]
%17 = mul %16, %6 : f32[]
output \"a\" = %4
output \"b\" = %9
output \"c\" = %13
output \"d\" = %15
output \"f\" = %17
";
    let before = kiln_ir::text::parse(text, "odd").unwrap();
    let mut after = before.clone();
    let mut cx = PassCx::new().with_evaluator(common::InterpEvaluator);
    PassManager::from_names(&["egraph", "dce"]).unwrap().run(&mut after, &mut cx).unwrap();
    check_same(&before, &after, "odd dtypes");
    let printed = kiln_ir::text::print(&after);
    assert!(!printed.contains("permute") && !printed.contains("log"), "{printed}");
}

/// Random stacks of dense/conv layers with every bias spelling the rules
/// accept (and some they must refuse), activations, transposed weights,
/// scalar scales and shared intermediates: same values after the pass.
#[test]
fn random_layer_stacks_keep_their_values() {
    use kiln_ir::{Conv2dAttrs, UnaryOp};
    for seed in 1..25u64 {
        let mut rng = Rng(seed * 104729);
        let mut pick = |n: usize| (rng.next() * n as f64) as usize % n;
        let mut g = Graph::new();
        let mut extra = Vec::new();
        // Conv part.
        let mut x = g.input("img", f32_shape([2, 2, 5, 5])).unwrap();
        for l in 0..2 {
            let w = g.param(&format!("cw{l}"), f32_shape([2, 2, 3, 3])).unwrap();
            let y = g.conv2d(x, w, Conv2dAttrs { padding: [1, 1], ..Default::default() }).unwrap();
            let b = g.param(&format!("cb{l}"), f32_shape([2])).unwrap();
            let y = match pick(4) {
                0 => y,
                1 => {
                    let b = g.reshape(b, [2, 1, 1]).unwrap();
                    g.add(y, b).unwrap()
                }
                2 => {
                    let b = g.reshape(b, [1, 2, 1, 1]).unwrap();
                    let b = g.broadcast_to(b, [2, 2, 5, 5]).unwrap();
                    g.add(b, y).unwrap()
                }
                // Not a per-channel bias: along the last axis.
                _ => {
                    let b5 = g.param(&format!("cb5_{l}"), f32_shape([5])).unwrap();
                    let _ = b;
                    g.add(y, b5).unwrap()
                }
            };
            if pick(3) == 0 {
                extra.push(y);
            }
            x = match pick(4) {
                0 => g.relu(y).unwrap(),
                1 => g.sigmoid(y).unwrap(),
                2 => g.tanh(y).unwrap(),
                _ => y,
            };
        }
        // Dense part.
        let mut h = g.reshape(x, [2, 50]).unwrap();
        let mut k = 50;
        for l in 0..3 {
            let n = 3 + pick(4);
            let y = if pick(2) == 0 {
                let w = g.param(&format!("w{l}"), f32_shape([k, n])).unwrap();
                g.matmul(h, w).unwrap()
            } else {
                let w = g.param(&format!("w{l}"), f32_shape([n, k])).unwrap();
                let wt = g.permute(w, &[1, 0]).unwrap();
                g.matmul(h, wt).unwrap()
            };
            let y = if pick(3) == 0 { g.mul_scalar(y, 0.5).unwrap() } else { y };
            let b = g.param(&format!("b{l}"), f32_shape([n])).unwrap();
            let y = match pick(3) {
                0 => y,
                1 => g.add(y, b).unwrap(),
                _ => {
                    let b = g.reshape(b, [1, n]).unwrap();
                    g.add(b, y).unwrap()
                }
            };
            if pick(4) == 0 {
                extra.push(y);
            }
            h = match pick(3) {
                0 => g.unary(UnaryOp::Relu, y).unwrap(),
                1 => g.unary(UnaryOp::Tanh, y).unwrap(),
                _ => y,
            };
            k = n;
        }
        g.set_output("out", h).unwrap();
        for (i, e) in extra.into_iter().enumerate() {
            g.set_output(&format!("extra{i}"), e).unwrap();
        }
        let before = g.clone();
        let mut after = g.clone();
        let mut cx = PassCx::new().with_evaluator(common::InterpEvaluator);
        PassManager::from_names(&["egraph", "dce"]).unwrap().run(&mut after, &mut cx).unwrap();
        check_same(&before, &after, &format!("layer stack {seed}"));
    }
}
