use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// A source of randomness handed to cluster logic. All randomness in `system/` comes from here: never
/// from the OS, so that a simulation is a function of its seed.
///
/// Semantics: the sequence of values is a pure function of how the generator was created (its seed and
/// the forks that led to it). `fork` derives an independent generator for one purpose (a node, a
/// subsystem) so that adding draws in one place does not shift the draws elsewhere.
pub trait Rng: Send + 'static {
    fn next_u64(&mut self) -> u64;

    fn fill_bytes(&mut self, buf: &mut [u8]);

    /// An independent generator for `purpose`, derived from this one's state.
    fn fork(&mut self, purpose: &str) -> Self
    where
        Self: Sized;

    /// A value uniform in `0..bound` (`bound` > 0), without modulo bias.
    fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "Rng::below(0)");
        let zone = u64::MAX - (u64::MAX % bound);
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % bound;
            }
        }
    }

    /// A value uniform in `low..=high`.
    fn range_inclusive(&mut self, low: u64, high: u64) -> u64 {
        assert!(low <= high, "Rng::range_inclusive({low}, {high})");
        match (high - low).checked_add(1) {
            Some(span) => low + self.below(span),
            None => self.next_u64(),
        }
    }

    /// True with probability `numerator / denominator`.
    fn chance(&mut self, numerator: u64, denominator: u64) -> bool {
        assert!(denominator > 0 && numerator <= denominator);
        self.below(denominator) < numerator
    }
}

/// The one deterministic generator: ChaCha8 on a 64-bit seed. The simulator seeds it from the run's seed;
/// the real environment seeds it once from the OS at boot (outside `system/`).
#[derive(Debug, Clone)]
pub struct DetRng {
    inner: ChaCha8Rng,
}

impl DetRng {
    pub fn from_seed(seed: u64) -> DetRng {
        DetRng { inner: ChaCha8Rng::seed_from_u64(seed) }
    }
}

impl Rng for DetRng {
    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    fn fill_bytes(&mut self, buf: &mut [u8]) {
        self.inner.fill_bytes(buf)
    }

    fn fork(&mut self, purpose: &str) -> DetRng {
        // FNV-1a of the purpose, mixed with a fresh draw: forks for different purposes differ, and the
        // same purpose forked twice gives two different streams.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in purpose.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        DetRng::from_seed(self.next_u64() ^ h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_forks_differ() {
        let mut a = DetRng::from_seed(7);
        let mut b = DetRng::from_seed(7);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let mut f1 = a.fork("disk");
        let mut f2 = b.fork("net");
        assert_ne!(f1.next_u64(), f2.next_u64());
    }

    #[test]
    fn below_stays_in_bounds() {
        let mut r = DetRng::from_seed(1);
        for bound in [1u64, 2, 3, 7, 1000, u64::MAX] {
            for _ in 0..100 {
                assert!(r.below(bound) < bound);
            }
        }
        assert_eq!(r.range_inclusive(5, 5), 5);
    }
}
