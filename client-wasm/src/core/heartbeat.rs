//! Liveness of an open connection. Browsers cannot send WebSocket pings, so the client sends
//! `Ping` frames; the connection is dead when nothing at all has arrived for a whole interval
//! plus the pong timeout. Any frame counts, so a busy connection is never declared dead
//! because one pong is slow.

use super::Millis;

#[derive(Debug)]
pub(crate) struct Heartbeat {
    /// Ping every this many ms.
    interval: Millis,
    /// How long past an interval silence is tolerated.
    grace: Millis,
    next_ping: Millis,
    last_frame: Millis,
    /// Set by an explicit liveness check (`wake`): dead if nothing arrives by then.
    probe_until: Option<Millis>,
}

impl Heartbeat {
    pub(crate) fn new(now: Millis, interval: Millis, grace: Millis) -> Heartbeat {
        let interval = interval.max(1);
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
