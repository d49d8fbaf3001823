//! Max and average pooling and their gradients, split by planes (image x
//! channel) across the pool.

use kiln_ir::{DType, Op, Pool2dAttrs, RunError, TensorType};

use crate::lower::jit::JitFn;
use crate::kernels::{Float, NativeOp};
use crate::runtime::pool::{Pool, Sp};

/// Runs one pooling op (`MaxPool2d`, `AvgPool2d` and their gradients).
///
/// # Safety
/// As `kernels::run`.
pub unsafe fn run(n: &NativeOp, slots: &[*mut u8], pool: &Pool) -> Result<(), RunError> {
    let p = |i: usize| slots[n.ins[i].0];
    let t = |i: usize| &n.ins[i].1;
    let out = slots[n.out.0];
    let oty = &n.out.1;
    let float = t(0).dtype;
    if let [f] = n.code[..] {
        unsafe { run_generated(n, f, slots, pool) };
        return Ok(());
    }
    match &n.op {
        Op::MaxPool2d(pa) => by_float!(float, n, max_pool(pool, p(0), t(0), pa, out, oty, None)),
        Op::MaxPool2dGrad(pa) => by_float!(float, n, max_pool(pool, p(0), t(0), pa, out, t(1), Some(p(1)))),
        Op::AvgPool2d { pool, count_include_pad } => by_float!(float, n, avg_pool(p(0), t(0), pool, *count_include_pad, out, oty)),
        Op::AvgPool2dGrad { pool, count_include_pad, .. } => {
            by_float!(float, n, avg_pool_grad(p(0), t(0), pool, *count_include_pad, out, oty))
        }
        other => return Err(RunError::Backend(format!("{}: {} is not a pooling op", n.node, other.name()))),
    }
    Ok(())
}

/// A pooling op through its generated function (`lower/pool.rs`, f32),
/// planes split across the pool. Its args: the op's first operand, the
/// result, then the second operand if any (max gradient: x, dx, dy).
unsafe fn run_generated(n: &NativeOp, f: JitFn, slots: &[*mut u8], pool: &Pool) {
    let args = [slots[n.ins[0].0], slots[n.out.0], n.ins.get(1).map(|i| slots[i.0]).unwrap_or(std::ptr::null_mut())];
    // Planes and elements per plane of the larger side (x or dx).
    let big = if matches!(n.op, Op::AvgPool2dGrad { .. }) { &n.out.1 } else { &n.ins[0].1 };
    let s = &big.shape.0;
    let planes = s[0] * s[1];
    // Below a few thousand elements waking a worker costs more than it saves.
    let chunks = if planes * s[2] * s[3] < 8192 { 1 } else { planes.min(pool.threads() * 4) };
    let argv = Sp(args.as_ptr() as *mut *mut u8);
    pool.run(chunks, &|part, _| {
        let r = images(planes, chunks, part);
        if !r.is_empty() {
            unsafe { f(argv.get() as *const *mut u8, r.start as i64, r.end as i64) };
        }
    });
}

/// Images `[lo, hi)` of chunk `part` when `n` images go to `t` chunks.
fn images(n: usize, t: usize, part: usize) -> std::ops::Range<usize> {
    (n * part / t)..(n * (part + 1) / t)
}


fn window(p: &Pool2dAttrs, axis: usize, o: usize, bound: usize) -> std::ops::Range<usize> {
    let start = (o * p.stride[axis]) as isize - p.padding[axis] as isize;
    let end = start + p.kernel[axis] as isize;
    (start.max(0) as usize)..(end.min(bound as isize).max(0) as usize)
}

/// Max pooling, or (with `dy`) its gradient into `out` shaped like x.
/// The first maximum of each window wins; a NaN wins like in PyTorch.
unsafe fn max_pool<F: Float>(pool: &Pool, x: *mut u8, xt: &TensorType, p: &Pool2dAttrs, out: *mut u8, yt: &TensorType, dy: Option<*mut u8>) {
    let s = &xt.shape.0;
    let (planes, h, w) = (s[0] * s[1], s[2], s[3]);
    let (ho, wo) = (yt.shape.0[2], yt.shape.0[3]);
    let (x, out) = (Sp(x as *mut F), Sp(out as *mut F));
    let dy = dy.map(|d| Sp(d as *mut F));
    let chunks = planes.min(pool.threads() * 4);
    pool.run(chunks, &|part, _| {
        let (x, out, dy) = (x, out, dy);
        for pl in images(planes, chunks, part) {
            let xp = unsafe { x.get().add(pl * h * w) };
            if dy.is_some() {
                for i in 0..h * w {
                    unsafe { *out.get().add(pl * h * w + i) = F::default() };
                }
            }
            if p.kernel == [2, 2] && p.stride == [2, 2] && p.padding == [0, 0] {
                // The common 2x2 pool, unrolled (first maximum, NaN wins).
                let pick = |bi: usize, bv: F, i: usize, v: F| -> (usize, F) {
                    #[allow(clippy::eq_op)]
                    let better = (v > bv) | ((v != v) & (bv == bv));
                    if better { (i, v) } else { (bi, bv) }
                };
                for oh in 0..ho {
                    for ow in 0..wo {
                        let i0 = 2 * oh * w + 2 * ow;
                        let at = |i: usize| unsafe { *xp.add(i) };
                        let (bi, bv) = (i0, at(i0));
                        let (bi, bv) = pick(bi, bv, i0 + 1, at(i0 + 1));
                        let (bi, bv) = pick(bi, bv, i0 + w, at(i0 + w));
                        let (bi, bv) = pick(bi, bv, i0 + w + 1, at(i0 + w + 1));
                        let o = (pl * ho + oh) * wo + ow;
                        match dy {
                            None => unsafe { *out.get().add(o) = bv },
                            Some(d) => unsafe { *out.get().add(pl * h * w + bi) += *d.get().add(o) },
                        }
                    }
                }
                continue;
            }
            for oh in 0..ho {
                let rr = window(p, 0, oh, h);
                for ow in 0..wo {
                    let cr = window(p, 1, ow, w);
                    let mut bi = rr.start * w + cr.start;
                    let mut bv = unsafe { *xp.add(bi) };
                    // Branch-free (cmov): data-dependent branches here
                    // mispredict about half the time. Once a NaN is the
                    // best, nothing beats it (the first NaN wins).
                    for ih in rr.clone() {
                        for iw in cr.clone() {
                            let i = ih * w + iw;
                            let v = unsafe { *xp.add(i) };
                            #[allow(clippy::eq_op)]
                            let better = (v > bv) | ((v != v) & (bv == bv));
                            bi = if better { i } else { bi };
                            bv = if better { v } else { bv };
                        }
                    }
                    let o = (pl * ho + oh) * wo + ow;
                    match dy {
                        None => unsafe { *out.get().add(o) = bv },
                        Some(d) => unsafe { *out.get().add(pl * h * w + bi) += *d.get().add(o) },
                    }
                }
            }
        }
    });
}

unsafe fn avg_pool<F: Float>(x: *mut u8, xt: &TensorType, p: &Pool2dAttrs, incl: bool, out: *mut u8, yt: &TensorType) {
    let s = &xt.shape.0;
    let (planes, h, w) = (s[0] * s[1], s[2], s[3]);
    let (ho, wo) = (yt.shape.0[2], yt.shape.0[3]);
    let (x, out) = (x as *const F, out as *mut F);
    for pl in 0..planes {
        for oh in 0..ho {
            let rows = window(p, 0, oh, h);
            for ow in 0..wo {
                let cols = window(p, 1, ow, w);
                let mut sum = 0f64;
                for ih in rows.clone() {
                    for iw in cols.clone() {
                        sum += unsafe { *x.add((pl * h + ih) * w + iw) }.f64();
                    }
                }
                let div = if incl { (p.kernel[0] * p.kernel[1]) as f64 } else { (rows.len() * cols.len()) as f64 };
                unsafe { *out.add((pl * ho + oh) * wo + ow) = F::of(sum / div) };
            }
        }
    }
}

unsafe fn avg_pool_grad<F: Float>(dy: *mut u8, dyt: &TensorType, p: &Pool2dAttrs, incl: bool, dx: *mut u8, dxt: &TensorType) {
    let s = &dxt.shape.0;
    let (planes, h, w) = (s[0] * s[1], s[2], s[3]);
    let (ho, wo) = (dyt.shape.0[2], dyt.shape.0[3]);
    let (dy, dx) = (dy as *const F, dx as *mut F);
    for i in 0..dxt.numel() {
        unsafe { *dx.add(i) = F::default() };
    }
    for pl in 0..planes {
        for oh in 0..ho {
            let rows = window(p, 0, oh, h);
            for ow in 0..wo {
                let cols = window(p, 1, ow, w);
                let div = if incl { (p.kernel[0] * p.kernel[1]) as f64 } else { (rows.len() * cols.len()) as f64 };
                let g = F::of(unsafe { *dy.add((pl * ho + oh) * wo + ow) }.f64() / div);
                for ih in rows.clone() {
                    for iw in cols.clone() {
                        unsafe { *dx.add((pl * h + ih) * w + iw) += g };
                    }
                }
            }
        }
    }
}
