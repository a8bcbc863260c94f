//! The connections of this node, by room, and local fan-out.
//!
//! A frame for a room is encoded once into [`Bytes`] and the same buffer is pushed onto every
//! member's bounded [`Outbox`]. A member whose outbox is full is a slow consumer: its
//! connection is closed with that reason, and nobody else notices.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;
use chorus_protocol::DisconnectReason;
use tokio::sync::{Notify, mpsc};

/// Identifies one connection on this node.
pub(crate) type ConnId = u64;

/// What a frame for a room is, as the connection's filter sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Presence or typing: always delivered to members.
    Event,
    /// A room message: the connection drops it unless it is in the connection's epoch and
    /// past what the connection has already been sent (by a join's replay, for example).
    Message {
        /// The history it belongs to.
        epoch: u64,
        /// Its sequence number.
        seq: u64,
    },
    /// An unsolicited `Joined`: the room's history was lost and a new one began (or part of
    /// it could not be delivered). A connection not yet at this position (another epoch,
    /// or an older sequence) is sent it and moves to it; messages after it follow.
    Reset {
        /// The room's epoch now.
        epoch: u64,
        /// The sequence the messages that follow come after.
        seq: u64,
    },
}

/// A frame waiting to be written to one connection.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// The encoded frame, shared with every other recipient.
    pub(crate) frame: Bytes,
    /// The hub's id for the room the frame belongs to: the connection drops frames of
    /// rooms it is no longer in.
    pub(crate) room: u64,
    /// What the frame is, for the connection's filter.
    pub(crate) kind: Kind,
}

/// The sending side of one connection's bounded outbound queue, bounded by count (the
/// channel's capacity) and by bytes.
#[derive(Debug)]
pub(crate) struct Outbox {
    tx: mpsc::Sender<Outgoing>,
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    closing: OnceLock<DisconnectReason>,
    wake: Notify,
}

impl Outbox {
    /// A queue holding at most `max_messages` frames and `max_bytes` bytes.
    pub(crate) fn new(
        max_messages: usize,
        max_bytes: usize,
    ) -> (Arc<Outbox>, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(max_messages);
        let outbox = Outbox {
            tx,
            queued_bytes: AtomicUsize::new(0),
            max_bytes,
            closing: OnceLock::new(),
            wake: Notify::new(),
        };
        (Arc::new(outbox), rx)
    }

    /// Queue a frame without waiting. A full queue closes the connection as a slow
    /// consumer; returns whether the frame was queued.
    pub(crate) fn push(&self, out: Outgoing) -> bool {
        if self.closing.get().is_some() {
            return false;
        }
        let len = out.frame.len();
        if self.queued_bytes.fetch_add(len, Ordering::Relaxed) + len > self.max_bytes {
            self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.close(DisconnectReason::SlowConsumer);
            return false;
        }
        match self.tx.try_send(out) {
            Ok(()) => true,
            Err(err) => {
                self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                if matches!(err, mpsc::error::TrySendError::Full(_)) {
                    self.close(DisconnectReason::SlowConsumer);
                }
                false
            }
        }
    }

    /// The writer took a frame of `len` bytes off the queue.
    pub(crate) fn taken(&self, len: usize) {
        self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
    }

    /// Ask the connection to close with `reason`. The first reason wins.
    pub(crate) fn close(&self, reason: DisconnectReason) {
        if self.closing.set(reason).is_ok() {
            self.wake.notify_one();
        }
    }

    /// Wait until someone asks the connection to close; returns the reason.
    pub(crate) async fn closed(&self) -> DisconnectReason {
        loop {
            if let Some(reason) = self.closing.get() {
                return *reason;
            }
            self.wake.notified().await;
        }
    }
}

#[derive(Debug)]
struct Member {
    user: Arc<str>,
    outbox: Arc<Outbox>,
}

#[derive(Debug)]
struct LocalRoom {
    id: u64,
    members: HashMap<ConnId, Member>,
}

/// Local membership: room name to the connections of this node in it.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    // A std RwLock: fan-out (the hot path) only reads and many can run at once; joins and
    // leaves write briefly. It is never held across an `.await`: pushing to an outbox is
    // `try_send`, which never waits.
    rooms: RwLock<HashMap<Arc<str>, LocalRoom>>,
    next_room_id: AtomicU64,
}

impl Hub {
    /// Add a connection to a room. Returns the room's local id.
    pub(crate) fn add(&self, room: &str, conn: ConnId, user: Arc<str>, outbox: Arc<Outbox>) -> u64 {
        let mut rooms = self.rooms.write().unwrap_or_else(|e| e.into_inner());
        let local = rooms.entry(Arc::from(room)).or_insert_with(|| LocalRoom {
            id: self.next_room_id.fetch_add(1, Ordering::Relaxed),
            members: HashMap::new(),
        });
        local.members.insert(conn, Member { user, outbox });
        local.id
    }

    /// Remove a connection from a room. Returns whether the room has no local member left.
    pub(crate) fn remove(&self, room: &str, conn: ConnId) -> bool {
        let mut rooms = self.rooms.write().unwrap_or_else(|e| e.into_inner());
        let Some(local) = rooms.get_mut(room) else {
            return false;
        };
        local.members.remove(&conn);
        if local.members.is_empty() {
            rooms.remove(room);
            return true;
        }
        false
    }

    /// Push `frame` to every local member of `room`, except connections of `except_user`.
    pub(crate) fn broadcast(
        &self,
        room: &str,
        frame: &Bytes,
        kind: Kind,
        except_user: Option<&str>,
    ) {
        let rooms = self.rooms.read().unwrap_or_else(|e| e.into_inner());
        let Some(local) = rooms.get(room) else {
            return;
        };
        for member in local.members.values() {
            if except_user.is_some_and(|u| *member.user == *u) {
                continue;
            }
            member.outbox.push(Outgoing {
                frame: frame.clone(),
                room: local.id,
                kind,
            });
        }
    }

    /// Whether `room` has a local member.
    pub(crate) fn has_room(&self, room: &str) -> bool {
        self.rooms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(room)
    }

    /// The rooms with local members.
    pub(crate) fn room_names(&self) -> Vec<String> {
        let rooms = self.rooms.read().unwrap_or_else(|e| e.into_inner());
        rooms.keys().map(|room| room.to_string()).collect()
    }

    /// Number of rooms with local members.
    pub(crate) fn room_count(&self) -> usize {
        self.rooms.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Encode a server frame once, for sharing. Server messages are built from validated parts
/// and the body limit leaves room for the rest, so encoding cannot fail.
pub(crate) fn frame(message: &chorus_protocol::ServerMessage) -> Bytes {
    Bytes::from(chorus_protocol::encode(message, usize::MAX).unwrap_or_default())
}
