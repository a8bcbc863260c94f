//! Publishes waiting for their ack: queued while offline, sent in order once the connection
//! is ready and the server's rate allows (see `pacing.rs`), sent again with the same id
//! after a reconnect, settled exactly once (by taking them out of here).

use super::Millis;
use super::pacing::Pacer;
use crate::prelude::*;

/// One publish the server has not acknowledged yet.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) id: u64,
    pub(crate) room: String,
    /// Body size, counted against `queue_max_bytes`.
    pub(crate) size: usize,
    /// The encoded `Publish`, kept so a resend costs no re-encoding.
    pub(crate) frame: Vec<u8>,
    pub(crate) deadline: Millis,
    /// Sent on the current connection.
    pub(crate) in_flight: bool,
    /// Sent on some connection: the server may have it even without an ack.
    pub(crate) maybe_delivered: bool,
}

#[derive(Debug)]
pub(crate) struct Outbox {
    /// In publish order. All share one timeout, so deadlines are in order too. A `Vec`
    /// rather than a `VecDeque`: taking from the front moves at most `queue_max_messages`
    /// small entries, and one collection type fewer keeps the wasm smaller.
    entries: Vec<Pending>,
    bytes: usize,
    max_messages: usize,
    max_bytes: usize,
    /// The server's publish rate on the current connection.
    pacer: Pacer,
}

impl Outbox {
    pub(crate) fn new(max_messages: usize, max_bytes: usize) -> Outbox {
        Outbox {
            entries: Vec::new(),
            bytes: 0,
            max_messages,
            max_bytes,
            pacer: Pacer::default(),
        }
    }

    /// Whether one more publish of `size` bytes fits.
    pub(crate) fn has_room_for(&self, size: usize) -> bool {
        self.entries.len() < self.max_messages
            && self
                .bytes
                .checked_add(size)
                .is_some_and(|b| b <= self.max_bytes)
    }

    /// Publishes waiting.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn push(&mut self, pending: Pending) {
        self.bytes += pending.size;
        self.entries.push(pending);
    }

    /// Take out the publish with this id, if it is still waiting.
    pub(crate) fn take(&mut self, id: u64) -> Option<Pending> {
        let at = self.entries.iter().position(|p| p.id == id)?;
        self.remove_at(at)
    }

    /// Whether `id` is still waiting, in `room`.
    pub(crate) fn is_pending(&self, id: u64, room: &str) -> bool {
        self.entries.iter().any(|p| p.id == id && p.room == room)
    }

    fn remove_at(&mut self, at: usize) -> Option<Pending> {
        if at >= self.entries.len() {
            return None;
        }
        let pending = self.entries.remove(at);
        self.bytes -= pending.size;
        Some(pending)
    }

    /// Take out the publishes whose timeout has passed.
    pub(crate) fn take_expired(&mut self, now: Millis) -> Vec<Pending> {
        // One at a time from the front, with what `take` uses: less wasm than a `split_off`.
        let mut expired = Vec::new();
        while self.entries.first().is_some_and(|p| p.deadline <= now) {
            if let Some(p) = self.remove_at(0) {
                expired.push(p);
            }
        }
        expired
    }

    /// Take out the publishes of `room` that matches `pick`.
    pub(crate) fn take_room(
        &mut self,
        room: &str,
        pick: impl Fn(&Pending) -> bool,
    ) -> Vec<Pending> {
        let mut taken = Vec::new();
        let mut at = 0;
        while at < self.entries.len() {
            let p = &self.entries[at];
            if p.room == room && pick(p) {
                if let Some(p) = self.remove_at(at) {
                    taken.push(p);
                }
            } else {
                at += 1;
            }
        }
        taken
    }

    /// Take out everything (the client is closing).
    pub(crate) fn take_all(&mut self) -> Vec<Pending> {
        self.bytes = 0;
        ::core::mem::take(&mut self.entries)
    }

    pub(crate) fn deadline(&self) -> Option<Millis> {
        self.entries.first().map(|p| p.deadline)
    }

    /// The connection is gone: nothing is in flight any more, everything will be sent again.
    pub(crate) fn connection_lost(&mut self) {
        for p in &mut self.entries {
            p.in_flight = false;
        }
    }

    /// Whether a publish sent on an earlier connection is still unacknowledged, so the next
    /// connection must first learn whether the server has it.
    pub(crate) fn any_maybe_delivered(&self) -> bool {
        self.entries
            .iter()
            .any(|p| p.maybe_delivered && !p.in_flight)
    }

    /// A new connection was welcomed with this publish rate and burst (see `pacing.rs`).
    pub(crate) fn pace(&mut self, now: Millis, per_second: u32, burst: u32) {
        self.pacer.reset(now, per_second, burst);
    }

    /// The server refused a publish as rate limited: send the next one only when its bucket
    /// has a token again.
    pub(crate) fn rate_limited(&mut self, now: Millis) {
        self.pacer.exhausted(now);
    }

    /// Frames to send now, in publish order: the ones not in flight whose room is `ready`,
    /// as many as the server's rate allows; the rest wait for [`Outbox::next_send`].
    pub(crate) fn flush(
        &mut self,
        now: Millis,
        ready: impl Fn(&str) -> bool,
        mut send: impl FnMut(Vec<u8>),
    ) {
        for p in &mut self.entries {
            if p.in_flight || !ready(&p.room) {
                continue;
            }
            if !self.pacer.allow(now) {
                break;
            }
            p.in_flight = true;
            p.maybe_delivered = true;
            // `to_vec` rather than `clone`: the same copy, through the routine the wasm already
            // has for `to_owned`.
            send(p.frame.to_vec());
        }
    }

    /// When [`Outbox::flush`] may send the next publish that waits for the server's rate,
    /// if one does (one not in flight whose room is `ready`).
    pub(crate) fn next_send(&self, ready: impl Fn(&str) -> bool) -> Option<Millis> {
        if self.entries.iter().any(|p| !p.in_flight && ready(&p.room)) {
            self.pacer.next_at()
        } else {
            None
        }
    }
}
