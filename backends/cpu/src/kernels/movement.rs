//! Data movement: strided copies (permute, broadcast, slice), concat and
//! pad, each a walk that merges contiguous runs into one copy.

use kiln_ir::{DType, TensorType};

use crate::runtime::pool::{Pool, Sp};

/// Copies elements with a strided source walk: out[i] = x[offset(i)].
/// Copies `dims` elements from `x` (element strides `src_strides`, start
/// `base`) into contiguous row-major `out`.
unsafe fn strided_copy(x: *const u8, esz: usize, odims: &[usize], src_strides: &[isize], base: isize, out: *mut u8) {
    let dst = crate::kernels::program::row_major(odims);
    unsafe { strided_move(x.offset(base * esz as isize), src_strides, out, &dst, odims, esz) }
}

/// Copies the `dims`-shaped block at `src` (element strides `ss`) to `dst`
/// (element strides `ds`). Dims of extent 1 are dropped and dims contiguous
/// in both are merged, so the innermost loop is one `memcpy` per run when
/// both sides are contiguous there: a time-step slice or a pad interior is a
/// handful of row copies rather than a per-element index walk.
unsafe fn strided_move(src: *const u8, ss: &[isize], dst: *mut u8, ds: &[isize], dims: &[usize], esz: usize) {
    if dims.contains(&0) {
        return;
    }
    // (extent, src stride, dst stride), outermost first, coalesced.
    let mut v: Vec<(usize, isize, isize)> = Vec::with_capacity(dims.len());
    for d in 0..dims.len() {
        if dims[d] == 1 {
            continue;
        }
        if let Some(last) = v.last_mut() {
            if last.1 == ss[d] * dims[d] as isize && last.2 == ds[d] * dims[d] as isize {
                *last = (last.0 * dims[d], ss[d], ds[d]);
                continue;
            }
        }
        v.push((dims[d], ss[d], ds[d]));
    }
    let (run, run_bytes, rs, rd) = match v.last() {
        Some(&(e, 1, 1)) => {
            v.pop();
            (1usize, e * esz, 0isize, 0isize)
        }
        Some(&(e, s, d)) => {
            v.pop();
            (e, esz, s, d)
        }
        None => (1, esz, 0, 0),
    };
    let outer: usize = v.iter().map(|t| t.0).product();
    let r = v.len();
    let mut idx = vec![0usize; r];
    let (es, ed) = (esz as isize, esz as isize);
    for _ in 0..outer {
        let mut so = 0isize;
        let mut dof = 0isize;
        for d in 0..r {
            so += idx[d] as isize * v[d].1;
            dof += idx[d] as isize * v[d].2;
        }
        unsafe {
            let (s0, d0) = (src.offset(so * es), dst.offset(dof * ed));
            if run == 1 {
                std::ptr::copy_nonoverlapping(s0, d0, run_bytes);
            } else if esz == 4 {
                for j in 0..run as isize {
                    *(d0.offset(j * rd * 4) as *mut u32) = *(s0.offset(j * rs * 4) as *const u32);
                }
            } else {
                for j in 0..run as isize {
                    std::ptr::copy_nonoverlapping(s0.offset(j * rs * es), d0.offset(j * rd * ed), esz);
                }
            }
        }
        for d in (0..r).rev() {
            idx[d] += 1;
            if idx[d] < v[d].0 {
                break;
            }
            idx[d] = 0;
        }
    }
}

pub(super) unsafe fn permute(x: *mut u8, xt: &TensorType, perm: &[usize], out: *mut u8) {
    let s = crate::kernels::program::row_major(&xt.shape.0);
    let odims: Vec<usize> = perm.iter().map(|&p| xt.shape.0[p]).collect();
    let ss: Vec<isize> = perm.iter().map(|&p| s[p]).collect();
    unsafe { strided_copy(x, xt.dtype.size_bytes(), &odims, &ss, 0, out) }
}

pub(super) unsafe fn broadcast(x: *mut u8, xt: &TensorType, out: *mut u8, ot: &TensorType) {
    let s = crate::kernels::program::row_major(&xt.shape.0);
    let off = ot.shape.rank() - xt.shape.rank();
    let ss: Vec<isize> = (0..ot.shape.rank()).map(|j| if j < off || xt.shape.0[j - off] == 1 { 0 } else { s[j - off] }).collect();
    unsafe { strided_copy(x, xt.dtype.size_bytes(), &ot.shape.0, &ss, 0, out) }
}

pub(super) unsafe fn slice(x: *mut u8, xt: &TensorType, start: &[usize], step: &[usize], out: *mut u8, ot: &TensorType) {
    let s = crate::kernels::program::row_major(&xt.shape.0);
    let base: isize = (0..s.len()).map(|d| start[d] as isize * s[d]).sum();
    let ss: Vec<isize> = (0..s.len()).map(|d| s[d] * step[d] as isize).collect();
    unsafe { strided_copy(x, xt.dtype.size_bytes(), &ot.shape.0, &ss, base, out) }
}

pub(super) unsafe fn concat(parts: &[(*mut u8, &TensorType)], axis: usize, out: *mut u8, ot: &TensorType) {
    let esz = ot.dtype.size_bytes();
    let outer: usize = ot.shape.0[..axis].iter().product();
    let inner: usize = ot.shape.0[axis + 1..].iter().product();
    let orow = ot.shape.0[axis] * inner;
    let mut col = 0;
    for (p, t) in parts {
        let run = t.shape.0[axis] * inner;
        for o in 0..outer {
            unsafe { std::ptr::copy_nonoverlapping(p.add(o * run * esz), out.add((o * orow + col) * esz), run * esz) };
        }
        col += run;
    }
}

pub(super) unsafe fn pad(pool: &Pool, x: *mut u8, xt: &TensorType, lo: &[usize], value: f64, out: *mut u8, ot: &TensorType) {
    let n = ot.numel();
    // The fill is pure memory traffic (LSTM gradients pad each time step to
    // the whole sequence: 4 MiB per pad), so large ones use every thread.
    let t = pool.threads();
    let chunks = if n * ot.dtype.size_bytes() >= 256 * 1024 { t * 2 } else { 1 };
    let o = Sp(out);
    pool.run(chunks, &|part, _| {
        let out = o.get();
        let (a, b) = (n * part / chunks, n * (part + 1) / chunks);
        let m = b - a;
        unsafe {
            match ot.dtype {
                DType::F32 => std::slice::from_raw_parts_mut((out as *mut f32).add(a), m).fill(value as f32),
                DType::F64 => std::slice::from_raw_parts_mut((out as *mut f64).add(a), m).fill(value),
                DType::I64 => std::slice::from_raw_parts_mut((out as *mut i64).add(a), m).fill(value as i64),
                DType::I32 => std::slice::from_raw_parts_mut((out as *mut i32).add(a), m).fill(value as i32),
                DType::Bool => std::ptr::write_bytes(out.add(a), (value != 0.0) as u8, m),
            }
        }
    });
    let os = crate::kernels::program::row_major(&ot.shape.0);
    let base: isize = (0..os.len()).map(|d| lo[d] as isize * os[d]).sum();
    let esz = xt.dtype.size_bytes();
    let xs = crate::kernels::program::row_major(&xt.shape.0);
    unsafe { strided_move(x, &xs, out.offset(base * esz as isize), &os, &xt.shape.0, esz) }
}
