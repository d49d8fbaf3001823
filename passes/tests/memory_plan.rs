//! Memory planning: liveness-based reuse, persistent buffers, in-place updates.

use std::collections::HashMap;

use kiln_ir::*;
use kiln_passes::memory_plan::{plan_memory, Storage};
use kiln_passes::partition::partition;

/// A training step: y = relu(x @ w + b), loss = mean(y^2), SGD momentum.
fn train_step() -> Graph {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([16, 8])).unwrap();
    let w = g.param("w", f32_shape([8, 4])).unwrap();
    let b = g.param("b", f32_shape([4])).unwrap();
    let y = g.matmul(x, w).unwrap();
    let yb = g.add(y, b).unwrap();
    let r = g.relu(yb).unwrap();
    let sq = g.mul(r, r).unwrap();
    let loss = g.mean_all(sq).unwrap();
    g.set_output("loss", loss).unwrap();
    let grads = kiln_passes::autodiff::grad(&mut g, loss, &[w, b]).unwrap();
    for (name, p, gr) in [("w", w, grads[0]), ("b", b, grads[1])] {
        let bn = format!("{name}.buf");
        let buf = g.state_input(&bn, g.ty(p).clone()).unwrap();
        let m = g.mul_scalar(buf, 0.9).unwrap();
        let nb = g.add(m, gr).unwrap();
        let st = g.mul_scalar(nb, 0.1).unwrap();
        let np = g.sub(p, st).unwrap();
        g.set_update(&bn, nb).unwrap();
        g.set_update(name, np).unwrap();
    }
    g
}

#[test]
fn live_arena_buffers_never_overlap() {
    assert_live_buffers_disjoint(&train_step());
}

/// A projection [T, B, 4H] read a step at a time through offset views
/// (contiguous slices) and gate chunks through strided slices, by kernels
/// long after it is produced, with many values allocated in between.
#[test]
fn sliced_values_stay_live_until_their_views_last_reader() {
    let (t, b, h) = (4, 2, 3);
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([t, b, 4 * h])).unwrap();
    let wh = g.input("wh", f32_shape([h, 4 * h])).unwrap();
    let proj = g.exp(x).unwrap();
    let mut hs = g.input("h0", f32_shape([b, h])).unwrap();
    for s in 0..t {
        let xs = g.slice(proj, &[s, 0, 0], &[s + 1, b, 4 * h], &[1, 1, 1]).unwrap();
        let xs = g.reshape(xs, [b, 4 * h]).unwrap();
        let hw = g.matmul(hs, wh).unwrap();
        let gates = g.add(hw, xs).unwrap();
        let i = g.slice(gates, &[0, 0], &[b, h], &[1, 1]).unwrap();
        let o = g.slice(gates, &[0, 3 * h], &[b, 4 * h], &[1, 1]).unwrap();
        let si = g.sigmoid(i).unwrap();
        let to = g.tanh(o).unwrap();
        hs = g.mul(si, to).unwrap();
    }
    g.set_output("h", hs).unwrap();
    let p = partition(&g).unwrap();
    assert!(p.offsets.len() >= t - 1, "{}", p.to_text(&g));
    assert_live_buffers_disjoint(&g);
}

fn assert_live_buffers_disjoint(g: &Graph) {
    let g = g.clone();
    let p = partition(&g).unwrap();
    let plan = plan_memory(&g, &p, &|_| 0).unwrap();
    // Interval of kernels during which each arena value is live.
    let mut def: HashMap<NodeId, usize> = HashMap::new();
    let mut last: HashMap<NodeId, usize> = HashMap::new();
    for k in &p.kernels {
        for &o in &k.outputs {
            def.insert(o, k.id);
            last.insert(o, k.id);
        }
        for &i in &k.inputs {
            let r = p.root(i);
            if let Some(l) = last.get_mut(&r) {
                *l = (*l).max(k.id);
            }
        }
    }
    for (_, n) in g.outputs() {
        if let Some(l) = last.get_mut(&p.root(*n)) {
            *l = usize::MAX;
        }
    }
    let arena: Vec<(NodeId, usize, usize)> = plan
        .values
        .iter()
        .filter_map(|(n, s)| match s {
            Storage::Arena { offset, bytes } => Some((*n, *offset, *bytes)),
            _ => None,
        })
        .collect();
    // A concat computed in place contains its operands by design.
    let piece_of = |x: NodeId, c: NodeId| plan.concats_in_place.contains(&c) && g.operands(c).iter().any(|&o| p.root(o) == x);
    for (i, &(a, ao, ab)) in arena.iter().enumerate() {
        assert!(ao + ab <= plan.arena_bytes);
        for &(b, bo, bb) in &arena[i + 1..] {
            if piece_of(a, b) || piece_of(b, a) {
                continue;
            }
            let live_together = def[&a] <= last[&b] && def[&b] <= last[&a];
            let overlap = ao < bo + bb && bo < ao + ab;
            assert!(!(live_together && overlap), "{a} and {b} overlap while both live\n{}", plan.to_text(&g));
        }
    }
    assert!(plan.arena_bytes < plan.unshared_bytes, "buffers are reused\n{}", plan.to_text(&g));
    assert_eq!(plan.peak_bytes(), plan.arena_bytes + plan.persistent_bytes + plan.constant_bytes);
}

#[test]
fn params_and_state_are_updated_in_place() {
    let g = train_step();
    let p = partition(&g).unwrap();
    let plan = plan_memory(&g, &p, &|_| 0).unwrap();
    let mut names: Vec<&str> = plan.in_place.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    assert_eq!(names, ["b", "b.buf", "w", "w.buf"], "{}", plan.to_text(&g));
    assert!(plan.copied.is_empty());
    for (name, n) in &plan.in_place {
        assert_eq!(plan.values[n], Storage::Persistent(name.clone()));
    }
    let x = g.find_input("x").unwrap();
    assert_eq!(plan.values[&x], Storage::Input("x".into()));
}

#[test]
fn an_update_read_later_by_another_kernel_is_copied() {
    // p_new = p * 2, but p (old) is read again after p_new's kernel.
    let mut g = Graph::new();
    let p = g.param("p", f32_shape([3])).unwrap();
    let p2 = g.mul_scalar(p, 2.0).unwrap();
    let s = g.sum_all(p2).unwrap();
    let later = g.mul(p, s).unwrap(); // reads old p after the sum
    let t = g.sum_all(later).unwrap();
    g.set_output("t", t).unwrap();
    g.set_update("p", p2).unwrap();
    let part = partition(&g).unwrap();
    let plan = plan_memory(&g, &part, &|_| 0).unwrap();
    assert_eq!(plan.copied, vec![("p".to_string(), p2)], "{}", plan.to_text(&g));
    assert!(plan.in_place.is_empty());
}

#[test]
fn scratch_is_planned_inside_the_arena() {
    let g = train_step();
    let p = partition(&g).unwrap();
    let plan = plan_memory(&g, &p, &|k| if k.id == 0 { 1000 } else { 0 }).unwrap();
    let (off, bytes) = plan.scratch[&0];
    assert_eq!(bytes, 1000);
    assert!(off + bytes <= plan.arena_bytes);
    assert!(plan.to_text(&g).contains("scratch k0"));
}

/// Per-step values stacked along the first axis (slab_concat, row_stack)
/// are computed straight into the stack: each piece's bytes are its run of
/// the concat's buffer, which is live from the first piece on.
#[test]
fn stacked_pieces_are_computed_inside_their_concat() {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([2, 3])).unwrap();
    let w = g.input("w", f32_shape([3, 3])).unwrap();
    let mut h = x;
    let mut steps = Vec::new();
    for _ in 0..3 {
        let m = g.matmul(h, w).unwrap();
        h = g.tanh(m).unwrap();
        let r = g.reshape(h, [1, 2, 3]).unwrap();
        steps.push(r);
    }
    let slab = g.concat(&steps, 0).unwrap();
    let s = g.sum(slab, &[0, 1, 2], false).unwrap();
    g.set_output("s", s).unwrap();
    // Along a later axis the pieces are strided: no placement.
    let side = g.concat(&[x, h], 1).unwrap();
    g.set_output("side", side).unwrap();
    let p = partition(&g).unwrap();
    let plan = plan_memory(&g, &p, &|_| 0).unwrap();
    let text = plan.to_text(&g);
    assert_eq!(plan.concats_in_place.iter().copied().collect::<Vec<_>>(), vec![slab], "{text}");
    let Some(Storage::Arena { offset: base, .. }) = plan.values.get(&slab) else { panic!("{text}") };
    for (i, &r) in steps.iter().enumerate() {
        let piece = p.root(r);
        assert_eq!(plan.arena_offset(piece), Some(base + i * 24), "{text}");
    }
    assert_live_buffers_disjoint(&g);
}
