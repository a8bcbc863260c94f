//! Reconnect delays: exponential backoff with full jitter, reset by a stable connection, and
//! the server's own `RetryAfter` hint.

use super::Millis;
use super::rng::Rng;

/// Counts consecutive failed or lost connections and turns the count into a delay.
#[derive(Debug)]
pub(crate) struct Backoff {
    initial: Millis,
    max: Millis,
    stable_after: Millis,
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(initial: Millis, max: Millis, stable_after: Millis) -> Backoff {
        Backoff {
            initial,
            max,
            stable_after,
            attempt: 0,
        }
    }

    /// The attempt that failed last (0 before any failure).
    pub(crate) fn attempt(&self) -> u32 {
        self.attempt
    }

    /// An attempt failed (or a connection that never got stable was lost); returns the new
    /// attempt number.
    pub(crate) fn failed(&mut self) -> u32 {
        self.attempt = self.attempt.saturating_add(1);
        self.attempt
    }

    /// A welcomed connection was lost after `open_for` ms. One that had been stable starts a
    /// fresh series, so the next delay is small again. Returns the new attempt number.
    pub(crate) fn lost(&mut self, open_for: Millis) -> u32 {
        if open_for >= self.stable_after {
            self.attempt = 0;
        }
        self.failed()
    }

    /// Whether a connection open for `open_for` ms counts as stable.
    pub(crate) fn is_stable(&self, open_for: Millis) -> bool {
        open_for >= self.stable_after
    }

    /// A delay drawn for the current attempt: uniform in `0..=bound(attempt)`.
    pub(crate) fn delay(&self, rng: &mut Rng) -> Millis {
        rng.up_to(bound(self.initial, self.max, self.attempt))
    }

    /// A delay drawn for the `n`-th retry of something else (a join), on the same curve.
    pub(crate) fn delay_for(&self, n: u32, rng: &mut Rng) -> Millis {
        rng.up_to(bound(self.initial, self.max, n))
    }
}

/// `min(max, initial * 2^(attempt - 1))`, without overflow.
pub(crate) fn bound(initial: Millis, max: Millis, attempt: u32) -> Millis {
    let doublings = attempt.saturating_sub(1).min(63);
    initial
        .checked_mul(1 << doublings)
        .map_or(max, |b| b.min(max))
}

/// The server's `RetryAfter(ms)` plus up to 10 % more, so clients it sent away together do
/// not all come back in the same millisecond.
pub(crate) fn retry_after(ms: u32, rng: &mut Rng) -> Millis {
    let ms = Millis::from(ms);
    ms + rng.up_to(ms / 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_doubles_then_caps() {
        assert_eq!(bound(500, 30_000, 0), 500);
        assert_eq!(bound(500, 30_000, 1), 500);
        assert_eq!(bound(500, 30_000, 2), 1000);
        assert_eq!(bound(500, 30_000, 7), 30_000);
        assert_eq!(bound(500, 30_000, u32::MAX), 30_000);
        assert_eq!(bound(u64::MAX, 30_000, 3), 30_000);
    }
}
