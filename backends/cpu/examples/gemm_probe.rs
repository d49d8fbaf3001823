//! Probe: raw matrixmultiply sgemm speed for W1's shapes (prints GFLOP/s).
use std::time::Instant;
fn main() {
    for &(m, k, n, ta) in &[(128usize, 784usize, 512usize, false), (784, 128, 512, true), (128, 512, 784, false), (1024, 1024, 1024, false)] {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut c = vec![0f32; m * n];
        let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
        let reps = if m == 1024 { 3 } else { 30 };
        let mut best = f64::MAX;
        for _ in 0..reps {
            let t = Instant::now();
            unsafe { matrixmultiply::sgemm(m, k, n, 1.0, a.as_ptr(), rsa, csa, b.as_ptr(), n as isize, 1, 0.0, c.as_mut_ptr(), n as isize, 1) };
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("{m}x{k}x{n} trans_a={ta}: {:.3} ms, {:.1} GFLOP/s", best * 1e3, 2.0 * (m * k * n) as f64 / best / 1e9);
    }
}
