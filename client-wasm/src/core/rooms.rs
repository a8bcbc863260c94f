//! The rooms the app wants to be in, and what the client knows of each: the last position
//! seen (to resume from after a reconnect), and where the join stands on this connection.

use chorus_protocol::Position;

use super::Millis;
use super::names::NameMap;

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
}

#[derive(Debug, Default)]
pub(crate) struct Rooms {
    rooms: NameMap<Room>,
}

impl Rooms {
    /// Want `room`. Returns whether it is new.
    pub(crate) fn want(&mut self, room: &str) -> bool {
        if self.rooms.contains(room) {
            return false;
        }
        self.rooms.insert(room, Room::default())
    }

    /// Stop wanting `room`. Returns whether it was wanted.
    pub(crate) fn forget(&mut self, room: &str) -> bool {
        self.rooms.remove(room).is_some()
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
    /// to send on a new connection.
    pub(crate) fn rejoin_all(&mut self) -> Vec<(String, Option<Position>)> {
        self.rooms
            .iter_mut()
            .map(|(name, r)| {
                r.join_sent = true;
                (name.clone(), r.position)
            })
            .collect()
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
        self.rooms
            .iter()
            .filter(|(_, r)| r.retry_at.is_some_and(|at| at <= now))
            .map(|(name, _)| name.clone())
            .collect()
    }

    pub(crate) fn retry_deadline(&self) -> Option<Millis> {
        self.rooms.values().filter_map(|r| r.retry_at).min()
    }

    /// `Joined` for a wanted room. A fresh join adopts the room's position (only live
    /// messages follow). A resume keeps the stored position when the server resumes from it
    /// (same epoch, not ahead of the room); from another history it starts that history
    /// from the beginning, since the server then replays everything it retains. Returns
    /// whether the room is wanted.
    pub(crate) fn joined(&mut self, room: &str, position: Position) -> bool {
        let Some(r) = self.rooms.get_mut(room) else {
            return false;
        };
        r.joined = true;
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
    /// connection, and only past the last sequence delivered, so the app never sees a
    /// sequence twice (a replay overlapping live traffic, a duplicate from the server).
    pub(crate) fn accept(&mut self, room: &str, seq: u64) -> bool {
        let Some(r) = self.rooms.get_mut(room) else {
            return false;
        };
        let Some(position) = r.position.as_mut().filter(|_| r.joined) else {
            return false;
        };
        if seq <= position.seq {
            return false;
        }
        position.seq = seq;
        true
    }

    /// The connection is gone: every room must be joined again, positions stay.
    pub(crate) fn connection_lost(&mut self) {
        for r in self.rooms.values_mut() {
            r.join_sent = false;
            r.joined = false;
            r.failures = 0;
            r.retry_at = None;
            r.typing_off = false;
        }
    }
}
