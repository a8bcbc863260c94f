//! Typing indicators, server side: a throttle on relayed "started" events and an expiry for
//! clients that vanish mid-word. Nothing here is stored beyond the expiry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
struct Entry {
    relayed_at: Instant,
    expires_at: Instant,
}

/// Who is typing where, on this node.
#[derive(Debug)]
pub(crate) struct Typing {
    throttle: Duration,
    ttl: Duration,
    // Keyed by (room, user); touched once per keystroke batch, never held across an await.
    state: Mutex<HashMap<(String, String), Entry>>,
}

impl Typing {
    pub(crate) fn new(throttle: Duration, ttl: Duration) -> Typing {
        Typing {
            throttle,
            ttl,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// `user` is typing in `room`: refresh the expiry. Returns whether to relay it (the
    /// first event, or the first after the throttle window).
    pub(crate) fn started(&self, room: &str, user: &str, now: Instant) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let expires_at = now + self.ttl;
        match state.get_mut(&(room.to_owned(), user.to_owned())) {
            Some(entry) => {
                entry.expires_at = expires_at;
                if now.saturating_duration_since(entry.relayed_at) >= self.throttle {
                    entry.relayed_at = now;
                    return true;
                }
                false
            }
            None => {
                state.insert(
                    (room.to_owned(), user.to_owned()),
                    Entry {
                        relayed_at: now,
                        expires_at,
                    },
                );
                true
            }
        }
    }

    /// `user` stopped typing in `room`. Returns whether they were typing (and so whether
    /// to relay the stop).
    pub(crate) fn stopped(&self, room: &str, user: &str) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // Called for every publish: nobody typing is the common case, and needs no key.
        if state.is_empty() {
            return false;
        }
        state.remove(&(room.to_owned(), user.to_owned())).is_some()
    }

    /// Remove and return the (room, user) pairs whose typing state has expired.
    pub(crate) fn expire(&self, now: Instant) -> Vec<(String, String)> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let expired: Vec<_> = state
            .iter()
            .filter(|(_, e)| e.expires_at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &expired {
            state.remove(key);
        }
        expired
    }

    /// How often to look for expired states: a fifth of the ttl, within 10 ms and 1 s.
    pub(crate) fn sweep_interval(&self) -> Duration {
        (self.ttl / 5).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_once_per_throttle_window_and_expires() {
        let typing = Typing::new(Duration::from_secs(1), Duration::from_secs(5));
        let t0 = Instant::now();
        assert!(typing.started("r", "alice", t0));
        assert!(!typing.started("r", "alice", t0 + Duration::from_millis(500)));
        assert!(typing.started("r", "bob", t0 + Duration::from_millis(500)));
        assert!(typing.started("r", "alice", t0 + Duration::from_millis(1000)));
        // Bob's state, refreshed last at 500 ms, is the first to expire, at 5500 ms.
        assert!(typing.expire(t0 + Duration::from_millis(5499)).is_empty());
        let mut gone = typing.expire(t0 + Duration::from_millis(6000));
        gone.sort();
        assert_eq!(
            gone,
            vec![
                ("r".to_owned(), "alice".to_owned()),
                ("r".to_owned(), "bob".to_owned())
            ]
        );
    }

    #[test]
    fn stop_relays_only_when_typing() {
        let typing = Typing::new(Duration::from_secs(1), Duration::from_secs(5));
        assert!(!typing.stopped("r", "alice"));
        typing.started("r", "alice", Instant::now());
        assert!(typing.stopped("r", "alice"));
        assert!(!typing.stopped("r", "alice"));
    }
}
