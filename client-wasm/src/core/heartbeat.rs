//! Liveness of an open connection. Browsers cannot send WebSocket pings, so the client sends
//! `Ping` frames; the connection is dead when nothing at all has arrived for a whole interval
//! plus a grace: the client's `pong_timeout`, cut down to what the server's own heartbeat
//! timeout leaves after the interval. The server closes a connection it has not heard from
//! for its timeout; a link silent that long the other way is as dead, since the client
//! pings at the server's interval and each ping is answered at once. Waiting longer only
//! delays the reconnect, and every publish sent into the dead link with it. Any frame
//! counts, so a busy connection is never declared dead because one pong is slow.

use super::Millis;

#[derive(Debug)]
pub(crate) struct Heartbeat {
    /// Ping every this many ms.
    interval: Millis,
    /// How long past an interval silence is tolerated (and how long a probe waits).
    grace: Millis,
    next_ping: Millis,
    last_frame: Millis,
    /// Set by an explicit liveness check (`wake`): dead if nothing arrives by then.
    probe_until: Option<Millis>,
}

impl Heartbeat {
    /// Ping every `interval`; the server gives up on a connection silent for
    /// `server_timeout` (0: not announced); the client waits at most `pong_timeout` past an
    /// interval.
    pub(crate) fn new(
        now: Millis,
        interval: Millis,
        server_timeout: Millis,
        pong_timeout: Millis,
    ) -> Heartbeat {
        let interval = interval.max(1);
        let grace = match server_timeout.checked_sub(interval) {
            Some(left) if left > 0 => pong_timeout.min(left),
            // No timeout announced, or one not past the interval (the welcome shortens the
            // interval then): the client's own bound.
            _ => pong_timeout,
        };
        Heartbeat {
            interval,
            grace,
            next_ping: now.saturating_add(interval),
            last_frame: now,
            probe_until: None,
        }
    }

    /// A frame arrived.
    pub(crate) fn frame(&mut self, now: Millis) {
        self.last_frame = now;
        self.probe_until = None;
    }

    /// A ping was sent outside the schedule to check liveness now.
    pub(crate) fn probe(&mut self, now: Millis) {
        let until = now.saturating_add(self.grace);
        self.probe_until = Some(self.probe_until.map_or(until, |p| p.min(until)));
        self.next_ping = now.saturating_add(self.interval);
    }

    fn dead_at(&self) -> Millis {
        let silent = self
            .last_frame
            .saturating_add(self.interval)
            .saturating_add(self.grace);
        self.probe_until.map_or(silent, |p| p.min(silent))
    }

    pub(crate) fn is_dead(&self, now: Millis) -> bool {
        now >= self.dead_at()
    }

    /// Whether a ping is due; if so, the next one is scheduled.
    pub(crate) fn ping_due(&mut self, now: Millis) -> bool {
        if now < self.next_ping {
            return false;
        }
        self.next_ping = now.saturating_add(self.interval);
        true
    }

    pub(crate) fn deadline(&self) -> Millis {
        self.next_ping.min(self.dead_at())
    }
}
