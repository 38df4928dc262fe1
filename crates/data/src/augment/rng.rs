//! The augmentation's random numbers: SplitMix64, seeded per sample from (seed, epoch, index)
//! so that a sample's augmentation does not depend on which worker draws it or in what order.

/// A small seeded generator (SplitMix64): every augmentation draws from one, so a sample's augmentation is a function of its seed.
#[derive(Clone, Debug)]
pub struct AugRng(u64);

impl AugRng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The stream for one sample of one epoch.
    pub fn for_sample(seed: u64, epoch: u64, index: u64) -> Self {
        let mut r = Self(seed ^ 0x9E37_79B9_7F4A_7C15);
        let a = r.next_u64() ^ epoch.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let mut r = Self(a);
        Self(r.next_u64() ^ index.wrapping_mul(0x8CB9_2BA7_2F3D_8DD7))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability `p`.
    pub fn coin(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| AugRng::for_sample(1, 2, 3).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(AugRng::for_sample(1, 2, 3).next_u64(), AugRng::for_sample(1, 2, 4).next_u64());
        assert_ne!(AugRng::for_sample(1, 2, 3).next_u64(), AugRng::for_sample(1, 3, 3).next_u64());
        let mut r = AugRng::new(9);
        let mean = (0..10_000).map(|_| r.unit()).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        assert!((0..1000).all(|_| r.below(7) < 7));
    }
}
