//! Pacing of publishes to the rate the server enforces. The server keeps one token bucket
//! per connection for publishes (`publish_per_second` sustained, `publish_burst` at once,
//! both announced in the welcome) and refuses a publish over it with 106 (rate limited);
//! enough refusals in a row close the connection for abuse (4003). So the client keeps a
//! model of that bucket and sends a publish only when the model has a token for it: a full
//! offline queue flushed after an outage, publishes sent again after a reconnect and live
//! publishes beyond the burst all wait their turn in the outbox instead of being refused.
//!
//! The model is the server's own algorithm (GCRA: the bucket is the time at which it will be
//! full again), made a little conservative, because the server counts a publish when it
//! arrives, not when it was sent, and arrivals bunch up when the network holds some frames
//! back and then lets them through together:
//! - it starts each connection with a quarter of the burst held back, so up to that many
//!   publishes may arrive early without finding the server's bucket empty;
//! - it refills an eighth slower than the server's rate, so the server's bucket gains that
//!   headroom back while publishes flow.
//!
//! A rate of 0 means no limit (the Chorus server always announces a positive rate; its
//! configuration refuses 0).

use super::Millis;

/// Time inside the model is in microseconds, so that a rate over 1000 a second (a token
/// interval under a millisecond) keeps its precision.
const MICROS_PER_MILLI: u64 = 1_000;

/// The client refills this much slower than the server's rate: `RATE_DIV / RATE_NUM`.
const RATE_NUM: u64 = 8;
const RATE_DIV: u64 = 9;

/// The client's view of the server's bucket: tokens come back every `interval`, all of the
/// burst in `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rate {
    interval: u64,
    window: u64,
}

/// The client's model of the server's publish bucket on the current connection.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    /// `None`: no limit (before any welcome, or a server that announces 0).
    rate: Option<Rate>,
    /// When the bucket is full again, in microseconds; at or before now means full.
    full_at: u64,
}

impl Pacer {
    /// A new connection, whose bucket on the server is new and full: `per_second` tokens a
    /// second, `burst` at once (0 taken as 1), or no limit when `per_second` is 0.
    pub(crate) fn reset(&mut self, now: Millis, per_second: u32, burst: u32) {
        self.rate = (per_second > 0).then(|| {
            let interval = (1_000_000 * RATE_DIV).div_ceil(RATE_NUM * u64::from(per_second));
            let burst = u64::from(burst.max(1));
            let held_back = burst.div_ceil(4);
            let burst = burst.saturating_sub(held_back).max(1);
            Rate {
                interval,
                window: interval.saturating_mul(burst),
            }
        });
        self.full_at = micros(now);
    }

    /// Take a token for a publish sent at `now`, if the model has one.
    pub(crate) fn allow(&mut self, now: Millis) -> bool {
        let Some(rate) = self.rate else {
            return true;
        };
        let now = micros(now);
        let full_at = self.full_at.max(now).saturating_add(rate.interval);
        if full_at - now > rate.window {
            return false;
        }
        self.full_at = full_at;
        true
    }

    /// When the next token comes (at or before now when there is one), or `None` without
    /// a limit.
    pub(crate) fn next_at(&self) -> Option<Millis> {
        let rate = self.rate?;
        // `allow` succeeds once `full_at + interval - now <= window`.
        let at = self
            .full_at
            .saturating_add(rate.interval)
            .saturating_sub(rate.window);
        Some(at.div_ceil(MICROS_PER_MILLI))
    }

    /// The server refused a publish as rate limited: its bucket is empty whatever the model
    /// says (its clock may run ahead, or it may count what the model does not), so assume
    /// so and wait for the next token.
    pub(crate) fn exhausted(&mut self, now: Millis) {
        if let Some(rate) = self.rate {
            self.full_at = self.full_at.max(micros(now).saturating_add(rate.window));
        }
    }
}

fn micros(ms: Millis) -> u64 {
    ms.saturating_mul(MICROS_PER_MILLI)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Millis = 1_000_000;

    fn sends_at(pacer: &mut Pacer, now: Millis) -> usize {
        ::core::iter::from_fn(|| pacer.allow(now).then_some(())).count()
    }

    #[test]
    fn no_rate_means_no_limit() {
        let mut pacer = Pacer::default();
        assert_eq!(pacer.next_at(), None);
        assert!((0..10_000).all(|_| pacer.allow(T)));
        pacer.reset(T, 0, 0);
        assert!((0..10_000).all(|_| pacer.allow(T)));
        assert_eq!(pacer.next_at(), None);
    }

    #[test]
    fn three_quarters_of_the_burst_then_a_little_under_the_rate() {
        let mut pacer = Pacer::default();
        pacer.reset(T, 50, 100);
        assert!(pacer.next_at().unwrap() <= T, "a token now");
        assert_eq!(sends_at(&mut pacer, T), 75);
        // 50 a second is one per 20 ms on the server; the client waits 22.5 ms.
        assert_eq!(pacer.next_at(), Some(T + 23));
        assert_eq!(sends_at(&mut pacer, T + 22), 0);
        assert_eq!(sends_at(&mut pacer, T + 23), 1);
        assert_eq!(sends_at(&mut pacer, T + 1_000), 43);
    }

    #[test]
    fn the_next_token_comes_at_the_time_announced() {
        for (rate, burst) in [(1, 1), (3, 2), (50, 100), (7_000, 5), (1_000_000, 3)] {
            let mut pacer = Pacer::default();
            pacer.reset(T, rate, burst);
            let mut now = T;
            for _ in 0..20 {
                while pacer.allow(now) {}
                let next = pacer.next_at().unwrap();
                assert!(next > now, "{rate}/{burst}: none left now");
                assert!(pacer.allow(next), "{rate}/{burst}: one at {next}");
                now = next;
            }
        }
    }

    #[test]
    fn a_small_burst_still_allows_one() {
        let mut pacer = Pacer::default();
        pacer.reset(T, 5, 1);
        assert_eq!(sends_at(&mut pacer, T), 1);
        pacer.reset(T, 5, 0);
        assert_eq!(sends_at(&mut pacer, T), 1);
    }

    #[test]
    fn a_refusal_empties_the_model() {
        let mut pacer = Pacer::default();
        pacer.reset(T, 10, 20);
        assert!(pacer.allow(T));
        pacer.exhausted(T);
        assert_eq!(sends_at(&mut pacer, T), 0);
        assert_eq!(pacer.next_at(), Some(T + 113));
    }
}
