//! Probe: the W5 LSTM's per-time-step products, per thread's share at two
//! threads, one thread, on each kernel that can take them (GFLOP/s, best
//! of 200): forward h [32,256] x W_hh^T (W_hh is [1024,256]) by output
//! halves of 512, and backward dgates [32,1024] x W_hh by halves of 128.
//! With AVX-512, also a 16-lane `dot_tiles` (the issue 16 question). On a
//! Zen 4 (2026-12-04, three runs) it lost: 54-78 GFLOP/s against the AVX2
//! tiles' 75-94 (Zen 4 runs 512-bit FMAs at the 256-bit rate, and the
//! 16-lane folds cost more at k = 256).
use std::time::Instant;

fn best(mut f: impl FnMut()) -> f64 {
    let mut b = f64::MAX;
    for _ in 0..200 {
        let t = Instant::now();
        f();
        b = b.min(t.elapsed().as_secs_f64());
    }
    b
}

fn main() {
    let h = vec![0.5f32; 32 * 256];
    let w = vec![0.25f32; 1024 * 256];
    let dg = vec![0.5f32; 32 * 1024];
    let mut c = vec![0f32; 32 * 1024];
    let flop = 2.0 * 32.0 * 256.0 * 512.0 / 1e9;
    // Forward: C[32,512] = h[32,256] . W[512 rows,256]^T.
    let dt = best(|| unsafe { kiln_cpu::small_gemm::dot_tiles(32, 256, 512, h.as_ptr(), 256, w.as_ptr(), 256, 0.0, c.as_mut_ptr(), 1024) });
    let gm = best(|| unsafe { gemm::gemm(32, 512, 256, c.as_mut_ptr(), 1, 1024, false, h.as_ptr(), 1, 256, w.as_ptr(), 256, 1, 0.0, 1.0, false, false, false, gemm::Parallelism::None) });
    let mm = best(|| unsafe { matrixmultiply::sgemm(32, 256, 512, 1.0, h.as_ptr(), 256, 1, w.as_ptr(), 1, 256, 0.0, c.as_mut_ptr(), 1024, 1) });
    let d5 = if std::is_x86_feature_detected!("avx512f") {
        best(|| unsafe { avx512::dot_tiles(32, 256, 512, h.as_ptr(), 256, w.as_ptr(), 256, c.as_mut_ptr(), 1024) })
    } else {
        f64::NAN
    };
    println!("forward 32x256x512 (B^T): dot_tiles {:.1}, AVX-512 dot tiles {:.1}, gemm {:.1}, matrixmultiply {:.1} GFLOP/s", flop / dt, flop / d5, flop / gm, flop / mm);
    // Backward: C[32,128] = dg[32,1024] . W[1024,128 cols of 256].
    let flop = 2.0 * 32.0 * 1024.0 * 128.0 / 1e9;
    let pg = best(|| unsafe { kiln_cpu::small_gemm::panel_gemm(32, 1024, 128, dg.as_ptr(), 1024, 1, w.as_ptr(), 256, 0.0, c.as_mut_ptr(), 256) });
    let gm = best(|| unsafe { gemm::gemm(32, 128, 1024, c.as_mut_ptr(), 1, 256, false, dg.as_ptr(), 1, 1024, w.as_ptr(), 1, 256, 0.0, 1.0, false, false, false, gemm::Parallelism::None) });
    let mm = best(|| unsafe { matrixmultiply::sgemm(32, 1024, 128, 1.0, dg.as_ptr(), 1024, 1, w.as_ptr(), 256, 1, 0.0, c.as_mut_ptr(), 256, 1) });
    println!("backward 32x1024x128: panel_gemm {:.1}, gemm {:.1}, matrixmultiply {:.1} GFLOP/s", flop / pg, flop / gm, flop / mm);
}

/// The AVX-512 question for the no-pack kernels (issue 16): `dot_tiles`'
/// scheme with 16-lane dot products and, with 32 registers, 4 x 6 tiles
/// (24 accumulators) instead of 3 x 4. Tail-free shapes only (a probe).
mod avx512 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_tiles(m: usize, k: usize, n: usize, a: *const f32, lda: usize, b: *const f32, ldb: usize, c: *mut f32, ldc: usize) {
        const R: usize = 4;
        const C: usize = 6;
        let mut j = 0;
        while j + C <= n {
            let mut i = 0;
            while i + R <= m {
                let mut acc = [[_mm512_setzero_ps(); C]; R];
                for q in (0..k).step_by(16) {
                    let mut av = [_mm512_setzero_ps(); R];
                    for (r, x) in av.iter_mut().enumerate() {
                        *x = unsafe { _mm512_loadu_ps(a.add((i + r) * lda + q)) };
                    }
                    for col in 0..C {
                        let bv = unsafe { _mm512_loadu_ps(b.add((j + col) * ldb + q)) };
                        for r in 0..R {
                            acc[r][col] = _mm512_fmadd_ps(av[r], bv, acc[r][col]);
                        }
                    }
                }
                for r in 0..R {
                    for col in 0..C {
                        unsafe { *c.add((i + r) * ldc + j + col) = _mm512_reduce_add_ps(acc[r][col]) };
                    }
                }
                i += R;
            }
            j += C;
        }
    }
}
