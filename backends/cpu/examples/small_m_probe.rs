//! Probe: single-thread time of the no-pack few-row kernels (`small_gemm.rs`)
//! against what they replace (`matrixmultiply::sgemm`, or `gemv::dot_gemm`
//! below 16 columns) on the products W1-W5 make at the per-thread share:
//! `cargo run --release -p kiln-cpu --example small_m_probe`.
use std::time::Instant;

fn time(f: &mut dyn FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..40 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best * 1e6
}

fn main() {
    // (m, k, n, A transposed, B transposed, beta)
    let shapes = [
        (32usize, 256usize, 512usize, false, true, 0.0f32),
        (32, 1024, 128, false, false, 0.0),
        (32, 256, 10, false, true, 0.0),
        (32, 10, 256, false, false, 0.0),
        (10, 32, 256, true, false, 0.0),
        (32, 288, 168, false, false, 0.0),
        (32, 288, 112, false, false, 0.0),
        (32, 9, 3136, false, false, 0.0),
        (32, 3136, 9, false, true, 0.0),
        (32, 10, 32, false, false, 0.0),
        (6, 3136, 25, false, true, 0.0),
        (6, 25, 3136, false, false, 0.0),
        (16, 400, 150, false, true, 0.0),
        (16, 150, 400, false, false, 0.0),
        (64, 84, 64, false, false, 0.0),
        (64, 400, 64, false, true, 0.0),
        (64, 120, 208, false, false, 0.0),
        (64, 10, 84, false, false, 0.0),
        (10, 64, 84, true, false, 0.0),
        (64, 512, 10, false, true, 0.0),
        (10, 128, 256, true, false, 0.0),
        (64, 128, 576, false, true, 0.0),
    ];
    for &(m, k, n, ta, tb, beta) in &shapes {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.1).collect();
        let mut c = vec![0.5f32; m * n];
        let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
        let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
        let (old_name, old) = if tb && n < 16 {
            ("dot_gemm", time(&mut || unsafe { kiln_cpu::gemv::dot_gemm(m, k, n, a.as_ptr(), k, b.as_ptr(), k, beta, c.as_mut_ptr(), n) }))
        } else {
            ("matrixmultiply", time(&mut || unsafe { matrixmultiply::sgemm(m, k, n, 1.0, a.as_ptr(), rsa, csa, b.as_ptr(), rsb, csb, beta, c.as_mut_ptr(), n as isize, 1) }))
        };
        let new = time(&mut || unsafe {
            if tb {
                kiln_cpu::small_gemm::dot_tiles(m, k, n, a.as_ptr(), k, b.as_ptr(), k, beta, c.as_mut_ptr(), n)
            } else {
                kiln_cpu::small_gemm::panel_gemm(m, k, n, a.as_ptr(), rsa, csa, b.as_ptr(), n, beta, c.as_mut_ptr(), n)
            }
        });
        println!("{m:>3}x{k:>4}x{n:>4} ta={ta:<5} tb={tb:<5}: {old_name:>14} {old:>7.1} us, small_gemm {new:>7.1} us ({:.2}x)", old / new);
    }
}
