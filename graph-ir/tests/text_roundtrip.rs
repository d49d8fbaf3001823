//! Property: for random valid graphs (random shapes, many op kinds, holes in
//! the ids from removed nodes), print(parse(print(g))) == print(g), and the
//! parsed graph has the same ids, nodes and edges.

use kiln_ir::text::{parse, print};
use kiln_ir::*;
use proptest::prelude::*;

type Step = (u8, u32, u32, u64);

fn shape_from(bits: u64) -> Vec<usize> {
    let rank = (bits % 4) as usize;
    (0..rank).map(|i| 1 + ((bits >> (8 + 4 * i)) % 4) as usize).collect()
}

fn pick(ids: &[NodeId], r: u32) -> NodeId {
    ids[r as usize % ids.len()]
}

fn f32_value(bits: u64, k: u64) -> f32 {
    let b = bits.rotate_left((k * 13) as u32);
    match b % 8 {
        0 => f32::NAN,
        1 => f32::INFINITY,
        2 => -0.0,
        3 => f32::from_bits(b as u32), // any bit pattern, NaN payloads included
        _ => ((b >> 8) % 2001) as f32 / 8.0 - 125.0,
    }
}

/// Builds a graph from random steps; steps whose op does not type-check are
/// skipped (the builder rejects them), so every graph is valid.
fn build(steps: &[Step]) -> Graph {
    let mut g = Graph::new();
    let mut ids: Vec<NodeId> = Vec::new();
    for (k, &(kind, a, b, bits)) in steps.iter().enumerate() {
        let name = format!("in{k}");
        let r = match kind % 20 {
            0 => g.input(&name, f32_shape(shape_from(bits))),
            1 => g.param(&name, f32_shape(shape_from(bits))),
            2 => g.state_input(&name, i64_shape(shape_from(bits))),
            3 => {
                let s = shape_from(bits);
                let n: usize = s.iter().product();
                let vals = (0..n as u64).map(|i| f32_value(bits, i)).collect();
                g.constant(HostTensor::from_f32(s, vals).unwrap())
            }
            4 => g.constant(HostTensor::from_i64([2], vec![bits as i64, -(a as i64)]).unwrap()),
            _ if ids.is_empty() => continue,
            5 => g.unary(UnaryOp::ALL[a as usize % 14], pick(&ids, b)),
            6 => g.binary(BinaryOp::ALL[a as usize % 7], pick(&ids, b), pick(&ids, (bits >> 3) as u32)),
            7 => {
                let (x, y) = (pick(&ids, a), pick(&ids, b));
                match g.compare(CompareOp::ALL[bits as usize % 6], x, y) {
                    Ok(m) => g.select(m, x, y),
                    Err(e) => Err(e),
                }
            }
            8 => {
                let x = pick(&ids, a);
                let rank = g.ty(x).shape.rank();
                let axes: Vec<usize> = (0..rank).filter(|i| bits >> i & 1 == 1).collect();
                g.reduce(ReduceOp::ALL[b as usize % 4], x, &axes, bits & 64 != 0)
            }
            9 => {
                let x = pick(&ids, a);
                let n = g.ty(x).numel();
                g.reshape(x, [n])
            }
            10 => {
                let x = pick(&ids, a);
                let perm: Vec<usize> = (0..g.ty(x).shape.rank()).rev().collect();
                g.permute(x, &perm)
            }
            11 => g.matmul_t(pick(&ids, a), pick(&ids, b), bits & 1 != 0, bits & 2 != 0),
            12 => g.cast(pick(&ids, a), DType::ALL[b as usize % 5]),
            13 => {
                let x = pick(&ids, a);
                let r = g.ty(x).shape.rank();
                g.concat(&[x, x], b as usize % r.max(1))
            }
            14 => {
                let x = pick(&ids, a);
                let d = g.ty(x).shape.0.clone();
                let start: Vec<usize> = d.iter().map(|&n| (bits as usize) % n.max(1)).collect();
                let step: Vec<usize> = d.iter().map(|_| 1 + b as usize % 2).collect();
                g.slice(x, &start, &d, &step)
            }
            15 => {
                let x = pick(&ids, a);
                let r = g.ty(x).shape.rank();
                g.pad(x, &vec![1; r], &vec![b as usize % 2; r], f32_value(bits, 1) as f64)
            }
            16 => g.argmax(pick(&ids, a), b as usize % 3, bits & 1 != 0),
            17 => {
                let x = pick(&ids, a);
                let mut s = vec![2];
                s.extend_from_slice(&g.ty(x).shape.0);
                g.broadcast_to(x, s)
            }
            18 => {
                let c = g.scalar(bits as f64 % 7.0, DType::I64).unwrap();
                g.random_uniform(c, shape_from(bits), bits, -1.0, 0.5 + a as f64 / 7.0)
            }
            _ => g.stop_gradient(pick(&ids, a)),
        };
        if let Ok(id) = r {
            ids.push(id);
        }
    }
    // Holes: remove some unused nodes (never inputs of other nodes).
    for (i, &id) in ids.iter().enumerate() {
        if i % 3 == 1 && g.users(id).is_empty() {
            g.remove_node(id);
        }
    }
    let live: Vec<NodeId> = g.node_ids();
    for (i, &id) in live.iter().enumerate() {
        if i % 4 == 0 {
            g.set_output(&format!("out \"{i}\""), id).unwrap();
        }
        if g.ty(id).shape.rank() == 0 && g.ty(id).dtype.is_float() && i % 2 == 0 {
            let wrt: Vec<NodeId> = live.iter().copied().filter(|&w| g.op(w).is_input()).take(2).collect();
            if !wrt.is_empty() {
                g.add_grad_request(id, wrt).unwrap();
            }
        }
    }
    for (id, name, role) in g.inputs().into_iter().map(|(i, n, r)| (i, n.to_string(), r)).collect::<Vec<_>>() {
        if role.is_persistent() {
            g.set_update(&name, id).unwrap();
        }
    }
    verify(&g).unwrap();
    g
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn print_parse_print_is_identity(steps in prop::collection::vec((any::<u8>(), any::<u32>(), any::<u32>(), any::<u64>()), 1..48)) {
        let g = build(&steps);
        let text = print(&g);
        let back = match parse(&text, "rt.kir") {
            Ok(b) => b,
            Err(e) => panic!("{}\n---\n{text}", e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")),
        };
        prop_assert_eq!(print(&back), text.clone());
        prop_assert_eq!(back.node_ids(), g.node_ids());
        for id in g.node_ids() {
            prop_assert_eq!(back.operands(id), g.operands(id));
            prop_assert_eq!(&back.node(id).unwrap().ty, &g.node(id).unwrap().ty);
        }
        prop_assert_eq!(back.outputs(), g.outputs());
        prop_assert_eq!(back.updates(), g.updates());
        prop_assert_eq!(back.grad_requests(), g.grad_requests());
    }
}

