//! GEMM and its epilogues: the f32/f64 `Float` arithmetic every
//! contraction is written over (the `gemm` crate, `matrixmultiply`, and
//! the no-pack kernels of `gemv.rs` and `small_gemm.rs`, picked by the
//! whole product's shape), matmul and dense ops, products split across
//! the pool with an epilogue run per block while it is hot.

use kiln_ir::{Activation, DType, Op, TensorType};

use super::NativeOp;
use crate::runtime::pool::{Pool, Sp};

/// The f32/f64 arithmetic the contraction kernels are written over.
pub trait Float: Send + Sync + Copy + Default + PartialOrd + std::ops::Add<Output = Self> + std::ops::AddAssign + std::ops::Mul<Output = Self> + 'static {
    fn of(v: f64) -> Self;
    fn f64(self) -> f64;
    /// C = alpha * A B + beta * C with arbitrary strides (in elements).
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(m: usize, k: usize, n: usize, a: *const Self, rsa: isize, csa: isize, b: *const Self, rsb: isize, csb: isize, beta: Self, c: *mut Self, rsc: isize, csc: isize);
    /// `gemm` on a block of a `whole.0` x `whole.1` product, with the kernel
    /// the whole product would get: kernels sum in different orders, so a
    /// thread's block must not pick its own by its smaller shape, or the
    /// bits would depend on the thread count.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_part(whole: (usize, usize), m: usize, k: usize, n: usize, a: *const Self, rsa: isize, csa: isize, b: *const Self, rsb: isize, csb: isize, beta: Self, c: *mut Self, rsc: isize, csc: isize) {
        let _ = whole;
        unsafe { Self::gemm(m, k, n, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
    }
}

/// Below this many columns a product with a transposed B is done as dot
/// products: `matrixmultiply`'s 8-wide panels are mostly padding there.
const DOT_MAX_N: usize = 16;

/// Up to this many rows the no-pack kernels of `small_gemm.rs` beat
/// `matrixmultiply` (and `gemv::dot_gemm` below 16 columns) on every
/// product W1-W5 make in that range (`examples/small_m_probe.rs`, one
/// thread, per-thread shares): 1.05-1.4x at 32-64 rows (W5's recurrent
/// products 1.1-1.2x), 1.6-3.8x for LeNet's 6- and 16-channel convolutions,
/// where `matrixmultiply` packs all of B for one or two row blocks. With
/// more rows, packing pays off (W1's 128-row layers stay on
/// `matrixmultiply`).
const SMALL_M_MAX: usize = 64;

/// With a transposed B, the dot-product tiles win from this depth on
/// (1.15-1.4x at k = 256-400); at k = 128 they lose 10% to
/// `matrixmultiply`, whose 8x8 tiles reuse each load more than a 3x4 tile
/// of dot products when there is little depth to amortize the folds.
const DOT_TILES_MIN_K: usize = 256;

impl Float for f32 {
    fn of(v: f64) -> f32 {
        v as f32
    }
    fn f64(self) -> f64 {
        self as f64
    }
    unsafe fn gemm(m: usize, k: usize, n: usize, a: *const f32, rsa: isize, csa: isize, b: *const f32, rsb: isize, csb: isize, beta: f32, c: *mut f32, rsc: isize, csc: isize) {
        unsafe { Self::gemm_part((m, n), m, k, n, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
    }
    unsafe fn gemm_part(whole: (usize, usize), m: usize, k: usize, n: usize, a: *const f32, rsa: isize, csa: isize, b: *const f32, rsb: isize, csb: isize, beta: f32, c: *mut f32, rsc: isize, csc: isize) {
        if m == 0 || n == 0 {
            return;
        }
        // The kernel is picked by the whole product's shape (`wm` x `wn`);
        // every kernel below takes any block of it.
        let (wm, wn) = whole;
        #[cfg(target_arch = "x86_64")]
        let avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
        #[cfg(target_arch = "x86_64")]
        if avx2 && (5..=SMALL_M_MAX).contains(&wm) && k >= DOT_TILES_MIN_K && csc == 1 && rsb == 1 && csa == 1 && rsa >= 0 && csb >= 0 && rsc >= 0 {
            // A few dozen rows times a transposed B (an LSTM's recurrent
            // weight at batch 32): tiles of dot products, nothing packed.
            // SAFETY: the features were just detected; matrices as below.
            unsafe { crate::kernels::small_gemm::dot_tiles(m, k, n, a, rsa as usize, b, csb as usize, beta, c, rsc as usize) };
            return;
        }
        if (wm <= 4 || wn < DOT_MAX_N) && csc == 1 && rsb == 1 && csa == 1 && rsa >= 0 && csb >= 0 && rsc >= 0 {
            // Few rows or few columns times a transposed B (a dense layer's
            // [out, in] weight at small batch, or a narrow output layer):
            // dot products of contiguous rows, nothing packed.
            // SAFETY: as below.
            unsafe { crate::kernels::gemv::dot_gemm(m, k, n, a, rsa as usize, b, csb as usize, beta, c, rsc as usize) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if avx2 && wm <= 4 && csc == 1 && csb == 1 && rsb >= 0 && rsc >= 0 {
            // Few rows times B's contiguous rows ([in, out] weight at small
            // batch): stream B once, nothing packed.
            // SAFETY: the features were just detected; matrices as below.
            unsafe { crate::kernels::gemv::axpy_gemm(m, k, n, a, rsa, csa, b, rsb as usize, beta, c, rsc as usize) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if avx2 && wm <= SMALL_M_MAX && csc == 1 && csb == 1 && rsb >= 0 && rsc >= 0 {
            // A few dozen rows times B's contiguous rows (an LSTM's backward
            // product with its recurrent weight, a convolution's output
            // channels): B read in place a panel at a time, nothing of A
            // packed.
            // SAFETY: as above.
            unsafe { crate::kernels::small_gemm::panel_gemm(m, k, n, a, rsa, csa, b, rsb as usize, beta, c, rsc as usize) };
            return;
        }
        if wm <= 4 && csc == 1 && (csb == 1 || rsb == 1) {
            // Few rows (inference at batch 1): packing B would cost more than
            // the product; stream B once instead.
            // SAFETY: as below.
            unsafe { small_m_gemm(m, k, n, a, rsa, csa, b, rsb, csb, beta, c, rsc) };
            return;
        }
        if !uses_gemm_crate(whole) {
            // SAFETY: the caller passes valid matrices for these strides.
            unsafe { matrixmultiply::sgemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) };
            return;
        }
        // `gemm` computes dst = alpha dst + beta A B, reading dst only when
        // asked (a beta of 0 here must not read what C held: it may be NaN).
        // Its depth blocking depends on k alone once a block has a side over
        // 64 (`par_gemm_epi` keeps every part that large), so a thread's
        // block sums in the order the whole product would.
        // SAFETY: the caller passes valid matrices for these strides.
        unsafe { gemm::gemm(m, n, k, c, csc, rsc, beta != 0.0, a, csa, rsa, b, csb, rsb, beta, 1.0, false, false, false, gemm::Parallelism::None) }
    }
}

/// Whether `f32::gemm_part` runs a `whole` product (past the no-pack
/// kernels) through the `gemm` crate rather than `matrixmultiply`.
/// Measured in one sitting (2-core AVX2, median ms per step, matrixmultiply
/// -> gemm): R18 618 -> 509, Z1 147 -> 138, W2 b1024 8.8 -> 7.8, W1 SGD
/// 3.61 -> 3.44, W1 Adam 4.26 -> 4.12, W4 unchanged.
fn uses_gemm_crate(whole: (usize, usize)) -> bool {
    whole.0 > SMALL_M_MAX && whole.1 >= DOT_MAX_N
}

/// The fewest rows or columns a part of a product split across threads
/// gets: parts of a `gemm` crate product stay over 64 after rounding to 16.
fn min_part(whole: (usize, usize)) -> usize {
    if uses_gemm_crate(whole) {
        96
    } else {
        16
    }
}

/// C = A B + beta C for a handful of rows: axpy over B's rows when they
/// are contiguous, dot products over B's columns when those are. The
/// fallback of `gemv.rs` (no AVX2/FMA, or strides it does not take).
#[allow(clippy::too_many_arguments)]
unsafe fn small_m_gemm(m: usize, k: usize, n: usize, a: *const f32, rsa: isize, csa: isize, b: *const f32, rsb: isize, csb: isize, beta: f32, c: *mut f32, rsc: isize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the features were just detected.
            unsafe { small_m_gemm_avx2(m, k, n, a, rsa, csa, b, rsb, csb, beta, c, rsc) };
            return;
        }
    }
    unsafe { small_m_gemm_body(m, k, n, a, rsa, csa, b, rsb, csb, beta, c, rsc) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn small_m_gemm_avx2(m: usize, k: usize, n: usize, a: *const f32, rsa: isize, csa: isize, b: *const f32, rsb: isize, csb: isize, beta: f32, c: *mut f32, rsc: isize) {
    unsafe { small_m_gemm_body(m, k, n, a, rsa, csa, b, rsb, csb, beta, c, rsc) }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn small_m_gemm_body(m: usize, k: usize, n: usize, a: *const f32, rsa: isize, csa: isize, b: *const f32, rsb: isize, csb: isize, beta: f32, c: *mut f32, rsc: isize) {
    for i in 0..m {
        let crow = unsafe { std::slice::from_raw_parts_mut(c.offset(i as isize * rsc), n) };
        if beta == 0.0 {
            crow.fill(0.0);
        } else if beta != 1.0 {
            crow.iter_mut().for_each(|v| *v *= beta);
        }
        if csb == 1 {
            for kk in 0..k {
                let av = unsafe { *a.offset(i as isize * rsa + kk as isize * csa) };
                let brow = unsafe { std::slice::from_raw_parts(b.offset(kk as isize * rsb), n) };
                for (cv, &bv) in crow.iter_mut().zip(brow) {
                    *cv += av * bv;
                }
            }
        } else {
            // rsb == 1: column j of B is contiguous.
            if csa != 1 {
                for (j, cv) in crow.iter_mut().enumerate() {
                    let mut sum = 0f32;
                    for kk in 0..k {
                        sum += unsafe { *a.offset(i as isize * rsa + kk as isize * csa) * *b.offset(j as isize * csb + kk as isize) };
                    }
                    *cv += sum;
                }
                continue;
            }
            let arow = unsafe { std::slice::from_raw_parts(a.offset(i as isize * rsa), k) };
            for (j, cv) in crow.iter_mut().enumerate() {
                let bcol = unsafe { std::slice::from_raw_parts(b.offset(j as isize * csb), k) };
                let mut acc = [0f32; 8];
                let chunks = k / 8;
                for q in 0..chunks {
                    for l in 0..8 {
                        acc[l] += arow[q * 8 + l] * bcol[q * 8 + l];
                    }
                }
                let mut sum: f32 = acc.iter().sum();
                for kk in chunks * 8..k {
                    sum += arow[kk] * bcol[kk];
                }
                *cv += sum;
            }
        }
    }
}

impl Float for f64 {
    fn of(v: f64) -> f64 {
        v
    }
    fn f64(self) -> f64 {
        self
    }
    unsafe fn gemm(m: usize, k: usize, n: usize, a: *const f64, rsa: isize, csa: isize, b: *const f64, rsb: isize, csb: isize, beta: f64, c: *mut f64, rsc: isize, csc: isize) {
        if m == 0 || n == 0 {
            return;
        }
        // SAFETY: as above.
        unsafe { matrixmultiply::dgemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
    }
}


#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn matmul<F: Float>(pool: &Pool, a: *mut u8, at: &TensorType, b: *mut u8, bt: &TensorType, ta: bool, tb: bool, c: *mut u8, ct: &TensorType) {
    let (ra, rb, rc) = (at.shape.rank(), bt.shape.rank(), ct.shape.rank());
    let (m, n) = (ct.shape.0[rc - 2], ct.shape.0[rc - 1]);
    let k = if ta { at.shape.0[ra - 2] } else { at.shape.0[ra - 1] };
    let (a, b, c) = (a as *const F, b as *const F, c as *mut F);
    let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
    let batch_dims = &ct.shape.0[..rc - 2];
    let nb: usize = batch_dims.iter().product();
    // Element offset of batch index `bi` in an operand whose batch dims
    // broadcast against the output's (computed per batch: no allocation).
    let boff = |t: &TensorType, r: usize, bi: usize| -> usize {
        let dims = &t.shape.0[..r - 2];
        let mat = t.shape.0[r - 2] * t.shape.0[r - 1];
        let off = batch_dims.len() - dims.len();
        let (mut rem, mut o, mut stride) = (bi, 0usize, 1usize);
        for d in (0..batch_dims.len()).rev() {
            let i = rem % batch_dims[d];
            rem /= batch_dims[d];
            if d >= off {
                let e = dims[d - off];
                if e != 1 {
                    o += i * stride;
                }
                stride *= e;
            }
        }
        o * mat
    };
    for bi in 0..nb {
        let (oa, ob) = (boff(at, ra, bi), boff(bt, rb, bi));
        unsafe { par_gemm(pool, m, k, n, a.add(oa), rsa, csa, b.add(ob), rsb, csb, F::default(), c.add(bi * m * n), n as isize, 1) };
    }
}

/// out[r, c] = act(out[r, c] + bias[c]) over rows of `inner`-sized runs.
pub(crate) unsafe fn bias_act<F: Float>(out: *mut u8, nb: usize, ch: usize, inner: usize, bias: Option<*mut u8>, act: Activation) {
    let o = out as *mut F;
    for b in 0..nb {
        for c in 0..ch {
            let bv = bias.map(|p| unsafe { *(p as *const F).add(c) }).unwrap_or_default();
            for i in 0..inner {
                let q = unsafe { o.add((b * ch + c) * inner + i) };
                let v = unsafe { *q } + bv;
                unsafe { *q = if matches!(act, Activation::None) { v } else { F::of(kiln_ir::scalar::activate(act, v.f64())) } };
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn dense<F: Float>(pool: &Pool, x: *mut u8, w: *mut u8, m: usize, k: usize, n: usize, tb: bool, bias: Option<*mut u8>, act: Activation, out: *mut u8) {
    let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
    let (o, bias) = (Sp(out as *mut F), bias.map(|p| Sp(p as *mut F)));
    // Bias and activation run on each block right after its GEMM, by the
    // thread that computed it (the block is still in its cache).
    let epi = move |r0: usize, r1: usize, c0: usize, c1: usize| unsafe { dense_epilogue(o.get(), n, r0..r1, c0..c1, bias.map(Sp::get), act) };
    let has_epi = bias.is_some() || !matches!(act, Activation::None);
    let epi = has_epi.then_some(&epi as BlockEpilogue);
    unsafe { par_gemm_epi(pool, m, k, n, x as *const F, k as isize, 1, w as *const F, rsb, csb, F::default(), out as *mut F, n as isize, 1, epi) };
}

/// out[r, c] = act(out[r, c] + bias[c]) over a block of a row-major matrix
/// with rows `n` apart. ReLU and the identity stay in F (a vectorizable
/// loop); sigmoid and tanh go through the shared f64 definitions.
unsafe fn dense_epilogue<F: Float>(out: *mut F, n: usize, rows: std::ops::Range<usize>, cols: std::ops::Range<usize>, bias: Option<*mut F>, act: Activation) {
    let zero = F::default();
    let bias = bias.map(|b| unsafe { std::slice::from_raw_parts(b.add(cols.start), cols.len()) });
    for r in rows {
        let row = unsafe { std::slice::from_raw_parts_mut(out.add(r * n + cols.start), cols.len()) };
        if let Some(b) = bias {
            row.iter_mut().zip(b).for_each(|(v, &bv)| *v += bv);
        }
        match act {
            Activation::None => {}
            // NaN passes through, as in `kiln_ir::scalar::relu`.
            #[allow(clippy::eq_op)]
            Activation::Relu => row.iter_mut().for_each(|v| *v = if *v > zero || *v != *v { *v } else { zero }),
            _ => row.iter_mut().for_each(|v| *v = F::of(kiln_ir::scalar::activate(act, v.f64()))),
        }
    }
}

/// C = A B + beta C split across the pool along the larger of m and n
/// (each part packs only its share of the split operand).
#[allow(clippy::too_many_arguments)]
pub unsafe fn par_gemm<F: Float>(pool: &Pool, m: usize, k: usize, n: usize, a: *const F, rsa: isize, csa: isize, b: *const F, rsb: isize, csb: isize, beta: F, c: *mut F, rsc: isize, csc: isize) {
    unsafe { par_gemm_epi(pool, m, k, n, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc, None) }
}

/// A block's epilogue: `epi(r0, r1, c0, c1)` over rows `[r0, r1)` and
/// columns `[c0, c1)` of C.
pub type BlockEpilogue<'a> = &'a (dyn Fn(usize, usize, usize, usize) + Sync);

/// `par_gemm`, running `epi` on each part's block of C right after the
/// part's product.
#[allow(clippy::too_many_arguments)]
pub unsafe fn par_gemm_epi<F: Float>(pool: &Pool, m: usize, k: usize, n: usize, a: *const F, rsa: isize, csa: isize, b: *const F, rsb: isize, csb: isize, beta: F, c: *mut F, rsc: isize, csc: isize, epi: Option<BlockEpilogue>) {
    let split_n = m < n;
    let ext = if split_n { n } else { m };
    let small = m * n * k < 48 * 48 * 48 || (m < 16 && n < 16);
    let t = if small { 1 } else { pool.threads().min(ext / min_part((m, n))).max(1) };
    if t == 1 {
        unsafe { F::gemm(m, k, n, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) };
        if let Some(e) = epi {
            e(0, m, 0, n);
        }
        return;
    }
    let (a, b, c) = (Sp(a as *mut F), Sp(b as *mut F), Sp(c));
    let align = 16;
    let bound = |i: usize| (ext * i / t).div_ceil(align) * align;
    pool.run(t, &|part, _| {
        let (lo, hi) = (bound(part).min(ext), bound(part + 1).min(ext));
        if lo >= hi {
            return;
        }
        let (a, b, c) = (a, b, c);
        unsafe {
            if split_n {
                F::gemm_part((m, n), m, k, hi - lo, a.0, rsa, csa, b.0.offset(lo as isize * csb), rsb, csb, beta, c.0.offset(lo as isize * csc), rsc, csc);
            } else {
                F::gemm_part((m, n), hi - lo, k, n, a.0.offset(lo as isize * rsa), rsa, csa, b.0, rsb, csb, beta, c.0.offset(lo as isize * rsc), rsc, csc);
            }
        }
        if let Some(e) = epi {
            if split_n { e(0, m, lo, hi) } else { e(lo, hi, 0, n) }
        }
    });
}

/// A 2-D f32 GEMM whose elementwise epilogue runs on each block of rows
/// right after the block is computed (while it is in cache). `epi(r0, r1)`
/// runs the epilogue over rows `[r0, r1)`. Returns `false` (nothing done)
/// when the op or its shapes do not suit this path.
///
/// # Safety
/// As `run`.
pub unsafe fn gemm_with_epilogue(n: &NativeOp, slots: &[*mut u8], pool: &Pool, epi: &(dyn Fn(usize, usize) + Sync)) -> bool {
    let (at, bt, ct) = (&n.ins[0].1, &n.ins[1].1, &n.out.1);
    if ct.dtype != DType::F32 || ct.shape.rank() != 2 || at.shape.rank() != 2 || bt.shape.rank() != 2 {
        return false;
    }
    let (ta, tb) = match n.op {
        Op::MatMul { trans_a, trans_b } => (trans_a, trans_b),
        Op::FusedDense { trans_b, bias: false, act: Activation::None } => (false, trans_b),
        _ => return false,
    };
    let (m, nn) = (ct.shape.0[0], ct.shape.0[1]);
    let k = if ta { at.shape.0[0] } else { at.shape.0[1] };
    if m < nn || m < 64 {
        return false;
    }
    let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if tb { (1, k as isize) } else { (nn as isize, 1) };
    let (a, b, c) = (Sp(slots[n.ins[0].0] as *mut f32), Sp(slots[n.ins[1].0] as *mut f32), Sp(slots[n.out.0] as *mut f32));
    let t = pool.threads();
    // Row blocks of about 256 rows keep a block's output in L2 for the
    // epilogue; each block re-packs B, so a large B gets one block per thread.
    let parts = if k * nn > 64 * 1024 { t } else { (m.div_ceil(256)).div_ceil(t).max(1) * t };
    // Blocks of a `gemm` crate product keep a side over 64 (see `min_part`).
    let parts = if nn <= 64 { parts.min(m / min_part((m, nn))).max(1) } else { parts };
    let bound = |i: usize| ((m * i / parts).div_ceil(8) * 8).min(m);
    pool.run(parts, &|part, _| {
        let (a, b, c) = (a, b, c);
        let (lo, hi) = (bound(part), bound(part + 1));
        if lo >= hi {
            return;
        }
        unsafe { f32::gemm_part((m, nn), hi - lo, k, nn, a.0.offset(lo as isize * rsa), rsa, csa, b.0, rsb, csb, 0.0, c.0.add(lo * nn), nn as isize, 1) };
        epi(lo, hi);
    });
    true
}
