//! A tiny seeded generator for host-side data work (shuffles, augmentation).
//! Graph-side randomness uses Philox in kiln-ir; this only has to be
//! deterministic per seed and cheap.

/// SplitMix64: one u64 of state, passes BigCrush, trivially seedable.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// A generator for stream `(seed, a, b)`, e.g. (seed, epoch, sample), so
    /// that each epoch or sample gets independent numbers without having to
    /// replay earlier ones.
    pub fn derive(seed: u64, a: u64, b: u64) -> SplitMix64 {
        let mut g = SplitMix64(seed ^ 0x5DEE_CE66_D1CE_4E5B);
        let x = g.next_u64() ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut g = SplitMix64(x);
        let y = g.next_u64() ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        SplitMix64(y)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), without modulo bias worth caring about for
    /// dataset sizes (Lemire's multiply-shift).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.below(i + 1);
            xs.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let mut a: Vec<usize> = (0..100).collect();
        let mut b = a.clone();
        SplitMix64::new(3).shuffle(&mut a);
        SplitMix64::new(3).shuffle(&mut b);
        assert_eq!(a, b);
        assert_ne!(a, (0..100).collect::<Vec<_>>());
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut g = SplitMix64::new(9);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let v = g.below(7);
            assert!(v < 7);
            seen[v] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn derived_streams_differ() {
        let a = SplitMix64::derive(1, 0, 0).next_u64();
        assert_ne!(a, SplitMix64::derive(1, 1, 0).next_u64());
        assert_ne!(a, SplitMix64::derive(1, 0, 1).next_u64());
        assert_ne!(a, SplitMix64::derive(2, 0, 0).next_u64());
        assert_eq!(a, SplitMix64::derive(1, 0, 0).next_u64());
    }
}
