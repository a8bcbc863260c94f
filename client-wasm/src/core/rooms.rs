//! The rooms the app wants to be in, and what the client knows of each: the last position
//! seen (to resume from after a reconnect), and where the join stands on this connection.
//!
//! ## Sequence gaps
//! Within an epoch the server sends a room's messages with consecutive sequence numbers,
//! and a join that resumed (`Recovered`) replays from the next one. So a message past the
//! next sequence on a live connection means messages were lost on the way, and the client
//! resumes the room from the last one it delivered: it leaves and joins again with `since`
//! (the server ignores `since` for a room the connection is in), and the server replays
//! everything after it, in order. Messages that arrive after the gap and before that
//! replay are not delivered out of order and not buffered: the replay brings them again,
//! in order, so the position never moves past a gap and nothing after it is lost. When
//! the server no longer retains what was lost, the app is told by the `Joined` with
//! `Recovery::Missed`, as after any resume that could not recover. The only skip accepted
//! is the first message after a `Joined` that said `Missed`: the server announced it.
//! A gap found again before any message got through (a server that keeps skipping) is
//! resumed after a backoff delay, not at once, so it cannot turn into a storm of joins.

use crate::prelude::*;
use chorus_protocol::{Position, Recovery};

use super::names::NameMap;
use super::{Millis, earlier};

#[derive(Debug, Default)]
struct Room {
    /// The epoch from `Joined` and the last sequence delivered to the app in it.
    position: Option<Position>,
    /// `Join` went out on this connection (and was not refused).
    join_sent: bool,
    /// `Joined` arrived on this connection.
    joined: bool,
    /// Transient refusals of the join in a row.
    failures: u32,
    /// When to send the join again after a transient refusal.
    retry_at: Option<Millis>,
    /// The server said typing is off in this room's namespace.
    typing_off: bool,
    /// The last `Joined` said `Missed`: the next message may skip sequences.
    may_skip: bool,
    /// A `Leave` sent to resume after a gap awaits its `Left`, which is not the app's.
    resume_left: bool,
    /// Gaps found in a row, with no message delivered in between.
    gaps: u32,
}

/// What to do with a room's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accept {
    /// Deliver it: it is the next sequence.
    Deliver,
    /// Drop it: delivered already, or the room is not joined (yet) on this connection.
    Drop,
    /// Drop it: sequences are missing before it. Resume the room (see the module docs).
    Gap,
}

#[derive(Debug, Default)]
pub(crate) struct Rooms {
    rooms: NameMap<Room>,
    /// Rooms left by the app while the `Left` of a resume's `Leave` was still due: that
    /// `Left` is not the app's either.
    stray_lefts: Vec<String>,
}

impl Rooms {
    /// Want `room`. Returns whether it is new.
    pub(crate) fn want(&mut self, room: &str) -> bool {
        if self.rooms.contains(room) {
            return false;
        }
        self.rooms.insert(room, Room::default())
    }

    /// Resume `room` from `position`, one the app kept: its join asks for what came
    /// after, and the duplicate guard starts there.
    pub(crate) fn resume_from(&mut self, room: &str, position: Position) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.position = Some(position);
        }
    }

    /// Stop wanting `room`. Returns whether it was wanted.
    pub(crate) fn forget(&mut self, room: &str) -> bool {
        let Some(r) = self.rooms.remove(room) else {
            return false;
        };
        if r.resume_left {
            self.stray_lefts.push(room.to_owned());
        }
        true
    }

    pub(crate) fn is_wanted(&self, room: &str) -> bool {
        self.rooms.contains(room)
    }

    /// Whether requests for `room` may go out: its `Join` is ahead of them on the wire.
    pub(crate) fn is_ready(&self, room: &str) -> bool {
        self.rooms.get(room).is_some_and(|r| r.join_sent)
    }

    /// Whether a join of `room` is awaiting its answer on this connection.
    pub(crate) fn is_joining(&self, room: &str) -> bool {
        self.rooms
            .get(room)
            .is_some_and(|r| r.join_sent && !r.joined)
    }

    pub(crate) fn typing_allowed(&self, room: &str) -> bool {
        self.rooms
            .get(room)
            .is_some_and(|r| r.join_sent && !r.typing_off)
    }

    pub(crate) fn typing_refused(&mut self, room: &str) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.typing_off = true;
        }
    }

    /// Mark `room`'s join as sent; returns the position to resume from.
    pub(crate) fn join_sent(&mut self, room: &str) -> Option<Position> {
        let r = self.rooms.get_mut(room)?;
        r.join_sent = true;
        r.retry_at = None;
        r.position
    }

    /// Every wanted room, with the position to resume from, all marked as sent: the joins
    /// to send on a new connection, handed to `join` in name order. A callback rather than a
    /// collected list: no vector of pairs, whose code the wasm would carry for this alone.
    pub(crate) fn rejoin_all(&mut self, mut join: impl FnMut(&str, Option<Position>)) {
        for (name, r) in self.rooms.iter_mut() {
            r.join_sent = true;
            join(name, r.position);
        }
    }

    /// The join of `room` was refused for now; try again at the time `at` gives for this
    /// many refusals in a row.
    pub(crate) fn join_refused(&mut self, room: &str, at: impl FnOnce(u32) -> Millis) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.failures = r.failures.saturating_add(1);
            r.join_sent = false;
            r.retry_at = Some(at(r.failures));
        }
    }

    /// Rooms whose join is due again.
    pub(crate) fn retries_due(&self, now: Millis) -> Vec<String> {
        // A loop rather than `collect`, which the wasm would carry for this iterator alone.
        let mut due = Vec::new();
        for (name, r) in self.rooms.iter() {
            if r.retry_at.is_some_and(|at| at <= now) {
                due.push(name.clone());
            }
        }
        due
    }

    pub(crate) fn retry_deadline(&self) -> Option<Millis> {
        self.rooms
            .values()
            .fold(None, |at, r| earlier(at, r.retry_at))
    }

    /// `Joined` for a wanted room. A fresh join adopts the room's position (only live
    /// messages follow). A resume keeps the stored position when the server resumes from it
    /// (same epoch, not ahead of the room); from another history it starts that history
    /// from the beginning, since the server then replays everything it retains. After
    /// `Missed`, the next message may skip sequences. Returns whether the room is wanted.
    pub(crate) fn joined(&mut self, room: &str, position: Position, recovery: Recovery) -> bool {
        let Some(r) = self.rooms.get_mut(room) else {
            return false;
        };
        r.joined = true;
        r.may_skip = recovery == Recovery::Missed;
        r.failures = 0;
        r.retry_at = None;
        r.position = match r.position {
            Some(p) if p.epoch == position.epoch && p.seq <= position.seq => Some(p),
            Some(_) => Some(Position {
                epoch: position.epoch,
                seq: 0,
            }),
            None => Some(position),
        };
        true
    }

    /// A message in `room`: whether to deliver it. Only for a room joined on this
    /// connection, and only the sequence after the last delivered, so the app never sees a
    /// sequence twice (a replay overlapping live traffic, a duplicate from the server) nor
    /// one after a gap. On a gap the room stops taking messages until it is joined again
    /// (see [`Rooms::gap_found`]).
    pub(crate) fn accept(&mut self, room: &str, seq: u64) -> Accept {
        let Some(r) = self.rooms.get_mut(room) else {
            return Accept::Drop;
        };
        let Some(position) = r.position.as_mut().filter(|_| r.joined) else {
            return Accept::Drop;
        };
        if seq <= position.seq {
            return Accept::Drop;
        }
        if seq == position.seq.saturating_add(1) || r.may_skip {
            position.seq = seq;
            r.may_skip = false;
            r.gaps = 0;
            return Accept::Deliver;
        }
        r.joined = false;
        Accept::Gap
    }

    /// [`Accept::Gap`] in `room`: its `Leave` goes out now. Returns how many gaps in a row
    /// that makes; on the first, the join goes out right after the leave
    /// ([`Rooms::join_sent`]), on later ones at a time set with [`Rooms::join_later`].
    pub(crate) fn gap_found(&mut self, room: &str) -> u32 {
        let Some(r) = self.rooms.get_mut(room) else {
            return 0;
        };
        r.resume_left = true;
        r.gaps = r.gaps.saturating_add(1);
        r.gaps
    }

    /// Send the join of `room` at `at`, not now.
    pub(crate) fn join_later(&mut self, room: &str, at: Millis) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.join_sent = false;
            r.retry_at = Some(at);
        }
    }

    /// `Left` for `room`: whether it answers the `Leave` of a resume (not the app's).
    pub(crate) fn left(&mut self, room: &str) -> bool {
        if let Some(r) = self.rooms.get_mut(room).filter(|r| r.resume_left) {
            r.resume_left = false;
            return true;
        }
        match self.stray_lefts.iter().position(|name| name == room) {
            Some(at) => {
                self.stray_lefts.swap_remove(at);
                true
            }
            None => false,
        }
    }

    /// The connection is gone: every room must be joined again, positions stay.
    pub(crate) fn connection_lost(&mut self) {
        for r in self.rooms.values_mut() {
            r.join_sent = false;
            r.joined = false;
            r.failures = 0;
            r.retry_at = None;
            r.typing_off = false;
            r.resume_left = false;
            r.gaps = 0;
        }
        self.stray_lefts.clear();
    }
}
