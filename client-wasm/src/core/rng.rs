//! A tiny seeded PRNG (SplitMix64) for reconnect jitter, message-id bases and ping nonces.
//! It is not for secrets; it keeps the core free of dependencies and deterministic under
//! test: the same seed gives the same delays and ids.

/// SplitMix64 (Steele, Lea and Flood): one add and a few multiply-xorshifts per number, and
/// well mixed even for consecutive seeds, which is what a test looping over seeds feeds it.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=max`. Multiply-shift rather than `%`: no modulo bias to speak of.
    pub(crate) fn up_to(&mut self, max: u64) -> u64 {
        let span = u128::from(max) + 1;
        ((u128::from(self.next_u64()) * span) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_to_stays_in_range_and_reaches_both_ends() {
        let mut rng = Rng::new(1);
        let draws: Vec<u64> = (0..10_000).map(|_| rng.up_to(3)).collect();
        assert!(draws.iter().all(|&d| d <= 3));
        for v in 0..=3 {
            assert!(draws.contains(&v), "{v} never drawn");
        }
        assert_eq!(Rng::new(5).up_to(0), 0);
        assert!(Rng::new(5).up_to(u64::MAX) > 0);
    }
}
