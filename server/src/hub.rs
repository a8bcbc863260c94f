//! The connections of this node, by room, and local fan-out.
//!
//! A frame for a room is encoded once into [`Bytes`], WebSocket header included, and the
//! same buffer is pushed onto every member's bounded [`Outbox`]. A member whose outbox is
//! full is a slow consumer: its connection is closed with that reason, and nobody else
//! notices.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use chorus_protocol::DisconnectReason;

use crate::ws;

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

/// A frame for a room, built once and shared by every member it is pushed to: a member's
/// queue holds a pointer to it, not a copy of its parts.
#[derive(Debug)]
pub(crate) struct Delivery {
    /// The complete WebSocket frame (header and encoded message).
    pub(crate) frame: Bytes,
    /// The hub's id for the room the frame belongs to: a connection drops frames of rooms
    /// it is no longer in.
    pub(crate) room: u64,
    /// What the frame is, for the connection's filter.
    pub(crate) kind: Kind,
}

/// A frame waiting to be written to one connection: its share of a room's [`Delivery`],
/// and how much of it is written already.
///
/// Sixteen bytes: under fan-out, one of these is queued per recipient, and the queue's
/// cache lines are the cost of a push.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    delivery: Arc<Delivery>,
    written: usize,
}

impl Outgoing {
    /// A share of `delivery`, not written yet.
    pub(crate) fn new(delivery: Arc<Delivery>) -> Outgoing {
        Outgoing {
            delivery,
            written: 0,
        }
    }

    /// What is queued.
    pub(crate) fn delivery(&self) -> &Delivery {
        &self.delivery
    }

    /// The bytes not written yet, for a writer other than [`ws::poll_write_both`].
    pub(crate) fn into_bytes(self) -> Bytes {
        self.delivery.frame.slice(self.written..)
    }
}

impl ws::Frame for Outgoing {
    fn remaining(&self) -> &[u8] {
        &self.delivery.frame[self.written..]
    }

    fn advance(&mut self, written: usize) {
        self.written += written;
    }
}

/// One connection's bounded outbound queue, bounded by count and by bytes, shared by the
/// rooms it is in (which push) and its connection task (which takes every queued frame at
/// once, and writes them together).
///
/// Not a `tokio::sync::mpsc` channel: under fan-out, queueing a frame is the one thing done
/// once per recipient, and a push here is one uncontended lock, one `VecDeque` push and,
/// only when the connection is waiting for frames, one wake.
#[derive(Debug)]
pub(crate) struct Outbox {
    max_messages: usize,
    max_bytes: usize,
    // A std Mutex: held for a push or a swap of queues, never across an `.await`, and
    // contended only when the connection takes its batch at the moment a frame is pushed.
    state: Mutex<State>,
}

/// What the outbox's lock protects.
#[derive(Debug, Default)]
struct State {
    /// Frames not yet taken by the connection.
    frames: VecDeque<Outgoing>,
    /// Their bytes.
    bytes: usize,
    /// The connection task's waker, registered whenever it waits on the outbox.
    waker: Option<Waker>,
    /// Whether the connection is waiting for frames (a push must wake it).
    parked: bool,
    /// Why the connection must close; the first reason wins.
    closing: Option<DisconnectReason>,
}

impl Outbox {
    /// A queue holding at most `max_messages` frames and `max_bytes` bytes.
    pub(crate) fn new(max_messages: usize, max_bytes: usize) -> Arc<Outbox> {
        Arc::new(Outbox {
            max_messages,
            max_bytes,
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic cannot leave the state half-changed, so a poisoned lock is taken over.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue a frame without waiting. A full queue closes the connection as a slow
    /// consumer; returns whether the frame was queued.
    pub(crate) fn push(&self, out: Outgoing) -> bool {
        let mut state = self.lock();
        if state.closing.is_some() {
            return false;
        }
        let len = out.delivery.frame.len();
        if state.frames.len() >= self.max_messages || state.bytes + len > self.max_bytes {
            state.close(DisconnectReason::SlowConsumer);
            return false;
        }
        if state.frames.capacity() == 0 {
            state.frames = spare();
        }
        state.frames.push_back(out);
        state.bytes += len;
        if state.parked {
            state.parked = false;
            if let Some(waker) = &state.waker {
                waker.wake_by_ref();
            }
        }
        true
    }

    /// Move every queued frame into the empty `batch`, or wait for one. `Err` when
    /// someone asked the connection to close, with the reason. Waiting keeps the queue's
    /// buffers: a member of a busy room waits between every two publishes, and would
    /// otherwise take and grow a buffer for each ([`Outbox::shed`] gives them back).
    pub(crate) fn poll_take(
        &self,
        cx: &mut Context<'_>,
        batch: &mut VecDeque<Outgoing>,
    ) -> Poll<Result<(), DisconnectReason>> {
        let mut state = self.lock();
        if let Some(reason) = state.closing {
            return Poll::Ready(Err(reason));
        }
        if state.frames.is_empty() {
            state.parked = true;
            register(&mut state.waker, cx);
            return Poll::Pending;
        }
        // The swap hands the queue the batch's (empty) buffer: no allocation either way.
        std::mem::swap(&mut state.frames, batch);
        state.bytes = 0;
        Poll::Ready(Ok(()))
    }

    /// Give the queue's buffers (the outbox's and the empty `batch`'s) back to this
    /// thread's spares if nothing is queued: called on the connection's timer, so a
    /// connection that stays idle holds no buffer.
    pub(crate) fn shed(&self, batch: &mut VecDeque<Outgoing>) {
        let mut state = self.lock();
        if state.frames.is_empty() && batch.is_empty() {
            recycle(std::mem::take(&mut state.frames));
            recycle(std::mem::take(batch));
        }
    }

    /// Move every queued frame into the empty `batch` without waiting.
    pub(crate) fn take_now(&self, batch: &mut VecDeque<Outgoing>) {
        let mut state = self.lock();
        std::mem::swap(&mut state.frames, batch);
        state.bytes = 0;
    }

    /// Wait until someone asks the connection to close; returns the reason.
    pub(crate) fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<DisconnectReason> {
        let mut state = self.lock();
        match state.closing {
            Some(reason) => Poll::Ready(reason),
            None => {
                register(&mut state.waker, cx);
                Poll::Pending
            }
        }
    }
}

impl State {
    /// Ask the connection to close with `reason`. The first reason wins.
    fn close(&mut self, reason: DisconnectReason) {
        if self.closing.is_none() {
            self.closing = Some(reason);
            if let Some(waker) = &self.waker {
                waker.wake_by_ref();
            }
        }
    }
}

/// Most queue buffers one thread keeps for reuse.
const SPARES: usize = 128;

/// Largest queue buffer kept for reuse, in frames; larger ones are freed. With
/// [`SPARES`], this bounds the spares of a thread to 512 KiB.
const SPARE_CAPACITY: usize = 256;

thread_local! {
    /// Empty queue buffers, for outboxes to reuse. A connection idle until its timer gives
    /// its buffers back (see [`Outbox::shed`]), and takes one here when frames come again.
    /// A few per thread, so the memory they hold does not grow with the number of
    /// connections.
    static SPARE: RefCell<Vec<VecDeque<Outgoing>>> = const { RefCell::new(Vec::new()) };
}

/// An empty queue buffer: a spare if this thread has one.
fn spare() -> VecDeque<Outgoing> {
    SPARE.with_borrow_mut(Vec::pop).unwrap_or_default()
}

/// Keep an emptied queue buffer for reuse, or free it.
fn recycle(mut buffer: VecDeque<Outgoing>) {
    if buffer.capacity() == 0 || buffer.capacity() > SPARE_CAPACITY {
        return;
    }
    buffer.clear();
    SPARE.with_borrow_mut(|spares| {
        if spares.len() < SPARES {
            spares.push(buffer);
        }
    });
}

/// Store the connection task's waker, cloning it only when it changed.
fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

/// A connection in a local room, as fan-out sees it: whose it is (to skip a sender's own
/// connections), and the outbox its frames are pushed to.
#[derive(Debug)]
struct Recipient {
    user: Arc<str>,
    outbox: Arc<Outbox>,
}

#[derive(Debug)]
struct LocalRoom {
    id: u64,
    recipients: HashMap<ConnId, Recipient>,
}

/// Local membership: room name to the connections of this node in it.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    // A std RwLock: fan-out (the hot path) only reads and many can run at once; joins and
    // leaves write briefly. It is never held across an `.await`: pushing to an outbox
    // (`Outbox::push`) takes that outbox's own lock briefly and never waits.
    rooms: RwLock<HashMap<Arc<str>, LocalRoom>>,
    next_room_id: AtomicU64,
}

impl Hub {
    /// Add a connection to a room. Returns the room's local id.
    pub(crate) fn add(&self, room: &str, conn: ConnId, user: Arc<str>, outbox: Arc<Outbox>) -> u64 {
        let mut rooms = self.rooms.write().unwrap_or_else(|e| e.into_inner());
        let local = rooms.entry(Arc::from(room)).or_insert_with(|| LocalRoom {
            id: self.next_room_id.fetch_add(1, Ordering::Relaxed),
            recipients: HashMap::new(),
        });
        local.recipients.insert(conn, Recipient { user, outbox });
        local.id
    }

    /// Remove a connection from a room. Returns whether the room has no local member left.
    pub(crate) fn remove(&self, room: &str, conn: ConnId) -> bool {
        let mut rooms = self.rooms.write().unwrap_or_else(|e| e.into_inner());
        let Some(local) = rooms.get_mut(room) else {
            return false;
        };
        local.recipients.remove(&conn);
        if local.recipients.is_empty() {
            rooms.remove(room);
            return true;
        }
        false
    }

    /// Push `frame`, a complete WebSocket frame ([`ws::binary`] of an encoded message), to
    /// every local member of `room`, except connections of `except_user`. The frame is
    /// built once, by the caller, and every member writes the same bytes.
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
        let delivery = Arc::new(Delivery {
            frame: frame.clone(),
            room: local.id,
            kind,
        });
        for recipient in local.recipients.values() {
            if except_user.is_some_and(|u| *recipient.user == *u) {
                continue;
            }
            recipient.outbox.push(Outgoing::new(delivery.clone()));
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

/// Encode a server message once, for sharing: the payload of a frame ([`ws::binary`]), not
/// the frame. Server messages are built from validated parts and the body limit leaves room
/// for the rest, so encoding cannot fail.
pub(crate) fn encode(message: &chorus_protocol::ServerMessage) -> Bytes {
    Bytes::from(chorus_protocol::encode(message, usize::MAX).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;
    use crate::ws::Frame;

    fn outgoing(payload: &[u8]) -> Outgoing {
        Outgoing::new(Arc::new(Delivery {
            frame: ws::binary(payload),
            room: 1,
            kind: Kind::Event,
        }))
    }

    #[test]
    fn a_share_of_a_delivery_is_written_in_parts_without_touching_the_others() {
        let first = outgoing(b"hello");
        let mut second = first.clone();
        let whole = first.remaining().to_vec();
        second.advance(3);
        assert_eq!(second.remaining(), &whole[3..]);
        assert_eq!(first.remaining(), &whole[..]);
        assert_eq!(&second.into_bytes()[..], &whole[3..]);
    }

    #[test]
    fn waiting_keeps_the_queue_buffers_and_the_timer_sheds_them() {
        let outbox = Outbox::new(16, 1 << 20);
        let mut cx = Context::from_waker(Waker::noop());
        let mut batch = VecDeque::new();
        assert!(outbox.push(outgoing(b"a")));
        assert!(outbox.poll_take(&mut cx, &mut batch).is_ready());
        batch.clear();
        assert!(outbox.poll_take(&mut cx, &mut batch).is_pending());
        // The outbox's buffer went to the batch in the swap, and stays while it waits.
        assert!(batch.capacity() > 0);
        outbox.shed(&mut batch);
        assert_eq!(outbox.lock().frames.capacity(), 0);
        assert_eq!(batch.capacity(), 0);
        // Frames still queued are never shed.
        assert!(outbox.push(outgoing(b"b")));
        outbox.shed(&mut batch);
        assert_eq!(outbox.lock().frames.len(), 1);
    }

    #[test]
    fn a_full_outbox_closes_the_connection_as_a_slow_consumer() {
        let outbox = Outbox::new(1, 1 << 20);
        assert!(outbox.push(outgoing(b"a")));
        assert!(!outbox.push(outgoing(b"b")));
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(
            outbox.poll_take(&mut cx, &mut VecDeque::new()),
            Poll::Ready(Err(DisconnectReason::SlowConsumer))
        );
    }
}
