//! A connection's rate limits, and the abuse bucket that ends a connection persisting in
//! rejected requests.

use tokio::time::Instant;

use crate::config::Config;
use crate::rate_limit::{Bucket, Rate};

/// Which of a connection's rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Limit {
    Publish,
    Typing,
    History,
    /// Joins (see `Config::membership_rate`).
    Membership,
    /// Rejected requests; running out means persistent abuse.
    Abuse,
}

/// A connection's rate limits: what it may still do. The rates are the server's settings,
/// read on each check, so each bucket is a single timestamp (see `rate_limit`).
#[derive(Debug)]
pub(super) struct Buckets {
    /// When the connection opened: the buckets count time from here.
    epoch: Instant,
    publish: Bucket,
    typing: Bucket,
    history: Bucket,
    membership: Bucket,
    abuse: Bucket,
}

impl Buckets {
    /// Full buckets, counting time from `epoch`.
    pub(super) fn new(epoch: Instant) -> Buckets {
        Buckets {
            epoch,
            publish: Bucket::new(),
            typing: Bucket::new(),
            history: Bucket::new(),
            membership: Bucket::new(),
            abuse: Bucket::new(),
        }
    }

    /// Take a token from `limit` at `now`, if one is left.
    pub(super) fn allow(&mut self, c: &Config, limit: Limit, now: Instant) -> bool {
        let (bucket, rate) = match limit {
            Limit::Publish => (
                &mut self.publish,
                Rate::new(c.publish_rate, c.publish_burst),
            ),
            Limit::Typing => (&mut self.typing, Rate::new(c.typing_rate, c.typing_burst)),
            Limit::History => (
                &mut self.history,
                Rate::new(c.history_per_second, c.history_burst),
            ),
            Limit::Membership => (
                &mut self.membership,
                Rate::new(c.membership_rate, c.membership_burst),
            ),
            // Forgiven at one a second.
            Limit::Abuse => (&mut self.abuse, Rate::new(1, c.abuse_burst)),
        };
        bucket.check(rate, self.epoch, now)
    }
}
