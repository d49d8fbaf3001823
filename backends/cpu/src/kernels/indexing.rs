//! The kernels that read indices or labels: gather, scatter-add,
//! one-hot, softmax cross-entropy and argmax. An index out of range is
//! an error naming the node, never a read outside a buffer.

use kiln_ir::{NodeId, RunError, TensorType};

use crate::runtime::buffers::{load, store};


fn oob(node: NodeId, index: i64, bound: usize) -> RunError {
    RunError::IndexOutOfRange { node: node.to_string(), index, bound }
}

fn index_at(node: NodeId, v: f64, bound: usize) -> Result<usize, RunError> {
    if v < 0.0 || v >= bound as f64 {
        return Err(oob(node, v as i64, bound));
    }
    Ok(v as usize)
}

pub(super) unsafe fn softmax_ce(node: NodeId, lg: *mut u8, lt: &TensorType, lb: *mut u8, lbt: &TensorType, out: *mut u8) -> Result<(), RunError> {
    let (n, c) = (lt.shape.0[0], lt.shape.0[1]);
    for r in 0..n {
        let label = index_at(node, unsafe { load(lbt.dtype, lb, r) }, c)?;
        let at = |j: usize| unsafe { load(lt.dtype, lg, r * c + j) };
        let m = (0..c).map(at).fold(f64::NEG_INFINITY, f64::max);
        let lse = m + (0..c).map(|j| (at(j) - m).exp()).sum::<f64>().ln();
        unsafe { store(lt.dtype, out, r, lse - at(label)) };
    }
    Ok(())
}

pub(super) unsafe fn argmax(x: *mut u8, xt: &TensorType, axis: usize, out: *mut u8) {
    let d = &xt.shape.0;
    let (outer, ext, inner): (usize, usize, usize) = (d[..axis].iter().product(), d[axis], d[axis + 1..].iter().product());
    let o = out as *mut i64;
    for a in 0..outer {
        for i in 0..inner {
            let mut best = 0usize;
            let mut bv = f64::NAN;
            for e in 0..ext {
                let v = unsafe { load(xt.dtype, x, (a * ext + e) * inner + i) };
                if e == 0 {
                    bv = v;
                    continue;
                }
                if bv.is_nan() {
                    break;
                }
                if v.is_nan() || v > bv {
                    best = e;
                    bv = v;
                }
            }
            unsafe { *o.add(a * inner + i) = best as i64 };
        }
    }
}


#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gather(node: NodeId, data: *mut u8, dt: &TensorType, idx: *mut u8, it: &TensorType, axis: usize, out: *mut u8) -> Result<(), RunError> {
    let d = &dt.shape.0;
    let (outer, ext, inner): (usize, usize, usize) = (d[..axis].iter().product(), d[axis], d[axis + 1..].iter().product());
    let esz = dt.dtype.size_bytes();
    let cols: Vec<usize> = (0..it.numel()).map(|i| index_at(node, unsafe { load(it.dtype, idx, i) }, ext)).collect::<Result<_, _>>()?;
    let mut o = 0;
    for a in 0..outer {
        for &c in &cols {
            unsafe { std::ptr::copy_nonoverlapping(data.add((a * ext + c) * inner * esz), out.add(o * esz), inner * esz) };
            o += inner;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn scatter_add(node: NodeId, idx: *mut u8, it: &TensorType, upd: *mut u8, ut: &TensorType, axis: usize, size: usize, out: *mut u8, ot: &TensorType) -> Result<(), RunError> {
    let ni = it.numel();
    let outer: usize = ut.shape.0[..axis].iter().product();
    let inner: usize = ut.shape.0[axis + it.shape.rank()..].iter().product();
    let rows: Vec<usize> = (0..ni).map(|i| index_at(node, unsafe { load(it.dtype, idx, i) }, size)).collect::<Result<_, _>>()?;
    for i in 0..ot.numel() {
        unsafe { store(ot.dtype, out, i, 0.0) };
    }
    for o in 0..outer {
        for (j, &r) in rows.iter().enumerate() {
            let src = (o * ni + j) * inner;
            let dst = (o * size + r) * inner;
            for e in 0..inner {
                unsafe {
                    let v = load(ot.dtype, out, dst + e) + load(ut.dtype, upd, src + e);
                    store(ot.dtype, out, dst + e, v);
                }
            }
        }
    }
    Ok(())
}

pub(super) unsafe fn one_hot(node: NodeId, idx: *mut u8, it: &TensorType, classes: usize, out: *mut u8) -> Result<(), RunError> {
    let o = out as *mut f32;
    for i in 0..it.numel() * classes {
        unsafe { *o.add(i) = 0.0 };
    }
    for i in 0..it.numel() {
        let c = index_at(node, unsafe { load(it.dtype, idx, i) }, classes)?;
        unsafe { *o.add(i * classes + c) = 1.0 };
    }
    Ok(())
}
