//! Probe: single-thread `matrixmultiply::sgemm` speed on W2's dense shapes,
//! weight in PyTorch layout [out, in] (trans_b) and in [in, out].
use std::time::Instant;
fn main() {
    for &(m, k, n) in &[(512usize, 784usize, 512usize), (512, 512, 512), (1024, 512, 10), (256, 784, 512)] {
        for tb in [false, true] {
            let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.1).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.1).collect();
            let mut c = vec![0f32; m * n];
            let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
            let mut best = f64::MAX;
            for _ in 0..20 {
                let t = Instant::now();
                unsafe { matrixmultiply::sgemm(m, k, n, 1.0, a.as_ptr(), k as isize, 1, b.as_ptr(), rsb, csb, 0.0, c.as_mut_ptr(), n as isize, 1) };
                best = best.min(t.elapsed().as_secs_f64());
            }
            println!("{m}x{k}x{n} trans_b={tb}: {:.3} ms, {:.1} GFLOP/s", best * 1e3, 2.0 * (m * k * n) as f64 / best / 1e9);
        }
    }
}
