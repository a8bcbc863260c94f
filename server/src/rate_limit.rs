//! A connection's rate limits: token buckets, each a single timestamp.
//!
//! A bucket is the generic cell rate algorithm (GCRA): it remembers the time at which it
//! will next be full ("theoretical arrival time"), which is all a token bucket needs. Each
//! connection holds several, so they are kept to eight bytes; the rate and burst they
//! check against are the server's settings, passed in. (governor's direct limiter, used
//! before, keeps its quota and clock in every limiter: 72 bytes each, four per connection,
//! about a tenth of an idle connection's memory.)

use tokio::time::Instant;

/// A rate: `per_second` sustained, `burst` at once. Zero in either is taken as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    /// Time one token takes to come back, in nanoseconds.
    interval: u64,
    /// Time all of the burst takes to come back: `interval * burst`.
    window: u64,
}

impl Rate {
    /// `per_second` tokens a second, at most `burst` at once.
    pub(crate) fn new(per_second: u32, burst: u32) -> Rate {
        let interval = 1_000_000_000 / u64::from(per_second.max(1));
        Rate {
            interval,
            window: interval * u64::from(burst.max(1)),
        }
    }
}

/// One token bucket, full when created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bucket {
    /// When the bucket will be full again, in nanoseconds since `epoch`; at or before now
    /// means full.
    full_at: u64,
}

impl Bucket {
    /// A full bucket.
    pub(crate) fn new() -> Bucket {
        Bucket { full_at: 0 }
    }

    /// Take a token at `rate` if one is left. `epoch` is any fixed instant before `now`,
    /// the same for every call on this bucket.
    pub(crate) fn check(&mut self, rate: Rate, epoch: Instant, now: Instant) -> bool {
        let now =
            u64::try_from(now.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX);
        let full_at = self.full_at.max(now) + rate.interval;
        if full_at - now > rate.window {
            return false;
        }
        self.full_at = full_at;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_bucket_gives_its_burst_then_one_token_per_interval() {
        let rate = Rate::new(2, 3);
        let epoch = Instant::now();
        let mut bucket = Bucket::new();
        let now = epoch + Duration::from_secs(10);
        for _ in 0..3 {
            assert!(bucket.check(rate, epoch, now));
        }
        assert!(!bucket.check(rate, epoch, now));
        let later = now + Duration::from_millis(500);
        assert!(bucket.check(rate, epoch, later));
        assert!(!bucket.check(rate, epoch, later));
        // Idle long enough, it is full again, and no fuller.
        let much_later = later + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(bucket.check(rate, epoch, much_later));
        }
        assert!(!bucket.check(rate, epoch, much_later));
    }

    #[test]
    fn zero_rates_and_bursts_count_as_one() {
        let rate = Rate::new(0, 0);
        let epoch = Instant::now();
        let mut bucket = Bucket::new();
        assert!(bucket.check(rate, epoch, epoch));
        assert!(!bucket.check(rate, epoch, epoch));
        assert!(bucket.check(rate, epoch, epoch + Duration::from_secs(1)));
    }
}
