//! A connection's bounded queue of outgoing frames.
//!
//! Not a `tokio::sync::mpsc` channel: under fan-out, queueing a frame is the one thing done
//! once per recipient, and in a profile of a 1000-member room a bounded mpsc `send`
//! (semaphore, block list, ready bits, waker) took about a fifth of the server's CPU, mostly
//! in cache misses. Here a push is one uncontended lock, one `VecDeque` push and, only when
//! the writer is parked waiting for frames, one wake. The writer takes every queued frame at
//! once by swapping deques, so its side takes the lock once per batch.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

/// What [`Outbox::poll_take`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taken {
    /// Frames were moved into the batch.
    Frames,
    /// The outbox is closed and empty: the writer is done.
    Closed,
    /// A push found the queue full: the connection is a slow consumer.
    Slow,
}

/// One connection's queue of complete frames, shared by its reader, the rooms it is in and
/// its writer.
#[derive(Debug)]
pub(crate) struct Outbox {
    /// The connection's id, to find it in a room's member list.
    id: u64,
    /// Frames queued at most.
    capacity: usize,
    /// A std `Mutex`: held for a push or a swap, never across `.await`, and contended only
    /// when a writer takes its batch at the moment a frame is pushed.
    state: Mutex<State>,
}

/// What the lock protects.
#[derive(Debug, Default)]
struct State {
    /// Frames not yet taken by the writer.
    frames: VecDeque<Bytes>,
    /// The connection task's waker, registered whenever the writer waits.
    waker: Option<Waker>,
    /// Whether the writer is waiting for frames (a push must wake it).
    parked: bool,
    /// No more frames will be pushed.
    closed: bool,
    /// A push found the queue full.
    slow: bool,
}

impl Outbox {
    /// An empty outbox for connection `id`, holding at most `capacity` frames.
    pub(crate) fn new(id: u64, capacity: usize) -> Self {
        Self {
            id,
            capacity,
            state: Mutex::default(),
        }
    }

    /// The connection's id.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The state; a poisoned lock is taken over, as a panic cannot leave it inconsistent.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `frame`. Returns `false`, dropping it, when the outbox is closed or full; a
    /// full outbox marks the connection a slow consumer and wakes it to end.
    pub(crate) fn push(&self, frame: Bytes) -> bool {
        let mut state = self.lock();
        if state.closed || state.slow {
            return false;
        }
        if state.frames.len() >= self.capacity {
            state.slow = true;
            if let Some(waker) = &state.waker {
                waker.wake_by_ref();
            }
            return false;
        }
        state.frames.push_back(frame);
        if state.parked {
            state.parked = false;
            if let Some(waker) = &state.waker {
                waker.wake_by_ref();
            }
        }
        true
    }

    /// Ends the outbox: the writer writes what is queued, then sees [`Taken::Closed`].
    pub(crate) fn close(&self) {
        self.lock().closed = true;
    }

    /// Moves every queued frame into the empty `batch`, or waits for one.
    pub(crate) fn poll_take(
        &self,
        cx: &mut Context<'_>,
        batch: &mut VecDeque<Bytes>,
    ) -> Poll<Taken> {
        let mut state = self.lock();
        if state.slow {
            return Poll::Ready(Taken::Slow);
        }
        if !state.frames.is_empty() {
            // The swap hands the queue the batch's (empty) buffer: no allocation either way.
            std::mem::swap(&mut state.frames, batch);
            return Poll::Ready(Taken::Frames);
        }
        if state.closed {
            return Poll::Ready(Taken::Closed);
        }
        state.parked = true;
        register(&mut state.waker, cx);
        Poll::Pending
    }

    /// For a writer blocked on its socket: whether the connection became a slow consumer
    /// (the pusher that found the queue full wakes it).
    pub(crate) fn poll_slow(&self, cx: &mut Context<'_>) -> bool {
        let mut state = self.lock();
        if !state.slow {
            register(&mut state.waker, cx);
        }
        state.slow
    }
}

/// Stores the waker, cloning it only when it changed.
fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_taken_in_order_and_a_full_outbox_is_slow() {
        let outbox = Outbox::new(7, 2);
        let mut cx = Context::from_waker(Waker::noop());
        let mut batch = VecDeque::new();
        assert!(outbox.poll_take(&mut cx, &mut batch).is_pending());
        assert!(outbox.push(Bytes::from_static(b"a")));
        assert!(outbox.push(Bytes::from_static(b"b")));
        assert_eq!(
            outbox.poll_take(&mut cx, &mut batch),
            Poll::Ready(Taken::Frames)
        );
        assert_eq!(batch, [Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
        batch.clear();
        assert!(outbox.push(Bytes::from_static(b"c")));
        assert!(outbox.push(Bytes::from_static(b"d")));
        assert!(!outbox.push(Bytes::from_static(b"e")));
        assert!(outbox.poll_slow(&mut cx));
        assert_eq!(
            outbox.poll_take(&mut cx, &mut batch),
            Poll::Ready(Taken::Slow)
        );
    }

    #[test]
    fn a_closed_outbox_yields_its_frames_then_closed() {
        let outbox = Outbox::new(7, 8);
        let mut cx = Context::from_waker(Waker::noop());
        let mut batch = VecDeque::new();
        assert!(outbox.push(Bytes::from_static(b"close frame")));
        outbox.close();
        assert!(!outbox.push(Bytes::from_static(b"late")));
        assert_eq!(
            outbox.poll_take(&mut cx, &mut batch),
            Poll::Ready(Taken::Frames)
        );
        batch.clear();
        assert_eq!(
            outbox.poll_take(&mut cx, &mut batch),
            Poll::Ready(Taken::Closed)
        );
    }
}
