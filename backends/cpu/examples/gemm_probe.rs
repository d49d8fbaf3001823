//! Probe: raw sgemm speed of `matrixmultiply` and the `gemm` crate on W1's
//! shapes and a 1024 cube, one thread (prints GFLOP/s, best of the reps).
use std::time::Instant;

fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn main() {
    for &(m, k, n, ta) in &[(128usize, 784usize, 512usize, false), (784, 128, 512, true), (128, 512, 784, false), (512, 512, 512, false), (1024, 1024, 1024, false), (1024, 1024, 256, true), (1024, 1024, 256, false), (1024, 1024, 64, true), (512, 1024, 256, true)] {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut c = vec![0f32; m * n];
        let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
        let reps = if m == 1024 { 5 } else { 50 };
        let flop = 2.0 * (m * k * n) as f64 / 1e9;
        let mm = best_of(reps, || unsafe { matrixmultiply::sgemm(m, k, n, 1.0, a.as_ptr(), rsa, csa, b.as_ptr(), n as isize, 1, 0.0, c.as_mut_ptr(), n as isize, 1) });
        let gm = best_of(reps, || unsafe { gemm::gemm(m, n, k, c.as_mut_ptr(), 1, n as isize, false, a.as_ptr(), csa, rsa, b.as_ptr(), 1, n as isize, 0.0, 1.0, false, false, false, gemm::Parallelism::None) });
        println!("{m}x{k}x{n} trans_a={ta}: matrixmultiply {:.1} GFLOP/s, gemm {:.1} GFLOP/s", flop / mm, flop / gm);
    }
}
