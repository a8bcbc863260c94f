//! One WebSocket connection: a single task that reads client frames, writes replies and
//! drains the connection's outbound queue, watches the heartbeat and the token's expiry, and
//! ends with a [`DisconnectReason`] (or because the client left).

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use chorus_protocol::{
    ClientMessage, DisconnectReason, ErrorCode, Limits, PROTOCOL_VERSION, Reconnect, ServerMessage,
    validate,
};
use tokio::time::{Instant, Sleep, sleep, sleep_until, timeout};

use crate::auth::Claims;
use crate::hub::{ConnId, Kind, Outbox, Outgoing, frame};
use crate::node::{ConnSlot, Member, Node, Refusal};
use crate::rate_limit::{Bucket, Rate};
use crate::ws::{self, Incoming, ReadError};

/// Requests handled in one turn of the connection's loop when more are already read.
const REQUESTS_PER_TURN: usize = 32;

/// Reply frames buffered before they are written even though more requests are waiting
/// (a join's replay, or a burst of requests in one read).
const MAX_BUFFERED_REPLIES: usize = 256;

/// How long a server-initiated close waits for the client's close frame.
const CLOSE_REPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

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
        // Closed without a notice (see `Connection::read_error`); a client that breaks the
        // protocol is broken, and retries as after a lost connection.
        DisconnectReason::ProtocolError | DisconnectReason::InvalidData => {
            Reconnect::RetryAfter(1000)
        }
        // Only a fresh token helps.
        DisconnectReason::TokenExpired => Reconnect::DoNotRetry,
    }
}

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

/// Why the write side failed.
enum WriteError {
    /// The write took longer than the write timeout.
    TimedOut,
    /// The socket is gone.
    Closed,
}

/// A connection's rate limits: what it may still do.
#[derive(Debug)]
struct Buckets {
    /// When the connection opened: the buckets count time from here.
    epoch: Instant,
    publish: Bucket,
    typing: Bucket,
    history: Bucket,
    /// Joins (see `Config::membership_rate`).
    membership: Bucket,
    /// Rejected requests; running out means persistent abuse.
    abuse: Bucket,
}

/// Which of a connection's rate limits.
#[derive(Debug, Clone, Copy)]
enum Limit {
    Publish,
    Typing,
    History,
    Membership,
    Abuse,
}

struct Connection {
    node: Arc<Node>,
    id: ConnId,
    user: Arc<str>,
    claims: Claims,
    outbox: Arc<Outbox>,
    io: ws::Io,
    reader: ws::Reader,
    /// Reply frames to write, before anything taken from the outbox after them.
    out: VecDeque<Bytes>,
    /// Frames taken from the outbox: filtered, then written after `out`.
    batch: VecDeque<Outgoing>,
    /// Set when the client sent a close frame (with its code, if any): it is answered.
    client_closed: Option<Option<u16>>,
    /// The rooms joined, in no order (a connection is in a few; at most
    /// `max_rooms_per_connection`).
    rooms: Vec<JoinedRoom>,
    buckets: Buckets,
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
    let mut conn = Connection {
        id: node.next_conn_id(),
        user: Arc::from(claims.sub.as_str()),
        buckets: Buckets {
            epoch: Instant::now(),
            publish: Bucket::new(),
            typing: Bucket::new(),
            history: Bucket::new(),
            membership: Bucket::new(),
            abuse: Bucket::new(),
        },
        node: node.clone(),
        claims,
        outbox,
        io,
        reader: ws::Reader::default(),
        out: VecDeque::new(),
        batch: VecDeque::new(),
        client_closed: None,
        rooms: Vec::new(),
    };
    // `slot` is held to the end: dropping it gives the connection's place back.
    async move {
        if let Err(reason) = &slot {
            let reason = *reason;
            tracing::debug!(user = %conn.user, reason = reason.name(), "connection refused");
            Box::pin(conn.disconnect(reason, None)).await;
            return;
        }
        tracing::debug!(conn = conn.id, user = %conn.user, "connected");
        let reason = conn.run().await;
        // The endings are boxed, like request handling (see `run`): the task's future is
        // allocated for as long as the connection lives, and would be sized for its largest
        // state.
        if reason.is_none() {
            Box::pin(conn.finish()).await;
        }
        Box::pin(conn.leave_all()).await;
        tracing::debug!(conn = conn.id, user = %conn.user, reason = reason.map(|r| r.name()), "disconnected");
    }
}

impl Connection {
    /// The connection's main loop. Returns the reason the server ended it, or `None` if the
    /// client left.
    async fn run(&mut self) -> Option<DisconnectReason> {
        let node = self.node.clone();
        let config = &node.config;
        self.write(self.welcome());
        if self.flush().await.is_err() {
            return None;
        }
        // When the client was last heard from, and how many bytes it had sent by then.
        let mut last_seen = Instant::now();
        let mut seen_bytes = self.reader.received();
        let mut next_ping = last_seen + config.heartbeat_interval;
        // The token is honoured as long as an upgrade would accept it: `exp` plus the leeway.
        let expires_at = last_seen + node.auth.remaining(&self.claims);
        // One timer for the heartbeat and the token's expiry, whichever is next. It and the
        // shutdown waiter are made once, not on every turn of the loop: each would register
        // and deregister a timer, and a waiter on the token that every connection shares.
        let timer = sleep_until(next_ping.min(expires_at));
        let shutdown = node.shutdown.cancelled();
        tokio::pin!(timer, shutdown);
        let outbox = self.outbox.clone();
        let max_frame = config.max_frame;

        let reason = 'run: loop {
            // Replies wait while more requests are already here, to go out in one write,
            // with the room frames queued meanwhile after them (a publisher's own message
            // then leaves with its ack).
            if !self.out.is_empty()
                && (!self.reader.has_frame() || self.out.len() >= MAX_BUFFERED_REPLIES)
            {
                if self.batch.is_empty() {
                    outbox.take_now(&mut self.batch);
                }
                if let Err(e) = self.drain().await {
                    break e.reason();
                }
            }
            tokio::select! {
                _ = &mut shutdown => break Some(DisconnectReason::ServerShutdown),
                () = &mut timer => {
                    let now = Instant::now();
                    if now >= expires_at {
                        break Some(DisconnectReason::TokenExpired);
                    }
                    if now >= next_ping {
                        // Liveness counts bytes received, handled or not: bytes of a frame
                        // still arriving, or read while this task was busy elsewhere.
                        let received = self.reader.received();
                        if received != seen_bytes {
                            seen_bytes = received;
                            last_seen = now;
                        }
                        if now.duration_since(last_seen) >= config.heartbeat_timeout {
                            // Bytes may be waiting unread in the socket: the server was
                            // paused, or this task was held up (by a broker, say) as long
                            // as the timeout. They arrived in time, and count.
                            match poll_fn(|cx| Poll::Ready(self.reader.poll_fill(cx, &mut self.io))).await {
                                Poll::Ready(Ok(())) => {
                                    seen_bytes = self.reader.received();
                                    last_seen = now;
                                }
                                Poll::Ready(Err(err)) => break 'run self.read_error(err),
                                Poll::Pending => break Some(DisconnectReason::HeartbeatTimeout),
                            }
                        }
                        self.out.push_back(ws::ping());
                        next_ping = now + config.heartbeat_interval;
                    }
                    timer.as_mut().reset(next_ping.min(expires_at));
                }
                taken = poll_fn(|cx| {
                    let taken = outbox.poll_take(cx, &mut self.batch);
                    if taken.is_pending() && self.out.is_empty() {
                        // Nothing to do: an idle connection holds no buffer.
                        self.out = VecDeque::new();
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
                            Err(err) => break 'run self.read_error(err),
                        };
                        last_seen = Instant::now();
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
                        if handled == REQUESTS_PER_TURN
                            || self.out.len() >= MAX_BUFFERED_REPLIES
                            || !self.reader.has_frame()
                        {
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
                outbox.take_now(&mut self.batch);
                let _ = Box::pin(timeout(config.shutdown_timeout, self.drain())).await;
            }
            Box::pin(self.disconnect(reason, Some(config.write_timeout))).await;
        }
        reason
    }

    /// After the client left: answer its close frame (if it sent one), and end the stream.
    async fn finish(&mut self) {
        if let Some(code) = self.client_closed {
            self.out.push_back(ws::close_reply(code));
        }
        let limit = self.node.config.write_timeout;
        if self.flush_within(limit).await.is_ok() {
            let _ = timeout(limit, poll_fn(|cx| ws::poll_shutdown(cx, &mut self.io))).await;
        }
    }

    /// The reason a failed read ends the connection with: a frame over the limit is the
    /// client's fault; a frame that breaks RFC 6455 is answered with a close frame naming
    /// the rule (and counted, as every reason is); anything else means the socket is gone.
    fn read_error(&mut self, err: ReadError) -> Option<DisconnectReason> {
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
                self.node.metrics.disconnect(reason);
                // No `Disconnect` notice: a client that gets the framing wrong may not read
                // one. The close frame, written when the connection finishes, says why.
                let text = format!("{}: {rule}", reason.name());
                self.out.push_back(ws::close(reason.close_code(), &text));
                None
            }
            ReadError::Gone => None,
        }
    }

    fn welcome(&self) -> Bytes {
        let c = &self.node.config;
        let ms = |d: std::time::Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        frame(&ServerMessage::Welcome {
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
        })
    }

    /// Handle one message from the client. `Ok(false)` means the client closed.
    async fn on_message(&mut self, message: Incoming) -> Result<bool, DisconnectReason> {
        let metrics = &self.node.metrics;
        metrics.messages_in.inc();
        let frame = match message {
            Incoming::Binary(frame) => frame,
            Incoming::Text => {
                self.reject(
                    None,
                    None,
                    ErrorCode::TextFrame,
                    "text frames are not supported; send binary postcard frames",
                )
                .await?;
                return Ok(true);
            }
            Incoming::Close(code) => {
                self.client_closed = Some(code);
                return Ok(false);
            }
            Incoming::Ping(payload) => {
                self.out.push_back(ws::pong(&payload));
                return Ok(true);
            }
            // Pongs count as traffic (done by the caller).
            Incoming::Pong => return Ok(true),
        };
        metrics.bytes_in.inc_by(frame.len() as u64);
        match ClientMessage::decode(&frame, self.node.config.max_frame) {
            Ok(request) => self.on_request(request).await?,
            Err(e) => {
                self.reject(
                    None,
                    None,
                    ErrorCode::BadFrame,
                    &format!("cannot decode frame: {e}"),
                )
                .await?
            }
        }
        Ok(true)
    }

    async fn on_request(&mut self, request: ClientMessage) -> Result<(), DisconnectReason> {
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
                self.node
                    .metrics
                    .history_request(Some(ErrorCode::InvalidRoom));
            }
            let message = format!("invalid room name: {e}");
            let room = room.cloned();
            return self
                .reject(id, room, ErrorCode::InvalidRoom, &message)
                .await;
        }
        match request {
            ClientMessage::Ping { nonce } => self.write(frame(&ServerMessage::Pong { nonce })),
            // Each join is heard by the whole room; a Leave, never refused, follows a join.
            ClientMessage::Join { room, .. } if !self.allow(Limit::Membership) => {
                self.reject(
                    None,
                    Some(room),
                    ErrorCode::RateLimited,
                    "join rate limit exceeded",
                )
                .await?
            }
            ClientMessage::Join { room, since } => self.join(room, since).await?,
            ClientMessage::Leave { room } => {
                if let Some(at) = self.room_index(&room) {
                    self.rooms.swap_remove(at);
                    let node = self.node.clone();
                    node.leave(self.member(), &room).await;
                }
                self.write(frame(&ServerMessage::Left { room }));
            }
            ClientMessage::Publish { room, id, body } => {
                if !self.allow(Limit::Publish) {
                    return self
                        .reject(
                            Some(id),
                            Some(room),
                            ErrorCode::RateLimited,
                            "publish rate limit exceeded",
                        )
                        .await;
                }
                if let Err(refusal) =
                    self.may_use(&room, |p| p.client_publish, ErrorCode::PublishDisabled)
                {
                    return self.refuse(Some(id), Some(room), refusal).await;
                }
                let node = self.node.clone();
                match node.publish(&room, &self.user, id, body).await {
                    Ok(seq) => self.write(frame(&ServerMessage::PublishAck { room, id, seq })),
                    Err(refusal) => self.refuse(Some(id), Some(room), refusal).await?,
                }
            }
            ClientMessage::TypingStarted { room } | ClientMessage::TypingStopped { room }
                if !self.allow(Limit::Typing) =>
            {
                self.reject(
                    None,
                    Some(room),
                    ErrorCode::RateLimited,
                    "typing rate limit exceeded",
                )
                .await?
            }
            ClientMessage::TypingStarted { room } => {
                match self.may_use(&room, |p| p.typing, ErrorCode::TypingDisabled) {
                    Ok(()) => self.node.clone().typing_started(&room, &self.user).await,
                    Err(refusal) => self.refuse(None, Some(room), refusal).await?,
                }
            }
            ClientMessage::TypingStopped { room } => {
                match self.may_use(&room, |p| p.typing, ErrorCode::TypingDisabled) {
                    Ok(()) => self.node.clone().typing_stopped(&room, &self.user).await,
                    Err(refusal) => self.refuse(None, Some(room), refusal).await?,
                }
            }
            ClientMessage::History {
                request,
                room,
                before,
                limit,
            } => self.history(request, room, before, limit).await?,
        }
        Ok(())
    }

    /// Answer a history request, in turn with every other reply: the client matches answers
    /// to requests by order as well as by id.
    async fn history(
        &mut self,
        request: u64,
        room: String,
        before: Option<chorus_protocol::Position>,
        limit: u32,
    ) -> Result<(), DisconnectReason> {
        let answer = if !self.allow(Limit::History) {
            Err(Refusal::new(
                ErrorCode::RateLimited,
                "history rate limit exceeded",
            ))
        } else {
            let node = self.node.clone();
            node.history(&self.claims, request, &room, before, limit)
                .await
        };
        match answer {
            Ok(page) => {
                self.node.metrics.history_request(None);
                self.write(page);
                Ok(())
            }
            Err(refusal) => {
                self.node.metrics.history_request(Some(refusal.code));
                self.refuse(Some(request), Some(room), refusal).await
            }
        }
    }

    /// Check that the connection is in `room` and its namespace allows the action.
    fn may_use(
        &self,
        room: &str,
        allowed: impl Fn(&crate::config::NamespacePolicy) -> bool,
        code: ErrorCode,
    ) -> Result<(), Refusal> {
        if self.room_index(room).is_none() {
            return Err(Refusal::new(
                ErrorCode::NotJoined,
                format!("not joined to room {room:?}"),
            ));
        }
        if !allowed(self.node.config.policy(room)) {
            return Err(Refusal::new(
                code,
                format!("not allowed in room {room:?} by its namespace"),
            ));
        }
        Ok(())
    }

    async fn join(
        &mut self,
        room: String,
        since: Option<chorus_protocol::Position>,
    ) -> Result<(), DisconnectReason> {
        if self.room_index(&room).is_some() {
            // Already in: a no-op that repeats the answer.
            let node = self.node.clone();
            return match node.describe(&room).await {
                Ok(reply) => {
                    self.write(reply);
                    Ok(())
                }
                Err(refusal) => self.refuse(None, Some(room), refusal).await,
            };
        }
        if self.rooms.len() >= self.node.config.max_rooms_per_connection {
            let text = format!("already in {} rooms, the maximum", self.rooms.len());
            return self
                .reject(None, Some(room), ErrorCode::TooManyRooms, &text)
                .await;
        }
        let node = self.node.clone();
        let joined = node.join(self.member(), &self.claims, &room, since).await;
        match joined {
            Ok(joined) => {
                self.write(joined.reply);
                // The replay streams out as the socket takes it: at most a queue's worth of
                // bytes waits here at once, like the room frames of the outbox. Its frames
                // are the log's own, shared with every other joiner.
                let limit = self.node.config.queue_max_bytes;
                let mut buffered = 0;
                for (_, frame) in joined.replay {
                    if buffered > 0 && buffered + frame.len() > limit {
                        match self.flush().await {
                            Ok(()) => buffered = 0,
                            Err(WriteError::TimedOut) => {
                                return Err(DisconnectReason::SlowConsumer);
                            }
                            // The socket is gone: the connection's next write or read ends it.
                            Err(WriteError::Closed) => break,
                        }
                    }
                    buffered += frame.len();
                    self.write_frame(frame);
                }
                if self.rooms.is_empty() {
                    // Most connections join one room: no spare capacity for them.
                    self.rooms.reserve_exact(1);
                }
                self.rooms.push(JoinedRoom {
                    name: room.into_boxed_str(),
                    id: joined.room_id,
                    epoch: joined.position.epoch,
                    last_seq: joined.position.seq,
                });
                Ok(())
            }
            Err(refusal) => self.refuse(None, Some(room), refusal).await,
        }
    }

    /// Where `room` is in `self.rooms`.
    fn room_index(&self, room: &str) -> Option<usize> {
        self.rooms.iter().position(|r| *r.name == *room)
    }

    /// Take a token from one of the connection's rate limits, if one is left.
    fn allow(&mut self, limit: Limit) -> bool {
        let c = &self.node.config;
        let b = &mut self.buckets;
        let (bucket, rate) = match limit {
            Limit::Publish => (&mut b.publish, Rate::new(c.publish_rate, c.publish_burst)),
            Limit::Typing => (&mut b.typing, Rate::new(c.typing_rate, c.typing_burst)),
            Limit::History => (
                &mut b.history,
                Rate::new(c.history_per_second, c.history_burst),
            ),
            Limit::Membership => (
                &mut b.membership,
                Rate::new(c.membership_rate, c.membership_burst),
            ),
            Limit::Abuse => (&mut b.abuse, Rate::new(1, c.abuse_burst)),
        };
        bucket.check(rate, b.epoch, Instant::now())
    }

    fn member(&self) -> Member<'_> {
        Member {
            conn: self.id,
            user: &self.user,
            outbox: &self.outbox,
        }
    }

    async fn leave_all(&mut self) {
        let node = self.node.clone();
        for room in std::mem::take(&mut self.rooms) {
            node.leave(self.member(), &room.name).await;
        }
    }

    async fn refuse(
        &mut self,
        id: Option<u64>,
        room: Option<String>,
        refusal: Refusal,
    ) -> Result<(), DisconnectReason> {
        self.reject(id, room, refusal.code, &refusal.message).await
    }

    /// Answer a request with an error; close the connection if rejections keep coming.
    async fn reject(
        &mut self,
        id: Option<u64>,
        room: Option<String>,
        code: ErrorCode,
        message: &str,
    ) -> Result<(), DisconnectReason> {
        tracing::debug!(conn = self.id, user = %self.user, code = code.name(), message, "request rejected");
        self.node.metrics.error(code);
        let reply = frame(&ServerMessage::Error {
            code: code.as_u16(),
            message: message.to_owned(),
            id,
            room,
        });
        self.write(reply);
        // Mistakes (a forbidden or unknown room) are the app's business; flooding and
        // garbage are abuse, and persisting in them ends the connection.
        let abusive = matches!(
            code,
            ErrorCode::RateLimited | ErrorCode::BadFrame | ErrorCode::TextFrame
        );
        if abusive && !self.allow(Limit::Abuse) {
            return Err(DisconnectReason::PolicyViolation);
        }
        Ok(())
    }

    /// Write the frames just taken from the outbox that the connection should send, with
    /// any replies before them, in as few writes as it takes.
    async fn drain(&mut self) -> Result<(), WriteError> {
        let mut batch = std::mem::take(&mut self.batch);
        batch.retain(|out| self.fresh(out));
        self.batch = batch;
        let count = self.batch.len() as u64;
        let bytes: usize = self
            .batch
            .iter()
            .map(|out| ws::payload_len(&out.frame))
            .sum();
        // Counted once per batch: the counters are shared by every connection.
        self.node.metrics.messages_out.inc_by(count);
        self.node.metrics.bytes_out.inc_by(bytes as u64);
        self.flush().await
    }

    /// Whether a queued frame should go out: only for rooms the connection is in; for room
    /// messages only those of the connection's epoch past what it was already sent (a
    /// replay, or the same message twice); for an epoch reset only when the connection is
    /// not at that position yet, which then becomes its own.
    fn fresh(&mut self, out: &Outgoing) -> bool {
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

    /// Queue one reply frame (an encoded message); it is written before anything taken
    /// from the outbox after it.
    fn write(&mut self, payload: Bytes) {
        self.node.metrics.messages_out.inc();
        self.node.metrics.bytes_out.inc_by(payload.len() as u64);
        self.out.push_back(ws::binary(&payload));
    }

    /// Queue one complete WebSocket frame built elsewhere (a replayed message), like
    /// [`Connection::write`].
    fn write_frame(&mut self, frame: Bytes) {
        self.node.metrics.messages_out.inc();
        self.node
            .metrics
            .bytes_out
            .inc_by(ws::payload_len(&frame) as u64);
        self.out.push_back(frame);
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
            let written = ws::poll_write_both(cx, &mut self.io, &mut self.out, &mut self.batch);
            match written {
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
        self.node.metrics.disconnect(reason);
        let notice = frame(&ServerMessage::Disconnect {
            code: reason.close_code(),
            reason: reason.name().to_owned(),
            reconnect: reconnect_hint(reason),
        });
        let limit = limit.unwrap_or(self.node.config.write_timeout);
        // A slow consumer is not going to read a goodbye in time; do not wait on it long.
        let limit = if reason == DisconnectReason::SlowConsumer {
            limit.min(Duration::from_millis(100))
        } else {
            limit
        };
        // A write that failed or timed out may have left the rest of a frame: it goes first,
        // or the goodbye would land inside it. (`out` is written before `batch`, so frames
        // left in `batch` mean `out` is empty.)
        self.out.extend(self.batch.drain(..).map(|out| out.frame));
        self.out.push_back(ws::binary(&notice));
        self.out
            .push_back(ws::close(reason.close_code(), reason.name()));
        let write = timeout(
            limit,
            poll_fn(|cx| ws::poll_write_frames(cx, &mut self.io, &mut self.out)),
        );
        if matches!(write.await, Ok(Ok(()))) {
            // Wait briefly for the client's close reply before dropping the TCP connection:
            // closing at once can reset it and destroy the notice and close frame unread.
            let max_frame = self.node.config.max_frame;
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
