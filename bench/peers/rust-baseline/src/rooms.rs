//! Room membership and fan-out.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, RwLock};

use bytes::Bytes;

use crate::outbox::Outbox;

/// Shards of the room map: enough that joins and leaves in different rooms rarely meet.
const SHARDS: usize = 64;

/// One member of a room.
#[derive(Debug)]
struct Member {
    /// The connection's id, kept here so that a leave scans ids without touching outboxes.
    id: u64,
    /// Where the room's frames go.
    outbox: Arc<Outbox>,
}

/// The members of one room.
#[derive(Debug, Default)]
struct Room {
    /// A `Vec`, because a broadcast iterates it and nothing else is as fast to iterate;
    /// leaving is a linear search, rare next to broadcasts. A std `RwLock`, because it is
    /// only ever held for a synchronous loop of pushes (never across `.await`), and
    /// broadcasts to one room from several publishers share it.
    members: RwLock<Vec<Member>>,
}

/// One shard of the room map: rooms by name.
type Shard = RwLock<HashMap<Box<[u8]>, Arc<Room>>>;

/// Every room of this server, by name.
#[derive(Debug)]
pub(crate) struct Rooms {
    /// Sharded by the name's hash. Each shard is a std `RwLock`: broadcasts only read it,
    /// for as long as a lookup and an `Arc` clone take, and joins and leaves take it for
    /// writing so that a room is never removed while someone joins it.
    shards: Box<[Shard]>,
    /// Picks the shard.
    hasher: RandomState,
}

impl Default for Rooms {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl Rooms {
    /// The shard holding `room`.
    fn shard(&self, room: &[u8]) -> &Shard {
        // Truncation is intended: any bits of the hash pick a shard equally well.
        &self.shards[self.hasher.hash_one(room) as usize % SHARDS]
    }

    /// Adds the connection of `outbox` to `room`, creating the room.
    pub(crate) fn join(&self, room: &[u8], outbox: Arc<Outbox>) {
        let mut shard = self.shard(room).write().expect("rooms lock poisoned");
        let members = &shard.entry(room.into()).or_default().members;
        let member = Member {
            id: outbox.id(),
            outbox,
        };
        members.write().expect("room lock poisoned").push(member);
    }

    /// Removes the connection `id` from `room`, and the room once it is empty.
    pub(crate) fn leave(&self, room: &[u8], id: u64) {
        let mut shard = self.shard(room).write().expect("rooms lock poisoned");
        let Some(entry) = shard.get(room) else { return };
        let mut members = entry.members.write().expect("room lock poisoned");
        if let Some(at) = members.iter().position(|m| m.id == id) {
            members.swap_remove(at);
        }
        if members.is_empty() {
            drop(members);
            shard.remove(room);
        }
    }

    /// Queues `frame` (the same buffer, reference-counted) for every member of `room`;
    /// returns how many members there were.
    pub(crate) fn publish(&self, room: &[u8], frame: &Bytes) -> usize {
        let room = {
            let shard = self.shard(room).read().expect("rooms lock poisoned");
            match shard.get(room) {
                Some(room) => Arc::clone(room),
                None => return 0,
            }
        };
        let members = room.members.read().expect("room lock poisoned");
        for member in members.iter() {
            // A full outbox flags its connection to end; the others still get the frame.
            member.outbox.push(frame.clone());
        }
        members.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::task::{Context, Poll, Waker};

    use super::*;
    use crate::outbox::Taken;

    /// Takes what `outbox` holds.
    fn taken(outbox: &Outbox) -> Vec<Bytes> {
        let mut batch = VecDeque::new();
        let mut cx = Context::from_waker(Waker::noop());
        match outbox.poll_take(&mut cx, &mut batch) {
            Poll::Ready(Taken::Frames) => batch.into(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn a_publish_reaches_every_member_of_its_room_and_no_one_else() {
        let rooms = Rooms::default();
        let [a, b, c] = [1, 2, 3].map(|id| Arc::new(Outbox::new(id, 8)));
        rooms.join(b"r1", Arc::clone(&a));
        rooms.join(b"r1", Arc::clone(&b));
        rooms.join(b"r2", Arc::clone(&c));
        let frame = Bytes::from_static(b"frame");
        rooms.publish(b"r1", &frame);
        rooms.publish(b"nobody", &frame);
        assert_eq!(taken(&a), std::slice::from_ref(&frame));
        assert_eq!(taken(&b), [frame]);
        assert!(taken(&c).is_empty());
    }

    #[test]
    fn the_last_member_to_leave_removes_the_room() {
        let rooms = Rooms::default();
        let [a, b] = [1, 2].map(|id| Arc::new(Outbox::new(id, 8)));
        rooms.join(b"r1", Arc::clone(&a));
        rooms.join(b"r1", Arc::clone(&b));
        rooms.leave(b"r1", 2);
        rooms.publish(b"r1", &Bytes::from_static(b"x"));
        assert_eq!(taken(&a).len(), 1);
        assert!(taken(&b).is_empty());
        rooms.leave(b"r1", 1);
        assert!(rooms.shard(b"r1").read().unwrap().get(&b"r1"[..]).is_none());
    }
}
