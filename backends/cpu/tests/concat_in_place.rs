//! Concats along their first axis of extent > 1 whose operands are computed
//! straight into the concat's buffer (the concat kernel never runs): CPU
//! (JIT on 2 threads, portable evaluator on 1) vs the interpreter for
//! pieces made by loops, GEMMs, reductions and other concats, pieces that
//! are also outputs or state updates, and concats that must still copy.

mod common;

use common::*;
use kiln_cpu::CpuBackend;
use kiln_ir::*;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn stacked_steps_match_the_interpreter(seed in any::<u64>(), batch in 1usize..6, hidden in 1usize..11, steps in 1usize..5) {
        // An unrolled cell: per step, gate gradients joined along axis 1
        // (strided pieces: copied), then every step's joined gates and
        // hidden states stacked along the leading axis (in place).
        let mut g = Graph::new();
        let x = g.input("x", f32_shape([batch, hidden])).unwrap();
        let w = g.input("w", f32_shape([hidden, hidden])).unwrap();
        let acc = g.state_input("acc", f32_shape([batch, hidden])).unwrap();
        let mut h = x;
        let mut gates = Vec::new();
        let mut hs = Vec::new();
        for _ in 0..steps {
            let m = g.matmul(h, w).unwrap();
            let a = g.sigmoid(m).unwrap();
            let b = g.tanh(m).unwrap();
            let joined = g.concat(&[a, b], 1).unwrap();
            let joined = g.reshape(joined, [1, batch, 2 * hidden]).unwrap();
            gates.push(joined);
            h = g.mul(a, b).unwrap();
            hs.push(h);
        }
        let slab = g.concat(&gates, 0).unwrap();
        let rows = g.concat(&hs, 0).unwrap();
        let total = g.sum(slab, &[0, 1], false).unwrap();
        g.set_output("total", total).unwrap();
        g.set_output("rows", rows).unwrap();
        // The last hidden state is also an output and a state update; a
        // concat reading a graph input (not computed by a kernel) copies.
        let upd = g.add(acc, h).unwrap();
        g.set_update("acc", upd).unwrap();
        g.set_output("h", h).unwrap();
        let with_input = g.concat(&[x, h], 0).unwrap();
        g.set_output("with_input", with_input).unwrap();
        let vals = random_inputs(&g, seed);
        check(&g, &vals, 1e-4, 1e-5);
        let exe = CpuBackend::new().compile_cpu(&g).expect("cpu compiles");
        let mem = exe.memory_plan_text();
        prop_assert!(mem.contains(&format!("concat {rows}: operands computed in place")), "{}", mem);
        prop_assert!(!mem.contains(&format!("concat {with_input}:")), "{}", mem);
    }
}
