//! One monotonic clock for the whole process, so a send stamp written by one connection and
//! a receive time read by another compare directly.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Nanoseconds since the process first asked.
pub fn now_ns() -> u64 {
    u64::try_from(start().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The instant `ns` nanoseconds after the clock's start (for schedules written in
/// [`now_ns`] units).
pub fn instant_at(ns: u64) -> Instant {
    start() + Duration::from_nanos(ns)
}
