//! gather, scatter_add, one_hot and random_uniform: every shader validates
//! with naga over the attribute combinations, and (where an adapter
//! exists) the device matches the interpreter: gather/one_hot/random bit
//! for bit, scatter_add and an embedding's gradient to f32 rounding, and
//! out-of-range indices fail with the interpreter's error.

mod common;
mod lower_common;

use std::collections::BTreeMap;

use kiln_ir::*;
use lower_common::*;

fn f32s(d: &[usize]) -> TensorType {
    TensorType::new(DType::F32, Shape(d.to_vec()))
}

fn ints(d: DType, dims: &[usize]) -> TensorType {
    TensorType::new(d, Shape(dims.to_vec()))
}

#[test]
fn gather_axes_and_index_ranks() {
    // (data, axis, indices)
    let cases: [(&[usize], usize, &[usize]); 5] =
        [(&[7, 3], 0, &[5]), (&[2, 9, 4], 1, &[3, 2]), (&[4, 65], 1, &[]), (&[1, 5, 1], 2, &[6]), (&[3, 2], 0, &[2, 1, 2])];
    let mut g = Graph::new();
    for (i, (dd, axis, id)) in cases.into_iter().enumerate() {
        let d = g.input(&format!("d{i}"), f32s(dd)).unwrap();
        let dt = if i % 2 == 0 { DType::I64 } else { DType::I32 };
        let ix = g.input(&format!("i{i}"), ints(dt, id)).unwrap();
        let y = g.gather(d, ix, axis).unwrap();
        g.set_output(&format!("y{i}"), y).unwrap();
    }
    // Integer data moves as words too.
    let d = g.input("di", ints(DType::I64, &[4, 3])).unwrap();
    let ix = g.input("ii", ints(DType::I64, &[5])).unwrap();
    let y = g.gather(d, ix, 0).unwrap();
    g.set_output("yi", y).unwrap();
    lower_expect(&g, "gather");
    // Index bound 1 keeps every index in range for every case.
    parity(&g, &inputs(&g, 1, 1), 0.0);
}

#[test]
fn scatter_add_axes_index_ranks_and_repeats() {
    // (updates, axis, index rank, size): updates[axis..axis+rank] is the index shape.
    let cases: [(&[usize], usize, usize, usize); 4] =
        [(&[6, 3], 0, 1, 4), (&[2, 3, 2, 5], 1, 2, 3), (&[4, 70], 1, 1, 2), (&[5, 1], 0, 1, 1)];
    let mut g = Graph::new();
    for (i, (ud, axis, ir, size)) in cases.into_iter().enumerate() {
        let u = g.input(&format!("u{i}"), f32s(ud)).unwrap();
        let ix = g.input(&format!("i{i}"), ints(DType::I64, &ud[axis..axis + ir])).unwrap();
        let y = g.scatter_add(ix, u, axis, size).unwrap();
        g.set_output(&format!("y{i}"), y).unwrap();
    }
    let u = g.input("ui", ints(DType::I32, &[6, 2])).unwrap();
    let ix = g.input("ii", ints(DType::I64, &[6])).unwrap();
    let y = g.scatter_add(ix, u, 0, 3).unwrap();
    g.set_output("yi", y).unwrap();
    lower_expect(&g, "scatter_add");
    let mut vals = inputs(&g, 2, 1);
    // Indices with repeats, within each case's size.
    for (name, size) in [("i0", 4u64), ("i1", 3), ("i2", 2), ("i3", 1), ("ii", 3)] {
        let ty = g.ty(g.find_input(name).unwrap()).clone();
        let v: Vec<f64> = (0..ty.numel()).map(|j| ((j * 7 + 3) as u64 % size) as f64).collect();
        vals.insert(name.into(), HostTensor::from_f64_values(&ty, &v));
    }
    parity(&g, &vals, 1e-6);
}

#[test]
fn one_hot_classes() {
    let mut g = Graph::new();
    for (i, (d, classes)) in [(vec![5usize], 3usize), (vec![2, 3], 70), (vec![], 1)].into_iter().enumerate() {
        let ix = g.input(&format!("i{i}"), ints(DType::I64, &d)).unwrap();
        let y = g.one_hot(ix, classes).unwrap();
        g.set_output(&format!("y{i}"), y).unwrap();
    }
    lower_expect(&g, "one_hot");
    parity(&g, &inputs(&g, 3, 1), 0.0);
}

/// An embedding lookup trained through its gradient: gather forward,
/// scatter_add backward, with repeated tokens.
#[test]
fn embedding_forward_and_backward() {
    let mut g = Graph::new();
    let table = g.param("table", f32s(&[11, 6])).unwrap();
    let tok = g.input("tok", ints(DType::I64, &[3, 5])).unwrap();
    let e = g.gather(table, tok, 0).unwrap();
    let sq = g.mul(e, e).unwrap();
    let loss = g.sum_all(sq).unwrap();
    let grads = kiln_passes::autodiff::grad(&mut g, loss, &[table]).unwrap();
    g.set_output("loss", loss).unwrap();
    g.set_output("dtable", grads[0]).unwrap();
    lower_expect(&g, "scatter_add");
    parity(&g, &inputs(&g, 4, 11), 1e-5);
}

/// One op per graph: with two failing ops the error names the first the
/// interpreter meets, which is the prelude's `fail` to keep (today the last
/// failing dispatch overwrites the flag).
#[test]
fn out_of_range_indices_fail_like_the_interpreter() {
    for op in 0..3 {
        let mut g = Graph::new();
        let ix = g.input("i", ints(DType::I64, &[5])).unwrap();
        let y = match op {
            0 => {
                let d = g.input("d", f32s(&[4, 3])).unwrap();
                g.gather(d, ix, 0).unwrap()
            }
            1 => {
                let u = g.input("u", f32s(&[5, 3])).unwrap();
                g.scatter_add(ix, u, 0, 6).unwrap()
            }
            _ => g.one_hot(ix, 5).unwrap(),
        };
        g.set_output("y", y).unwrap();
        let runs: Vec<_> = [[0, 2, 4, 7, 1], [0, -2, 1, 9, 3], [1, 2, 3, 0, 6], [6, 6, 6, 6, 6]]
            .into_iter()
            .map(|idx| {
                let mut vals = inputs(&g, 5, 1);
                vals.insert("i".into(), HostTensor::from_i64([5], idx.to_vec()).unwrap());
                vals
            })
            .collect();
        same_errors(&g, &runs);
    }
}

/// Bit-identical draws for ranges where the f64 arithmetic of the
/// interpreter rounds (non-power-of-two widths, offsets, negative lows,
/// far-apart magnitudes, tiny widths), at counters that need the high
/// word's sign extension.
#[test]
fn random_uniform_bits_match() {
    let ranges = [
        (0.0, 1.0),
        (-1.0, 1.0),
        (-0.1, 0.1),
        (0.1, 0.3),
        (3.7, 1.0e6),
        (-5.0, -4.9999),
        (1.0e30, 1.0000001e30),
        (-1.0e-3, 2.5e-3),
        (1.0e-40, 1.0),
        (-1.0e-30, 1.0e-30),
        (0.0, 1.0e-42),
        (-3.4e38, 3.4e38),
        (0.999999, 1.0),
        (-7.0, 0.0),
        (-0.0, 0.5),
    ];
    // The ranges where plain f32 arithmetic would give other bits, so the
    // device's integer rounding is what makes them equal.
    let mut differ = 0;
    for (i, (lo, hi)) in ranges.into_iter().enumerate() {
        let seed = 0x1234_5678_9abc_def0 ^ i as u64;
        let naive = |j: u64| (lo as f32) + ((hi - lo) as f32) * random::uniform01(seed, 1, j);
        let n = (0..201).filter(|&j| naive(j).to_bits() != random::uniform(seed, 1, j, lo, hi).to_bits()).count();
        differ += (n > 0) as usize;
    }
    assert!(differ >= 4, "only {differ} ranges exercise the rounding");
    let mut g = Graph::new();
    let c = g.input("c", ints(DType::I64, &[])).unwrap();
    for (i, (lo, hi)) in ranges.into_iter().enumerate() {
        let y = g.random_uniform(c, [16, 67], 0x1234_5678_9abc_def0 ^ i as u64, lo, hi).unwrap();
        g.set_output(&format!("r{i:02}"), y).unwrap();
    }
    lower_expect(&g, "random_uniform");
    let runs: Vec<BTreeMap<String, HostTensor>> = [0i64, 1, -1, i32::MAX as i64, i32::MIN as i64]
        .into_iter()
        .map(|c| BTreeMap::from([("c".to_string(), HostTensor::from_i64(Shape::scalar(), vec![c]).unwrap())]))
        .collect();
    parity_runs(&g, &runs, 0.0);
}
