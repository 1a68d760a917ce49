//! Reconnect delays: capped exponential backoff with jitter, so that devices
//! that lost the broker together do not all come back at the same instant.
//! Each backoff's jitter is seeded from the operating system's random numbers
//! (getrandom(2)): devices of the same firmware powered on together share
//! their boot time and often their process id, and a seed made of those would
//! keep them retrying in lockstep.

use std::time::Duration;

/// Capped exponential backoff with +-25% jitter.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    min: u64,
    max: u64,
    cur: u64,
    seed: u64,
}

impl Backoff {
    /// Delays from `min_ms` doubling up to `max_ms`, with jitter of its own.
    pub fn new(min_ms: u32, max_ms: u32) -> Backoff {
        Backoff::with_seed(min_ms, max_ms, os_seed())
    }

    pub(super) fn with_seed(min_ms: u32, max_ms: u32, seed: u64) -> Backoff {
        Backoff {
            min: u64::from(min_ms),
            max: u64::from(max_ms),
            cur: u64::from(min_ms),
            seed: seed | 1,
        }
    }

    pub fn reset(&mut self) {
        self.cur = self.min;
    }

    /// The next delay: the current base +-25%, then the base doubles up to the cap.
    pub fn next(&mut self) -> Duration {
        // xorshift64: jitter needs no cryptographic quality.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let base = self.cur;
        let spread = base / 2;
        let jittered = base - base / 4
            + if spread > 0 {
                self.seed % (spread + 1)
            } else {
                0
            };
        self.cur = (self.cur.saturating_mul(2)).min(self.max);
        Duration::from_millis(jittered.max(1))
    }
}

/// A seed from the operating system (the library's one source of randomness).
fn os_seed() -> u64 {
    crate::random::u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_with_bounded_jitter_and_resets() {
        let mut b = Backoff::with_seed(100, 1000, 42);
        let mut bases = Vec::new();
        for _ in 0..8 {
            bases.push(b.cur);
            let d = b.next().as_millis() as u64;
            let base = *bases.last().unwrap();
            assert!(
                d >= base - base / 4 && d <= base + base / 4,
                "{d} ms outside +-25% of {base}"
            );
        }
        assert_eq!(bases, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
        b.reset();
        assert_eq!(b.cur, 100);
    }

    #[test]
    fn backoff_jitter_spreads_and_never_reaches_zero() {
        let mut seen = std::collections::HashSet::new();
        for seed in 0..200 {
            let mut b = Backoff::with_seed(100, 100, seed);
            let d = b.next().as_millis() as u64;
            assert!((75..=125).contains(&d), "{d}");
            seen.insert(d);
        }
        assert!(seen.len() > 20, "jitter spreads delays: {seen:?}");
        let mut tiny = Backoff::with_seed(1, 1, 7);
        assert!(tiny.next() >= Duration::from_millis(1));
    }

    #[test]
    fn backoffs_made_at_the_same_instant_do_not_retry_in_lockstep() {
        // Two sessions of this process started together (or two devices booted
        // together): their delays must differ. Eight delays of a backoff from
        // 100 ms to 10 s: the chance that all eight match is below 1e-15.
        let delays = |mut b: Backoff| (0..8).map(|_| b.next()).collect::<Vec<_>>();
        let (a, b) = (Backoff::new(100, 10_000), Backoff::new(100, 10_000));
        assert_ne!(delays(a), delays(b));
    }
}
