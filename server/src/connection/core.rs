//! Every decision of one connection, with no socket, timer or broker in sight (sans-IO, as
//! the client's `core/` and quinn-proto's `Connection`). The shell in `connection.rs`
//! feeds it what the client sent, the frames taken from the outbox, what the node answered
//! and the time, and carries out what it decided:
//! - it writes [`ConnectionCore::queues`]: replies first, then room frames, when
//!   [`ConnectionCore::replies_due`] says so;
//! - it performs each [`Action`] with the node (room operations go through the broker and
//!   may wait) and reports the outcome (`joined`, `published`, ...);
//! - it arms one timer for [`ConnectionCore::next_deadline`] and calls
//!   [`ConnectionCore::on_timer`] when it fires;
//! - it ends the connection on a [`DisconnectReason`], after [`ConnectionCore::goodbye`].
//!
//! Time is an input (`now`), so the limits, the heartbeat and the token's expiry are
//! tested without sleeping.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chorus_protocol::{
    Body, ClientMessage, DisconnectReason, ErrorCode, Limits, PROTOCOL_VERSION, Position,
    Reconnect, ServerMessage, validate,
};
use tokio::time::Instant;

use super::limits::{Buckets, Limit};
use super::rooms::Rooms;
use crate::config::{Config, NamespacePolicy};
use crate::hub::{ConnId, Outgoing, encode};
use crate::metrics::Metrics;
use crate::node::{Joined, Refusal};
use crate::ws::{self, Incoming, ReadError};

/// Requests handled in one turn of the connection's loop when more are already read.
const REQUESTS_PER_TURN: usize = 32;

/// Reply frames buffered before they are written even though more requests are waiting
/// (a join's replay, or a burst of requests in one read).
const MAX_BUFFERED_REPLIES: usize = 256;

/// What the core reads and counts in: the server's settings and metrics, shared by every
/// connection (passed in, not held: an idle connection keeps no more than it did).
#[derive(Clone, Copy)]
pub(crate) struct Env<'a> {
    pub(crate) config: &'a Config,
    pub(crate) metrics: &'a Metrics,
}

/// A room operation decided by the core, for the shell to perform with the node, which
/// then reports the outcome.
#[derive(Debug, PartialEq)]
pub(crate) enum Action {
    /// Join `room`, resuming after `since`; report with [`ConnectionCore::joined`].
    Join {
        room: String,
        since: Option<Position>,
    },
    /// Answer a repeated join of `room`, which the connection is in; report with
    /// [`ConnectionCore::described`].
    Describe { room: String },
    /// Leave `room`, which the core has already dropped; report with
    /// [`ConnectionCore::left`].
    Leave { room: String },
    /// Publish `body` to `room`; report with [`ConnectionCore::published`].
    Publish { room: String, id: u64, body: Body },
    /// Relay that the user started (or stopped) typing in `room`; nothing to report.
    Typing { room: String, started: bool },
    /// Read a page of `room`'s history; report with [`ConnectionCore::history_answered`].
    History {
        request: u64,
        room: String,
        before: Option<Position>,
        limit: u32,
    },
}

/// What the shell does after handing the core a client message.
#[derive(Debug, PartialEq)]
pub(crate) enum Next {
    /// Nothing: read on.
    Read,
    /// Perform a room operation and report its outcome.
    Perform(Action),
    /// The client closed: answer its close frame (see [`ConnectionCore::finish`]) and end.
    ClientClosed,
    /// End the connection.
    Close(DisconnectReason),
}

/// What a heartbeat or expiry deadline asks of the shell.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Due {
    /// Nothing more (a ping may have been queued).
    Nothing,
    /// No byte arrived within the heartbeat timeout: read the socket without waiting, and
    /// report with [`ConnectionCore::socket_checked`]. Bytes may be waiting there unread:
    /// the server was paused, or the task was held up (by a broker, say) as long as the
    /// timeout; they arrived in time, and count.
    CheckSocket,
    /// End the connection.
    Close(DisconnectReason),
}

/// The heartbeat and the token's expiry.
#[derive(Debug)]
struct Deadlines {
    /// When the client was last heard from.
    last_seen: Instant,
    /// How many bytes the client had sent by `last_seen`.
    seen_bytes: u64,
    /// When the next ping is due.
    next_ping: Instant,
    /// When the token stops being honoured.
    expires_at: Instant,
}

/// A join's replay, streamed out a queue's worth at a time by [`ConnectionCore::replay`].
#[derive(Debug, Default)]
pub(crate) struct Replay {
    frames: std::vec::IntoIter<(u64, Bytes)>,
}

/// One connection's decisions and the state behind them.
#[derive(Debug)]
pub(crate) struct ConnectionCore {
    pub(crate) id: ConnId,
    pub(crate) user: Arc<str>,
    /// Reply frames to write, before anything taken from the outbox after them.
    out: VecDeque<Bytes>,
    /// Frames taken from the outbox: filtered, then written after `out`.
    batch: VecDeque<Outgoing>,
    /// Set when the client sent a close frame (with its code, if any): it is answered.
    client_closed: Option<Option<u16>>,
    rooms: Rooms,
    buckets: Buckets,
    deadlines: Deadlines,
}

impl ConnectionCore {
    /// A connection opened at `now`. Its heartbeat and expiry start with
    /// [`ConnectionCore::start`].
    pub(crate) fn new(id: ConnId, user: Arc<str>, now: Instant) -> ConnectionCore {
        ConnectionCore {
            id,
            user,
            out: VecDeque::new(),
            batch: VecDeque::new(),
            client_closed: None,
            rooms: Rooms::default(),
            buckets: Buckets::new(now),
            deadlines: Deadlines {
                last_seen: now,
                seen_bytes: 0,
                next_ping: now,
                expires_at: now,
            },
        }
    }

    /// Queue the welcome: the first thing the client reads.
    pub(crate) fn welcome(&mut self, env: Env<'_>) {
        let c = env.config;
        let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        let welcome = encode(&ServerMessage::Welcome {
            session: format!("{:016x}", rand::random::<u64>()),
            user: self.user.to_string(),
            protocol: PROTOCOL_VERSION,
            heartbeat_ms: ms(c.heartbeat_interval),
            heartbeat_timeout_ms: ms(c.heartbeat_timeout),
            limits: Limits {
                max_frame: c.max_frame as u32,
                max_body: c.max_body() as u32,
                max_rooms: c.max_rooms_per_connection as u32,
                publish_per_second: c.publish_rate,
                publish_burst: c.publish_burst,
                typing_throttle_ms: ms(c.typing_throttle),
                typing_ttl_ms: ms(c.typing_ttl),
            },
        });
        self.queue_message(env, welcome);
    }

    /// Start the heartbeat at `now`, when the client had sent `received` bytes, and the
    /// token's expiry in `token_left` (its `exp` plus the leeway: as long as an upgrade
    /// would accept it).
    pub(crate) fn start(
        &mut self,
        config: &Config,
        now: Instant,
        received: u64,
        token_left: Duration,
    ) {
        self.deadlines = Deadlines {
            last_seen: now,
            seen_bytes: received,
            next_ping: now + config.heartbeat_interval,
            expires_at: now + token_left,
        };
    }

    // -----------------------------------------------------------------------------------
    // Writing: what goes out, and when.

    /// The frames to write: replies, then the room frames taken after them.
    pub(crate) fn queues(&mut self) -> (&mut VecDeque<Bytes>, &mut VecDeque<Outgoing>) {
        (&mut self.out, &mut self.batch)
    }

    /// Whether the buffered replies should be written now: replies wait while more
    /// requests are already read (`more_read`), to go out in one write, with the room
    /// frames queued meanwhile after them (a publisher's own message then leaves with its
    /// ack), up to [`MAX_BUFFERED_REPLIES`].
    pub(crate) fn replies_due(&self, more_read: bool) -> bool {
        !self.out.is_empty() && (!more_read || self.out.len() >= MAX_BUFFERED_REPLIES)
    }

    /// Whether to stop handling requests already read, after `handled` of them this turn,
    /// and let the outbox and the socket have their turn.
    pub(crate) fn turn_over(&self, handled: usize, more_read: bool) -> bool {
        handled >= REQUESTS_PER_TURN || self.out.len() >= MAX_BUFFERED_REPLIES || !more_read
    }

    /// Whether frames taken from the outbox are waiting.
    pub(crate) fn has_batch(&self) -> bool {
        !self.batch.is_empty()
    }

    /// Nothing to write and nothing to do: an idle connection holds no buffer.
    pub(crate) fn idle(&mut self) {
        if self.out.is_empty() {
            self.out = VecDeque::new();
        }
    }

    /// Keep the frames just taken from the outbox that the connection should send (see
    /// `Rooms::fresh`), and count them out.
    pub(crate) fn filter_batch(&mut self, env: Env<'_>) {
        let rooms = &mut self.rooms;
        self.batch.retain(|out| rooms.fresh(out));
        let count = self.batch.len() as u64;
        let bytes: usize = self
            .batch
            .iter()
            .map(|out| ws::payload_len(&out.delivery().frame))
            .sum();
        // Counted once per batch: the counters are shared by every connection.
        env.metrics.messages_out.inc_by(count);
        env.metrics.bytes_out.inc_by(bytes as u64);
    }

    /// Queue one reply (an encoded message) in its frame; it is written before anything
    /// taken from the outbox after it.
    fn queue_message(&mut self, env: Env<'_>, message: Bytes) {
        env.metrics.messages_out.inc();
        env.metrics.bytes_out.inc_by(message.len() as u64);
        self.out.push_back(ws::binary(&message));
    }

    /// Queue one complete WebSocket frame built elsewhere (a replayed message), like
    /// [`ConnectionCore::queue_message`].
    fn queue_frame(&mut self, env: Env<'_>, frame: Bytes) {
        env.metrics.messages_out.inc();
        env.metrics.bytes_out.inc_by(ws::payload_len(&frame) as u64);
        self.out.push_back(frame);
    }

    // -----------------------------------------------------------------------------------
    // Time.

    /// When [`ConnectionCore::on_timer`] is next due: the next ping or the token's expiry.
    pub(crate) fn next_deadline(&self) -> Instant {
        self.deadlines.next_ping.min(self.deadlines.expires_at)
    }

    /// A message arrived from the client at `now`.
    pub(crate) fn heard(&mut self, now: Instant) {
        self.deadlines.last_seen = now;
    }

    /// The timer fired at `now`, when the client had sent `received` bytes in all.
    pub(crate) fn on_timer(&mut self, config: &Config, now: Instant, received: u64) -> Due {
        let d = &mut self.deadlines;
        if now >= d.expires_at {
            return Due::Close(DisconnectReason::TokenExpired);
        }
        if now < d.next_ping {
            return Due::Nothing;
        }
        // Liveness counts bytes received, handled or not: bytes of a frame still arriving,
        // or read while the task was busy elsewhere.
        if received != d.seen_bytes {
            d.seen_bytes = received;
            d.last_seen = now;
        }
        if now.duration_since(d.last_seen) >= config.heartbeat_timeout {
            return Due::CheckSocket;
        }
        self.ping(config, now);
        Due::Nothing
    }

    /// The answer to [`Due::CheckSocket`] at `now`: `Some` with the bytes received in all
    /// when the read found some, `None` when none were waiting.
    pub(crate) fn socket_checked(
        &mut self,
        config: &Config,
        now: Instant,
        received: Option<u64>,
    ) -> Result<(), DisconnectReason> {
        let Some(received) = received else {
            return Err(DisconnectReason::HeartbeatTimeout);
        };
        self.deadlines.seen_bytes = received;
        self.deadlines.last_seen = now;
        self.ping(config, now);
        Ok(())
    }

    fn ping(&mut self, config: &Config, now: Instant) {
        self.out.push_back(ws::ping());
        self.deadlines.next_ping = now + config.heartbeat_interval;
    }

    // -----------------------------------------------------------------------------------
    // Requests.

    /// Handle one message from the client, read at `now`.
    pub(crate) fn on_message(&mut self, env: Env<'_>, message: Incoming, now: Instant) -> Next {
        env.metrics.messages_in.inc();
        self.heard(now);
        let encoded = match message {
            Incoming::Binary(encoded) => encoded,
            Incoming::Text => {
                let text = "text frames are not supported; send binary postcard frames";
                return self.reject(env, now, None, None, ErrorCode::TextFrame, text);
            }
            Incoming::Close(code) => {
                self.client_closed = Some(code);
                return Next::ClientClosed;
            }
            Incoming::Ping(payload) => {
                self.out.push_back(ws::pong(&payload));
                return Next::Read;
            }
            // Pongs count as traffic (`heard`).
            Incoming::Pong => return Next::Read,
        };
        env.metrics.bytes_in.inc_by(encoded.len() as u64);
        match ClientMessage::decode(&encoded, env.config.max_frame) {
            Ok(request) => self.on_request(env, request, now),
            Err(e) => {
                let text = format!("cannot decode frame: {e}");
                self.reject(env, now, None, None, ErrorCode::BadFrame, &text)
            }
        }
    }

    /// Decide what a request does. The order of the checks is part of the protocol: the
    /// room name first, then the rate limit, then membership and the namespace's policy.
    fn on_request(&mut self, env: Env<'_>, request: ClientMessage, now: Instant) -> Next {
        // The room name is checked once, for every request naming one, before anything else:
        // an invalid name is answered 102 whatever the request, never `not_joined` or `Left`.
        let (room, id) = match &request {
            ClientMessage::Ping { .. } => (None, None),
            ClientMessage::Join { room, .. }
            | ClientMessage::Leave { room }
            | ClientMessage::TypingStarted { room }
            | ClientMessage::TypingStopped { room } => (Some(room), None),
            ClientMessage::Publish { room, id, .. } => (Some(room), Some(*id)),
            ClientMessage::History { room, request, .. } => (Some(room), Some(*request)),
        };
        if let Some(Err(e)) = room.map(|room| validate::room(room)) {
            if matches!(request, ClientMessage::History { .. }) {
                env.metrics.history_request(Some(ErrorCode::InvalidRoom));
            }
            let text = format!("invalid room name: {e}");
            let room = room.cloned();
            return self.reject(env, now, id, room, ErrorCode::InvalidRoom, &text);
        }
        let c = env.config;
        match request {
            ClientMessage::Ping { nonce } => {
                self.queue_message(env, encode(&ServerMessage::Pong { nonce }));
                Next::Read
            }
            // Each join is heard by the whole room; a Leave, never refused, follows a join.
            ClientMessage::Join { room, .. } if !self.buckets.allow(c, Limit::Membership, now) => {
                let text = "join rate limit exceeded";
                self.reject(env, now, None, Some(room), ErrorCode::RateLimited, text)
            }
            // Already in: a no-op that repeats the answer.
            ClientMessage::Join { room, .. } if self.rooms.contains(&room) => {
                Next::Perform(Action::Describe { room })
            }
            ClientMessage::Join { room, .. } if self.rooms.len() >= c.max_rooms_per_connection => {
                let text = format!("already in {} rooms, the maximum", self.rooms.len());
                self.reject(env, now, None, Some(room), ErrorCode::TooManyRooms, &text)
            }
            ClientMessage::Join { room, since } => Next::Perform(Action::Join { room, since }),
            ClientMessage::Leave { room } => {
                if self.rooms.remove(&room) {
                    Next::Perform(Action::Leave { room })
                } else {
                    self.left(env, room);
                    Next::Read
                }
            }
            ClientMessage::Publish { room, id, .. }
                if !self.buckets.allow(c, Limit::Publish, now) =>
            {
                let text = "publish rate limit exceeded";
                self.reject(env, now, Some(id), Some(room), ErrorCode::RateLimited, text)
            }
            ClientMessage::Publish { room, id, body } => {
                match self.may_use(c, &room, |p| p.client_publish, ErrorCode::PublishDisabled) {
                    Ok(()) => Next::Perform(Action::Publish { room, id, body }),
                    Err(refusal) => self.refuse(env, now, Some(id), Some(room), refusal),
                }
            }
            ClientMessage::TypingStarted { room } | ClientMessage::TypingStopped { room }
                if !self.buckets.allow(c, Limit::Typing, now) =>
            {
                let text = "typing rate limit exceeded";
                self.reject(env, now, None, Some(room), ErrorCode::RateLimited, text)
            }
            ClientMessage::TypingStarted { room } => self.typing(env, now, room, true),
            ClientMessage::TypingStopped { room } => self.typing(env, now, room, false),
            ClientMessage::History {
                request,
                room,
                before,
                limit,
            } => {
                // Answered in turn with every other reply: the client matches answers to
                // requests by order as well as by id.
                if self.buckets.allow(c, Limit::History, now) {
                    return Next::Perform(Action::History {
                        request,
                        room,
                        before,
                        limit,
                    });
                }
                let refused = Refusal::new(ErrorCode::RateLimited, "history rate limit exceeded");
                match self.history_answered(env, now, request, room, Err(refused)) {
                    Ok(()) => Next::Read,
                    Err(reason) => Next::Close(reason),
                }
            }
        }
    }

    fn typing(&mut self, env: Env<'_>, now: Instant, room: String, started: bool) -> Next {
        match self.may_use(env.config, &room, |p| p.typing, ErrorCode::TypingDisabled) {
            Ok(()) => Next::Perform(Action::Typing { room, started }),
            Err(refusal) => self.refuse(env, now, None, Some(room), refusal),
        }
    }

    /// Check that the connection is in `room` and its namespace allows the action.
    fn may_use(
        &self,
        config: &Config,
        room: &str,
        allowed: impl Fn(&NamespacePolicy) -> bool,
        code: ErrorCode,
    ) -> Result<(), Refusal> {
        if !self.rooms.contains(room) {
            return Err(Refusal::new(
                ErrorCode::NotJoined,
                format!("not joined to room {room:?}"),
            ));
        }
        if !allowed(config.policy(room)) {
            return Err(Refusal::new(
                code,
                format!("not allowed in room {room:?} by its namespace"),
            ));
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------
    // Outcomes of the actions.

    /// The outcome of [`Action::Join`]: on success the room is the connection's, and the
    /// replay follows the `Joined` reply (see [`ConnectionCore::replay`]).
    pub(crate) fn joined(
        &mut self,
        env: Env<'_>,
        now: Instant,
        room: String,
        joined: Result<Joined, Refusal>,
    ) -> Result<Replay, DisconnectReason> {
        match joined {
            Ok(joined) => {
                self.queue_message(env, joined.reply);
                self.rooms.insert(
                    room,
                    joined.room_id,
                    joined.position.epoch,
                    joined.position.seq,
                );
                Ok(Replay {
                    frames: joined.replay.into_iter(),
                })
            }
            Err(refusal) => {
                ended(self.refuse(env, now, None, Some(room), refusal)).map(|()| Replay::default())
            }
        }
    }

    /// Queue the replay's next frames: at most a queue's worth of bytes
    /// (`queue_max_bytes`, and at least one frame), like the room frames of the outbox.
    /// Returns whether frames remain: the shell writes what is queued, and calls again.
    /// The frames are the log's own, shared with every other joiner.
    pub(crate) fn replay(&mut self, env: Env<'_>, replay: &mut Replay) -> bool {
        let limit = env.config.queue_max_bytes;
        let mut buffered = 0;
        while let Some((_, frame)) = replay.frames.as_slice().first() {
            if buffered > 0 && buffered + frame.len() > limit {
                return true;
            }
            buffered += frame.len();
            if let Some((_, frame)) = replay.frames.next() {
                self.queue_frame(env, frame);
            }
        }
        false
    }

    /// The outcome of [`Action::Describe`].
    pub(crate) fn described(
        &mut self,
        env: Env<'_>,
        now: Instant,
        room: String,
        described: Result<Bytes, Refusal>,
    ) -> Result<(), DisconnectReason> {
        match described {
            Ok(reply) => {
                self.queue_message(env, reply);
                Ok(())
            }
            Err(refusal) => ended(self.refuse(env, now, None, Some(room), refusal)),
        }
    }

    /// The connection is out of `room` (the outcome of [`Action::Leave`], or it was not
    /// in it): a Leave is never refused.
    pub(crate) fn left(&mut self, env: Env<'_>, room: String) {
        self.queue_message(env, encode(&ServerMessage::Left { room }));
    }

    /// The outcome of [`Action::Publish`].
    pub(crate) fn published(
        &mut self,
        env: Env<'_>,
        now: Instant,
        room: String,
        id: u64,
        published: Result<u64, Refusal>,
    ) -> Result<(), DisconnectReason> {
        match published {
            Ok(seq) => {
                self.queue_message(env, encode(&ServerMessage::PublishAck { room, id, seq }));
                Ok(())
            }
            Err(refusal) => ended(self.refuse(env, now, Some(id), Some(room), refusal)),
        }
    }

    /// The outcome of [`Action::History`] (or its rate limit).
    pub(crate) fn history_answered(
        &mut self,
        env: Env<'_>,
        now: Instant,
        request: u64,
        room: String,
        page: Result<Bytes, Refusal>,
    ) -> Result<(), DisconnectReason> {
        match page {
            Ok(page) => {
                env.metrics.history_request(None);
                self.queue_message(env, page);
                Ok(())
            }
            Err(refusal) => {
                env.metrics.history_request(Some(refusal.code));
                ended(self.refuse(env, now, Some(request), Some(room), refusal))
            }
        }
    }

    fn refuse(
        &mut self,
        env: Env<'_>,
        now: Instant,
        id: Option<u64>,
        room: Option<String>,
        refusal: Refusal,
    ) -> Next {
        self.reject(env, now, id, room, refusal.code, &refusal.message)
    }

    /// Answer a request with an error; close the connection if rejections keep coming.
    fn reject(
        &mut self,
        env: Env<'_>,
        now: Instant,
        id: Option<u64>,
        room: Option<String>,
        code: ErrorCode,
        message: &str,
    ) -> Next {
        tracing::debug!(conn = self.id, user = %self.user, code = code.name(), message, "request rejected");
        env.metrics.error(code);
        let reply = encode(&ServerMessage::Error {
            code: code.as_u16(),
            message: message.to_owned(),
            id,
            room,
        });
        self.queue_message(env, reply);
        // Mistakes (a forbidden or unknown room) are the app's business; flooding and
        // garbage are abuse, and persisting in them ends the connection.
        let abusive = matches!(
            code,
            ErrorCode::RateLimited | ErrorCode::BadFrame | ErrorCode::TextFrame
        );
        if abusive && !self.buckets.allow(env.config, Limit::Abuse, now) {
            return Next::Close(DisconnectReason::PolicyViolation);
        }
        Next::Read
    }

    // -----------------------------------------------------------------------------------
    // Endings.

    /// Leave every room: the names, for the shell to leave with the node.
    pub(crate) fn leave_all(&mut self) -> impl Iterator<Item = Box<str>> + use<> {
        self.rooms.take()
    }

    /// The reason a failed read ends the connection with: a frame over the limit is the
    /// client's fault; a frame that breaks RFC 6455 is answered with a close frame naming
    /// the rule (and counted, as every reason is); anything else means the socket is gone.
    pub(crate) fn read_error(&mut self, env: Env<'_>, err: ReadError) -> Option<DisconnectReason> {
        match err {
            ReadError::TooLarge => Some(DisconnectReason::FrameTooLarge),
            ReadError::Protocol(violation) => {
                let reason = if violation.close_code() == DisconnectReason::InvalidData.close_code()
                {
                    DisconnectReason::InvalidData
                } else {
                    DisconnectReason::ProtocolError
                };
                let rule = violation.name();
                tracing::debug!(conn = self.id, user = %self.user, reason = reason.name(), rule, "frame breaks RFC 6455");
                env.metrics.disconnect(reason);
                // No `Disconnect` notice: a client that gets the framing wrong may not read
                // one. The close frame, written when the connection finishes, says why.
                let text = format!("{}: {rule}", reason.name());
                self.out.push_back(ws::close(reason.close_code(), &text));
                None
            }
            ReadError::Gone => None,
        }
    }

    /// After the client left: queue the answer to its close frame, if it sent one.
    pub(crate) fn finish(&mut self) {
        if let Some(code) = self.client_closed {
            self.out.push_back(ws::close_reply(code));
        }
    }

    /// Queue the goodbye for `reason`: the notice with its reconnect hint, then the close
    /// frame. Returns how long writing it may take, given `limit`: a slow consumer is not
    /// going to read a goodbye in time, so it is not waited on long.
    pub(crate) fn goodbye(
        &mut self,
        env: Env<'_>,
        reason: DisconnectReason,
        limit: Duration,
    ) -> Duration {
        env.metrics.disconnect(reason);
        let notice = encode(&ServerMessage::Disconnect {
            code: reason.close_code(),
            reason: reason.name().to_owned(),
            reconnect: reconnect_hint(reason),
        });
        // A write that failed or timed out may have left the rest of a frame: it goes first,
        // or the goodbye would land inside it. (`out` is written before `batch`, so frames
        // left in `batch` mean `out` is empty.)
        self.out
            .extend(self.batch.drain(..).map(Outgoing::into_bytes));
        self.out.push_back(ws::binary(&notice));
        self.out
            .push_back(ws::close(reason.close_code(), reason.name()));
        if reason == DisconnectReason::SlowConsumer {
            limit.min(Duration::from_millis(100))
        } else {
            limit
        }
    }
}

/// Whether a rejection ended the connection, as the result of an outcome.
fn ended(next: Next) -> Result<(), DisconnectReason> {
    match next {
        Next::Close(reason) => Err(reason),
        _ => Ok(()),
    }
}

/// The reconnect hint sent with each reason: the one place reasons become advice.
fn reconnect_hint(reason: DisconnectReason) -> Reconnect {
    let jitter = |lo: u32, hi: u32| Reconnect::RetryAfter(rand::random_range(lo..=hi));
    match reason {
        // Spread the herd of clients reconnecting to a restarted or full server.
        DisconnectReason::ServerShutdown => jitter(500, 3000),
        DisconnectReason::ServerFull => jitter(5000, 15000),
        DisconnectReason::HeartbeatTimeout
        | DisconnectReason::SlowConsumer
        | DisconnectReason::FrameTooLarge => Reconnect::RetryAfter(1000),
        DisconnectReason::PolicyViolation => Reconnect::RetryAfter(10_000),
        DisconnectReason::TooManyConnections => Reconnect::RetryAfter(30_000),
        // Closed without a notice (see `ConnectionCore::read_error`); a client that breaks
        // the protocol is broken, and retries as after a lost connection.
        DisconnectReason::ProtocolError | DisconnectReason::InvalidData => {
            Reconnect::RetryAfter(1000)
        }
        // Only a fresh token helps.
        DisconnectReason::TokenExpired => Reconnect::DoNotRetry,
    }
}

#[cfg(test)]
mod tests {
    use chorus_protocol::DEFAULT_MAX_FRAME;

    use super::*;
    use crate::hub::{Delivery, Kind};

    /// The server's settings and metrics for one test.
    struct Fixture {
        config: Config,
        metrics: Metrics,
        /// When the connection opened.
        t0: Instant,
    }

    impl Fixture {
        fn new(config: Config) -> Fixture {
            Fixture {
                config,
                metrics: Metrics::new(),
                t0: Instant::now(),
            }
        }

        fn env(&self) -> Env<'_> {
            Env {
                config: &self.config,
                metrics: &self.metrics,
            }
        }

        fn core(&self) -> ConnectionCore {
            ConnectionCore::new(1, Arc::from("ann"), self.t0)
        }

        /// `secs` seconds after the connection opened.
        fn at(&self, secs: f64) -> Instant {
            self.t0 + Duration::from_secs_f64(secs)
        }

        /// Hand `core` a request at `now`.
        fn send(&self, core: &mut ConnectionCore, request: ClientMessage, now: Instant) -> Next {
            let bytes = request.encode(DEFAULT_MAX_FRAME).expect("encodes");
            core.on_message(self.env(), Incoming::Binary(bytes.into()), now)
        }

        /// Join `room` (the hub's room `id`) at `epoch` and `seq`, as the node would.
        fn join(&self, core: &mut ConnectionCore, room: &str, id: u64, epoch: u64, seq: u64) {
            let join = ClientMessage::Join {
                room: room.into(),
                since: None,
            };
            let now = self.t0;
            let Next::Perform(Action::Join { room, .. }) = self.send(core, join, now) else {
                panic!("a join of {room:?} is performed");
            };
            let joined = Joined {
                room_id: id,
                position: Position { epoch, seq },
                reply: Bytes::from_static(b"joined"),
                replay: Vec::new(),
            };
            core.joined(self.env(), now, room, Ok(joined))
                .expect("joined");
            core.out.clear();
        }
    }

    /// The messages queued as replies, decoded; the queue is emptied.
    fn replies(core: &mut ConnectionCore) -> Vec<ServerMessage> {
        core.out
            .drain(..)
            .map(|frame| {
                let payload = &frame[frame.len() - ws::payload_len(&frame)..];
                ServerMessage::decode(payload, DEFAULT_MAX_FRAME).expect("a server message")
            })
            .collect()
    }

    /// The code of the one error queued, if that is what was queued.
    fn error_code(core: &mut ConnectionCore) -> Option<u16> {
        match replies(core).as_slice() {
            [ServerMessage::Error { code, .. }] => Some(*code),
            _ => None,
        }
    }

    fn publish(room: &str, id: u64) -> ClientMessage {
        ClientMessage::Publish {
            room: room.into(),
            id,
            body: Body::Text("hi".into()),
        }
    }

    fn outgoing(room: u64, kind: Kind) -> Outgoing {
        Outgoing::new(Arc::new(Delivery {
            frame: ws::binary(format!("{kind:?}").as_bytes()),
            room,
            kind,
        }))
    }

    #[test]
    fn the_filter_passes_each_message_once_in_the_connection_epoch_and_follows_resets() {
        let f = Fixture::new(Config::default());
        let mut core = f.core();
        f.join(&mut core, "lobby", 7, 1, 5);
        let counted = f.metrics.messages_out.get();
        let batch = [
            (7, Kind::Message { epoch: 1, seq: 4 }, false), // replayed already
            (7, Kind::Message { epoch: 1, seq: 5 }, false), // the join's position
            (7, Kind::Message { epoch: 1, seq: 6 }, true),
            (7, Kind::Message { epoch: 1, seq: 6 }, false), // the same twice
            (7, Kind::Message { epoch: 2, seq: 7 }, false), // another history
            (8, Kind::Message { epoch: 1, seq: 7 }, false), // a room it is not in
            (8, Kind::Event, false),
            (7, Kind::Event, true),
            (7, Kind::Reset { epoch: 1, seq: 6 }, false), // already there
            (7, Kind::Reset { epoch: 2, seq: 3 }, true),  // a new history
            (7, Kind::Message { epoch: 2, seq: 3 }, false),
            (7, Kind::Message { epoch: 2, seq: 4 }, true),
            (7, Kind::Message { epoch: 1, seq: 7 }, false), // the old history
            (7, Kind::Reset { epoch: 2, seq: 9 }, true),    // messages were lost
            (7, Kind::Message { epoch: 2, seq: 10 }, true),
        ];
        core.batch
            .extend(batch.iter().map(|&(room, kind, _)| outgoing(room, kind)));
        core.filter_batch(f.env());
        let kept: Vec<_> = core
            .batch
            .iter()
            .map(|out| (out.delivery().room, out.delivery().kind))
            .collect();
        let expected: Vec<_> = batch
            .iter()
            .filter(|(_, _, keep)| *keep)
            .map(|&(room, kind, _)| (room, kind))
            .collect();
        assert_eq!(kept, expected);
        assert_eq!(
            f.metrics.messages_out.get() - counted,
            expected.len() as u64
        );

        // Out of the room, nothing of it passes.
        let leave = ClientMessage::Leave {
            room: "lobby".into(),
        };
        assert!(matches!(
            f.send(&mut core, leave, f.t0),
            Next::Perform(Action::Leave { .. })
        ));
        core.batch.clear();
        core.batch.push_back(outgoing(7, Kind::Event));
        core.filter_batch(f.env());
        assert!(core.batch.is_empty());
    }

    #[test]
    fn publishes_past_the_burst_are_rate_limited_and_rejections_past_theirs_end_the_connection() {
        let f = Fixture::new(Config {
            publish_rate: 1,
            publish_burst: 2,
            abuse_burst: 3,
            ..Config::default()
        });
        let mut core = f.core();
        f.join(&mut core, "lobby", 7, 1, 0);
        let now = f.at(1.0);
        for id in 0..2 {
            assert!(matches!(
                f.send(&mut core, publish("lobby", id), now),
                Next::Perform(Action::Publish { .. })
            ));
        }
        // The abuse bucket holds three rejections; the fourth in the same second ends it.
        for id in 2..5 {
            assert_eq!(f.send(&mut core, publish("lobby", id), now), Next::Read);
            assert_eq!(error_code(&mut core), Some(106));
        }
        assert_eq!(
            f.send(&mut core, publish("lobby", 5), now),
            Next::Close(DisconnectReason::PolicyViolation)
        );
        assert_eq!(DisconnectReason::PolicyViolation.close_code(), 4003);
    }

    #[test]
    fn rejections_are_forgiven_at_one_a_second_and_mistakes_are_not_abuse() {
        let f = Fixture::new(Config {
            abuse_burst: 2,
            ..Config::default()
        });
        let mut core = f.core();
        let text = |core: &mut ConnectionCore, now| core.on_message(f.env(), Incoming::Text, now);
        assert_eq!(text(&mut core, f.at(0.0)), Next::Read);
        assert_eq!(text(&mut core, f.at(0.0)), Next::Read);
        // A second later one more is forgiven, and only one.
        assert_eq!(text(&mut core, f.at(1.0)), Next::Read);
        assert_eq!(
            text(&mut core, f.at(1.0)),
            Next::Close(DisconnectReason::PolicyViolation)
        );

        // Publishing to a room it is not in, however often, is the app's mistake.
        let mut core = f.core();
        for id in 0..10 {
            assert_eq!(
                f.send(&mut core, publish("elsewhere", id), f.t0),
                Next::Read
            );
            assert_eq!(error_code(&mut core), Some(ErrorCode::NotJoined.as_u16()));
        }
        // Undecodable frames are abuse.
        let garbage = Incoming::Binary(Bytes::from_static(&[0xff, 0xff, 0xff]));
        assert_eq!(core.on_message(f.env(), garbage.clone(), f.t0), Next::Read);
        assert_eq!(core.on_message(f.env(), garbage.clone(), f.t0), Next::Read);
        assert_eq!(
            core.on_message(f.env(), garbage, f.t0),
            Next::Close(DisconnectReason::PolicyViolation)
        );
    }

    #[test]
    fn the_heartbeat_pings_when_due_and_times_out_only_when_no_byte_arrived() {
        let f = Fixture::new(Config {
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(25),
            ..Config::default()
        });
        let start = |core: &mut ConnectionCore| {
            core.start(&f.config, f.t0, 0, Duration::from_secs(3600));
        };
        let mut core = f.core();
        start(&mut core);
        assert_eq!(core.next_deadline(), f.at(10.0));
        // Early: nothing.
        assert_eq!(core.on_timer(&f.config, f.at(9.0), 0), Due::Nothing);
        assert!(core.out.is_empty());
        assert_eq!(core.on_timer(&f.config, f.at(10.0), 0), Due::Nothing);
        assert_eq!(core.out.drain(..).collect::<Vec<_>>(), [ws::ping()]);
        assert_eq!(core.next_deadline(), f.at(20.0));
        assert_eq!(core.on_timer(&f.config, f.at(20.0), 0), Due::Nothing);
        assert_eq!(core.out.drain(..).collect::<Vec<_>>(), [ws::ping()]);
        // 30 s of silence: the socket is read for bytes not seen yet; there are none.
        assert_eq!(core.on_timer(&f.config, f.at(30.0), 0), Due::CheckSocket);
        assert!(core.out.is_empty());
        assert_eq!(
            core.socket_checked(&f.config, f.at(30.0), None),
            Err(DisconnectReason::HeartbeatTimeout)
        );

        // Bytes waiting in the socket arrived in time.
        let mut core = f.core();
        start(&mut core);
        for t in [10.0, 20.0] {
            core.on_timer(&f.config, f.at(t), 0);
        }
        assert_eq!(core.on_timer(&f.config, f.at(30.0), 0), Due::CheckSocket);
        assert_eq!(core.socket_checked(&f.config, f.at(30.0), Some(6)), Ok(()));
        assert_eq!(core.next_deadline(), f.at(40.0));
        assert_eq!(core.on_timer(&f.config, f.at(40.0), 6), Due::Nothing);

        // Bytes of a frame still arriving count, as does a message.
        let mut core = f.core();
        start(&mut core);
        assert_eq!(core.on_timer(&f.config, f.at(20.0), 3), Due::Nothing);
        assert_eq!(core.on_timer(&f.config, f.at(40.0), 3), Due::Nothing);
        assert_eq!(core.on_timer(&f.config, f.at(50.0), 3), Due::CheckSocket);
        core.heard(f.at(51.0));
        assert_eq!(core.on_timer(&f.config, f.at(75.0), 3), Due::Nothing);
        assert_eq!(core.next_deadline(), f.at(85.0));
        assert_eq!(core.on_timer(&f.config, f.at(85.0), 3), Due::CheckSocket);
    }

    #[test]
    fn the_connection_ends_with_token_expired_at_the_deadline_given() {
        let f = Fixture::new(Config {
            heartbeat_interval: Duration::from_secs(10),
            ..Config::default()
        });
        let mut core = f.core();
        core.start(&f.config, f.t0, 0, Duration::from_secs(5));
        assert_eq!(core.next_deadline(), f.at(5.0));
        assert_eq!(core.on_timer(&f.config, f.at(4.9), 0), Due::Nothing);
        assert_eq!(
            core.on_timer(&f.config, f.at(5.0), 0),
            Due::Close(DisconnectReason::TokenExpired)
        );
        // The goodbye says so, with 4002, and advises against retrying.
        core.goodbye(
            f.env(),
            DisconnectReason::TokenExpired,
            Duration::from_secs(1),
        );
        let close = core.out.pop_back().expect("a close frame");
        assert_eq!(close, ws::close(4002, "token_expired"));
        assert!(matches!(
            replies(&mut core).as_slice(),
            [ServerMessage::Disconnect {
                code: 4002,
                reconnect: Reconnect::DoNotRetry,
                ..
            }]
        ));
    }

    #[test]
    fn an_invalid_room_name_is_answered_102_before_any_other_check() {
        let f = Fixture::new(Config {
            publish_burst: 1,
            typing_burst: 1,
            history_burst: 1,
            membership_burst: 1,
            max_rooms_per_connection: 1,
            abuse_burst: 100,
            ..Config::default()
        });
        let mut core = f.core();
        // Use every limit up: at the maximum of rooms (the join took the join token), every
        // bucket empty.
        f.join(&mut core, "lobby", 7, 1, 0);
        let requests = |room: &str| {
            vec![
                ClientMessage::Join {
                    room: room.into(),
                    since: None,
                },
                ClientMessage::Leave { room: room.into() },
                publish(room, 1),
                ClientMessage::TypingStarted { room: room.into() },
                ClientMessage::TypingStopped { room: room.into() },
                ClientMessage::History {
                    request: 2,
                    room: room.into(),
                    before: None,
                    limit: 10,
                },
            ]
        };
        for request in [
            publish("other", 1),
            ClientMessage::TypingStarted {
                room: "other".into(),
            },
        ] {
            assert_eq!(f.send(&mut core, request, f.t0), Next::Read);
        }
        let history = ClientMessage::History {
            request: 1,
            room: "other".into(),
            before: None,
            limit: 10,
        };
        assert!(matches!(
            f.send(&mut core, history, f.t0),
            Next::Perform(Action::History { .. })
        ));
        replies(&mut core);
        for request in requests("no spaces allowed") {
            let id = match &request {
                ClientMessage::Publish { id, .. } => Some(*id),
                ClientMessage::History { request, .. } => Some(*request),
                _ => None,
            };
            assert_eq!(f.send(&mut core, request, f.t0), Next::Read);
            let replies = replies(&mut core);
            let [ServerMessage::Error { code, id: got, .. }] = replies.as_slice() else {
                panic!("one error, not {replies:?}");
            };
            assert_eq!((*code, *got), (ErrorCode::InvalidRoom.as_u16(), id));
        }
    }

    #[test]
    fn a_leave_is_never_refused() {
        let f = Fixture::new(Config {
            membership_burst: 1,
            ..Config::default()
        });
        let mut core = f.core();
        f.join(&mut core, "lobby", 7, 1, 0);
        // Not in the room: answered at once.
        let leave = |room: &str| ClientMessage::Leave { room: room.into() };
        assert_eq!(f.send(&mut core, leave("elsewhere"), f.t0), Next::Read);
        assert!(
            matches!(replies(&mut core).as_slice(), [ServerMessage::Left { room }] if room == "elsewhere")
        );
        // In it (with the join bucket empty): the node is told, then the client.
        assert_eq!(
            f.send(&mut core, leave("lobby"), f.t0),
            Next::Perform(Action::Leave {
                room: "lobby".into()
            })
        );
        assert!(core.out.is_empty());
        core.left(f.env(), "lobby".into());
        assert!(
            matches!(replies(&mut core).as_slice(), [ServerMessage::Left { room }] if room == "lobby")
        );
        assert_eq!(core.rooms.len(), 0);
    }

    #[test]
    fn joins_past_the_membership_burst_are_rate_limited() {
        let f = Fixture::new(Config {
            membership_rate: 1,
            membership_burst: 2,
            ..Config::default()
        });
        let mut core = f.core();
        let join = |room: &str| ClientMessage::Join {
            room: room.into(),
            since: None,
        };
        for room in ["a", "b"] {
            assert!(matches!(
                f.send(&mut core, join(room), f.t0),
                Next::Perform(Action::Join { .. })
            ));
        }
        assert_eq!(f.send(&mut core, join("c"), f.t0), Next::Read);
        assert_eq!(error_code(&mut core), Some(ErrorCode::RateLimited.as_u16()));
        assert!(matches!(
            f.send(&mut core, join("c"), f.at(1.0)),
            Next::Perform(Action::Join { .. })
        ));
    }

    #[test]
    fn a_connection_joins_at_most_max_rooms_and_a_repeated_join_is_described() {
        let f = Fixture::new(Config {
            max_rooms_per_connection: 2,
            ..Config::default()
        });
        let mut core = f.core();
        f.join(&mut core, "a", 1, 1, 0);
        f.join(&mut core, "b", 2, 1, 0);
        let join = |room: &str| ClientMessage::Join {
            room: room.into(),
            since: None,
        };
        assert_eq!(f.send(&mut core, join("c"), f.t0), Next::Read);
        assert_eq!(
            error_code(&mut core),
            Some(ErrorCode::TooManyRooms.as_u16())
        );
        assert_eq!(
            f.send(&mut core, join("a"), f.t0),
            Next::Perform(Action::Describe { room: "a".into() })
        );
        // A refused join does not count.
        let mut core = f.core();
        assert!(matches!(
            f.send(&mut core, join("a"), f.t0),
            Next::Perform(Action::Join { .. })
        ));
        let refused = Refusal::new(ErrorCode::Forbidden, "no");
        let replay = core.joined(f.env(), f.t0, "a".into(), Err(refused));
        assert!(replay.is_ok());
        assert_eq!(error_code(&mut core), Some(ErrorCode::Forbidden.as_u16()));
        assert_eq!(core.rooms.len(), 0);
    }

    #[test]
    fn publishing_and_typing_need_the_room_and_its_namespace_policy() {
        let mut config = Config::default();
        let quiet = NamespacePolicy {
            client_publish: false,
            typing: false,
            ..NamespacePolicy::default()
        };
        config.namespaces.insert("quiet".into(), quiet);
        let f = Fixture::new(config);
        let mut core = f.core();
        f.join(&mut core, "quiet:hall", 1, 1, 0);
        assert_eq!(
            f.send(&mut core, publish("quiet:hall", 1), f.t0),
            Next::Read
        );
        assert_eq!(
            error_code(&mut core),
            Some(ErrorCode::PublishDisabled.as_u16())
        );
        let typing = ClientMessage::TypingStarted {
            room: "quiet:hall".into(),
        };
        assert_eq!(f.send(&mut core, typing, f.t0), Next::Read);
        assert_eq!(
            error_code(&mut core),
            Some(ErrorCode::TypingDisabled.as_u16())
        );
        f.join(&mut core, "lobby", 2, 1, 0);
        assert_eq!(
            f.send(&mut core, publish("lobby", 2), f.t0),
            Next::Perform(Action::Publish {
                room: "lobby".into(),
                id: 2,
                body: Body::Text("hi".into())
            })
        );
    }

    #[test]
    fn a_replay_streams_a_queue_worth_of_bytes_at_a_time() {
        let f = Fixture::new(Config {
            queue_max_bytes: 100,
            ..Config::default()
        });
        let mut core = f.core();
        let join = ClientMessage::Join {
            room: "lobby".into(),
            since: None,
        };
        f.send(&mut core, join, f.t0);
        let frame = |n: usize| Bytes::from(vec![0x82; n]);
        let joined = Joined {
            room_id: 1,
            position: Position { epoch: 1, seq: 5 },
            reply: Bytes::from_static(b"joined"),
            replay: vec![
                (1, frame(150)),
                (2, frame(40)),
                (3, frame(40)),
                (4, frame(40)),
                (5, frame(10)),
            ],
        };
        let mut replay = core
            .joined(f.env(), f.t0, "lobby".into(), Ok(joined))
            .expect("joined");
        let mut chunks = Vec::new();
        loop {
            let more = core.replay(f.env(), &mut replay);
            // The reply first, then the frames, each chunk a write's worth.
            chunks.push(core.out.drain(..).map(|f| f.len()).collect::<Vec<_>>());
            if !more {
                break;
            }
        }
        // The reply; a frame over the limit alone; then at most 100 bytes at a time.
        assert_eq!(chunks, [vec![8, 150], vec![40, 40], vec![40, 10]]);
    }

    #[test]
    fn replies_wait_for_requests_already_read_up_to_a_bound() {
        let f = Fixture::new(Config::default());
        let mut core = f.core();
        assert!(!core.replies_due(false));
        let ping = ClientMessage::Ping { nonce: 1 };
        f.send(&mut core, ping.clone(), f.t0);
        assert!(core.replies_due(false));
        assert!(!core.replies_due(true));
        assert!(!core.turn_over(1, true));
        assert!(core.turn_over(1, false));
        assert!(core.turn_over(REQUESTS_PER_TURN, true));
        for _ in 1..MAX_BUFFERED_REPLIES {
            f.send(&mut core, ping.clone(), f.t0);
        }
        assert!(core.replies_due(true));
        assert!(core.turn_over(1, true));
        // Replies go before the room frames taken after them.
        core.batch.push_back(outgoing(1, Kind::Event));
        let (out, batch) = core.queues();
        assert_eq!((out.len(), batch.len()), (MAX_BUFFERED_REPLIES, 1));
    }
}
