//! Counter-based random numbers (Philox 4x32-10), shared by every backend so
//! that one graph, seed and step counter give the same numbers everywhere.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Philox 4x32 with 10 rounds.
pub fn philox4x32(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (counter, key);
    for _ in 0..10 {
        let p0 = (M0 as u64) * (c[0] as u64);
        let p1 = (M1 as u64) * (c[2] as u64);
        c = [((p1 >> 32) as u32) ^ c[1] ^ k[0], p1 as u32, ((p0 >> 32) as u32) ^ c[3] ^ k[1], p0 as u32];
        k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
    }
    c
}

/// The uniform [0, 1) value for element `index` of a draw with `seed` at
/// step `step`: 24 random bits, so every value is exact in f32.
pub fn uniform01(seed: u64, step: u64, index: u64) -> f32 {
    let r = philox4x32([index as u32, (index >> 32) as u32, step as u32, (step >> 32) as u32], [seed as u32, (seed >> 32) as u32]);
    (r[0] >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// Uniform in [low, high).
pub fn uniform(seed: u64, step: u64, index: u64, low: f64, high: f64) -> f32 {
    let u = uniform01(seed, step, index) as f64;
    let v = (low + (high - low) * u) as f32;
    // Rounding can land exactly on `high`; keep the interval half-open.
    if v as f64 >= high { low as f32 } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_varies_with_every_key() {
        assert_eq!(uniform01(1, 2, 3), uniform01(1, 2, 3));
        assert_ne!(uniform01(1, 2, 3), uniform01(2, 2, 3));
        assert_ne!(uniform01(1, 2, 3), uniform01(1, 3, 3));
        assert_ne!(uniform01(1, 2, 3), uniform01(1, 2, 4));
    }

    #[test]
    fn roughly_uniform() {
        let n = 20000;
        let xs: Vec<f32> = (0..n).map(|i| uniform01(7, 0, i)).collect();
        assert!(xs.iter().all(|&x| (0.0..1.0).contains(&x)));
        let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        let below = xs.iter().filter(|&&x| x < 0.25).count() as f64 / n as f64;
        assert!((below - 0.25).abs() < 0.015, "P(x<0.25) = {below}");
    }
}
