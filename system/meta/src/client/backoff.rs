//! The retry backoff: exponential from a base, capped, with "equal jitter" drawn from the client's
//! seeded generator (each wait is uniform in the upper half of its ceiling, so clients that failed
//! together do not retry together, and no wait is shorter than half its ceiling).

use core::time::Duration;

use tessera_env::Rng;

/// The backoff schedule: attempt `k` (from 0) waits between `c/2` and `c` ms, where
/// `c = min(base_ms * 2^k, max_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base_ms: u64,
    max_ms: u64,
}

impl Backoff {
    /// Panics unless `0 < base_ms <= max_ms` (a validated [`crate::client::ClientConfig`] guarantees it).
    pub fn new(base_ms: u64, max_ms: u64) -> Backoff {
        assert!(base_ms > 0 && base_ms <= max_ms, "backoff {base_ms}..{max_ms} ms");
        Backoff { base_ms, max_ms }
    }

    /// The longest wait of attempt `attempt` (counted from 0), in ms.
    pub fn ceiling_ms(&self, attempt: u32) -> u64 {
        let factor = 1u64.checked_shl(attempt.min(63)).unwrap_or(u64::MAX);
        self.base_ms.saturating_mul(factor).min(self.max_ms)
    }

    /// A jittered wait for attempt `attempt`, drawn from `rng`.
    pub fn delay<R: Rng>(&self, attempt: u32, rng: &mut R) -> Duration {
        let ceiling_ms = self.ceiling_ms(attempt);
        let wait_ms = rng.range_inclusive(ceiling_ms.div_ceil(2), ceiling_ms);
        assert!(wait_ms > 0 && wait_ms <= self.max_ms);
        Duration::from_millis(wait_ms)
    }
}

#[cfg(test)]
mod tests {
    use tessera_env::DetRng;

    use super::*;

    #[test]
    fn doubles_from_the_base_up_to_the_cap_with_jitter_in_the_upper_half() {
        let b = Backoff::new(10, 1_000);
        let ceilings: Vec<u64> = (0..9).map(|k| b.ceiling_ms(k)).collect();
        assert_eq!(ceilings, [10, 20, 40, 80, 160, 320, 640, 1_000, 1_000]);
        assert_eq!(b.ceiling_ms(u32::MAX), 1_000);
        let mut rng = DetRng::from_seed(3);
        let mut seen = std::collections::BTreeSet::new();
        for k in 0..12 {
            for _ in 0..50 {
                let ms = b.delay(k, &mut rng).as_millis() as u64;
                let c = b.ceiling_ms(k);
                assert!(ms >= c.div_ceil(2) && ms <= c, "attempt {k}: {ms} ms outside the jitter window of {c}");
                seen.insert(ms);
            }
        }
        assert!(seen.len() > 100, "the jitter should spread the waits");
        // Same seed, same schedule.
        let (mut r1, mut r2) = (DetRng::from_seed(9), DetRng::from_seed(9));
        let w1: Vec<Duration> = (0..8).map(|k| b.delay(k, &mut r1)).collect();
        let w2: Vec<Duration> = (0..8).map(|k| b.delay(k, &mut r2)).collect();
        assert_eq!(w1, w2);
    }

    #[test]
    fn base_one_never_waits_zero() {
        let b = Backoff::new(1, 1);
        let mut rng = DetRng::from_seed(1);
        assert!((0..100).all(|k| b.delay(k, &mut rng) == Duration::from_millis(1)));
    }
}
