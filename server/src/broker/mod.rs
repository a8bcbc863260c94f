//! The broker: what must be shared between server instances. Sequence numbers and history,
//! delivery of room frames to every instance with local members, and presence.
//!
//! A room's history exists from its first join or publish until the broker forgets it, idle
//! (see [`Broker::sweep`]); it then starts again in a new epoch. Reading history never
//! creates it.
//!
//! [`MemoryBroker`] is the in-process implementation (the default, one instance).
//! [`RedisBroker`] sits behind the same trait for any number of instances sharing one Redis.
//! An instance subscribes to a room only while it has local members. A broker does not hold
//! the local hub: it reports what reaches the instance through [`BrokerEvents`], which the
//! node's hub implements (as centrifuge's `BrokerEventHandler`), and asks it which rooms
//! have local members.

mod memory;
mod presence;
mod redis;

pub(crate) use memory::MemoryBroker;
pub(crate) use redis::RedisBroker;

use async_trait::async_trait;
use bytes::Bytes;
use chorus_protocol::{Body, Position};

use crate::history::{Appended, HistoryPage, HistoryPolicy, PageError, Replay};
use crate::hub::{Hub, Kind};

/// What a broker tells the instance it serves, and asks of it: the node's side of the
/// broker. Implemented by the local [`Hub`].
pub(crate) trait BrokerEvents: std::fmt::Debug + Send + Sync + 'static {
    /// `frame` (a complete WebSocket frame, built once) reached `room`: hand it to the
    /// room's local members, except connections of `except_user`. `kind` is what the
    /// connections' filter needs to know of it.
    fn deliver(&self, room: &str, frame: &Bytes, kind: Kind, except_user: Option<&str>);

    /// Whether `room` has local members: a broker keeps only their rooms subscribed.
    fn has_local_members(&self, room: &str) -> bool;

    /// The rooms with local members (to subscribe again after a lost connection).
    fn local_rooms(&self) -> Vec<String>;
}

impl BrokerEvents for Hub {
    fn deliver(&self, room: &str, frame: &Bytes, kind: Kind, except_user: Option<&str>) {
        self.broadcast(room, frame, kind, except_user);
    }

    fn has_local_members(&self, room: &str) -> bool {
        self.has_room(room)
    }

    fn local_rooms(&self) -> Vec<String> {
        self.room_names()
    }
}

/// Why a broker operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum BrokerError {
    /// The backing store cannot be reached; the request may be retried.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// A history page cannot be given.
    #[error(transparent)]
    History(#[from] PageError),
    /// The backing store answered something this server cannot read: a bug, or another
    /// program writing under the same key prefix.
    #[error("unexpected answer from the broker: {0}")]
    Unexpected(String),
}

/// A message to publish; the broker gives it its sequence number.
#[derive(Debug, Clone)]
pub(crate) struct Publication {
    /// Publisher's message id.
    pub id: u64,
    /// Publisher's user name.
    pub sender: String,
    /// Server time, milliseconds since the Unix epoch.
    pub ts: u64,
    /// The payload.
    pub body: Body,
}

/// A message that is delivered but never stored (presence and typing events).
#[derive(Debug, Clone)]
pub(crate) struct Ephemeral {
    /// The encoded message.
    pub message: Bytes,
    /// Skip this user's connections (a typing user does not see their own indicator).
    pub except_user: Option<String>,
}

/// Whether a broker's backing store is reachable, for `/healthz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BrokerHealth {
    /// What holds the shared state: `memory` or `redis`.
    pub store: &'static str,
    /// Whether it can be reached now (always, in memory).
    pub up: bool,
}

/// Each room's [`HistoryPolicy`], by room name. (The lifetime is spelled out because
/// `async_trait` would otherwise tie the elided one to the call.)
pub(crate) type PolicyOf<'a> = dyn for<'r> Fn(&'r str) -> HistoryPolicy + Sync + 'a;

/// Shared state behind every instance. Implementations never block: they are called from
/// connection tasks.
#[async_trait]
pub(crate) trait Broker: Send + Sync + 'static {
    /// Deliver `room`'s frames to this instance. Called on every join, after the connection
    /// is in the local hub and before the room's history is read: when it returns, every
    /// frame published from then on reaches this instance, so nothing falls between the
    /// replay and the live messages. Already subscribed, it returns at once.
    async fn subscribe(&self, room: &str) -> Result<(), BrokerError>;

    /// Stop delivering `room`'s frames to this instance: its last local member left. An
    /// implementation checks the hub again, so a join racing this leave keeps the room.
    async fn unsubscribe(&self, room: &str) -> Result<(), BrokerError>;

    /// Give the message the room's next sequence number, keep it in the history under
    /// `policy`, and deliver it to every subscribed instance. A publish with the same
    /// (sender, id) as one within the dedupe window is not appended again: the outcome
    /// carries the original sequence.
    async fn publish(
        &self,
        room: &str,
        publication: Publication,
        policy: HistoryPolicy,
    ) -> Result<Appended, BrokerError>;

    /// Deliver an ephemeral message to every subscribed instance.
    async fn broadcast(&self, room: &str, event: Ephemeral) -> Result<(), BrokerError>;

    /// The room's position and the messages after `since` still in its history.
    async fn replay(
        &self,
        room: &str,
        since: Option<Position>,
        policy: HistoryPolicy,
    ) -> Result<Replay, BrokerError>;

    /// A page of `room`'s retained history, trimmed to `policy` first: the consecutive
    /// messages just before `before` (the newest ones with `None`), oldest first, at most
    /// `limit` of them and at most `max_bytes` bytes of encoded [`HistoryMessage`]s. A
    /// `before` from another epoch is [`PageError::EpochChanged`].
    ///
    /// A room without history (never used, or forgotten) reads as an empty history in epoch
    /// 0, which no live history has: position `{ epoch: 0, seq: 0 }`, no messages, no more.
    /// Reading never creates a room's history.
    ///
    /// [`HistoryMessage`]: chorus_protocol::HistoryMessage
    async fn history(
        &self,
        room: &str,
        before: Option<Position>,
        limit: usize,
        max_bytes: usize,
        policy: HistoryPolicy,
    ) -> Result<HistoryPage, BrokerError>;

    /// Forget the history of rooms that hold nothing any more: no member, every message
    /// past its ttl and every publish id past its dedupe window (`policy` gives each room's).
    /// The room's next join or publish starts a new epoch, so an old position there resumes
    /// as `Missed`. Called every `history_sweep_interval`; a store that expires idle rooms
    /// itself (keys with a TTL) keeps this default, which does nothing.
    async fn sweep(&self, _policy: &PolicyOf<'_>) -> Result<(), BrokerError> {
        Ok(())
    }

    /// Count one more connection of `user` in `room`. Returns whether the user was absent
    /// (from every instance): the caller announces them, once.
    async fn presence_add(&self, room: &str, user: &str) -> Result<bool, BrokerError>;

    /// Count one connection of `user` fewer in `room`. Returns whether the user is now
    /// absent (from every instance) and the caller is the one to announce it.
    async fn presence_remove(&self, room: &str, user: &str) -> Result<bool, BrokerError>;

    /// Users present in `room`, each once, sorted.
    async fn presence(&self, room: &str) -> Result<Vec<String>, BrokerError>;

    /// Whether the backing store is reachable.
    fn health(&self) -> BrokerHealth {
        BrokerHealth {
            store: "memory",
            up: true,
        }
    }
}
