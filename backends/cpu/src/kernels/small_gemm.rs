//! Products with a few dozen rows (an LSTM's recurrent weight at batch 32,
//! a narrow convolution's output channels) without packing. `matrixmultiply`
//! packs all of B on every call; when A has few rows that copy of B costs as
//! much as the arithmetic, and B is read only a few times anyway. Here B is
//! read in place, one L1-sized block at a time, and every row block of A
//! passes over the block while it is in cache.
//!
//! `panel_gemm` takes B with contiguous rows: register tiles of up to 6 rows
//! x 16 columns, A broadcast, B's 16-column panel loaded straight from its
//! rows. `dot_tiles` takes a transposed B (B's columns contiguous): tiles
//! of 3 rows x 4 columns, each output a k-vectorized dot product.
//!
//! Bits do not depend on the tiling or on how the product is split across
//! threads: in `panel_gemm` every output is one FMA chain over k in order
//! starting from beta C (stored and reloaded exactly between k blocks), as
//! in `gemv::axpy_gemm` (same bits); in `dot_tiles` every output is an
//! eight-lane FMA chain over k, folded the same way, then the k tail in
//! order. Both need AVX2 and FMA (the caller checks).

/// C[i, :] = A[i, :] B + beta C[i, :] for `i < m`; A's element (i, kk) at
/// `i*rsa + kk*csa`, B's rows `ldb` apart (columns contiguous), C's rows
/// `ldc` apart. `beta == 0` ignores C's old contents (NaN included).
///
/// # Safety
/// The matrices must be valid for these extents and strides; the machine
/// must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn panel_gemm(m: usize, k: usize, n: usize, a: *const f32, rsa: isize, csa: isize, b: *const f32, ldb: usize, beta: f32, c: *mut f32, ldc: usize) {
    unsafe { avx2::panel_gemm(m, k, n, a, rsa, csa, b, ldb, beta, c, ldc) }
}

/// C[i, j] = A[i, :] . B[j, :] + beta C[i, j]; rows of A `lda` apart, rows
/// of B (columns of the product) `ldb` apart, rows of C `ldc` apart.
///
/// # Safety
/// As `panel_gemm`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn dot_tiles(m: usize, k: usize, n: usize, a: *const f32, lda: usize, b: *const f32, ldb: usize, beta: f32, c: *mut f32, ldc: usize) {
    unsafe { avx2::dot_tiles(m, k, n, a, lda, b, ldb, beta, c, ldc) }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Rows of a `panel_gemm` tile: 6 rows x 2 vectors are 12 accumulators,
    /// plus B's two vectors and A's broadcast, within the 16 registers.
    const MR: usize = 6;
    /// k per block: a 16-column panel of 256 rows is 16 KiB, which stays in
    /// L1 beside A's block while every row block passes over it.
    const KC: usize = 256;

    /// How a tile's accumulators start.
    #[derive(Clone, Copy)]
    enum Init {
        Zero,
        Load,
        Scale(f32),
    }

    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn panel_gemm(m: usize, k: usize, n: usize, a: *const f32, rsa: isize, csa: isize, b: *const f32, ldb: usize, beta: f32, c: *mut f32, ldc: usize) {
        let first = if beta == 0.0 {
            Init::Zero
        } else if beta == 1.0 {
            Init::Load
        } else {
            Init::Scale(beta)
        };
        if k == 0 {
            // No chain to run: C is just its start value.
            for i in 0..m {
                for j in 0..n {
                    unsafe { *c.add(i * ldc + j) = start(first, c.add(i * ldc + j)) };
                }
            }
            return;
        }
        let mut panel = [_mm256_setzero_ps(); 2 * KC];
        // Blocks of equal depth: a short last block would cost a whole pass
        // of C's loads and stores for a few k.
        let kb = k.div_ceil(k.div_ceil(KC));
        let mut k0 = 0;
        while k0 < k {
            let kc = kb.min(k - k0);
            let init = if k0 == 0 { first } else { Init::Load };
            let bk = unsafe { b.add(k0 * ldb) };
            let ak = unsafe { a.offset(k0 as isize * csa) };
            let mut j = 0;
            while j < n {
                let w = (n - j).min(16);
                // A full panel is copied to 64-byte rows first: B's rows are
                // often a power of two apart, so in place they would fall
                // into a few L1 sets and evict each other between row blocks.
                let (bp, ldp) = if w == 16 && m > MR {
                    for kk in 0..kc {
                        unsafe {
                            let src = bk.add(kk * ldb + j);
                            panel[2 * kk] = _mm256_loadu_ps(src);
                            panel[2 * kk + 1] = _mm256_loadu_ps(src.add(8));
                        }
                    }
                    (panel.as_ptr() as *const f32, 16)
                } else {
                    (unsafe { bk.add(j) }, ldb)
                };
                let mut i = 0;
                while i < m {
                    let r = (m - i).min(MR);
                    let (ap, cp) = unsafe { (ak.offset(i as isize * rsa), c.add(i * ldc + j)) };
                    unsafe {
                        match r {
                            6 => cols::<6>(w, kc, ap, rsa, csa, bp, ldp, cp, ldc, init),
                            5 => cols::<5>(w, kc, ap, rsa, csa, bp, ldp, cp, ldc, init),
                            4 => cols::<4>(w, kc, ap, rsa, csa, bp, ldp, cp, ldc, init),
                            3 => cols::<3>(w, kc, ap, rsa, csa, bp, ldp, cp, ldc, init),
                            2 => cols::<2>(w, kc, ap, rsa, csa, bp, ldp, cp, ldc, init),
                            _ => cols::<1>(w, kc, ap, rsa, csa, bp, ldp, cp, ldc, init),
                        }
                    }
                    i += r;
                }
                j += w;
            }
            k0 += kc;
        }
    }

    #[inline(always)]
    unsafe fn start(init: Init, c: *const f32) -> f32 {
        match init {
            Init::Zero => 0.0,
            Init::Load => unsafe { *c },
            Init::Scale(s) => unsafe { *c * s },
        }
    }

    /// One row block over `w <= 16` columns: vector tiles of 16 or 8, then
    /// single columns.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn cols<const R: usize>(w: usize, kc: usize, a: *const f32, rsa: isize, csa: isize, b: *const f32, ldb: usize, c: *mut f32, ldc: usize, init: Init) {
        let mut j = 0;
        if w == 16 {
            unsafe { tile::<R, 2>(kc, a, rsa, csa, b, ldb, c, ldc, init) };
            return;
        }
        if w >= 8 {
            unsafe { tile::<R, 1>(kc, a, rsa, csa, b, ldb, c, ldc, init) };
            j = 8;
        }
        if j < w {
            unsafe { tail::<R>(w - j, kc, a, rsa, csa, b.add(j), ldb, c.add(j), ldc, init) };
        }
    }

    /// R rows x `w < 8` columns through masked loads and stores (a lane's
    /// FMA rounds as the scalar one would, so the bits are those of a full
    /// tile).
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tail<const R: usize>(w: usize, kc: usize, a: *const f32, rsa: isize, csa: isize, b: *const f32, ldb: usize, c: *mut f32, ldc: usize, init: Init) {
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(w as i32), lanes);
        let mut acc = [_mm256_setzero_ps(); R];
        for (r, x) in acc.iter_mut().enumerate() {
            let old = || unsafe { _mm256_maskload_ps(c.add(r * ldc), mask) };
            *x = match init {
                Init::Zero => _mm256_setzero_ps(),
                Init::Load => old(),
                Init::Scale(s) => _mm256_mul_ps(old(), _mm256_set1_ps(s)),
            };
        }
        for kk in 0..kc {
            let bv = unsafe { _mm256_maskload_ps(b.add(kk * ldb), mask) };
            for (r, x) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_ps(unsafe { *a.offset(r as isize * rsa + kk as isize * csa) });
                *x = _mm256_fmadd_ps(av, bv, *x);
            }
        }
        for (r, &x) in acc.iter().enumerate() {
            unsafe { _mm256_maskstore_ps(c.add(r * ldc), mask, x) };
        }
    }

    /// R rows x V vectors of 8 columns, one FMA chain per element over k.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const R: usize, const V: usize>(kc: usize, a: *const f32, rsa: isize, csa: isize, b: *const f32, ldb: usize, c: *mut f32, ldc: usize, init: Init) {
        let mut acc = [[_mm256_setzero_ps(); V]; R];
        match init {
            Init::Zero => {}
            Init::Load => {
                for (r, row) in acc.iter_mut().enumerate() {
                    for (v, x) in row.iter_mut().enumerate() {
                        *x = unsafe { _mm256_loadu_ps(c.add(r * ldc + 8 * v)) };
                    }
                }
            }
            Init::Scale(s) => {
                let s = _mm256_set1_ps(s);
                for (r, row) in acc.iter_mut().enumerate() {
                    for (v, x) in row.iter_mut().enumerate() {
                        *x = _mm256_mul_ps(unsafe { _mm256_loadu_ps(c.add(r * ldc + 8 * v)) }, s);
                    }
                }
            }
        }
        for kk in 0..kc {
            let mut bv = [_mm256_setzero_ps(); V];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = unsafe { _mm256_loadu_ps(b.add(kk * ldb + 8 * v)) };
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_ps(unsafe { *a.offset(r as isize * rsa + kk as isize * csa) });
                for (x, &y) in row.iter_mut().zip(&bv) {
                    *x = _mm256_fmadd_ps(av, y, *x);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, &x) in row.iter().enumerate() {
                unsafe { _mm256_storeu_ps(c.add(r * ldc + 8 * v), x) };
            }
        }
    }

    /// Rows of A and of B per `dot_tiles` tile: 3 x 4 accumulators, with
    /// A's three vectors and one of B's, fill the 16 registers.
    const DR: usize = 3;
    const DC: usize = 4;

    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn dot_tiles(m: usize, k: usize, n: usize, a: *const f32, lda: usize, b: *const f32, ldb: usize, beta: f32, c: *mut f32, ldc: usize) {
        // B's rows outermost: a block of them is read from memory once and
        // stays in L1 while all of A's rows pass over it.
        let mut j = 0;
        while j < n {
            let w = (n - j).min(DC);
            let mut i = 0;
            while i < m {
                let r = (m - i).min(DR);
                // Edge tiles go row by row or element by element: the
                // same order per element as a full tile.
                unsafe {
                    if r == DR && w == DC {
                        let s = dots::<DR, DC>(k, a.add(i * lda), lda, b.add(j * ldb), ldb);
                        put(&s, beta, c.add(i * ldc + j), ldc);
                    } else if w == DC {
                        for ii in i..i + r {
                            let s = dots::<1, DC>(k, a.add(ii * lda), lda, b.add(j * ldb), ldb);
                            put(&s, beta, c.add(ii * ldc + j), ldc);
                        }
                    } else {
                        for jj in j..j + w {
                            for ii in i..i + r {
                                let s = dots::<1, 1>(k, a.add(ii * lda), lda, b.add(jj * ldb), ldb);
                                put(&s, beta, c.add(ii * ldc + jj), ldc);
                            }
                        }
                    }
                }
                i += r;
            }
            j += w;
        }
    }

    #[inline(always)]
    unsafe fn put<const R: usize, const C: usize>(s: &[[f32; C]; R], beta: f32, c: *mut f32, ldc: usize) {
        for (r, row) in s.iter().enumerate() {
            for (q, &v) in row.iter().enumerate() {
                let cp = unsafe { c.add(r * ldc + q) };
                unsafe { *cp = if beta == 0.0 { v } else { v + beta * *cp } };
            }
        }
    }

    /// R rows of A dotted with C rows of B: eight lanes per output over k,
    /// folded by `gemv`'s `hsum`, then the k tail in order.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dots<const R: usize, const C: usize>(k: usize, a: *const f32, lda: usize, b: *const f32, ldb: usize) -> [[f32; C]; R] {
        let mut acc = [[_mm256_setzero_ps(); C]; R];
        let blocks = k / 8;
        for q in 0..blocks {
            let o = q * 8;
            let mut av = [_mm256_setzero_ps(); R];
            for (r, x) in av.iter_mut().enumerate() {
                *x = unsafe { _mm256_loadu_ps(a.add(r * lda + o)) };
            }
            for col in 0..C {
                let bv = unsafe { _mm256_loadu_ps(b.add(col * ldb + o)) };
                for (row, &x) in acc.iter_mut().zip(&av) {
                    row[col] = _mm256_fmadd_ps(x, bv, row[col]);
                }
            }
        }
        let mut out = [[0f32; C]; R];
        for r in 0..R {
            for col in 0..C {
                let mut s = unsafe { crate::kernels::gemv::avx2::hsum(acc[r][col]) };
                for kk in blocks * 8..k {
                    s = unsafe { (*a.add(r * lda + kk)).mul_add(*b.add(col * ldb + kk), s) };
                }
                out[r][col] = s;
            }
        }
        out
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::kernels::gemv::tests::DotCase;

    fn have_avx2() -> bool {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Against f64 over row tails (m not a multiple of 6 or 3), column
    /// tails (n not a multiple of 16, 8 or 4), odd k, k past one k block
    /// (the chain stored and reloaded), k = 0, a transposed A, and beta 0
    /// (NaN in C ignored), 0.5 and 1; C's row padding is untouched.
    #[test]
    fn panel_gemm_matches_f64_reference() {
        if !have_avx2() {
            return;
        }
        for &(m, k, n) in &[(5usize, 7usize, 3usize), (6, 256, 16), (13, 33, 37), (32, 601, 40), (64, 100, 129), (7, 0, 9), (11, 1, 8)] {
            for ta in [false, true] {
                let (rsa, csa) = if ta { (1isize, m as isize) } else { (k as isize, 1isize) };
                let ldb = n + 3;
                let a: Vec<f32> = (0..m * k).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
                let b: Vec<f32> = (0..k * ldb).map(|i| ((i * 53) % 97) as f32 / 48.0 - 1.0).collect();
                for beta in [0.0f32, 0.5, 1.0] {
                    let ldc = n + 2;
                    let old: Vec<f32> = (0..m * ldc).map(|i| if beta == 0.0 { f32::NAN } else { (i % 9) as f32 }).collect();
                    let mut c = old.clone();
                    unsafe { panel_gemm(m, k, n, a.as_ptr(), rsa, csa, b.as_ptr(), ldb, beta, c.as_mut_ptr(), ldc) };
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
                    // A column split at a multiple of 16 (as the pool splits)
                    // and one that is not give the same bits.
                    for split in [16, 5] {
                        if n <= split {
                            continue;
                        }
                        let mut parts = old.clone();
                        unsafe {
                            panel_gemm(m, k, split, a.as_ptr(), rsa, csa, b.as_ptr(), ldb, beta, parts.as_mut_ptr(), ldc);
                            panel_gemm(m, k, n - split, a.as_ptr(), rsa, csa, b.as_ptr().add(split), ldb, beta, parts.as_mut_ptr().add(split), ldc);
                        }
                        assert_eq!(bits(&parts), bits(&c), "m{m} k{k} n{n} ta{ta}: split at {split} changes the bits");
                    }
                }
            }
        }
    }

    /// `panel_gemm` and `gemv::axpy_gemm` run the same FMA chains.
    #[test]
    fn panel_gemm_gives_axpy_gemm_bits() {
        if !have_avx2() {
            return;
        }
        for &(m, k, n) in &[(5usize, 257usize, 7usize), (9, 300, 21), (33, 1000, 10), (4, 31, 40)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 31) % 89) as f32 / 40.0 - 1.1).collect();
            let b: Vec<f32> = (0..n * k).map(|i| ((i * 17) % 83) as f32 / 41.0 - 1.0).collect();
            for beta in [0.0f32, 0.5, 1.0] {
                let old: Vec<f32> = (0..m * n).map(|i| (i % 7) as f32).collect();
                let (mut x, mut y) = (old.clone(), old.clone());
                unsafe {
                    panel_gemm(m, k, n, a.as_ptr(), k as isize, 1, b.as_ptr(), n, beta, x.as_mut_ptr(), n);
                    crate::kernels::gemv::axpy_gemm(m, k, n, a.as_ptr(), k as isize, 1, b.as_ptr(), n, beta, y.as_mut_ptr(), n);
                }
                assert_eq!(bits(&x), bits(&y), "panel_gemm m{m} k{k} n{n} beta {beta}");
            }
        }
    }

    /// `dot_tiles` against f64 over the same kinds of tails (rows not a
    /// multiple of 3, columns not a multiple of 4, k not a multiple of 8),
    /// with padded rows; column splits keep the bits.
    #[test]
    fn dot_tiles_matches_f64_reference() {
        if !have_avx2() {
            return;
        }
        for &(m, k, n) in &[(5usize, 257usize, 7usize), (6, 256, 16), (32, 300, 45), (64, 1, 5), (7, 0, 3), (10, 15, 33)] {
            for beta in [0.0f32, 0.5] {
                let t = DotCase::new(m, k, n, beta);
                let (a, b, old, lda, ldb, ldc) = (&t.a, &t.b, &t.old, t.lda, t.ldb, t.ldc);
                let mut c = old.clone();
                unsafe { dot_tiles(m, k, n, a.as_ptr(), lda, b.as_ptr(), ldb, beta, c.as_mut_ptr(), ldc) };
                t.assert_matches_f64(&c);
                for split in [1, 4, 6] {
                    if n <= split {
                        continue;
                    }
                    let mut parts = old.clone();
                    unsafe {
                        dot_tiles(m, k, split, a.as_ptr(), lda, b.as_ptr(), ldb, beta, parts.as_mut_ptr(), ldc);
                        dot_tiles(m, k, n - split, a.as_ptr(), lda, b.as_ptr().add(split * ldb), ldb, beta, parts.as_mut_ptr().add(split), ldc);
                    }
                    assert_eq!(bits(&parts), bits(&c), "m{m} k{k} n{n}: split at {split} changes the bits");
                }
            }
        }
    }
}
