//! Sharded pub/sub in a Redis Cluster: each room's channel is a shard channel of the room's
//! slot (`SPUBLISH` in the scripts), and this instance subscribes to it (`SSUBSCRIBE`) on
//! the primary that owns the slot, only while the room has members here. One connection per
//! primary carries every such room of that shard.
//!
//! One task owns the subscriptions. It
//! - subscribes and unsubscribes rooms as joins and leaves ask ([`Request`]), answering a
//!   subscribe once the owning primary confirmed it (a `MOVED` answer refreshes the slot
//!   map and the subscription goes to the new owner);
//! - delivers the rooms' envelopes in the order each connection brings them, through the
//!   same cursor as the single-Redis subscriber (`Inner::on_envelope`), which fills any gap
//!   from the room's log;
//! - follows the topology. Every second it pings each connection and reads the slot map
//!   (`CLUSTER SLOTS`); a room whose slot has a new owner (a migration, a failover), a
//!   `sunsubscribe` Redis sends unasked (the slot left that node, or the node became a
//!   replica), or a lost connection makes it subscribe the room again where its slot is now,
//!   then catch the room's members up from the log (an epoch change, with `Joined`
//!   `recovery: missed`, if the new primary lacks what was delivered: see `lua/prelude.lua`).
//!   A room that cannot be subscribed or caught up yet is retried every second, and the
//!   instance reports Redis down meanwhile; no room is left unsubscribed silently.
//!
//! The connections are redis-rs multiplexed connections in RESP3, their pushes read from a
//! channel each. redis-rs's own cluster pub/sub is not used: it resubscribes blind and takes
//! a `sunsubscribe` Redis sends unasked for a reply, dropping the channel for good. Here
//! one request at a time is in flight on a connection, each reply is checked against the
//! request, and a connection whose replies do not match is dropped and its rooms
//! subscribed again.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::{BoxStream, SelectAll};
use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo,
    ProtocolVersion, PushInfo, PushKind, Value,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::keys::SLOTS;
use super::{COMMAND_TIMEOUT, CONNECT_TIMEOUT, Inner, unavailable};
use crate::broker::BrokerError;

/// How often connections are pinged and the slot map read.
const MAINTAIN_EVERY: Duration = Duration::from_secs(1);
/// Attempts at subscribing a room before the join is answered `unavailable`.
const SUBSCRIBE_ATTEMPTS: usize = 3;

/// What joins and leaves ask of the task.
pub(super) enum Request {
    /// Subscribe to `room`'s channel on its shard; answered once confirmed.
    Subscribe {
        room: String,
        done: oneshot::Sender<Result<(), BrokerError>>,
    },
    /// Stop receiving `room`'s channel.
    Unsubscribe { room: String },
}

/// One connection to a primary.
struct Link {
    /// Tells this connection's pushes apart from an earlier one's to the same node.
    id: u64,
    conn: MultiplexedConnection,
    /// Rooms subscribed on it.
    rooms: HashSet<String>,
}

/// Where a room is subscribed.
struct Subscription {
    /// The node address of its link.
    node: String,
    /// The room's slot.
    slot: u16,
}

/// Which primary serves each slot: `(first slot, last slot, "host:port")`.
#[derive(Debug, Default, PartialEq)]
struct SlotMap(Vec<(u16, u16, String)>);

impl SlotMap {
    fn owner(&self, slot: u16) -> Option<&str> {
        self.0
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&slot))
            .map(|(_, _, node)| node.as_str())
    }
}

struct Shards {
    inner: Arc<Inner>,
    /// The first seed node's settings (credentials, database), in RESP3, for every link.
    base: ConnectionInfo,
    slots: SlotMap,
    /// Links by node address.
    links: HashMap<String, Link>,
    /// Link ids → node address, for the pushes (tagged by link id).
    link_nodes: HashMap<u64, String>,
    /// Subscribed rooms → where.
    subscribed: HashMap<String, Subscription>,
    /// Rooms with local members that lost their subscription (moved, node lost) and must be
    /// subscribed again.
    pending: BTreeSet<String>,
    /// Subscribed rooms whose members must be caught up from the log.
    stale: BTreeSet<String>,
    pushes: SelectAll<BoxStream<'static, (u64, PushInfo)>>,
    next_id: u64,
    /// A link was made since the last presence refresh.
    reconnected: bool,
    /// The last health report was logged as degraded.
    told_degraded: bool,
}

/// Run until `shutdown`, serving `requests`.
pub(super) async fn run(
    inner: Arc<Inner>,
    seed: String,
    mut requests: mpsc::UnboundedReceiver<Request>,
    shutdown: CancellationToken,
) {
    let base = match seed.as_str().into_connection_info() {
        Ok(info) => {
            let resp3 = info
                .redis_settings()
                .clone()
                .set_protocol(ProtocolVersion::RESP3);
            info.set_redis_settings(resp3)
        }
        Err(e) => {
            tracing::error!(error = %e, "invalid Redis Cluster seed");
            return;
        }
    };
    let mut shards = Shards {
        inner,
        base,
        slots: SlotMap::default(),
        links: HashMap::new(),
        link_nodes: HashMap::new(),
        subscribed: HashMap::new(),
        pending: BTreeSet::new(),
        stale: BTreeSet::new(),
        pushes: SelectAll::new(),
        next_id: 0,
        reconnected: false,
        told_degraded: false,
    };
    let mut tick = tokio::time::interval_at(Instant::now(), MAINTAIN_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            request = requests.recv() => match request {
                Some(request) => shards.on_request(request).await,
                None => break,
            },
            Some((link, push)) = shards.pushes.next(), if !shards.pushes.is_empty() => {
                shards.on_push(link, push).await;
            }
            _ = tick.tick() => shards.maintain().await,
        }
    }
    shards.inner.subscriber_up.store(false, Ordering::Relaxed);
    shards.inner.set_health();
}

/// Whether a subscription answer confirms `command` (`ssubscribe`, `sunsubscribe`) of
/// `channel`.
fn confirms(reply: &Value, kind: &PushKind, channel: &str) -> bool {
    match reply {
        Value::Push { kind: k, data } if k == kind => {
            matches!(data.first(), Some(Value::BulkString(name)) if name == channel.as_bytes())
        }
        _ => false,
    }
}

/// How a subscription request failed.
enum Failure {
    /// The slot is elsewhere, or the cluster is changing: read the slot map again.
    Moved,
    /// The connection is unusable (lost, timed out, or its replies out of step).
    Link,
}

impl Shards {
    async fn on_request(&mut self, request: Request) {
        match request {
            Request::Subscribe { room, done } => {
                let outcome = if self.subscribed.contains_key(&room) {
                    Ok(())
                } else {
                    self.subscribe(&room).await
                };
                if outcome.is_ok() {
                    self.pending.remove(&room);
                }
                let _ = done.send(outcome);
            }
            Request::Unsubscribe { room } => {
                self.pending.remove(&room);
                self.stale.remove(&room);
                let Some(subscription) = self.subscribed.remove(&room) else {
                    return;
                };
                self.unsubscribe_on(&subscription.node, &room).await;
            }
        }
    }

    /// Subscribe `room` where its slot is, following moves.
    async fn subscribe(&mut self, room: &str) -> Result<(), BrokerError> {
        let channel = self.inner.keys.channel(room);
        let slot = self.inner.keys.slot(room);
        let mut last = unavailable("the Redis Cluster's slot map is unknown");
        for attempt in 0..SUBSCRIBE_ATTEMPTS {
            if (attempt > 0 || self.slots.0.is_empty())
                && let Err(e) = self.refresh_slots().await
            {
                last = e;
                continue;
            }
            let Some(node) = self.slots.owner(slot).map(str::to_owned) else {
                last = unavailable(format!("no Redis Cluster node serves slot {slot}"));
                continue;
            };
            let link = match self.link(&node).await {
                Ok(link) => link,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            let mut ssubscribe = redis::cmd("SSUBSCRIBE");
            ssubscribe.arg(&channel);
            let reply =
                tokio::time::timeout(COMMAND_TIMEOUT, link.conn.send_packed_command(&ssubscribe))
                    .await;
            let failure = match reply {
                Ok(Ok(reply)) if confirms(&reply, &PushKind::SSubscribe, &channel) => {
                    link.rooms.insert(room.to_owned());
                    self.subscribed
                        .insert(room.to_owned(), Subscription { node, slot });
                    return Ok(());
                }
                Ok(Ok(reply)) => {
                    tracing::warn!(?reply, node, "Redis answered SSUBSCRIBE out of step");
                    Failure::Link
                }
                Ok(Err(e)) if e.is_io_error() || e.is_unrecoverable_error() => {
                    last = unavailable(&e);
                    Failure::Link
                }
                Ok(Err(e)) => {
                    // MOVED, CLUSTERDOWN, TRYAGAIN...: the slot map changed.
                    last = unavailable(&e);
                    Failure::Moved
                }
                Err(_) => {
                    last = unavailable("SSUBSCRIBE timed out");
                    Failure::Link
                }
            };
            if let Failure::Link = failure {
                self.drop_link(&node);
            }
        }
        self.inner.metrics.errors.inc();
        Err(last)
    }

    /// End `room`'s subscription on `node`'s link, if there.
    async fn unsubscribe_on(&mut self, node: &str, room: &str) {
        let Some(link) = self.links.get_mut(node) else {
            return;
        };
        if !link.rooms.remove(room) {
            return;
        }
        let channel = self.inner.keys.channel(room);
        let mut sunsubscribe = redis::cmd("SUNSUBSCRIBE");
        sunsubscribe.arg(&channel);
        let reply = tokio::time::timeout(
            COMMAND_TIMEOUT,
            link.conn.send_packed_command(&sunsubscribe),
        )
        .await;
        match reply {
            Ok(Ok(reply)) if confirms(&reply, &PushKind::SUnsubscribe, &channel) => {}
            // The node may have ended it already (the slot moved): Redis then answers for
            // the channel all the same. Anything else is a connection out of step.
            _ => self.drop_link(node),
        }
    }

    /// The link to `node`, connecting it if needed.
    async fn link(&mut self, node: &str) -> Result<&mut Link, BrokerError> {
        if !self.links.contains_key(node) {
            let link = self.connect(node).await?;
            self.link_nodes.insert(link.id, node.to_owned());
            self.links.insert(node.to_owned(), link);
        }
        Ok(self.links.get_mut(node).expect("inserted above"))
    }

    async fn connect(&mut self, node: &str) -> Result<Link, BrokerError> {
        let (host, port) = node
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
            .ok_or_else(|| unavailable(format!("bad node address {node:?}")))?;
        let info = self
            .base
            .clone()
            .set_addr(ConnectionAddr::Tcp(host.to_owned(), port));
        let client = Client::open(info).map_err(unavailable)?;
        let (tx, rx) = mpsc::unbounded_channel::<PushInfo>();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_push_sender(tx);
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(unavailable)?;
        self.next_id += 1;
        let id = self.next_id;
        let pushes = futures_util::stream::unfold(rx, |mut rx| async move {
            let push = rx.recv().await?;
            Some((push, rx))
        })
        .map(move |push| (id, push));
        self.pushes.push(pushes.boxed());
        self.inner.metrics.connects.inc();
        self.reconnected = true;
        tracing::debug!(node, "subscription connection to a Redis Cluster primary");
        Ok(Link {
            id,
            conn,
            rooms: HashSet::new(),
        })
    }

    /// Forget `node`'s link: its rooms must be subscribed again.
    fn drop_link(&mut self, node: &str) {
        let Some(link) = self.links.remove(node) else {
            return;
        };
        self.link_nodes.remove(&link.id);
        for room in link.rooms {
            self.subscribed.remove(&room);
            self.pending.insert(room);
        }
    }

    /// Read the slot map from any node.
    async fn refresh_slots(&mut self) -> Result<(), BrokerError> {
        let mut conn = self.inner.commands.conn();
        let slots = redis::cmd("CLUSTER").arg("SLOTS").to_owned();
        let reply = tokio::time::timeout(COMMAND_TIMEOUT, slots.query_async::<Value>(&mut conn))
            .await
            .map_err(|_| unavailable("CLUSTER SLOTS timed out"))?
            .map_err(unavailable)?;
        let map = parse_slots(&reply)
            .ok_or_else(|| unavailable(format!("unexpected CLUSTER SLOTS answer {reply:?}")))?;
        if map != self.slots {
            tracing::debug!(ranges = map.0.len(), "Redis Cluster slot map changed");
            self.slots = map;
        }
        Ok(())
    }

    /// The room of a push's channel name, if it is one of ours.
    fn room_of(&self, channel: Option<&Value>) -> Option<String> {
        let Some(Value::BulkString(channel)) = channel else {
            return None;
        };
        let channel = std::str::from_utf8(channel).ok()?;
        self.inner.keys.room_of_channel(channel).map(str::to_owned)
    }

    async fn on_push(&mut self, id: u64, push: PushInfo) {
        let Some(node) = self.link_nodes.get(&id).cloned() else {
            // From a link dropped since.
            return;
        };
        match push.kind {
            PushKind::SMessage => {
                self.inner.metrics.pubsub_messages.inc();
                let (Some(room), Some(Value::BulkString(payload))) =
                    (self.room_of(push.data.first()), push.data.get(1))
                else {
                    return;
                };
                if self.subscribed.get(&room).map(|s| &s.node) != Some(&node) {
                    return;
                }
                if let Err(e) = self.inner.on_envelope(&room, payload, id).await {
                    tracing::warn!(error = %e, room, "cannot catch a room up");
                    self.stale.insert(room);
                }
            }
            PushKind::SUnsubscribe => {
                // Unasked (an unsubscribe of ours has left `rooms` already): the slot left
                // the node, or the node is a replica now.
                let Some(room) = self.room_of(push.data.first()) else {
                    return;
                };
                let ours = self
                    .links
                    .get_mut(&node)
                    .is_some_and(|link| link.rooms.remove(&room));
                if ours {
                    tracing::info!(room, node, "Redis ended a room's subscription; moving it");
                    self.subscribed.remove(&room);
                    self.pending.insert(room);
                    self.settle().await;
                }
            }
            PushKind::Disconnection => {
                tracing::warn!(node, "lost a Redis Cluster subscription connection");
                self.drop_link(&node);
                self.settle().await;
            }
            _ => {}
        }
    }

    /// Subscribe the rooms that lost their subscription where their slots are now, and
    /// catch up the rooms that need it. What fails stays for the next round.
    async fn settle(&mut self) {
        self.pending
            .retain(|room| self.inner.events.has_local_members(room));
        if !self.pending.is_empty() {
            let _ = self.refresh_slots().await;
            for room in std::mem::take(&mut self.pending) {
                match self.subscribe(&room).await {
                    Ok(()) => {
                        self.stale.insert(room);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, room, "cannot subscribe a room yet");
                        self.pending.insert(room);
                    }
                }
            }
        }
        if self.reconnected && self.pending.is_empty() {
            // A new primary may lack presence entries written to the old one.
            if self.inner.refresh_presence().await.is_ok() {
                self.reconnected = false;
            }
        }
        for room in std::mem::take(&mut self.stale) {
            if !self.inner.events.has_local_members(&room) {
                continue;
            }
            if let Err(e) = self.inner.catch_up(&room).await {
                tracing::debug!(error = %e, room, "cannot catch a room up yet");
                self.stale.insert(room);
            }
        }
    }

    /// Every second: check the links, follow the slot map, retry what failed, and report
    /// health.
    async fn maintain(&mut self) {
        let nodes: Vec<String> = self.links.keys().cloned().collect();
        for node in nodes {
            let Some(link) = self.links.get_mut(&node) else {
                continue;
            };
            if link.rooms.is_empty() {
                self.drop_link(&node);
                continue;
            }
            let ping = redis::cmd("PING");
            let reply =
                tokio::time::timeout(COMMAND_TIMEOUT, link.conn.send_packed_command(&ping)).await;
            let pong = matches!(&reply, Ok(Ok(Value::SimpleString(s))) if s == "PONG")
                || matches!(&reply, Ok(Ok(Value::Array(items))) if items.first() == Some(&Value::BulkString(b"pong".to_vec())));
            if !pong {
                self.inner.metrics.errors.inc();
                tracing::warn!(
                    node,
                    ?reply,
                    "a Redis Cluster subscription connection failed a ping"
                );
                self.drop_link(&node);
            }
        }
        let mapped = self.refresh_slots().await.is_ok();
        if mapped {
            let moved: Vec<(String, String)> = self
                .subscribed
                .iter()
                .filter(|(_, s)| self.slots.owner(s.slot) != Some(s.node.as_str()))
                .map(|(room, s)| (room.clone(), s.node.clone()))
                .collect();
            for (room, node) in moved {
                tracing::info!(room, from = node, "a room's slot moved; following it");
                self.subscribed.remove(&room);
                self.unsubscribe_on(&node, &room).await;
                self.pending.insert(room);
            }
        }
        self.settle().await;
        self.inner.ping_pool().await;
        let up = mapped && self.pending.is_empty() && self.stale.is_empty();
        self.inner.subscriber_up.store(up, Ordering::Relaxed);
        if !up && !self.told_degraded {
            self.told_degraded = true;
            tracing::warn!(
                mapped,
                unsubscribed = self.pending.len(),
                behind = self.stale.len(),
                "the Redis Cluster is unreachable or changing; serving degraded until it settles"
            );
        } else if up && self.told_degraded {
            self.told_degraded = false;
            tracing::info!("the Redis Cluster serves every room again");
        }
        self.inner.set_health();
    }
}

/// The primaries' slot ranges in a `CLUSTER SLOTS` answer: entries of
/// `[first, last, [host, port, id, ...], replicas...]`.
fn parse_slots(reply: &Value) -> Option<SlotMap> {
    let Value::Array(ranges) = reply else {
        return None;
    };
    let mut map = Vec::with_capacity(ranges.len());
    for range in ranges {
        let Value::Array(fields) = range else {
            return None;
        };
        let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(primary))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            return None;
        };
        let host = match primary.first()? {
            Value::BulkString(host) => String::from_utf8(host.clone()).ok()?,
            Value::SimpleString(host) => host.clone(),
            _ => return None,
        };
        let Some(Value::Int(port)) = primary.get(1) else {
            return None;
        };
        let first = u16::try_from(*first).ok().filter(|s| *s < SLOTS)?;
        let last = u16::try_from(*last).ok().filter(|s| *s < SLOTS)?;
        let port = u16::try_from(*port).ok()?;
        map.push((first, last, format!("{host}:{port}")));
    }
    Some(SlotMap(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn a_slot_map_is_read_from_cluster_slots() {
        let node = |port| {
            Value::Array(vec![
                bulk("127.0.0.1"),
                Value::Int(port),
                bulk("0123abcd"),
                Value::Map(vec![]),
            ])
        };
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node(7000),
                node(7003),
            ]),
            Value::Array(vec![Value::Int(5461), Value::Int(16383), node(7001)]),
        ]);
        let map = parse_slots(&reply).unwrap();
        assert_eq!(map.owner(0), Some("127.0.0.1:7000"));
        assert_eq!(map.owner(5460), Some("127.0.0.1:7000"));
        assert_eq!(map.owner(5461), Some("127.0.0.1:7001"));
        assert_eq!(map.owner(16383), Some("127.0.0.1:7001"));
        for bad in [
            Value::Nil,
            Value::Array(vec![Value::Int(0)]),
            Value::Array(vec![Value::Array(vec![
                Value::Int(0),
                Value::Int(99999),
                node(7000),
            ])]),
            Value::Array(vec![Value::Array(vec![
                Value::Int(0),
                Value::Int(1),
                Value::Array(vec![bulk("h"), Value::Int(-1)]),
            ])]),
        ] {
            assert_eq!(parse_slots(&bad), None, "{bad:?}");
        }
        assert_eq!(SlotMap::default().owner(3), None);
    }

    #[test]
    fn only_a_matching_push_confirms() {
        let push = |kind, channel: &str| Value::Push {
            kind,
            data: vec![bulk(channel), Value::Int(1)],
        };
        assert!(confirms(
            &push(PushKind::SSubscribe, "a"),
            &PushKind::SSubscribe,
            "a"
        ));
        assert!(!confirms(
            &push(PushKind::SSubscribe, "b"),
            &PushKind::SSubscribe,
            "a"
        ));
        assert!(!confirms(
            &push(PushKind::SUnsubscribe, "a"),
            &PushKind::SSubscribe,
            "a"
        ));
        assert!(!confirms(&Value::Okay, &PushKind::SSubscribe, "a"));
    }
}
