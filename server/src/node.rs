//! The node ties one server instance together: configuration, auth, metrics, the local
//! [`Hub`], the [`Broker`] and typing state. Room operations shared by WebSocket connections
//! and the HTTP API live here, so every rule is checked in one place.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chorus_protocol::{Body, DisconnectReason, ErrorCode, Position, ServerMessage, validate};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{Auth, Claims, unix_now};
use crate::broker::{
    Broker, BrokerError, BrokerHealth, Ephemeral, MemoryBroker, Publication, RedisBroker,
};
use crate::config::Config;
use crate::history::{HistoryPage, HistoryPolicy, PageError};
use crate::hub::{ConnId, Hub, Outbox, encode};
use crate::metrics::Metrics;
use crate::typing::Typing;

/// A request refused, with the code the client sees and text for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

impl Refusal {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

impl From<BrokerError> for Refusal {
    fn from(err: BrokerError) -> Refusal {
        match err {
            BrokerError::Unavailable(_) => Refusal::new(ErrorCode::Unavailable, err.to_string()),
            BrokerError::History(PageError::EpochChanged { .. }) => {
                Refusal::new(ErrorCode::EpochChanged, err.to_string())
            }
            // The details are for the server's log (see `Node::history`), not the client.
            BrokerError::History(PageError::Corrupt { .. } | PageError::TooLarge { .. }) => {
                Refusal::new(ErrorCode::Internal, "cannot read the room's history")
            }
            BrokerError::Unexpected(_) => {
                tracing::error!(error = %err, "broker failure");
                Refusal::new(ErrorCode::Internal, "the server failed; retry later")
            }
        }
    }
}

/// Check that `room` is a valid name the token permits: the rule for reading a room, by
/// joining it or by asking for its history.
fn check_room(claims: &Claims, room: &str) -> Result<(), Refusal> {
    if let Err(e) = validate::room(room) {
        return Err(Refusal::new(
            ErrorCode::InvalidRoom,
            format!("invalid room name: {e}"),
        ));
    }
    if !claims.allows(room) {
        return Err(Refusal::new(
            ErrorCode::Forbidden,
            format!("the token does not permit room {room:?}"),
        ));
    }
    Ok(())
}

/// What a successful join gives the connection.
#[derive(Debug)]
pub(crate) struct Joined {
    /// The hub's id for the room, which tags its message frames.
    pub(crate) room_id: u64,
    /// The room's position when the join took effect.
    pub(crate) position: Position,
    /// The encoded `Joined` reply.
    pub(crate) reply: Bytes,
    /// The messages to replay after the reply: complete WebSocket frames, shared with the
    /// room's log, with their sequences.
    pub(crate) replay: Vec<(u64, Bytes)>,
}

/// The connection doing a room operation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Member<'a> {
    pub(crate) conn: ConnId,
    pub(crate) user: &'a Arc<str>,
    pub(crate) outbox: &'a Arc<Outbox>,
}

#[derive(Debug, Default)]
struct ConnCounts {
    total: usize,
    per_user: HashMap<String, usize>,
}

/// One server instance's shared state.
pub(crate) struct Node {
    pub(crate) config: Config,
    pub(crate) auth: Auth,
    pub(crate) metrics: Metrics,
    pub(crate) hub: Arc<Hub>,
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) typing: Typing,
    /// Cancelled when the server begins to shut down.
    pub(crate) shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for them to drain.
    pub(crate) tasks: TaskTracker,
    // A std Mutex: taken once per connection open and close, never across an await.
    counts: Mutex<ConnCounts>,
    next_conn: AtomicU64,
}

/// A connection's place in the connection limits; released on drop.
pub(crate) struct ConnSlot {
    node: Arc<Node>,
    user: String,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut counts = self.node.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total -= 1;
        if let Some(n) = counts.per_user.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                counts.per_user.remove(&self.user);
            }
        }
        self.node.metrics.connections.dec();
    }
}

impl Node {
    /// The node for `config`: with a Redis URL, a [`RedisBroker`] (whose background tasks
    /// start here and end with `shutdown`), otherwise a [`MemoryBroker`]. Must be called
    /// within a tokio runtime.
    pub(crate) fn new(config: Config) -> crate::Result<Arc<Node>> {
        let hub = Arc::new(Hub::default());
        let shutdown = CancellationToken::new();
        let (metrics, broker): (Metrics, Arc<dyn Broker>) = match &config.redis_url {
            None => {
                let metrics = Metrics::new();
                let broker = MemoryBroker::new(hub.clone(), metrics.room_logs.clone());
                (metrics, Arc::new(broker))
            }
            Some(url) => {
                let metrics = Metrics::with_redis();
                let broker =
                    RedisBroker::start(url, &config, hub.clone(), &metrics, shutdown.clone())?;
                (metrics, Arc::new(broker))
            }
        };
        Ok(Arc::new(Node {
            auth: Auth::from_config(&config)?,
            typing: Typing::new(config.typing_throttle, config.typing_ttl),
            config,
            metrics,
            hub,
            broker,
            shutdown,
            tasks: TaskTracker::new(),
            counts: Mutex::new(ConnCounts::default()),
            next_conn: AtomicU64::new(1),
        }))
    }

    pub(crate) fn next_conn_id(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Take a connection slot for `user`, or say which limit is reached.
    pub(crate) fn reserve(self: &Arc<Self>, user: &str) -> Result<ConnSlot, DisconnectReason> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.total >= self.config.max_connections {
            return Err(DisconnectReason::ServerFull);
        }
        let per_user = counts.per_user.get(user).copied().unwrap_or(0);
        if per_user >= self.config.max_connections_per_user {
            return Err(DisconnectReason::TooManyConnections);
        }
        counts.total += 1;
        *counts.per_user.entry(user.to_owned()).or_insert(0) += 1;
        self.metrics.connections.inc();
        Ok(ConnSlot {
            node: self.clone(),
            user: user.to_owned(),
        })
    }

    fn history_policy(&self, room: &str) -> HistoryPolicy {
        self.config.history_policy(room)
    }

    /// Join `room`. The caller has checked that the connection is not in it yet and has
    /// room for one more.
    pub(crate) async fn join(
        &self,
        member: Member<'_>,
        claims: &Claims,
        room: &str,
        since: Option<Position>,
    ) -> Result<Joined, Refusal> {
        check_room(claims, room)?;
        let policy = self.config.policy(room);
        if policy.max_members > 0 {
            let present = self.broker.presence(room).await?;
            if present.len() >= policy.max_members && !present.iter().any(|u| **u == **member.user)
            {
                return Err(Refusal::new(
                    ErrorCode::RoomFull,
                    format!(
                        "room {room:?} has its maximum of {} members",
                        policy.max_members
                    ),
                ));
            }
        }
        let room_id = self.hub.add(
            room,
            member.conn,
            member.user.clone(),
            member.outbox.clone(),
        );
        self.metrics.rooms.set(self.hub.room_count() as i64);
        match self.join_shared(member, room, since).await {
            Ok((position, reply, replay)) => Ok(Joined {
                room_id,
                position,
                reply,
                replay,
            }),
            Err(err) => {
                self.remove_local(member, room).await;
                Err(err.into())
            }
        }
    }

    /// The broker side of a join, after the connection is in the local hub: the room's
    /// frames reach this instance from now on (subscribing waits for that, on every join,
    /// not only the first here), so nothing published after the history is read can be
    /// missed. A failure after the member was counted present counts it out again.
    async fn join_shared(
        &self,
        member: Member<'_>,
        room: &str,
        since: Option<Position>,
    ) -> Result<(Position, Bytes, Vec<(u64, Bytes)>), BrokerError> {
        self.broker.subscribe(room).await?;
        let newcomer = self.broker.presence_add(room, member.user).await?;
        match self.join_answer(member, room, since, newcomer).await {
            Ok(answer) => Ok(answer),
            Err(err) => {
                self.depart(room, member.user).await;
                Err(err)
            }
        }
    }

    /// Announce a newcomer, then read the members and the replay for the `Joined`.
    async fn join_answer(
        &self,
        member: Member<'_>,
        room: &str,
        since: Option<Position>,
        newcomer: bool,
    ) -> Result<(Position, Bytes, Vec<(u64, Bytes)>), BrokerError> {
        let policy = self.config.policy(room);
        let members = if policy.presence {
            if newcomer {
                let joined = encode(&ServerMessage::MemberJoined {
                    room: room.to_owned(),
                    user: member.user.to_string(),
                });
                self.broadcast(room, joined, Some(member.user)).await;
            }
            self.broker.presence(room).await?
        } else {
            Vec::new()
        };
        let replay = self
            .broker
            .replay(room, since, self.history_policy(room))
            .await?;
        let reply = encode(&ServerMessage::Joined {
            room: room.to_owned(),
            position: replay.position,
            members,
            recovery: replay.recovery,
        });
        Ok((replay.position, reply, replay.frames))
    }

    /// The encoded `History` answer to request `request`: a page of `room`'s history. The
    /// caller has applied the rate limit; joining the room is not required.
    pub(crate) async fn history(
        &self,
        claims: &Claims,
        request: u64,
        room: &str,
        before: Option<Position>,
        limit: u32,
    ) -> Result<Bytes, Refusal> {
        check_room(claims, room)?;
        if limit == 0 {
            return Err(Refusal::new(
                ErrorCode::InvalidRequest,
                "a history limit must be at least 1",
            ));
        }
        let limit = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .min(self.config.history_page_max);
        let answer = |page: HistoryPage| ServerMessage::History {
            request,
            room: room.to_owned(),
            position: page.position,
            messages: page.messages,
            more: page.more,
        };
        // The messages may use what the frame leaves after the rest of the answer, measured
        // at its largest: the widest position, and a message count that may take up to 10
        // bytes where the empty answer's takes 1.
        let widest = HistoryPage {
            position: Position {
                epoch: u64::MAX,
                seq: u64::MAX,
            },
            messages: Vec::new(),
            more: true,
        };
        let max_frame = self.config.max_frame;
        let rest = encode(&answer(widest)).len() + 9;
        let page = self
            .broker
            .history(
                room,
                before,
                limit,
                max_frame.saturating_sub(rest),
                self.history_policy(room),
            )
            .await
            .inspect_err(|err| {
                if let BrokerError::History(
                    PageError::Corrupt { .. } | PageError::TooLarge { .. },
                ) = err
                {
                    // The server's own data is wrong: worth an operator's attention.
                    tracing::error!(room, error = %err, "cannot read history");
                }
            })?;
        let answer = answer(page);
        match chorus_protocol::encode(&answer, max_frame) {
            Ok(encoded) => Ok(Bytes::from(encoded)),
            Err(e) => {
                // The page was sized to fit; this is a bug, not the client's problem.
                tracing::error!(room, error = %e, "history page does not fit in a frame");
                Err(Refusal::new(
                    ErrorCode::Internal,
                    "the history page does not fit in a frame",
                ))
            }
        }
    }

    /// Forget idle room histories every `history_sweep_interval`, until shutdown.
    pub(crate) async fn sweep_history(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.history_sweep_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let policy = |room: &str| self.history_policy(room);
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tick.tick() => {
                    if let Err(e) = self.broker.sweep(&policy).await {
                        tracing::warn!(error = %e, "history sweep failed");
                    }
                }
            }
        }
    }

    /// The `Joined` answer for a connection already in `room`.
    pub(crate) async fn describe(&self, room: &str) -> Result<Bytes, Refusal> {
        let members = if self.config.policy(room).presence {
            self.broker.presence(room).await?
        } else {
            Vec::new()
        };
        let replay = self
            .broker
            .replay(room, None, self.history_policy(room))
            .await?;
        Ok(encode(&ServerMessage::Joined {
            room: room.to_owned(),
            position: replay.position,
            members,
            recovery: replay.recovery,
        }))
    }

    /// Leave `room` (the connection is in it).
    pub(crate) async fn leave(&self, member: Member<'_>, room: &str) {
        self.remove_local(member, room).await;
        self.depart(room, member.user).await;
    }

    /// Take the connection out of the local room, and stop receiving the room's frames if
    /// it was the last one here.
    async fn remove_local(&self, member: Member<'_>, room: &str) {
        if self.hub.remove(room, member.conn) {
            self.metrics.rooms.set(self.hub.room_count() as i64);
            if let Err(e) = self.broker.unsubscribe(room).await {
                tracing::warn!(room, error = %e, "unsubscribe failed");
            }
        }
    }

    /// Count one connection of `user` out of `room`'s presence; if it was their last, end
    /// their typing and announce that they left.
    async fn depart(&self, room: &str, user: &str) {
        match self.broker.presence_remove(room, user).await {
            Ok(true) => {
                if self.typing.stopped(room, user) {
                    self.relay_typing(room, user, false).await;
                }
                if self.config.policy(room).presence {
                    let left = encode(&ServerMessage::MemberLeft {
                        room: room.to_owned(),
                        user: user.to_owned(),
                    });
                    self.broadcast(room, left, None).await;
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(room, error = %e, "presence update failed"),
        }
    }

    /// Whether the broker's backing store is reachable, for `/healthz`.
    pub(crate) fn broker_health(&self) -> BrokerHealth {
        self.broker.health()
    }

    /// Publish a message. The caller has checked that the sender may publish to `room`.
    pub(crate) async fn publish(
        &self,
        room: &str,
        sender: &str,
        id: u64,
        body: Body,
    ) -> Result<u64, Refusal> {
        if body.len() > self.config.max_body() {
            return Err(Refusal::new(
                ErrorCode::BodyTooLarge,
                format!(
                    "body of {} bytes exceeds the limit of {} bytes",
                    body.len(),
                    self.config.max_body()
                ),
            ));
        }
        let publication = Publication {
            id,
            sender: sender.to_owned(),
            ts: unix_now().as_millis() as u64,
            body,
        };
        let appended = self
            .broker
            .publish(room, publication, self.history_policy(room))
            .await?;
        if appended.duplicate {
            // A resend (the client lost the ack): answer with the original sequence.
            return Ok(appended.seq);
        }
        let seq = appended.seq;
        self.metrics.publishes.inc();
        // Sending a message ends the sender's typing.
        if self.typing.stopped(room, sender) {
            self.relay_typing(room, sender, false).await;
        }
        Ok(seq)
    }

    /// `user` typed in `room`.
    pub(crate) async fn typing_started(&self, room: &str, user: &str) {
        if self.typing.started(room, user, Instant::now()) {
            self.relay_typing(room, user, true).await;
        }
    }

    /// `user` stopped typing in `room`.
    pub(crate) async fn typing_stopped(&self, room: &str, user: &str) {
        if self.typing.stopped(room, user) {
            self.relay_typing(room, user, false).await;
        }
    }

    /// Relay expired typing states, until shutdown.
    pub(crate) async fn expire_typing(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.typing.sweep_interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                now = tick.tick() => {
                    for (room, user) in self.typing.expire(now) {
                        self.relay_typing(&room, &user, false).await;
                    }
                }
            }
        }
    }

    async fn relay_typing(&self, room: &str, user: &str, typing: bool) {
        let event = encode(&ServerMessage::Typing {
            room: room.to_owned(),
            user: user.to_owned(),
            typing,
        });
        self.broadcast(room, event, Some(user)).await;
    }

    /// Send `message`, an encoded event, to `room`'s members on every instance, except
    /// connections of `except_user`.
    async fn broadcast(&self, room: &str, message: Bytes, except_user: Option<&str>) {
        let event = Ephemeral {
            message,
            except_user: except_user.map(str::to_owned),
        };
        if let Err(e) = self.broker.broadcast(room, event).await {
            tracing::debug!(room, error = %e, "ephemeral broadcast failed");
        }
    }
}
