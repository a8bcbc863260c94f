//! The rooms a connection is in, and the filter every frame taken from its outbox goes
//! through: the fan-out's hot path, so it allocates nothing and copies no frame.

use crate::hub::{Kind, Outgoing};

/// A room this connection is in.
#[derive(Debug)]
struct JoinedRoom {
    /// The room's name.
    name: Box<str>,
    /// The hub's id for the room, as tagged on its frames.
    id: u64,
    /// The history the connection is in (from its `Joined`).
    epoch: u64,
    /// The last sequence delivered; frames at or below it are duplicates of a replay.
    last_seq: u64,
}

/// The rooms joined, in no order: a connection is in a few (at most
/// `max_rooms_per_connection`), so a `Vec` searched in turn beats a map, and holds nothing
/// while the connection is in none.
#[derive(Debug, Default)]
pub(super) struct Rooms {
    rooms: Vec<JoinedRoom>,
}

impl Rooms {
    /// How many rooms the connection is in.
    pub(super) fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Whether the connection is in `room`.
    pub(super) fn contains(&self, room: &str) -> bool {
        self.rooms.iter().any(|r| *r.name == *room)
    }

    /// Enter `room`, the hub's room `id`, at `epoch` and `seq`: frames at or below `seq`
    /// are duplicates of what the join sent.
    pub(super) fn insert(&mut self, room: String, id: u64, epoch: u64, seq: u64) {
        if self.rooms.is_empty() {
            // Most connections join one room: no spare capacity for them.
            self.rooms.reserve_exact(1);
        }
        self.rooms.push(JoinedRoom {
            name: room.into_boxed_str(),
            id,
            epoch,
            last_seq: seq,
        });
    }

    /// Leave `room`; whether the connection was in it.
    pub(super) fn remove(&mut self, room: &str) -> bool {
        match self.rooms.iter().position(|r| *r.name == *room) {
            Some(at) => {
                self.rooms.swap_remove(at);
                true
            }
            None => false,
        }
    }

    /// Leave every room, for the names.
    pub(super) fn take(&mut self) -> impl Iterator<Item = Box<str>> + use<> {
        std::mem::take(&mut self.rooms).into_iter().map(|r| r.name)
    }

    /// Whether a queued frame should go out: only for rooms the connection is in; for room
    /// messages only those of the connection's epoch past what it was already sent (a
    /// replay, or the same message twice); for an epoch reset only when the connection is
    /// not at that position yet, which then becomes its own.
    pub(super) fn fresh(&mut self, out: &Outgoing) -> bool {
        let out = out.delivery();
        let Some(room) = self.rooms.iter_mut().find(|r| r.id == out.room) else {
            return false;
        };
        match out.kind {
            Kind::Event => true,
            Kind::Message { epoch, seq } => {
                if epoch != room.epoch || seq <= room.last_seq {
                    return false;
                }
                room.last_seq = seq;
                true
            }
            Kind::Reset { epoch, seq } => {
                if epoch == room.epoch && seq <= room.last_seq {
                    return false;
                }
                room.epoch = epoch;
                room.last_seq = seq;
                true
            }
        }
    }
}
