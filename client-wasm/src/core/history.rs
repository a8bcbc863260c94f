//! History requests awaiting their answer: queued while offline, sent once a connection is
//! open, sent again on the next connection when one is lost before its answer (a read is
//! safe to repeat), settled exactly once (by taking them out of here).

use super::Millis;
use crate::prelude::*;

/// One history request the server has not answered yet.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) id: u64,
    /// The encoded `History`, kept so a resend costs no re-encoding.
    pub(crate) frame: Vec<u8>,
    pub(crate) deadline: Millis,
    /// Sent on the current connection.
    pub(crate) sent: bool,
}

#[derive(Debug)]
pub(crate) struct Requests {
    /// In request order. All share one timeout, so deadlines are in order too.
    entries: Vec<Request>,
    max: usize,
}

impl Requests {
    pub(crate) fn new(max: usize) -> Requests {
        Requests {
            entries: Vec::new(),
            max,
        }
    }

    pub(crate) fn is_full(&self) -> bool {
        self.entries.len() >= self.max
    }

    pub(crate) fn push(&mut self, request: Request) {
        self.entries.push(request);
    }

    /// Take out the request with this id, if it is still waiting.
    pub(crate) fn take(&mut self, id: u64) -> Option<Request> {
        let at = self.entries.iter().position(|r| r.id == id)?;
        Some(self.entries.remove(at))
    }

    /// Take out the requests whose timeout has passed.
    pub(crate) fn take_expired(&mut self, now: Millis) -> Vec<Request> {
        // One at a time from the front, with what `take` uses: less wasm than a `split_off`.
        let mut expired = Vec::new();
        while self.entries.first().is_some_and(|r| r.deadline <= now) {
            expired.push(self.entries.remove(0));
        }
        expired
    }

    /// Take out everything (the client is closing).
    pub(crate) fn take_all(&mut self) -> Vec<Request> {
        ::core::mem::take(&mut self.entries)
    }

    pub(crate) fn deadline(&self) -> Option<Millis> {
        self.entries.first().map(|r| r.deadline)
    }

    /// The connection is gone, and with it every answer not yet received: all are sent
    /// again on the next one.
    pub(crate) fn connection_lost(&mut self) {
        for r in &mut self.entries {
            r.sent = false;
        }
    }

    /// Frames to send now, in request order: the requests not sent on this connection.
    pub(crate) fn flush(&mut self, mut send: impl FnMut(Vec<u8>)) {
        for r in &mut self.entries {
            if !r.sent {
                r.sent = true;
                // `to_vec` rather than `clone`: the same copy, through the routine the wasm already
                // has for `to_owned`.
                send(r.frame.to_vec());
            }
        }
    }
}
