//! One WebSocket connection: a single task that reads client frames, writes replies and
//! drains the connection's outbound queue, watches the heartbeat and the token's expiry, and
//! ends with a [`DisconnectReason`] (or because the client left).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::Bytes;
use chorus_protocol::{
    ClientMessage, DisconnectReason, ErrorCode, Limits, PROTOCOL_VERSION, Reconnect, ServerMessage,
};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, sleep_until, timeout};

use crate::auth::Claims;
use crate::hub::{ConnId, Kind, Outbox, Outgoing, frame};
use crate::node::{ConnSlot, Member, Node, Refusal};

/// Frames written per flush when draining the outbound queue.
const WRITE_BATCH: usize = 64;

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
        // Only a fresh token helps.
        DisconnectReason::TokenExpired => Reconnect::DoNotRetry,
    }
}

/// A room this connection is in.
#[derive(Debug)]
struct JoinedRoom {
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

fn limiter(per_second: u32, burst: u32) -> DefaultDirectRateLimiter {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
}

struct Connection {
    node: Arc<Node>,
    id: ConnId,
    user: Arc<str>,
    claims: Claims,
    outbox: Arc<Outbox>,
    sink: SplitSink<WebSocket, Message>,
    rooms: HashMap<String, JoinedRoom>,
    publish_limit: DefaultDirectRateLimiter,
    typing_limit: DefaultDirectRateLimiter,
    history_limit: DefaultDirectRateLimiter,
    /// Rejected requests; running out means persistent abuse.
    abuse_limit: DefaultDirectRateLimiter,
}

/// Serve an upgraded socket until it ends. `slot` is the connection's place under the
/// connection limits, or the limit that refused it.
pub(crate) async fn serve(
    node: Arc<Node>,
    socket: WebSocket,
    claims: Claims,
    slot: Result<ConnSlot, DisconnectReason>,
) {
    let (sink, mut stream) = socket.split();
    let config = &node.config;
    let (outbox, rx) = Outbox::new(config.queue_max_messages, config.queue_max_bytes);
    let mut conn = Connection {
        id: node.next_conn_id(),
        user: Arc::from(claims.sub.as_str()),
        publish_limit: limiter(config.publish_rate, config.publish_burst),
        typing_limit: limiter(config.typing_rate, config.typing_burst),
        history_limit: limiter(config.history_per_second, config.history_burst),
        abuse_limit: limiter(1, config.abuse_burst),
        node: node.clone(),
        claims,
        outbox,
        sink,
        rooms: HashMap::new(),
    };
    let _slot = match slot {
        Ok(slot) => slot,
        Err(reason) => {
            tracing::debug!(user = %conn.user, reason = reason.name(), "connection refused");
            conn.disconnect(&mut stream, reason, None).await;
            return;
        }
    };
    tracing::debug!(conn = conn.id, user = %conn.user, "connected");
    let reason = conn.run(&mut stream, rx).await;
    if reason.is_none() {
        // The client closed (or vanished): complete the closing handshake if it is there.
        let _ = timeout(node.config.write_timeout, conn.sink.close()).await;
    }
    conn.leave_all().await;
    tracing::debug!(conn = conn.id, user = %conn.user, reason = reason.map(|r| r.name()), "disconnected");
}

impl Connection {
    /// The connection's main loop. Returns the reason the server ended it, or `None` if the
    /// client left.
    async fn run(
        &mut self,
        stream: &mut SplitStream<WebSocket>,
        mut rx: mpsc::Receiver<Outgoing>,
    ) -> Option<DisconnectReason> {
        let node = self.node.clone();
        let config = &node.config;
        if self.write(self.welcome()).await.is_err() {
            return None;
        }
        let mut heartbeat = tokio::time::interval_at(
            Instant::now() + config.heartbeat_interval,
            config.heartbeat_interval,
        );
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_seen = Instant::now();
        let expires_at = Instant::now() + self.claims.remaining();
        let outbox = self.outbox.clone();

        let reason = loop {
            tokio::select! {
                reason = outbox.closed() => break Some(reason),
                _ = node.shutdown.cancelled() => break Some(DisconnectReason::ServerShutdown),
                _ = sleep_until(expires_at) => break Some(DisconnectReason::TokenExpired),
                _ = heartbeat.tick() => {
                    if last_seen.elapsed() >= config.heartbeat_timeout {
                        break Some(DisconnectReason::HeartbeatTimeout);
                    }
                    if let Err(e) = self.send(Message::Ping(Bytes::new())).await {
                        break e.reason();
                    }
                }
                Some(first) = rx.recv() => {
                    if let Err(e) = self.drain(first, &mut rx).await {
                        break e.reason();
                    }
                }
                incoming = stream.next() => {
                    let message = match incoming {
                        Some(Ok(message)) => message,
                        Some(Err(err)) => break read_error_reason(err),
                        None => break None,
                    };
                    last_seen = Instant::now();
                    match self.on_message(message).await {
                        Ok(true) => {}
                        Ok(false) => break None,
                        Err(Ended::Reason(reason)) => break Some(reason),
                        Err(Ended::Write(e)) => break e.reason(),
                    }
                }
            }
        };
        if let Some(reason) = reason {
            if reason == DisconnectReason::ServerShutdown {
                // Deliver what is already queued before saying goodbye.
                let deadline = Instant::now() + config.shutdown_timeout;
                while let Ok(out) = rx.try_recv() {
                    if Instant::now() >= deadline || self.drain(out, &mut rx).await.is_err() {
                        break;
                    }
                }
            }
            self.disconnect(stream, reason, Some(config.write_timeout))
                .await;
        }
        reason
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

    /// Handle one frame from the client. `Ok(false)` means the client closed.
    async fn on_message(&mut self, message: Message) -> Result<bool, Ended> {
        let metrics = &self.node.metrics;
        metrics.messages_in.inc();
        let frame = match message {
            Message::Binary(frame) => frame,
            Message::Text(_) => {
                self.reject(
                    None,
                    None,
                    ErrorCode::TextFrame,
                    "text frames are not supported; send binary postcard frames",
                )
                .await?;
                return Ok(true);
            }
            Message::Close(_) => return Ok(false),
            // Pongs count as traffic (done by the caller); pings are answered by the library.
            Message::Ping(_) | Message::Pong(_) => return Ok(true),
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

    async fn on_request(&mut self, request: ClientMessage) -> Result<(), Ended> {
        match request {
            ClientMessage::Ping { nonce } => {
                self.write(frame(&ServerMessage::Pong { nonce })).await?
            }
            ClientMessage::Join { room, since } => self.join(room, since).await?,
            ClientMessage::Leave { room } => {
                if self.rooms.remove(&room).is_some() {
                    let node = self.node.clone();
                    node.leave(self.member(), &room).await;
                }
                self.write(frame(&ServerMessage::Left { room })).await?;
            }
            ClientMessage::Publish { room, id, body } => {
                if self.publish_limit.check().is_err() {
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
                    Ok(seq) => {
                        self.write(frame(&ServerMessage::PublishAck { room, id, seq }))
                            .await?
                    }
                    Err(refusal) => self.refuse(Some(id), Some(room), refusal).await?,
                }
            }
            ClientMessage::TypingStarted { room } | ClientMessage::TypingStopped { room }
                if self.typing_limit.check().is_err() =>
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
    ) -> Result<(), Ended> {
        let answer = if self.history_limit.check().is_err() {
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
                Ok(self.write(page).await?)
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
        if !self.rooms.contains_key(room) {
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
    ) -> Result<(), Ended> {
        if self.rooms.contains_key(&room) {
            // Already in: a no-op that repeats the answer.
            let node = self.node.clone();
            return match node.describe(&room).await {
                Ok(reply) => Ok(self.write(reply).await?),
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
                self.write(joined.reply).await?;
                for (_, message) in joined.replay {
                    self.write(message).await?;
                }
                self.rooms.insert(
                    room,
                    JoinedRoom {
                        id: joined.room_id,
                        epoch: joined.position.epoch,
                        last_seq: joined.position.seq,
                    },
                );
                Ok(())
            }
            Err(refusal) => self.refuse(None, Some(room), refusal).await,
        }
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
        for room in std::mem::take(&mut self.rooms).into_keys() {
            node.leave(self.member(), &room).await;
        }
    }

    async fn refuse(
        &mut self,
        id: Option<u64>,
        room: Option<String>,
        refusal: Refusal,
    ) -> Result<(), Ended> {
        self.reject(id, room, refusal.code, &refusal.message).await
    }

    /// Answer a request with an error; close the connection if rejections keep coming.
    async fn reject(
        &mut self,
        id: Option<u64>,
        room: Option<String>,
        code: ErrorCode,
        message: &str,
    ) -> Result<(), Ended> {
        tracing::debug!(conn = self.id, user = %self.user, code = code.name(), message, "request rejected");
        self.node.metrics.error(code);
        let reply = frame(&ServerMessage::Error {
            code: code.as_u16(),
            message: message.to_owned(),
            id,
            room,
        });
        self.write(reply).await?;
        // Mistakes (a forbidden or unknown room) are the app's business; flooding and
        // garbage are abuse, and persisting in them ends the connection.
        let abusive = matches!(
            code,
            ErrorCode::RateLimited | ErrorCode::BadFrame | ErrorCode::TextFrame
        );
        if abusive && self.abuse_limit.check().is_err() {
            return Err(Ended::Reason(DisconnectReason::PolicyViolation));
        }
        Ok(())
    }

    /// Write queued frames: `first`, then whatever else is ready (up to a batch), in one
    /// flush.
    async fn drain(
        &mut self,
        first: Outgoing,
        rx: &mut mpsc::Receiver<Outgoing>,
    ) -> Result<(), WriteError> {
        let write_timeout = self.node.config.write_timeout;
        let mut next = Some(first);
        let mut fed = 0;
        // A queue that fills up while a write is stuck ends the wait at once.
        let outbox = self.outbox.clone();
        let write = timeout(write_timeout, async {
            while let Some(out) = next.take() {
                self.outbox.taken(out.frame.len());
                if self.fresh(&out) {
                    self.count_out(out.frame.len());
                    self.sink
                        .feed(Message::Binary(out.frame))
                        .await
                        .map_err(|_| WriteError::Closed)?;
                    fed += 1;
                }
                if fed < WRITE_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            self.sink.flush().await.map_err(|_| WriteError::Closed)
        });
        tokio::select! {
            result = write => result.unwrap_or(Err(WriteError::TimedOut)),
            _ = outbox.closed() => Err(WriteError::TimedOut),
        }
    }

    /// Whether a queued frame should go out: only for rooms the connection is in; for room
    /// messages only those of the connection's epoch past what it was already sent (a
    /// replay, or the same message twice); for an epoch reset only when the connection is
    /// not at that position yet, which then becomes its own.
    fn fresh(&mut self, out: &Outgoing) -> bool {
        let Some(room) = self.rooms.values_mut().find(|r| r.id == out.room) else {
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

    fn count_out(&self, len: usize) {
        self.node.metrics.messages_out.inc();
        self.node.metrics.bytes_out.inc_by(len as u64);
    }

    /// Write one reply frame now.
    async fn write(&mut self, frame: Bytes) -> Result<(), WriteError> {
        self.count_out(frame.len());
        self.send(Message::Binary(frame)).await
    }

    async fn send(&mut self, message: Message) -> Result<(), WriteError> {
        match timeout(self.node.config.write_timeout, self.sink.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(WriteError::Closed),
            Err(_) => Err(WriteError::TimedOut),
        }
    }

    /// Tell the client why, then close with the reason's code. `limit` bounds how long the
    /// goodbye may take (the default write timeout when `None`).
    async fn disconnect(
        &mut self,
        stream: &mut SplitStream<WebSocket>,
        reason: DisconnectReason,
        limit: Option<std::time::Duration>,
    ) {
        self.node.metrics.disconnect(reason);
        let notice = frame(&ServerMessage::Disconnect {
            code: reason.close_code(),
            reason: reason.name().to_owned(),
            reconnect: reconnect_hint(reason),
        });
        let close = Message::Close(Some(CloseFrame {
            code: reason.close_code(),
            reason: reason.name().into(),
        }));
        let limit = limit.unwrap_or(self.node.config.write_timeout);
        // A slow consumer is not going to read a goodbye in time; do not wait on it long.
        let limit = if reason == DisconnectReason::SlowConsumer {
            limit.min(std::time::Duration::from_millis(100))
        } else {
            limit
        };
        let sent = timeout(limit, async {
            self.sink.send(Message::Binary(notice)).await?;
            self.sink.send(close).await
        })
        .await;
        if matches!(sent, Ok(Ok(()))) {
            // Wait briefly for the client's close reply before dropping the TCP connection:
            // closing at once can reset it and destroy the notice and close frame unread.
            let _ = timeout(CLOSE_REPLY_WAIT.min(limit), async {
                while let Some(Ok(message)) = stream.next().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
    }
}

/// Why handling a request ended the connection.
enum Ended {
    /// The server decided to close, for this reason.
    Reason(DisconnectReason),
    /// Writing the reply failed.
    Write(WriteError),
}

impl From<WriteError> for Ended {
    fn from(e: WriteError) -> Ended {
        Ended::Write(e)
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

/// A read error that is the client's fault (a frame over the limit) gets a reason; anything
/// else means the socket is gone.
fn read_error_reason(err: axum::Error) -> Option<DisconnectReason> {
    let inner = err.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => Some(DisconnectReason::FrameTooLarge),
        _ => None,
    }
}
