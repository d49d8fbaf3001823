//! Slices fused into loops as strided reads of their operand (offset +
//! per-axis strides): CPU (JIT on 2 threads, portable evaluator on 1) vs
//! the interpreter over random starts/steps (offsets that are not multiples
//! of the vector width, steps > 1, size-1 dims), slices feeding reductions,
//! slices of intermediates, of views and of a GEMM (LSTM gates), and a
//! check that no slice is left as a kernel of its own.

mod common;

use std::collections::BTreeMap;

use common::*;
use kiln_cpu::CpuBackend;
use kiln_ir::*;
use proptest::prelude::*;

fn cfg() -> ProptestConfig {
    ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() }
}

/// Random `start`, `end`, `step` per axis of `s` from `bits`.
fn random_slice(s: &[usize], bits: &mut impl FnMut(usize) -> usize) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let start: Vec<usize> = s.iter().map(|&d| bits(d)).collect();
    let end: Vec<usize> = s.iter().zip(&start).map(|(&d, &st)| st + 1 + bits(d - st)).collect();
    let step: Vec<usize> = s.iter().map(|_| 1 + bits(3)).collect();
    (start, end, step)
}

/// The partition of `g` on the CPU backend has no kernel anchored on a slice.
fn assert_no_slice_kernels(g: &Graph) {
    let exe = CpuBackend::new().compile_cpu(g).expect("cpu compiles");
    let text = exe.partition_text();
    assert!(!text.lines().any(|l| l.starts_with("kernel") && l.contains("(slice)")), "a slice was not fused:\n{text}");
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn slices_in_elementwise_chains_and_reductions(seed in any::<u64>(), dims in proptest::collection::vec(1usize..9, 1..4)) {
        let mut st = seed;
        let mut bits = move |n: usize| {
            st = st.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((st >> 33) as usize) % n.max(1)
        };
        let mut g = Graph::new();
        let x = g.input("x", f32_shape(dims.clone())).unwrap();
        let (s0, e0, p0) = random_slice(&dims, &mut bits);
        let a = g.slice(x, &s0, &e0, &p0).unwrap();
        let shape = g.ty(a).shape.0.clone();
        // A second slice of the same shape at other offsets (like gate chunks).
        let s1: Vec<usize> = dims.iter().zip(&shape).zip(&p0).map(|((&d, &n), &p)| bits(d - ((n - 1) * p + 1) + 1)).collect();
        let e1: Vec<usize> = s1.iter().zip(&shape).zip(&p0).map(|((&s, &n), &p)| s + (n - 1) * p + 1).collect();
        let b = g.slice(x, &s1, &e1, &p0).unwrap();
        let ea = g.exp(a).unwrap();
        let prod = g.mul(ea, b).unwrap();
        g.set_output("chain", prod).unwrap();
        // A slice of an intermediate (which must then be stored).
        let t = g.tanh(x).unwrap();
        let ts = g.slice(t, &s0, &e0, &p0).unwrap();
        let tsum = g.add(ts, a).unwrap();
        g.set_output("of_tanh", tsum).unwrap();
        g.set_output("tanh", t).unwrap();
        // Slices feeding reductions over every axis subset bit pattern.
        let axes: Vec<usize> = (0..shape.len()).filter(|_| bits(2) == 1).collect();
        let sq = g.mul(a, b).unwrap();
        let r = g.sum(sq, &axes, false).unwrap();
        g.set_output("reduced", r).unwrap();
        let m = g.reduce(ReduceOp::Max, b, &axes, true).unwrap();
        g.set_output("max", m).unwrap();
        // A slice broadcast into a bigger loop.
        let mut big = vec![2];
        big.extend(shape.iter().copied());
        let bb = g.broadcast_to(a, big).unwrap();
        let bn = g.neg(bb).unwrap();
        g.set_output("broadcast", bn).unwrap();
        // A slice of a view, and an identity slice of a value its loop computes.
        let n: usize = dims.iter().product();
        let flat = g.reshape(t, [n]).unwrap();
        let fs = g.slice(flat, &[n / 3], &[n], &[1 + n % 2]).unwrap();
        let fsr = g.relu(fs).unwrap();
        g.set_output("of_view", fsr).unwrap();
        let full: Vec<usize> = vec![0; dims.len()];
        let ones: Vec<usize> = vec![1; dims.len()];
        let e = g.sigmoid(x).unwrap();
        let id = g.slice(e, &full, &dims, &ones).unwrap();
        let ee = g.add(e, id).unwrap();
        g.set_output("identity", ee).unwrap();
        check(&g, &random_inputs(&g, seed), 1e-5, 1e-6);
        assert_no_slice_kernels(&g);
    }

    #[test]
    fn lstm_gate_slices_of_a_gemm(seed in any::<u64>(), batch in 1usize..7, hidden in 1usize..23, steps in 1usize..4) {
        // x [steps, batch, 4h] precomputed input projection, one cell step
        // per leading-axis slice; gates sliced into four [batch, h] chunks.
        let mut g = Graph::new();
        let x = g.input("x", f32_shape([steps, batch, 4 * hidden])).unwrap();
        let w = g.input("w", f32_shape([hidden, 4 * hidden])).unwrap();
        let h0 = g.input("h0", f32_shape([batch, hidden])).unwrap();
        let mut c = g.input("c0", f32_shape([batch, hidden])).unwrap();
        let mut h = h0;
        for t in 0..steps {
            let xt = g.slice(x, &[t, 0, 0], &[t + 1, batch, 4 * hidden], &[1, 1, 1]).unwrap();
            let xt = g.reshape(xt, [batch, 4 * hidden]).unwrap();
            let hw = g.matmul(h, w).unwrap();
            let gates = g.add(hw, xt).unwrap();
            let chunk = |g: &mut Graph, j: usize| g.slice(gates, &[0, j * hidden], &[batch, (j + 1) * hidden], &[1, 1]).unwrap();
            let (gi, gf, gg, go) = (chunk(&mut g, 0), chunk(&mut g, 1), chunk(&mut g, 2), chunk(&mut g, 3));
            let i = g.sigmoid(gi).unwrap();
            let f = g.sigmoid(gf).unwrap();
            let gt = g.tanh(gg).unwrap();
            let o = g.sigmoid(go).unwrap();
            let fc = g.mul(f, c).unwrap();
            let ig = g.mul(i, gt).unwrap();
            c = g.add(fc, ig).unwrap();
            let tc = g.tanh(c).unwrap();
            h = g.mul(o, tc).unwrap();
        }
        g.set_output("h", h).unwrap();
        g.set_output("c", c).unwrap();
        let loss = g.sum(h, &[0, 1], false).unwrap();
        g.set_output("loss", loss).unwrap();
        check(&g, &random_inputs(&g, seed), 1e-4, 1e-5);
        assert_no_slice_kernels(&g);
    }
}

proptest! {
    #![proptest_config(cfg())]

    /// Contiguous slices (unit axes, one partial axis, whole axes) are views
    /// at a byte offset: read by GEMMs, loops and outputs, of inputs, of
    /// params and of intermediates, and through further views.
    #[test]
    fn contiguous_slices_are_offset_views(seed in any::<u64>(), dims in proptest::collection::vec(1usize..7, 1..4), k in 0usize..3, lo in 0usize..6, len in 1usize..7) {
        let k = k % dims.len();
        let mut st = seed;
        let mut bits = move |n: usize| {
            st = st.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((st >> 33) as usize) % n.max(1)
        };
        let mut start: Vec<usize> = dims.iter().map(|&d| bits(d)).collect();
        let mut end: Vec<usize> = start.iter().map(|&s| s + 1).collect();
        start[k] = lo % dims[k];
        end[k] = (start[k] + len).min(dims[k]);
        for d in k + 1..dims.len() {
            start[d] = 0;
            end[d] = dims[d];
        }
        let step = vec![1; dims.len()];
        let mut g = Graph::new();
        let x = g.input("x", f32_shape(dims.clone())).unwrap();
        let p = g.param("p", f32_shape(dims.clone())).unwrap();
        let xs = g.slice(x, &start, &end, &step).unwrap();
        g.set_output("x_slice", xs).unwrap();
        let n: usize = g.ty(xs).numel();
        let last = *dims.last().unwrap();
        let rows = g.reshape(xs, [n / last.min(n).max(1), last.min(n).max(1)]).unwrap();
        let cols = g.ty(rows).shape.0[1];
        let w = g.input("w", f32_shape([cols, 3])).unwrap();
        let mm = g.matmul(rows, w).unwrap();
        g.set_output("matmul", mm).unwrap();
        let ps = g.slice(p, &start, &end, &step).unwrap();
        let e = g.exp(ps).unwrap();
        let prod = g.mul(e, xs).unwrap();
        g.set_output("loop", prod).unwrap();
        // A slice of an intermediate, through a reshape, sliced again.
        let t = g.tanh(x).unwrap();
        let total: usize = dims.iter().product();
        let flat = g.reshape(t, [total]).unwrap();
        let a = total / 3;
        let tail = g.slice(flat, &[a], &[total], &[1]).unwrap();
        let tail2 = g.slice(tail, &[(total - a) / 2], &[total - a], &[1]).unwrap();
        let r = g.sum(tail2, &[0], false).unwrap();
        g.set_output("tail", tail2).unwrap();
        g.set_output("tail_sum", r).unwrap();
        let mut vals = random_inputs(&g, seed);
        vals.insert("p".into(), tensor(seed ^ 5, &f32_shape(dims.clone())));
        check(&g, &vals, 1e-4, 1e-4);
        let exe = CpuBackend::new().compile_cpu(&g).expect("cpu compiles");
        let text = exe.partition_text();
        prop_assert!(text.contains(&format!("view {xs} (slice) aliases {x}")), "{}", text);
        assert_no_slice_kernels(&g);
    }
}

/// A state updated from slices of itself is copied, not computed in place
/// (the loop would overwrite elements another position still reads).
#[test]
fn a_state_update_reading_slices_of_itself_is_correct() {
    let mut g = Graph::new();
    let s = g.state_input("s", f32_shape([4, 6])).unwrap();
    let shifted = g.slice(s, &[0, 1], &[4, 6], &[1, 1]).unwrap();
    let padded = g.pad(shifted, &[0, 0], &[0, 1], 0.0).unwrap();
    let head = g.slice(s, &[0, 0], &[4, 6], &[1, 1]).unwrap();
    let upd = g.add(padded, head).unwrap();
    g.set_update("s", upd).unwrap();
    g.set_output("y", upd).unwrap();
    let mut vals = BTreeMap::new();
    vals.insert("s".to_string(), tensor(3, &f32_shape([4, 6])));
    check(&g, &vals, 1e-6, 1e-6);
}
