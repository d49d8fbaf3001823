//! The CPU's use of the shared loop program (`kiln_passes::loop_program`):
//! the portable evaluator, which runs a program with plain scalar code
//! where no compiled function exists (f64 graphs, tests).

pub use kiln_passes::loop_program::*;

use kiln_ir::scalar;
use kiln_ir::{BinaryOp, NodeId, ReduceOp, UnaryOp};

use crate::runtime::buffers::{load, store};
use crate::CpuError;

// ---- the portable evaluator ------------------------------------------------

fn binary_int(op: BinaryOp, a: f64, b: f64, node: Option<NodeId>) -> Result<f64, CpuError> {
    scalar::binary_int(op, a as i64, b as i64)
        .map(|v| v as f64)
        .map_err(|e| CpuError::Run(format!("{}: {e}", node.map(|n| n.to_string()).unwrap_or_default())))
}

/// Runs the program over dimension-0 range `[lo, hi)` of the *uncollapsed*
/// loop with plain scalar code in f64. Reduction outputs must already hold
/// the identity.
///
/// # Safety
/// Every slot pointer must be valid for the accesses the strides imply.
/// `vals` and `idx` are caller-owned scratch (reused between runs).
pub unsafe fn eval(p: &Program, slots: &[*mut u8], lo: usize, hi: usize, vals: &mut Vec<f64>, idx: &mut Vec<usize>) -> Result<(), CpuError> {
    let rank = p.dims.len();
    let inner: usize = p.dims.iter().skip(1).product();
    vals.resize(p.instrs.len(), 0.0);
    idx.resize(rank, 0);
    // A zero extent past the first axis means no elements: nothing to do
    // (reduction outputs already hold their identity).
    if rank > 0 && inner == 0 {
        return Ok(());
    }
    let outer_range = if rank == 0 { 0..1 } else { lo..hi };
    for i0 in outer_range {
        for r in 0..inner {
            if rank > 0 {
                idx[0] = i0;
                let mut rem = r;
                for d in (1..rank).rev() {
                    idx[d] = rem % p.dims[d];
                    rem /= p.dims[d];
                }
            }
            let off = |s: &[isize]| -> isize { idx.iter().zip(s).map(|(&i, &st)| i as isize * st).sum() };
            for (ii, ins) in p.instrs.iter().enumerate() {
                let v = match ins.ins {
                    Ins::Leaf(l) => {
                        let leaf = &p.leaves[l];
                        match leaf.constant {
                            Some(c) => c,
                            None => unsafe { load(leaf.dtype, slots[leaf.slot], leaf.offset + off(&leaf.strides) as usize) },
                        }
                    }
                    Ins::Unary(u, a) => {
                        if ins.dtype.is_float() {
                            scalar::unary(u, vals[a])
                        } else {
                            // Integer neg/abs/sign.
                            let x = vals[a] as i64;
                            match u {
                                UnaryOp::Neg => x.wrapping_neg() as f64,
                                UnaryOp::Abs => x.wrapping_abs() as f64,
                                _ => x.signum() as f64,
                            }
                        }
                    }
                    Ins::Binary(b, x, y) => {
                        if ins.dtype.is_float() {
                            scalar::binary(b, vals[x], vals[y])
                        } else {
                            binary_int(b, vals[x], vals[y], ins.node)?
                        }
                    }
                    Ins::Compare(c, x, y) => scalar::compare(c, vals[x], vals[y]) as u8 as f64,
                    Ins::Select(m, a, b) => {
                        if vals[m] != 0.0 {
                            vals[a]
                        } else {
                            vals[b]
                        }
                    }
                    Ins::Cast(a) => scalar::cast(ins.dtype, vals[a]),
                    Ins::Copy(a) => vals[a],
                };
                vals[ii] = scalar::round_to(ins.dtype, v);
            }
            for s in &p.stores {
                let o = off(&s.strides) as usize;
                let v = vals[s.instr];
                match s.reduce {
                    None => unsafe { store(s.dtype, slots[s.slot], o, v) },
                    Some(op) => unsafe {
                        let acc = load(s.dtype, slots[s.slot], o);
                        let nv = if s.dtype.is_float() { scalar::reduce_combine(op, acc, v) } else { int_combine(op, acc, v) };
                        store(s.dtype, slots[s.slot], o, nv)
                    },
                }
            }
        }
    }
    Ok(())
}

fn int_combine(op: ReduceOp, acc: f64, v: f64) -> f64 {
    let (a, b) = (acc as i64, v as i64);
    (match op {
        ReduceOp::Sum | ReduceOp::Mean => a.wrapping_add(b),
        ReduceOp::Max => a.max(b),
        ReduceOp::Min => a.min(b),
    }) as f64
}
