//! Whole graphs: the Backend/Executable contract, run_graph*, errors,
//! precision modes and update write-back.

mod common;
use std::collections::BTreeMap;

use common::*;
use kiln_interp::{run_graph, run_graph_full, run_graph_nodes, Interpreter, Precision};
use kiln_ir::{f32_shape, i64_shape, Backend, DType, Executable, Graph, HostTensor, Op, RunError, TensorType};

fn map(items: &[(&str, HostTensor)]) -> BTreeMap<String, HostTensor> {
    items.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

fn compile(g: &Graph, p: Precision) -> Box<dyn Executable> {
    Interpreter { precision: p }.compile(g).unwrap()
}

/// A step counter: out = 2c, then c := c + 1.
fn counter_graph() -> Graph {
    let mut g = Graph::new();
    let c = g.state_input("c", i64_shape([])).unwrap();
    let out = g.mul_scalar(c, 2.0).unwrap();
    let next = g.add_scalar(c, 1.0).unwrap();
    g.set_output("out", out).unwrap();
    g.set_update("c", next).unwrap();
    g
}

#[test]
fn updates_are_written_back_after_each_run() {
    let mut exe = compile(&counter_graph(), Precision::F32);
    assert_eq!(Interpreter::default().name(), "interp");
    exe.set_state("c", ti64(&[], &[0])).unwrap();
    let o1 = exe.run(&BTreeMap::new()).unwrap();
    assert_eq!(o1["out"].as_i64().unwrap(), &[0]);
    assert_eq!(exe.state("c").unwrap().as_i64().unwrap(), &[1]);
    let o2 = exe.run(&BTreeMap::new()).unwrap();
    assert_eq!(o2["out"].as_i64().unwrap(), &[2]);
    assert_eq!(exe.state_dict()["c"].as_i64().unwrap(), &[2]);
}

/// Linear regression with a hand-written gradient and an SGD update:
/// x = I, t = [1,2], w0 = 0, lr = 0.25.
fn sgd_graph() -> Graph {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([2, 2])).unwrap();
    let t = g.input("t", f32_shape([2, 1])).unwrap();
    let w = g.param("w", f32_shape([2, 1])).unwrap();
    let pred = g.matmul(x, w).unwrap();
    let err = g.sub(pred, t).unwrap();
    let sq = g.mul(err, err).unwrap();
    let loss = g.mean_all(sq).unwrap();
    // d mean(err^2) / dw = x^T err * 2/N with N = 2.
    let grad = g.matmul_t(x, err, true, false).unwrap();
    let step = g.mul_scalar(grad, 0.25).unwrap();
    let w_new = g.sub(w, step).unwrap();
    g.set_output("loss", loss).unwrap();
    g.set_update("w", w_new).unwrap();
    g
}

fn sgd_inputs() -> BTreeMap<String, HostTensor> {
    map(&[("x", t32(&[2, 2], &[1.0, 0.0, 0.0, 1.0])), ("t", t32(&[2, 1], &[1.0, 2.0]))])
}

#[test]
fn sgd_steps_match_hand_computation() {
    let mut exe = compile(&sgd_graph(), Precision::F32);
    exe.set_state("w", t32(&[2, 1], &[0.0, 0.0])).unwrap();
    let inputs = sgd_inputs();
    // err = [-1,-2]: loss 2.5, w1 = [0.25, 0.5]
    assert_eq!(exe.run(&inputs).unwrap()["loss"].as_f32().unwrap(), &[2.5]);
    assert_eq!(exe.state("w").unwrap().as_f32().unwrap(), &[0.25, 0.5]);
    // err = [-0.75,-1.5]: loss (0.5625 + 2.25) / 2, w2 = [0.4375, 0.875]
    assert_eq!(exe.run(&inputs).unwrap()["loss"].as_f32().unwrap(), &[1.40625]);
    assert_eq!(exe.state("w").unwrap().as_f32().unwrap(), &[0.4375, 0.875]);
}

#[test]
fn run_graph_takes_params_by_name_and_returns_updates_separately() {
    let g = sgd_graph();
    let mut vals = sgd_inputs();
    vals.insert("w".into(), t32(&[2, 1], &[0.0, 0.0]));
    let out = run_graph(&g, &vals, Precision::F32).unwrap();
    assert_eq!(out.keys().collect::<Vec<_>>(), vec!["loss"]);
    assert_eq!(out["loss"].as_f32().unwrap(), &[2.5]);
    let full = run_graph_full(&g, &vals, Precision::F32).unwrap();
    assert_eq!(full.outputs, out);
    assert_eq!(full.updates["w"].as_f32().unwrap(), &[0.25, 0.5]);
    // Nothing is written back: the caller's map still holds w0.
    assert_eq!(vals["w"].as_f32().unwrap(), &[0.0, 0.0]);
    // Missing param.
    vals.remove("w");
    assert_eq!(run_graph(&g, &vals, Precision::F32).unwrap_err(), RunError::MissingInput("w".into()));
}

#[test]
fn run_graph_nodes_returns_every_node_including_dead_ones() {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([2])).unwrap();
    let y = g.neg(x).unwrap();
    let dead = g.exp(x).unwrap();
    g.set_output("y", y).unwrap();
    let all = run_graph_nodes(&g, &map(&[("x", t32(&[2], &[0.0, 1.0]))]), Precision::F32).unwrap();
    assert_eq!(all.len(), 3);
    exact(&all[&y], &[0.0, -1.0]);
    exact(&all[&dead], &[1.0, std::f32::consts::E as f64]);
}

#[test]
fn input_errors() {
    let mut exe = compile(&sgd_graph(), Precision::F32);
    let good = sgd_inputs();
    // Unset param.
    assert_eq!(exe.run(&good).unwrap_err(), RunError::UnsetState("w".into()));
    exe.set_state("w", t32(&[2, 1], &[0.0, 0.0])).unwrap();
    // Missing input.
    let mut m = good.clone();
    m.remove("t");
    assert_eq!(exe.run(&m).unwrap_err(), RunError::MissingInput("t".into()));
    // Wrong shape.
    let mut m = good.clone();
    m.insert("t".into(), t32(&[2], &[1.0, 2.0]));
    assert!(matches!(exe.run(&m).unwrap_err(), RunError::InputType { name, .. } if name == "t"));
    // f64 where f32 is declared: an error in f32 mode.
    let mut m = good.clone();
    m.insert("t".into(), t64(&[2, 1], &[1.0, 2.0]));
    assert!(matches!(exe.run(&m).unwrap_err(), RunError::InputType { name, .. } if name == "t"));
    // NaN / infinity.
    let mut m = good.clone();
    m.insert("x".into(), t32(&[2, 2], &[1.0, f32::NAN, 0.0, 1.0]));
    assert_eq!(exe.run(&m).unwrap_err(), RunError::NonFinite { name: "x".into() });
    m.insert("x".into(), t32(&[2, 2], &[1.0, f32::INFINITY, 0.0, 1.0]));
    assert_eq!(exe.run(&m).unwrap_err(), RunError::NonFinite { name: "x".into() });
    // Unknown input, and a param passed as a per-call input.
    let mut m = good.clone();
    m.insert("zzz".into(), t32(&[1], &[0.0]));
    assert!(matches!(exe.run(&m).unwrap_err(), RunError::UnexpectedInput { name, .. } if name == "zzz"));
    let mut m = good.clone();
    m.insert("w".into(), t32(&[2, 1], &[0.0, 0.0]));
    assert!(matches!(exe.run(&m).unwrap_err(), RunError::UnexpectedInput { .. }));
    // State checks.
    assert_eq!(exe.set_state("x", t32(&[2, 2], &[0.0; 4])).unwrap_err(), RunError::UnknownState("x".into()));
    assert!(matches!(exe.set_state("w", t32(&[1, 2], &[0.0; 2])).unwrap_err(), RunError::InputType { .. }));
    assert_eq!(exe.set_state("w", t32(&[2, 1], &[f32::NAN, 0.0])).unwrap_err(), RunError::NonFinite { name: "w".into() });
    // None of the failures touched w.
    assert_eq!(exe.state("w").unwrap().as_f32().unwrap(), &[0.0, 0.0]);
    // run_graph checks the same things.
    let mut vals = good.clone();
    vals.insert("w".into(), t32(&[2, 1], &[f32::NAN, 0.0]));
    assert_eq!(run_graph(&sgd_graph(), &vals, Precision::F32).unwrap_err(), RunError::NonFinite { name: "w".into() });
    vals.insert("w".into(), t32(&[3, 1], &[0.0; 3]));
    assert!(matches!(run_graph(&sgd_graph(), &vals, Precision::F32).unwrap_err(), RunError::InputType { .. }));
    vals.insert("extra".into(), t32(&[1], &[0.0]));
    assert!(matches!(run_graph(&sgd_graph(), &vals, Precision::F32).unwrap_err(), RunError::UnexpectedInput { .. }));
}

#[test]
fn out_of_range_index_names_the_node_and_leaves_state_alone() {
    let mut g = Graph::new();
    let table = g.param("table", f32_shape([3, 2])).unwrap();
    let idx = g.input("idx", i64_shape([2])).unwrap();
    let rows = g.gather(table, idx, 0).unwrap();
    let s = g.sum_all(rows).unwrap();
    let bumped = g.add_scalar(table, 1.0).unwrap();
    g.set_output("s", s).unwrap();
    g.set_update("table", bumped).unwrap();
    let mut exe = compile(&g, Precision::F32);
    exe.set_state("table", iota(&[3, 2])).unwrap();
    let err = exe.run(&map(&[("idx", ti64(&[2], &[0, 5]))])).unwrap_err();
    assert_eq!(err, RunError::IndexOutOfRange { node: rows.to_string(), index: 5, bound: 3 });
    assert!(err.to_string().starts_with('%'), "{err}");
    assert_eq!(exe.state("table").unwrap(), iota(&[3, 2]));
    // rows 2 and 0: 5+6+1+2
    let ok = exe.run(&map(&[("idx", ti64(&[2], &[2, 0]))])).unwrap();
    assert_eq!(ok["s"].as_f32().unwrap(), &[14.0]);
    assert_eq!(vals(&exe.state("table").unwrap()), vec![2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
}

#[test]
fn compile_rejects_pending_grad_requests_and_invalid_graphs() {
    let mut g = Graph::new();
    let w = g.param("w", f32_shape([2])).unwrap();
    let l = g.sum_all(w).unwrap();
    g.set_output("l", l).unwrap();
    g.add_grad_request(l, vec![w]).unwrap();
    let e = Interpreter::default().compile(&g).err().unwrap();
    assert!(e.to_string().contains("autodiff"), "{e}");
    // A node whose declared type disagrees with inference.
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([2])).unwrap();
    let bad = g.add_typed(Op::StopGradient, f32_shape([3]), &[x]);
    g.set_output("y", bad).unwrap();
    let e = Interpreter::default().compile(&g).err().unwrap();
    assert!(e.to_string().contains("verify"), "{e}");
    let e = run_graph(&g, &map(&[("x", t32(&[2], &[0.0, 0.0]))]), Precision::F32).unwrap_err();
    assert!(matches!(&e, RunError::Backend(m) if m.contains("verify") && m.contains(&bad.to_string())), "{e:?}");
}

#[test]
fn f64_mode_accepts_f32_or_f64_and_returns_f64() {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([1])).unwrap();
    let b = g.param("b", f32_shape([1])).unwrap();
    let y = g.add(x, b).unwrap();
    let y3 = g.mul_scalar(y, 3.0).unwrap();
    let back = g.div(y3, y).unwrap();
    g.set_output("y", y).unwrap();
    g.set_output("ratio", back).unwrap();
    g.set_update("b", y).unwrap();

    let mut e64 = compile(&g, Precision::F64);
    e64.set_state("b", t64(&[1], &[1e-12])).unwrap();
    let o = e64.run(&map(&[("x", t32(&[1], &[1.0]))])).unwrap();
    assert_eq!(o["y"].dtype(), DType::F64);
    assert_eq!(vals(&o["y"]), vec![1.0 + 1e-12]);
    assert_eq!(e64.state("b").unwrap().dtype(), DType::F64);
    // Second run with an f64 input and the f64 state written back.
    let o = e64.run(&map(&[("x", t64(&[1], &[0.5]))])).unwrap();
    assert_eq!(vals(&o["y"]), vec![0.5 + 1.0 + 1e-12]);
    // Shapes still must match in f64 mode; ints are not floats.
    assert!(matches!(e64.run(&map(&[("x", t64(&[2], &[0.5, 0.5]))])).unwrap_err(), RunError::InputType { .. }));
    assert!(matches!(e64.run(&map(&[("x", ti64(&[1], &[1]))])).unwrap_err(), RunError::InputType { .. }));

    // The same graph in f32 mode loses the 1e-12 at the first add.
    let mut e32 = compile(&g, Precision::F32);
    e32.set_state("b", t32(&[1], &[1e-12])).unwrap();
    let o = e32.run(&map(&[("x", t32(&[1], &[1.0]))])).unwrap();
    assert_eq!(o["y"].as_f32().unwrap(), &[1.0]);
    assert!(matches!(e32.set_state("b", t64(&[1], &[0.0])).unwrap_err(), RunError::InputType { .. }));

    // run_graph in f64 mode too.
    let out = run_graph(&g, &map(&[("x", t64(&[1], &[2.0])), ("b", t32(&[1], &[0.5]))]), Precision::F64).unwrap();
    assert_eq!(vals(&out["y"]), vec![2.5]);
    assert_eq!(vals(&out["ratio"]), vec![3.0]);
}

#[test]
fn f32_rounding_happens_after_every_op() {
    // (x / 3) * 3 in f32 is not always x; in f64 mode it rounds only once at
    // the very end of the f64 computation (which we compare against).
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([64])).unwrap();
    let d = g.mul_scalar(x, 1.0 / 3.0).unwrap();
    let m = g.mul_scalar(d, 3.0).unwrap();
    g.set_output("m", m).unwrap();
    let xs: Vec<f32> = (1..=64).map(|i| 0.1 * i as f32 + 0.013).collect();
    let v = map(&[("x", t32(&[64], &xs))]);
    let r32 = run_graph(&g, &v, Precision::F32).unwrap();
    let r64 = run_graph(&g, &v, Precision::F64).unwrap();
    let third = (1.0f64 / 3.0) as f32 as f64;
    for (i, &x) in xs.iter().enumerate() {
        let want32 = (((x as f64 * third) as f32 as f64) * 3.0) as f32;
        assert_eq!(r32["m"].as_f32().unwrap()[i], want32);
        assert_eq!(vals(&r64["m"])[i], x as f64 * third * 3.0);
    }
}

#[test]
fn outputs_may_alias_inputs_and_each_other() {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([2])).unwrap();
    let y = g.relu(x).unwrap();
    g.set_output("x_again", x).unwrap();
    g.set_output("a", y).unwrap();
    g.set_output("b", y).unwrap();
    let o = run_graph(&g, &map(&[("x", t32(&[2], &[-1.0, 2.0]))]), Precision::F32).unwrap();
    exact(&o["x_again"], &[-1.0, 2.0]);
    exact(&o["a"], &[0.0, 2.0]);
    assert_eq!(o["a"], o["b"]);
}

/// The fused loss equals its definition from primitives: -sum(onehot * log_softmax).
#[test]
fn softmax_cross_entropy_matches_its_primitive_definition() {
    let mut g = Graph::new();
    let z = g.input("z", f32_shape([3, 4])).unwrap();
    let y = g.input("y", i64_shape([3])).unwrap();
    let fused = g.apply(Op::SoftmaxCrossEntropy, &[z, y]).unwrap();
    let m = g.reduce_max(z, &[1], true).unwrap();
    let m = g.stop_gradient(m).unwrap();
    let zc = g.sub(z, m).unwrap();
    let e = g.exp(zc).unwrap();
    let s = g.sum(e, &[1], true).unwrap();
    let ls = g.log(s).unwrap();
    let logp = g.sub(zc, ls).unwrap();
    let oh = g.one_hot(y, 4).unwrap();
    let picked = g.mul(oh, logp).unwrap();
    let nll = g.sum(picked, &[1], false).unwrap();
    let nll = g.neg(nll).unwrap();
    g.set_output("fused", fused).unwrap();
    g.set_output("prim", nll).unwrap();
    let zv: Vec<f32> = noise(12, 3).into_iter().map(|v| (v * 5.0) as f32).collect();
    let v = map(&[("z", t32(&[3, 4], &zv)), ("y", ti64(&[3], &[3, 0, 2]))]);
    let o = run_graph(&g, &v, Precision::F64).unwrap();
    close(&vals(&o["fused"]), &vals(&o["prim"]), 1e-14);
}

#[test]
fn executables_are_send_and_types_come_from_the_signature() {
    fn assert_send<T: Send>(_: &T) {}
    let exe = compile(&sgd_graph(), Precision::F32);
    assert_send(&exe);
    let sig = exe.signature();
    assert_eq!(sig.outputs, vec![("loss".to_string(), TensorType::f32([]))]);
    assert_eq!(sig.inputs.len(), 3);
}

#[test]
fn random_draws_follow_the_step_counter_across_runs() {
    let mut g = Graph::new();
    let c = g.state_input("step", i64_shape([])).unwrap();
    let r = g.random_uniform(c, [5], 42, 0.0, 1.0).unwrap();
    let next = g.add_scalar(c, 1.0).unwrap();
    g.set_output("r", r).unwrap();
    g.set_update("step", next).unwrap();
    let draw = |exe: &mut Box<dyn Executable>| vals(&exe.run(&BTreeMap::new()).unwrap()["r"]);
    let mut a = compile(&g, Precision::F32);
    a.set_state("step", ti64(&[], &[0])).unwrap();
    let (a0, a1) = (draw(&mut a), draw(&mut a));
    assert_ne!(a0, a1, "a new step draws new numbers");
    // A fresh executable at the same step reproduces them exactly.
    let mut b = compile(&g, Precision::F32);
    b.set_state("step", ti64(&[], &[1])).unwrap();
    assert_eq!(draw(&mut b), a1);
    b.set_state("step", ti64(&[], &[0])).unwrap();
    assert_eq!(draw(&mut b), a0);
}

#[test]
fn f64_typed_nodes_are_not_rounded_in_f32_mode() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::new(DType::F64, [1])).unwrap();
    let y = g.add_scalar(x, 1e-12).unwrap();
    let z = g.cast(y, DType::F32).unwrap();
    g.set_output("y", y).unwrap();
    g.set_output("z", z).unwrap();
    let o = run_graph(&g, &map(&[("x", t64(&[1], &[1.0]))]), Precision::F32).unwrap();
    assert_eq!(o["y"].dtype(), DType::F64);
    assert_eq!(vals(&o["y"]), vec![1.0 + 1e-12]);
    assert_eq!(o["z"].as_f32().unwrap(), &[1.0]);
}
