//! Products of a few rows of A with a transposed B (a dense layer at small
//! batch with PyTorch's [out, in] weight): every output is a dot product of
//! two contiguous rows, so nothing is packed and the weight streams through
//! once. `matrixmultiply` would pack the whole weight on every call, which
//! costs more than the product itself at batch 1. (`axpy_gemm` is the same
//! for an [in, out] weight: its rows are streamed instead.)
//!
//! Each output is summed in a fixed order that depends only on `k` (eight
//! lanes over blocks of 16, lanes folded the same way every time, then the
//! tail), so a result does not depend on how the columns are split across
//! threads.

/// C[i, j] = A[i, :] . B[j, :] + beta C[i, j] for `i < m`, `j < n`, with rows
/// of A `lda` apart, rows of B (columns of the product) `ldb` apart and rows
/// of C `ldc` apart; C's columns are contiguous. `beta == 0` ignores C's old
/// contents (NaN included).
///
/// # Safety
/// The matrices must be valid for these extents and strides.
#[allow(clippy::too_many_arguments)]
pub unsafe fn dot_gemm(m: usize, k: usize, n: usize, a: *const f32, lda: usize, b: *const f32, ldb: usize, beta: f32, c: *mut f32, ldc: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the features were just detected; extents as the caller's.
            unsafe { avx2::dot_gemm(m, k, n, a, lda, b, ldb, beta, c, ldc) };
            return;
        }
    }
    for i in 0..m {
        let arow = unsafe { std::slice::from_raw_parts(a.add(i * lda), k) };
        for j in 0..n {
            let brow = unsafe { std::slice::from_raw_parts(b.add(j * ldb), k) };
            let s = dot_portable(arow, brow);
            let cp = unsafe { c.add(i * ldc + j) };
            unsafe { *cp = if beta == 0.0 { s } else { s + beta * *cp } };
        }
    }
}

/// C[i, :] = A[i, :] B + beta C[i, :] for `i < m` with B's rows contiguous
/// (`ldb` apart), A's element (i, kk) at `i*rsa + kk*csa`: B streams once
/// per row of A, four of its rows at a time, so C's row is loaded and
/// stored once per four (it would be once per row of B otherwise). Each
/// element is one FMA chain over kk in order, so the bits do not depend on
/// how columns are split.
///
/// # Safety
/// As `dot_gemm`; the machine must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn axpy_gemm(m: usize, k: usize, n: usize, a: *const f32, rsa: isize, csa: isize, b: *const f32, ldb: usize, beta: f32, c: *mut f32, ldc: usize) {
    unsafe { avx2::axpy_gemm(m, k, n, a, rsa, csa, b, ldb, beta, c, ldc) }
}

/// The same summation order as the AVX2 kernel (16 lanes: two vectors of
/// eight, added lane-wise, then folded 8 -> 4 -> 2 -> 1), so both paths
/// round identically up to FMA contraction.
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let k = a.len();
    let mut acc = [0f32; 16];
    let blocks = k / 16;
    for q in 0..blocks {
        for l in 0..16 {
            acc[l] += a[q * 16 + l] * b[q * 16 + l];
        }
    }
    let mut v = [0f32; 8];
    for l in 0..8 {
        v[l] = acc[l] + acc[l + 8];
    }
    let mut s = fold8(v);
    for kk in blocks * 16..k {
        s += a[kk] * b[kk];
    }
    s
}

fn fold8(v: [f32; 8]) -> f32 {
    let h4 = [v[0] + v[4], v[1] + v[5], v[2] + v[6], v[3] + v[7]];
    let h2 = [h4[0] + h4[2], h4[1] + h4[3]];
    h2[0] + h2[1]
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    /// Columns of the product computed together: four rows of B share each
    /// load of A's row, and 4 columns x 2 vectors give eight independent FMA
    /// chains (enough to hide FMA latency).
    const COLS: usize = 4;

    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn dot_gemm(m: usize, k: usize, n: usize, a: *const f32, lda: usize, b: *const f32, ldb: usize, beta: f32, c: *mut f32, ldc: usize) {
        if m > 4 {
            // Many rows, few columns: all of B stays in L1 while each row
            // of A streams through once.
            for i in 0..m {
                unsafe { dot_gemm(1, k, n, a.add(i * lda), lda, b, ldb, beta, c.add(i * ldc), ldc) };
            }
            return;
        }
        let mut j = 0;
        // Column blocks outermost: a block's rows of B are read from memory
        // once and stay in L1 for the remaining rows of A.
        while j + COLS <= n {
            for i in 0..m {
                let s = unsafe { dot4(k, a.add(i * lda), b.add(j * ldb), ldb) };
                let cp = unsafe { c.add(i * ldc + j) };
                for (q, &v) in s.iter().enumerate() {
                    unsafe { *cp.add(q) = if beta == 0.0 { v } else { v + beta * *cp.add(q) } };
                }
            }
            j += COLS;
        }
        while j < n {
            for i in 0..m {
                let s = unsafe { dot1(k, a.add(i * lda), b.add(j * ldb)) };
                let cp = unsafe { c.add(i * ldc + j) };
                unsafe { *cp = if beta == 0.0 { s } else { s + beta * *cp } };
            }
            j += 1;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn axpy_gemm(m: usize, k: usize, n: usize, a: *const f32, rsa: isize, csa: isize, b: *const f32, ldb: usize, beta: f32, c: *mut f32, ldc: usize) {
        for i in 0..m {
            let crow = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), n) };
            if beta == 0.0 {
                crow.fill(0.0);
            } else if beta != 1.0 {
                crow.iter_mut().for_each(|v| *v *= beta);
            }
            let av = |kk: usize| unsafe { *a.offset(i as isize * rsa + kk as isize * csa) };
            let cp = crow.as_mut_ptr();
            let mut kk = 0;
            while kk + 4 <= k {
                let (a0, a1, a2, a3) = (av(kk), av(kk + 1), av(kk + 2), av(kk + 3));
                let rows = unsafe { [b.add(kk * ldb), b.add((kk + 1) * ldb), b.add((kk + 2) * ldb), b.add((kk + 3) * ldb)] };
                let (v0, v1, v2, v3) = (_mm256_set1_ps(a0), _mm256_set1_ps(a1), _mm256_set1_ps(a2), _mm256_set1_ps(a3));
                let mut j = 0;
                while j + 8 <= n {
                    unsafe {
                        let mut acc = _mm256_loadu_ps(cp.add(j));
                        acc = _mm256_fmadd_ps(v0, _mm256_loadu_ps(rows[0].add(j)), acc);
                        acc = _mm256_fmadd_ps(v1, _mm256_loadu_ps(rows[1].add(j)), acc);
                        acc = _mm256_fmadd_ps(v2, _mm256_loadu_ps(rows[2].add(j)), acc);
                        acc = _mm256_fmadd_ps(v3, _mm256_loadu_ps(rows[3].add(j)), acc);
                        _mm256_storeu_ps(cp.add(j), acc);
                    }
                    j += 8;
                }
                for j in j..n {
                    unsafe {
                        let mut acc = *cp.add(j);
                        acc = a0.mul_add(*rows[0].add(j), acc);
                        acc = a1.mul_add(*rows[1].add(j), acc);
                        acc = a2.mul_add(*rows[2].add(j), acc);
                        acc = a3.mul_add(*rows[3].add(j), acc);
                        *cp.add(j) = acc;
                    }
                }
                kk += 4;
            }
            for kk in kk..k {
                let (a0, row) = (av(kk), unsafe { b.add(kk * ldb) });
                let v0 = _mm256_set1_ps(a0);
                let mut j = 0;
                while j + 8 <= n {
                    unsafe { _mm256_storeu_ps(cp.add(j), _mm256_fmadd_ps(v0, _mm256_loadu_ps(row.add(j)), _mm256_loadu_ps(cp.add(j)))) };
                    j += 8;
                }
                for j in j..n {
                    unsafe { *cp.add(j) = a0.mul_add(*row.add(j), *cp.add(j)) };
                }
            }
        }
    }

    /// Eight lanes to one, in `fold8`'s order (also `small_gemm`'s fold,
    /// so both dot-product kernels round alike).
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn hsum(v: __m256) -> f32 {
        let h4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
        _mm_cvtss_f32(_mm_add_ss(h2, _mm_shuffle_ps(h2, h2, 1)))
    }

    /// Dot products of `a` with rows `b`, `b + ldb`, ... (four of them).
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot4(k: usize, a: *const f32, b: *const f32, ldb: usize) -> [f32; COLS] {
        let rows = [b, unsafe { b.add(ldb) }, unsafe { b.add(2 * ldb) }, unsafe { b.add(3 * ldb) }];
        let mut lo = [_mm256_setzero_ps(); COLS];
        let mut hi = [_mm256_setzero_ps(); COLS];
        let blocks = k / 16;
        for q in 0..blocks {
            let o = q * 16;
            let (x0, x1) = unsafe { (_mm256_loadu_ps(a.add(o)), _mm256_loadu_ps(a.add(o + 8))) };
            for r in 0..COLS {
                unsafe {
                    lo[r] = _mm256_fmadd_ps(x0, _mm256_loadu_ps(rows[r].add(o)), lo[r]);
                    hi[r] = _mm256_fmadd_ps(x1, _mm256_loadu_ps(rows[r].add(o + 8)), hi[r]);
                }
            }
        }
        let mut out = [0f32; COLS];
        for r in 0..COLS {
            let mut s = unsafe { hsum(_mm256_add_ps(lo[r], hi[r])) };
            for kk in blocks * 16..k {
                s = unsafe { (*a.add(kk)).mul_add(*rows[r].add(kk), s) };
            }
            out[r] = s;
        }
        out
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot1(k: usize, a: *const f32, b: *const f32) -> f32 {
        let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let blocks = k / 16;
        for q in 0..blocks {
            let o = q * 16;
            unsafe {
                lo = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(o)), _mm256_loadu_ps(b.add(o)), lo);
                hi = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(o + 8)), _mm256_loadu_ps(b.add(o + 8)), hi);
            }
        }
        let mut s = unsafe { hsum(_mm256_add_ps(lo, hi)) };
        for kk in blocks * 16..k {
            s = unsafe { (*a.add(kk)).mul_add(*b.add(kk), s) };
        }
        s
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every column agrees with an f64 dot product, for shapes that exercise
    /// the 4-column blocks, the single-column tail and the k tail.
    /// One case of a kernel computing C = A Bᵀ + beta C over rows of B:
    /// padded A, B and C (C's padding and, for beta 0, NaN in C must be
    /// left alone / ignored).
    pub(crate) struct DotCase {
        pub m: usize,
        pub k: usize,
        pub n: usize,
        pub lda: usize,
        pub ldb: usize,
        pub ldc: usize,
        pub a: Vec<f32>,
        pub b: Vec<f32>,
        pub beta: f32,
        pub old: Vec<f32>,
    }

    impl DotCase {
        pub fn new(m: usize, k: usize, n: usize, beta: f32) -> DotCase {
            let (lda, ldb, ldc) = (k + 3, k + 1, n + 2);
            let a = (0..m * lda).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
            let b = (0..n * ldb).map(|i| ((i * 53) % 97) as f32 / 48.0 - 1.0).collect();
            let old = (0..m * ldc).map(|i| if beta == 0.0 { f32::NAN } else { i as f32 }).collect();
            DotCase { m, k, n, lda, ldb, ldc, a, b, beta, old }
        }

        /// Every element of `c` within 1e-4 of the f64 product; padding untouched.
        pub fn assert_matches_f64(&self, c: &[f32]) {
            let DotCase { m, k, n, lda, ldb, ldc, beta, .. } = *self;
            for i in 0..m {
                for j in 0..n {
                    let dot: f64 = (0..k).map(|q| self.a[i * lda + q] as f64 * self.b[j * ldb + q] as f64).sum();
                    let want = dot + if beta == 0.0 { 0.0 } else { beta as f64 * self.old[i * ldc + j] as f64 };
                    let got = c[i * ldc + j] as f64;
                    assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "m{m} k{k} n{n} beta {beta} [{i},{j}]: {got} vs {want}");
                }
                for j in n..ldc {
                    assert_eq!(c[i * ldc + j].to_bits(), self.old[i * ldc + j].to_bits(), "padding overwritten");
                }
            }
        }
    }

    #[test]
    fn dot_gemm_matches_f64_reference() {
        for &(m, k, n) in &[(1usize, 784usize, 512usize), (3, 17, 7), (4, 5, 3), (2, 32, 9), (1, 1, 1), (1, 0, 5), (9, 40, 6), (33, 512, 10)] {
            for beta in [0.0f32, 0.5] {
                let t = DotCase::new(m, k, n, beta);
                let mut c = t.old.clone();
                unsafe { dot_gemm(m, k, n, t.a.as_ptr(), t.lda, t.b.as_ptr(), t.ldb, beta, c.as_mut_ptr(), t.ldc) };
                t.assert_matches_f64(&c);
            }
        }
    }

    #[test]
    fn axpy_gemm_matches_f64_reference_and_is_split_stable() {
        if !(std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")) {
            return;
        }
        for &(m, k, n) in &[(1usize, 784usize, 512usize), (3, 17, 7), (4, 6, 19), (2, 1, 9), (1, 0, 5)] {
            for ta in [false, true] {
                let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
                let ldb = n + 5;
                let a: Vec<f32> = (0..m * k).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
                let b: Vec<f32> = (0..k * ldb).map(|i| ((i * 53) % 97) as f32 / 48.0 - 1.0).collect();
                for beta in [0.0f32, 0.5, 1.0] {
                    let ldc = n + 2;
                    let old: Vec<f32> = (0..m * ldc).map(|i| if beta == 0.0 { f32::NAN } else { (i % 9) as f32 }).collect();
                    let mut c = old.clone();
                    unsafe { axpy_gemm(m, k, n, a.as_ptr(), rsa as isize, csa, b.as_ptr(), ldb, beta, c.as_mut_ptr(), ldc) };
                    for i in 0..m {
                        for j in 0..n {
                            let dot: f64 = (0..k).map(|q| a[i * rsa as usize + q * csa as usize] as f64 * b[q * ldb + j] as f64).sum();
                            let want = dot + if beta == 0.0 { 0.0 } else { beta as f64 * old[i * ldc + j] as f64 };
                            let got = c[i * ldc + j] as f64;
                            assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "m{m} k{k} n{n} ta{ta} beta {beta} [{i},{j}]: {got} vs {want}");
                        }
                        for j in n..ldc {
                            assert_eq!(c[i * ldc + j].to_bits(), old[i * ldc + j].to_bits(), "padding overwritten");
                        }
                    }
                    if n > 5 {
                        let mut parts = old.clone();
                        unsafe {
                            axpy_gemm(m, k, 5, a.as_ptr(), rsa as isize, csa, b.as_ptr(), ldb, beta, parts.as_mut_ptr(), ldc);
                            axpy_gemm(m, k, n - 5, a.as_ptr(), rsa as isize, csa, b.as_ptr().add(5), ldb, beta, parts.as_mut_ptr().add(5), ldc);
                        }
                        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&parts), bits(&c), "m{m} k{k} n{n}: a column split changes the bits");
                    }
                }
            }
        }
    }

    /// A column's value does not depend on which block of columns it is
    /// computed in (what a thread split changes).
    #[test]
    fn dot_gemm_column_split_is_bitwise_stable() {
        for m in [2, 7] {
            column_split(m);
        }
    }

    fn column_split(m: usize) {
        let (k, n) = (300, 13);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 31) % 89) as f32 / 40.0 - 1.1).collect();
        let b: Vec<f32> = (0..n * k).map(|i| ((i * 17) % 83) as f32 / 41.0 - 1.0).collect();
        let mut whole = vec![0f32; m * n];
        unsafe { dot_gemm(m, k, n, a.as_ptr(), k, b.as_ptr(), k, 0.0, whole.as_mut_ptr(), n) };
        for split in [1, 5, 6] {
            let mut parts = vec![0f32; m * n];
            unsafe {
                dot_gemm(m, k, split, a.as_ptr(), k, b.as_ptr(), k, 0.0, parts.as_mut_ptr(), n);
                dot_gemm(m, k, n - split, a.as_ptr(), k, b.as_ptr().add(split * k), k, 0.0, parts.as_mut_ptr().add(split), n);
            }
            assert_eq!(whole.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), parts.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "split at {split}");
        }
    }
}
