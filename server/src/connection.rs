//! One WebSocket connection: a single task that moves bytes between the socket, the
//! connection's outbound queue and its [`ConnectionCore`], which decides everything else
//! (dispatch, room membership and the duplicate filter, rate limits and the abuse policy,
//! the heartbeat and the token's expiry, the order replies and room frames go out in).
//! The task performs the room operations the core decides on with the [`Node`], arms one
//! timer for the core's next deadline, and ends with a [`DisconnectReason`] (or because
//! the client left).
//!
//! ## Layout
//! - `core.rs`: [`ConnectionCore`], the sans-IO decisions, with their unit tests.
//! - `rooms.rs`: the rooms joined, and the filter of the frames taken from the outbox.
//! - `limits.rs`: the connection's rate limits and abuse bucket.

mod core;
mod limits;
mod rooms;

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use chorus_protocol::DisconnectReason;
use tokio::time::{Instant, Sleep, sleep, sleep_until, timeout};

use self::core::{Action, ConnectionCore, Due, Env, Next};
use crate::auth::Claims;
use crate::hub::Outbox;
use crate::node::{ConnSlot, Member, Node};
use crate::ws::{self, Incoming};

/// How long a server-initiated close waits for the client's close frame.
const CLOSE_REPLY_WAIT: Duration = Duration::from_secs(1);

/// Why the write side failed.
enum WriteError {
    /// The write took longer than the write timeout.
    TimedOut,
    /// The socket is gone.
    Closed,
}

struct Connection {
    node: Arc<Node>,
    claims: Claims,
    outbox: Arc<Outbox>,
    io: ws::Io,
    reader: ws::Reader,
    core: ConnectionCore,
}

impl<'a> Env<'a> {
    fn of(node: &'a Node) -> Env<'a> {
        Env {
            config: &node.config,
            metrics: &node.metrics,
        }
    }
}

/// Serve an upgraded socket until it ends. `slot` is the connection's place under the
/// connection limits, or the limit that refused it.
///
/// Not an `async fn`: its future would keep the arguments beside the connection built from
/// them, for as long as the connection lives.
pub(crate) fn serve(
    node: Arc<Node>,
    io: ws::Io,
    claims: Claims,
    slot: Result<ConnSlot, DisconnectReason>,
) -> impl Future<Output = ()> + Send {
    let config = &node.config;
    let outbox = Outbox::new(config.queue_max_messages, config.queue_max_bytes);
    let core = ConnectionCore::new(
        node.next_conn_id(),
        Arc::from(claims.sub.as_str()),
        Instant::now(),
    );
    let mut conn = Connection {
        node: node.clone(),
        claims,
        outbox,
        io,
        reader: ws::Reader::default(),
        core,
    };
    // `slot` is held to the end: dropping it gives the connection's place back.
    async move {
        if let Err(reason) = &slot {
            let reason = *reason;
            tracing::debug!(user = %conn.core.user, reason = reason.name(), "connection refused");
            Box::pin(conn.disconnect(reason, None)).await;
            return;
        }
        tracing::debug!(conn = conn.core.id, user = %conn.core.user, "connected");
        let reason = conn.run().await;
        // The endings are boxed, like request handling (see `run`): the task's future is
        // allocated for as long as the connection lives, and would be sized for its largest
        // state.
        if reason.is_none() {
            Box::pin(conn.finish()).await;
        }
        Box::pin(conn.leave_all()).await;
        tracing::debug!(conn = conn.core.id, user = %conn.core.user, reason = reason.map(|r| r.name()), "disconnected");
    }
}

impl Connection {
    /// The connection's main loop. Returns the reason the server ended it, or `None` if the
    /// client left.
    async fn run(&mut self) -> Option<DisconnectReason> {
        let node = self.node.clone();
        let config = &node.config;
        self.core.welcome(Env::of(&node));
        if self.flush().await.is_err() {
            return None;
        }
        let token_left = node.auth.remaining(&self.claims);
        self.core
            .start(config, Instant::now(), self.reader.received(), token_left);
        // One timer for the heartbeat and the token's expiry, whichever is next. It and the
        // shutdown waiter are made once, not on every turn of the loop: each would register
        // and deregister a timer, and a waiter on the token that every connection shares.
        let timer = sleep_until(self.core.next_deadline());
        let shutdown = node.shutdown.cancelled();
        tokio::pin!(timer, shutdown);
        let outbox = self.outbox.clone();
        let max_frame = config.max_frame;

        let reason = 'run: loop {
            if self.core.replies_due(self.reader.has_frame()) {
                if !self.core.has_batch() {
                    outbox.take_now(self.core.queues().1);
                }
                if let Err(e) = self.drain().await {
                    break e.reason();
                }
            }
            tokio::select! {
                _ = &mut shutdown => break Some(DisconnectReason::ServerShutdown),
                () = &mut timer => {
                    let now = Instant::now();
                    match self.core.on_timer(config, now, self.reader.received()) {
                        Due::Nothing => {}
                        Due::Close(reason) => break Some(reason),
                        Due::CheckSocket => {
                            let filled = poll_fn(|cx| {
                                Poll::Ready(self.reader.poll_fill(cx, &mut self.io))
                            })
                            .await;
                            let received = match filled {
                                Poll::Ready(Ok(())) => Some(self.reader.received()),
                                Poll::Ready(Err(err)) => break 'run self.core.read_error(Env::of(&node), err),
                                Poll::Pending => None,
                            };
                            if let Err(reason) = self.core.socket_checked(config, now, received) {
                                break Some(reason);
                            }
                        }
                    }
                    outbox.shed(self.core.queues().1);
                    timer.as_mut().reset(self.core.next_deadline());
                }
                taken = poll_fn(|cx| {
                    let taken = outbox.poll_take(cx, self.core.queues().1);
                    if taken.is_pending() {
                        self.core.idle();
                    }
                    taken
                }) => {
                    if let Err(reason) = taken {
                        break Some(reason);
                    }
                    if let Err(e) = self.drain().await {
                        break e.reason();
                    }
                }
                incoming = poll_fn(|cx| self.reader.poll_next(cx, &mut self.io, max_frame)) => {
                    // Requests already read are handled together, up to a turn's worth,
                    // before the queue gets its turn: a publisher's own room frames then
                    // go out in one write with its acks.
                    let mut incoming = incoming;
                    let mut handled = 0;
                    loop {
                        let message = match incoming {
                            Ok(message) => message,
                            Err(err) => break 'run self.core.read_error(Env::of(&node), err),
                        };
                        // Boxed: handling a request is the largest state of the
                        // connection's future, and an idle connection would otherwise
                        // carry it.
                        match Box::pin(self.on_message(message)).await {
                            Ok(true) => {}
                            Ok(false) => break 'run None,
                            Err(reason) => break 'run Some(reason),
                        }
                        // Requests already read are handled without waiting on the socket,
                        // so take turns with other tasks (the writers of the rooms this one
                        // publishes to) as a socket read would.
                        tokio::task::coop::consume_budget().await;
                        handled += 1;
                        if self.core.turn_over(handled, self.reader.has_frame()) {
                            break;
                        }
                        incoming =
                            poll_fn(|cx| self.reader.poll_next(cx, &mut self.io, max_frame)).await;
                    }
                }
            }
        };
        if let Some(reason) = reason {
            if reason == DisconnectReason::ServerShutdown {
                // Deliver what is already queued before saying goodbye.
                outbox.take_now(self.core.queues().1);
                let _ = Box::pin(timeout(config.shutdown_timeout, self.drain())).await;
            }
            Box::pin(self.disconnect(reason, Some(config.write_timeout))).await;
        }
        reason
    }

    /// After the client left: answer its close frame (if it sent one), and end the stream.
    async fn finish(&mut self) {
        self.core.finish();
        let limit = self.node.config.write_timeout;
        if self.flush_within(limit).await.is_ok() {
            let _ = timeout(limit, poll_fn(|cx| ws::poll_shutdown(cx, &mut self.io))).await;
        }
    }

    /// Hand one message from the client to the core, and perform the room operation it
    /// decides on. `Ok(false)` means the client closed.
    async fn on_message(&mut self, message: Incoming) -> Result<bool, DisconnectReason> {
        let node = self.node.clone();
        let env = Env::of(&node);
        let action = match self.core.on_message(env, message, Instant::now()) {
            Next::Read => return Ok(true),
            Next::ClientClosed => return Ok(false),
            Next::Close(reason) => return Err(reason),
            Next::Perform(action) => action,
        };
        let member = Member {
            conn: self.core.id,
            user: &self.core.user,
            outbox: &self.outbox,
        };
        match action {
            Action::Join { room, since } => {
                let joined = node.join(member, &self.claims, &room, since).await;
                let mut replay = self.core.joined(env, Instant::now(), room, joined)?;
                // The replay streams out as the socket takes it: at most a queue's worth of
                // bytes waits here at once.
                while self.core.replay(env, &mut replay) {
                    match self.flush().await {
                        Ok(()) => {}
                        Err(WriteError::TimedOut) => return Err(DisconnectReason::SlowConsumer),
                        // The socket is gone: the connection's next write or read ends it.
                        Err(WriteError::Closed) => break,
                    }
                }
            }
            Action::Describe { room } => {
                let described = node.describe(&room).await;
                self.core.described(env, Instant::now(), room, described)?;
            }
            Action::Leave { room } => {
                node.leave(member, &room).await;
                self.core.left(env, room);
            }
            Action::Publish { room, id, body } => {
                let published = node.publish(&room, &self.core.user, id, body).await;
                self.core
                    .published(env, Instant::now(), room, id, published)?;
            }
            Action::Typing { room, started } => {
                if started {
                    node.typing_started(&room, &self.core.user).await;
                } else {
                    node.typing_stopped(&room, &self.core.user).await;
                }
            }
            Action::History {
                request,
                room,
                before,
                limit,
            } => {
                let page = node
                    .history(&self.claims, request, &room, before, limit)
                    .await;
                self.core
                    .history_answered(env, Instant::now(), request, room, page)?;
            }
        }
        Ok(true)
    }

    async fn leave_all(&mut self) {
        let node = self.node.clone();
        for room in self.core.leave_all() {
            let member = Member {
                conn: self.core.id,
                user: &self.core.user,
                outbox: &self.outbox,
            };
            node.leave(member, &room).await;
        }
    }

    /// Write the frames just taken from the outbox that the connection should send, with
    /// any replies before them, in as few writes as it takes.
    async fn drain(&mut self) -> Result<(), WriteError> {
        self.core.filter_batch(Env::of(&self.node));
        self.flush().await
    }

    /// Write every buffered frame, within the write timeout.
    async fn flush(&mut self) -> Result<(), WriteError> {
        self.flush_within(self.node.config.write_timeout).await
    }

    /// Write every buffered frame, within `limit`. A queue that fills up while a write is
    /// stuck ends the wait at once.
    async fn flush_within(&mut self, limit: Duration) -> Result<(), WriteError> {
        // Most writes complete at once: the timer is only made for one that waits, and
        // lives on the heap while it does (the task's future is sized for its largest
        // state, for as long as the connection lives).
        let mut deadline: Option<Pin<Box<Sleep>>> = None;
        poll_fn(|cx| {
            let (out, batch) = self.core.queues();
            match ws::poll_write_both(cx, &mut self.io, out, batch) {
                Poll::Ready(Ok(())) => return Poll::Ready(Ok(())),
                Poll::Ready(Err(_)) => return Poll::Ready(Err(WriteError::Closed)),
                Poll::Pending => {}
            }
            let expired = deadline
                .get_or_insert_with(|| Box::pin(sleep(limit)))
                .as_mut()
                .poll(cx)
                .is_ready();
            if expired || self.outbox.poll_closed(cx).is_ready() {
                return Poll::Ready(Err(WriteError::TimedOut));
            }
            Poll::Pending
        })
        .await
    }

    /// Tell the client why, then close with the reason's code. `limit` bounds how long the
    /// goodbye may take (the default write timeout when `None`).
    async fn disconnect(&mut self, reason: DisconnectReason, limit: Option<Duration>) {
        let node = self.node.clone();
        let limit = limit.unwrap_or(node.config.write_timeout);
        let limit = self.core.goodbye(Env::of(&node), reason, limit);
        let write = timeout(
            limit,
            poll_fn(|cx| ws::poll_write_frames(cx, &mut self.io, self.core.queues().0)),
        );
        if matches!(write.await, Ok(Ok(()))) {
            // Wait briefly for the client's close reply before dropping the TCP connection:
            // closing at once can reset it and destroy the notice and close frame unread.
            let max_frame = node.config.max_frame;
            let _ = timeout(CLOSE_REPLY_WAIT.min(limit), async {
                while let Ok(message) =
                    poll_fn(|cx| self.reader.poll_next(cx, &mut self.io, max_frame)).await
                {
                    if matches!(message, Incoming::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
    }
}

impl WriteError {
    fn reason(&self) -> Option<DisconnectReason> {
        match self {
            WriteError::TimedOut => Some(DisconnectReason::SlowConsumer),
            WriteError::Closed => None,
        }
    }
}
