//! The Redis broker: any number of instances sharing one Redis, or one Redis Cluster
//! (`--redis-cluster`), act as one server. Rooms, sequence numbers, history and resume,
//! deduplication, presence and typing work whichever instance a client lands on.
//!
//! ## The client: redis-rs
//!
//! [`redis`] 1.x (features `tokio-comp`, `connection-manager`, `script`, `cluster-async`),
//! rather than fred:
//!
//! - **Reconnects with backoff.** Commands go through a pool of [`ConnectionManager`]s
//!   (`--redis-pool-size`, default 4), each one multiplexed connection that pipelines any
//!   number of concurrent requests and reconnects in the background, with exponential
//!   backoff and jitter, when its connection drops. The managers speak RESP3, so a dropped
//!   connection is noticed at once rather than by the next command. They connect lazily:
//!   the server starts (degraded) while Redis is unreachable.
//! - **Resubscribes.** Subscriptions use a dedicated pub/sub connection whose loop is ours
//!   (`subscriber`): after a loss it reconnects with backoff, subscribes to every room with
//!   local members, then catches those members up from the room logs *before* handling any
//!   message of the new connection. redis-rs can also resubscribe by itself (RESP3 pushes
//!   on a `ConnectionManager`), but it replays the subscriptions blind, ignoring failures,
//!   and says nothing of when it is done; a gap in a room's channel must be filled from its
//!   log in order, before the next live message, so this loop owns the sequence.
//! - **EVALSHA, NOSCRIPT fallback.** Each operation is one Lua script ([`redis::Script`]):
//!   sent by hash; a Redis restarted with an empty script cache answers NOSCRIPT, and
//!   redis-rs loads the script and runs it again.
//! - **Weight.** With default features off it adds a handful of small crates (`combine`,
//!   `arc-swap`, `backon`, `sha1_smol`, ...) to what the server already has (tokio,
//!   futures). fred has its own pool and reconnection policy, but is a larger dependency
//!   with more moving parts than this broker needs.
//!
//! In a Redis Cluster, commands go through one redis-rs cluster connection instead
//! (`commands`), and subscriptions through one connection per primary (`shards`).
//!
//! Many pool connections rather than one: each connection is one socket with one parser,
//! and one large reply (a replay of `history_size` messages, up to 64 KiB each) delays
//! every reply behind it. Four spread that; more help only at high command rates.
//!
//! ## Keys (`keys`)
//!
//! Everything of a room is named `<prefix>:{<room>}:<part>` (`--redis-prefix`, default
//! `chorus`): the braces are a hash tag, so one room's keys and channel share one Redis
//! Cluster slot and one script can touch them all.
//!
//! | Key | Type | Holds | Expires |
//! | --- | --- | --- | --- |
//! | `meta` | hash | `epoch` (random, 1..2^53), `seq`, `rid` (the replication id of the Redis that wrote it), `prev` and `base` (the epoch this one continues, up to which seq), `kept` (ms: until when `meta` and `log` are kept) | `keep` after the last join or presence refresh; after the last publish, between `keep` and 17/16 of it |
//! | `log` | stream | id `<seq>-0`, fields `t` (ms, Redis clock), `f` (the encoded `Message`); `MAXLEN ~ history_size` | as `meta` |
//! | `d:<id>:<user>` | string | `<epoch>:<seq>` of a publish | the dedupe window |
//! | `users` | sorted set | user → expiry (ms): the latest of the user's instances | presence ttl after the last refresh |
//! | `u:<user>` | sorted set | instance → expiry (ms) | as `users` |
//! | `ch` | channel (a shard channel in a Cluster) | envelopes (`envelope`) | — |
//!
//! `keep` is the longest of the namespace's history ttl, the dedupe window and the
//! presence ttl. That is how idle rooms are forgotten with Redis, instead of the in-memory
//! sweep: a room with no publish, join or member for `keep` loses its keys, and its next
//! use starts a new epoch. While any instance has members in a room it renews the keys
//! every third of the presence ttl.
//!
//! ## Scripts (`scripts`, `lua/`)
//!
//! - `publish`: each publish one atomic step; one call carries every publish that gathered
//!   while the instance's earlier calls were in Redis (`batch`: up to 64, in one slot),
//!   which share the call's fixed cost, its clock read and the fence's `INFO`. Each answers
//!   for itself (published, duplicate, past its deadline, or refused by Redis). The dedupe
//!   key answers a resend with its original seq. Otherwise: create `meta` in a new epoch if
//!   missing (announcing it on the channel first); the next `seq`; build the encoded message
//!   as `prefix .. varint(seq) .. suffix`, where the prefix (variant, room) and suffix (id,
//!   sender, ts, body) are postcard-encoded here, so it is byte for byte
//!   `ServerMessage::Message` (tested); `XADD` with `MAXLEN ~`; `PUBLISH` the message on the
//!   room's channel from inside the script, so the channel carries a room's messages in
//!   `seq` order whichever instance published them; set the dedupe key. That is six
//!   commands with `ensure_meta`'s `HMGET`; each, with its trip between Lua and Redis,
//!   weighs more than the Lua around it (`bench/redis-publish-cost.sh` measures a publish).
//!   The expiries of `meta` and `log` are renewed (`PEXPIREAT ... GT`, to 17/16 of `keep`)
//!   only once fewer than `keep` remain by `kept`: once per sixteenth of `keep` in a busy
//!   room, not by every publish. Two trims are lazy, and invisible to readers, who read
//!   from `lowest_kept(seq, size)` and drop expired entries themselves before reading
//!   (`read`, `page`):
//!   - `MAXLEN ~` drops whole stream nodes (up to 100 entries or 4 KiB: Redis's
//!     `stream-node-max-*`), so a log may hold up to one node more than `history_size`.
//!     Exact trimming frees no more memory (it only marks entries deleted until their node
//!     goes), and every later `XADD` and read of the head walks over the marked entries.
//!   - Entries older than the ttl (by Redis's clock) are dropped by every 16th publish (by
//!     seq), not by every one, which saves reading the oldest entry each time.
//! - `read`: the room's position (creating its history if missing, as a join needs), the
//!   oldest retained seq, the retained messages a resume from `since` replays, and
//!   optionally the members, in one atomic read. The recovery decision itself is
//!   [`history::plan_resume`], shared with the in-memory log.
//! - `page`: candidates for a history page (never creating history); the page is cut by
//!   [`history::fill_page`], shared with the in-memory log.
//! - `rebase`: a new epoch for a room seen going back within its epoch (below).
//! - `presence_add`, `presence_remove`, `presence_refresh`, `presence_reap`, `members`.
//!
//! ## Delivery
//!
//! An instance subscribes to a room's channel only while it has local members. A join
//! registers the connection in the hub, then waits until this instance's subscription is
//! confirmed (every join, not only the first: a second join must not read the history
//! before the subscription exists), then reads the replay, so nothing falls between replay
//! and live; the connection drops duplicates by its epoch and last seq. Messages arrive
//! once per instance and fan out locally, each in one frame shared as [`Bytes`].
//!
//! The subscriber keeps, per room, the last message it fanned out (the cursor). A message
//! that does not follow it (a gap: the subscription was lost for a moment) or is of
//! another epoch makes it read the log and deliver what is missing, in order, before
//! going on. After a reconnect it does the same for every room.
//!
//! ## Epoch changes with members connected
//!
//! When a room's history is lost while members are connected (Redis restarted empty, or
//! its keys were evicted), the next script to touch the room creates a new epoch and
//! publishes a reset envelope ahead of anything else in it; an instance that reconnects
//! reads every room's meta, which creates the epoch if needed. An instance that learns its
//! members are in an old epoch sends each of them an unsolicited
//! `Joined { position: {new epoch, seq}, members, recovery: Missed }`, then the retained
//! messages after `seq`, and moves each connection's filter to the new epoch (see
//! `hub::Kind::Reset`): nothing of the new epoch is dropped as already seen. The same
//! `Joined` (same epoch) tells members that a gap could not be filled from the log.
//!
//! ## Presence
//!
//! Each instance counts its own connections per room and user in memory; Redis holds, per
//! room, which users are present on which instances, with expiries that each instance
//! renews for its users every third of `--presence-ttl` (default 30 s). `MemberJoined` is
//! announced by the script call that made a user present on the first instance;
//! `MemberLeft` by the one that removed the user's last instance. An instance that
//! vanishes stops renewing: its users drop out of member lists when the ttl passes, and
//! the instances still serving the room reap them, each user by exactly one script call
//! whose caller announces `MemberLeft`. Typing events only travel the channel.
//!
//! ## When Redis goes back in time
//!
//! Redis replicates asynchronously: a replica promoted by a failover may lack the last
//! publishes its primary acknowledged, and a Redis restarted from a snapshot (or AOF
//! `everysec`) lacks what came after it. Either way a room comes back in the same epoch at
//! a lower `seq`, and the next publishes would reuse numbers clients have seen and drop.
//! Two guards make that impossible:
//!
//! - **A fence in every script that writes or reads a position** (`ensure_meta` in
//!   `lua/prelude.lua`): `meta` records the replication id of the Redis that wrote it
//!   (`INFO replication`: Redis makes a new one at every start and at every promotion of a
//!   replica, and every node has its own). A room found written under another one goes on in a new epoch that *continues* the old one: `prev` is the
//!   old epoch and `base` the `seq` this copy holds, up to which both histories are the
//!   same messages. The new epoch is announced on the channel first, so every instance
//!   catches its members up: an unsolicited `Joined` (`recovery: missed`, the epoch
//!   changed) and the retained messages after what they had, or after `base` if they had
//!   seen more (those may be gone). A client resuming from the old epoch on any instance is
//!   told `missed` the same way ([`history::plan_resume`]), and a resend of a message the
//!   copy holds is still recognised (`publish.lua`). This fires after every restart,
//!   failover or slot migration, lost writes or not: members are told `missed` and lose
//!   nothing.
//! - **An instance that sees a room go back within its epoch** (a log read below what it
//!   delivered, or a message at or below the previous one on the same subscription
//!   connection) moves the room to a new epoch (`rebase`), counted by
//!   `chorus_epoch_regressions_total`, and catches its members up as above.
//!
//! `--redis-wait-replicas N` makes a publish wait (Redis `WAIT` on its connection, on the
//! room's primary) until N replicas have it before it is acknowledged; one they do not
//! confirm within `--redis-wait-timeout` is answered `unavailable` though it may have been
//! delivered, and a resend with the same id is not published twice (the duplicate's script
//! writes too, so waiting for it covers the original).
//!
//! ## When Redis is unreachable
//!
//! Local clients stay connected. Publishes (WebSocket and HTTP), joins and history requests
//! are refused with 503 `unavailable`, never lost silently; presence and typing events are
//! dropped. A publish is not even sent while the instance knows Redis is down, and one that
//! reaches Redis after its instance gave up refuses itself (the script gets a deadline), so
//! a publish refused is never delivered later. `/healthz` answers
//! `200 {"status":"degraded","redis":"down"}` and `chorus_redis_up` is 0. When Redis
//! returns, the instance resubscribes, restores its presence and catches its members up,
//! with an unsolicited `Joined` where the history was lost.
//!
//! ## Redis Cluster and sharded pub/sub
//!
//! With `--redis-cluster`, `--redis-url` lists seed nodes of a Redis Cluster (7.0 or
//! later). Keys are laid out for it already (one slot per room, the hash tag), so every
//! script runs on the room's primary. Classic `PUBLISH` in a Cluster is broadcast to every
//! node over the cluster bus, so pub/sub traffic would not scale with the shards; the
//! scripts `SPUBLISH` instead, which stays within the shard that owns the room's slot, and
//! each instance `SSUBSCRIBE`s there, only to rooms with local members, over one
//! connection per primary (`shards`), following the slots when they move.
//!
//! [`ConnectionManager`]: redis::aio::ConnectionManager
//! [`history::plan_resume`]: crate::history::plan_resume
//! [`history::fill_page`]: crate::history::fill_page

mod batch;
mod commands;
mod envelope;
mod keys;
mod presence;
mod scripts;
mod shards;
mod subscriber;

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chorus_protocol::Position;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use redis::aio::PubSubSink;
use redis::{Client, ScriptInvocation, Value};
use tokio_util::sync::CancellationToken;

use super::presence::LocalPresence;
use super::{Broker, BrokerError, BrokerEvents, BrokerHealth, Ephemeral, Publication};
use crate::config::Config;
use crate::history::{self, Appended, HistoryPage, HistoryPolicy, Replay};
use crate::metrics::Metrics;
use crate::ws;
use commands::{Commands, Conn};
use keys::Keys;
use scripts::Scripts;

/// How long connecting to Redis may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest any Redis operation may take, waiting for a reconnection included: past
/// it, the request is answered `unavailable`.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long after a publish was asked for Redis may still run it: a publish script that
/// starts later refuses itself, so a publish is never acknowledged late, and one the
/// instance answered `unavailable` (no answer within the command connections' response
/// timeout, 3 s) is never delivered later. The margin to that timeout covers the reply's
/// way back and the instances' clocks being apart from Redis's.
const PUBLISH_DEADLINE: Duration = Duration::from_secs(2);
/// Stripes of the per-room locks that order one room's subscription and presence changes.
const ROOM_LOCKS: usize = 64;
/// Largest integer the scripts handle exactly (Lua numbers are doubles).
const LUA_MAX: u64 = 1 << 53;

/// Sequences and histories, presence and delivery in a Redis shared by every instance.
/// See the [module documentation](self).
pub(crate) struct RedisBroker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("instance", &self.inner.instance)
            .finish_non_exhaustive()
    }
}

/// The Redis metrics, shared with the registry.
struct RedisMetrics {
    up: Gauge,
    errors: Counter,
    pubsub_messages: Counter,
    connects: Counter,
    publishes_pending: Gauge,
    publish_calls: Counter,
    epoch_resets: Counter,
    epoch_regressions: Counter,
}

/// The subscription connection, as joins and leaves see it.
#[derive(Default)]
struct Link {
    /// Sends (un)subscriptions; `None` while disconnected.
    sink: Option<PubSubSink>,
    /// Rooms subscribed on the current connection.
    subscribed: HashSet<String>,
}

/// What the subscriber knows of a room it delivers.
#[derive(Debug, Default, Clone, Copy)]
struct Cursor {
    /// The last message fanned out: every member present has everything up to it.
    fanned: Option<Position>,
    /// Before any message was fanned out, the lowest position a join started from (epoch
    /// 0 when joins saw different epochs): where a catch-up must start.
    floor: Option<Position>,
    /// The last message received, and on which subscription connection.
    live: Option<(u64, Position)>,
}

struct Inner {
    keys: Keys,
    /// This process's id in presence entries, random per start.
    instance: String,
    /// For the subscription connection (one Redis).
    client: Option<Client>,
    /// Subscriptions in a Redis Cluster: the task of `shards`.
    shards: Option<tokio::sync::mpsc::UnboundedSender<shards::Request>>,
    /// `PUBLISH`, or `SPUBLISH` in a Redis Cluster.
    publish_command: &'static str,
    commands: Commands,
    /// Publishes waiting for a script call (`batch`).
    publishes: tokio::sync::mpsc::UnboundedSender<batch::Job>,
    scripts: Scripts,
    events: Arc<dyn BrokerEvents>,
    config: Config,
    metrics: RedisMetrics,
    // Async locks, striped by room: a join's subscribe and presence update, a leave's, and
    // the presence refresh each await Redis, and one room's must not overtake each other
    // (a leave's UNSUBSCRIBE after a join's SUBSCRIBE, or a refresh re-adding a user who
    // just left). Striping bounds their number without a map to clean up.
    locks: Vec<tokio::sync::Mutex<()>>,
    hasher: std::hash::RandomState,
    // The std Mutexes below are held only to read or change the maps, never across an
    // await; no two are held at once.
    link: Mutex<Link>,
    cursors: Mutex<HashMap<String, Cursor>>,
    /// room → user → connections on this instance.
    local: Mutex<LocalPresence>,
    subscriber_up: AtomicBool,
    commands_up: AtomicBool,
}

fn unavailable(e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Unavailable(format!("Redis: {e}"))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RedisBroker {
    /// Connect (lazily) to the Redis at `url` and start the subscription and presence
    /// tasks, which end when `shutdown` is cancelled. A malformed URL is an error; an
    /// unreachable Redis is not: the broker reports itself down and keeps trying.
    pub(crate) fn start(
        url: &str,
        config: &Config,
        events: Arc<dyn BrokerEvents>,
        metrics: &Metrics,
        shutdown: CancellationToken,
    ) -> crate::Result<RedisBroker> {
        let nodes = config.redis_nodes(url);
        let (commands, client, publish_command) = if config.redis_cluster {
            (Commands::cluster(&nodes)?, None, "SPUBLISH")
        } else {
            let client = Client::open(url)?;
            (
                Commands::single(url, config.redis_pool_size)?,
                Some(client),
                "PUBLISH",
            )
        };
        let (shard_requests, shard_task) = if config.redis_cluster {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let (publishes, queue) = tokio::sync::mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            keys: Keys::new(&config.redis_prefix),
            instance: format!("{:016x}", rand::random::<u64>()),
            client,
            shards: shard_requests,
            publish_command,
            commands,
            publishes,
            scripts: Scripts::new(publish_command),
            events,
            config: config.clone(),
            metrics: RedisMetrics {
                up: metrics.redis_up.clone(),
                errors: metrics.redis_errors.clone(),
                pubsub_messages: metrics.redis_pubsub_messages.clone(),
                connects: metrics.redis_connects.clone(),
                publishes_pending: metrics.redis_publishes_pending.clone(),
                publish_calls: metrics.redis_publish_calls.clone(),
                epoch_resets: metrics.epoch_resets.clone(),
                epoch_regressions: metrics.epoch_regressions.clone(),
            },
            locks: (0..ROOM_LOCKS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            hasher: std::hash::RandomState::new(),
            link: Mutex::new(Link::default()),
            cursors: Mutex::new(HashMap::new()),
            local: Mutex::new(LocalPresence::default()),
            subscriber_up: AtomicBool::new(false),
            commands_up: AtomicBool::new(false),
        });
        tracing::info!(instance = %inner.instance, prefix = %config.redis_prefix, "sharing state through Redis");
        match shard_task {
            Some(requests) => {
                let seed = nodes.first().map(|s| (*s).to_owned()).unwrap_or_default();
                tokio::spawn(shards::run(inner.clone(), seed, requests, shutdown.clone()));
            }
            None => {
                tokio::spawn(subscriber::run(inner.clone(), shutdown.clone()));
            }
        }
        tokio::spawn(batch::run(inner.clone(), queue, shutdown.clone()));
        tokio::spawn(presence::run(inner.clone(), shutdown));
        Ok(RedisBroker { inner })
    }
}

impl Inner {
    /// The lock of `room`'s stripe.
    async fn lock(&self, room: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let stripe = self.hasher.hash_one(room) as usize % self.locks.len();
        self.locks[stripe].lock().await
    }

    fn conn(&self) -> Conn {
        self.commands.conn()
    }

    fn set_health(&self) {
        let up =
            self.subscriber_up.load(Ordering::Relaxed) && self.commands_up.load(Ordering::Relaxed);
        self.metrics.up.set(i64::from(up));
    }

    fn is_up(&self) -> bool {
        self.subscriber_up.load(Ordering::Relaxed) && self.commands_up.load(Ordering::Relaxed)
    }

    /// Count a failed command; one that lost its connection marks the pool down until the
    /// next round of pings.
    fn failed(&self, error: &redis::RedisError) -> BrokerError {
        self.metrics.errors.inc();
        if error.is_unrecoverable_error() || error.is_io_error() || error.is_timeout() {
            self.commands_up.store(false, Ordering::Relaxed);
            self.set_health();
        } else {
            // Redis answered with an error: loading, busy, out of memory, read-only...
            tracing::warn!(error = %error, "Redis refused a command");
        }
        unavailable(error)
    }

    fn timed_out(&self) -> BrokerError {
        self.metrics.errors.inc();
        self.commands_up.store(false, Ordering::Relaxed);
        self.set_health();
        unavailable("no answer in time")
    }

    /// Run a script. With `retry`, a script whose connection was lost runs once more (on
    /// the next connection): only for scripts whose effect and answer do not change when
    /// run twice.
    async fn invoke(
        &self,
        invocation: &ScriptInvocation<'_>,
        retry: bool,
    ) -> Result<Value, BrokerError> {
        Ok(self.invoke_on(invocation, retry).await?.0)
    }

    /// [`Inner::invoke`], answering the connection it ran on too.
    async fn invoke_on(
        &self,
        invocation: &ScriptInvocation<'_>,
        retry: bool,
    ) -> Result<(Value, Conn), BrokerError> {
        let mut attempts = if retry { 2 } else { 1 };
        loop {
            attempts -= 1;
            let mut conn = self.conn();
            match tokio::time::timeout(COMMAND_TIMEOUT, invocation.invoke_async(&mut conn)).await {
                Ok(Ok(value)) => return Ok((value, conn)),
                Ok(Err(e)) if attempts > 0 && (e.is_unrecoverable_error() || e.is_io_error()) => {
                    let _ = self.failed(&e);
                }
                Ok(Err(e)) => return Err(self.failed(&e)),
                Err(_) => return Err(self.timed_out()),
            }
        }
    }

    /// Wait until `config.redis_wait_replicas` replicas of `room`'s primary have every
    /// write made on `conn` so far (Redis WAIT).
    async fn wait_replicas(&self, conn: &mut Conn, room: &str) -> Result<(), BrokerError> {
        let wanted = self.config.redis_wait_replicas;
        let timeout = self.config.redis_wait_timeout;
        let acked = tokio::time::timeout(
            timeout + COMMAND_TIMEOUT,
            conn.wait(self.keys.slot(room), wanted, millis(timeout)),
        )
        .await;
        match acked {
            Ok(Ok(n)) if n >= i64::from(wanted) => Ok(()),
            Ok(Ok(n)) => {
                self.metrics.errors.inc();
                Err(unavailable(format!(
                    "the publish reached {n} of {wanted} replicas in time; a resend with the \
                     same id is not published twice"
                )))
            }
            Ok(Err(e)) => Err(self.failed(&e)),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// PUBLISH an envelope on `room`'s channel.
    async fn publish_envelope(&self, room: &str, payload: Vec<u8>) -> Result<(), BrokerError> {
        let mut conn = self.conn();
        let mut publish = redis::cmd(self.publish_command);
        publish.arg(self.keys.channel(room)).arg(payload);
        match tokio::time::timeout(COMMAND_TIMEOUT, publish.query_async::<Value>(&mut conn)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.failed(&e)),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// Deliver an event (an encoded message) to `room`'s members on every instance.
    async fn publish_event(
        &self,
        room: &str,
        message: Bytes,
        except_user: Option<String>,
    ) -> Result<(), BrokerError> {
        let event = Ephemeral {
            message,
            except_user,
        };
        self.publish_envelope(room, envelope::event(&event)).await
    }

    /// How long a room's history outlives its last use: the longest of the history ttl,
    /// the dedupe window and the presence ttl (so never 0, which would delete the keys).
    fn keep_ms(&self, policy: HistoryPolicy) -> u64 {
        let keep = policy
            .ttl
            .max(policy.dedupe_window)
            .max(self.config.presence_ttl);
        millis(keep).min(LUA_MAX)
    }

    /// The read script: `room`'s position (its history is created if missing), oldest
    /// retained seq, the retained messages a resume from `since` replays, and the members if
    /// asked.
    async fn read_room(
        &self,
        room: &str,
        since: Option<Position>,
        policy: HistoryPolicy,
        members: bool,
    ) -> Result<scripts::RoomRead, BrokerError> {
        let mut read = self.scripts.read.prepare_invoke();
        read.key(self.keys.meta(room))
            .key(self.keys.log(room))
            .key(self.keys.channel(room))
            .key(self.keys.users(room))
            .arg(new_epoch())
            .arg(self.keep_ms(policy))
            .arg((policy.size as u64).min(LUA_MAX))
            .arg(millis(policy.ttl).min(LUA_MAX))
            .arg(since.map_or(String::new(), |p| p.epoch.to_string()))
            .arg(since.map_or(0, |p| p.seq.min(LUA_MAX)))
            .arg(if members { "1" } else { "0" });
        scripts::room_read(self.invoke(&read, true).await?)
    }

    /// Move `room` from `epoch`, which went back (see `lua/rebase.lua`), to a new epoch.
    async fn rebase(&self, room: &str, epoch: u64) -> Result<(), BrokerError> {
        let mut rebase = self.scripts.rebase.prepare_invoke();
        rebase
            .key(self.keys.meta(room))
            .key(self.keys.channel(room))
            .arg(epoch)
            .arg(new_epoch());
        let now = scripts::rebased(&self.invoke(&rebase, true).await?)?;
        self.metrics.epoch_regressions.inc();
        tracing::warn!(
            room,
            from = epoch,
            to = now,
            "the room's history went back within its epoch; it goes on in a new one"
        );
        Ok(())
    }

    /// A join read `room` at `position`: the lowest such position is where a catch-up of
    /// its members starts until the subscriber fans out a message.
    fn note_join(&self, room: &str, position: Position) {
        let mut cursors = self.cursors.lock().unwrap_or_else(|e| e.into_inner());
        let cursor = cursors.entry(room.to_owned()).or_default();
        cursor.floor = Some(match cursor.floor {
            None => position,
            Some(floor) if floor.epoch == position.epoch => Position {
                epoch: floor.epoch,
                seq: floor.seq.min(position.seq),
            },
            // Joins in different epochs: a catch-up must treat every member as possibly
            // in another history than the room's.
            Some(_) => Position { epoch: 0, seq: 0 },
        });
    }

    /// Stop receiving `room`'s frames if it has no local member (any more).
    async fn unsubscribe(&self, room: &str) -> Result<(), BrokerError> {
        let _room = self.lock(room).await;
        if self.events.has_local_members(room) {
            return Ok(());
        }
        self.cursors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(room);
        if let Some(shards) = &self.shards {
            let _ = shards.send(shards::Request::Unsubscribe {
                room: room.to_owned(),
            });
            return Ok(());
        }
        let sink = {
            let mut link = self.link.lock().unwrap_or_else(|e| e.into_inner());
            if !link.subscribed.remove(room) {
                return Ok(());
            }
            link.sink.clone()
        };
        // Without a connection there is no subscription to end.
        let Some(mut sink) = sink else {
            return Ok(());
        };
        match tokio::time::timeout(COMMAND_TIMEOUT, sink.unsubscribe(self.keys.channel(room))).await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.failed(&e)),
            Err(_) => Err(self.timed_out()),
        }
    }

    fn local_users(&self, room: &str) -> Vec<String> {
        let local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        local.users(room)
    }
}

/// A random epoch for a history that may be created: never 0 ("no history"), and exact in
/// Lua.
fn new_epoch() -> u64 {
    rand::random_range(1..LUA_MAX)
}

#[async_trait]
impl Broker for RedisBroker {
    async fn subscribe(&self, room: &str) -> Result<(), BrokerError> {
        let inner = &self.inner;
        let _room = inner.lock(room).await;
        if let Some(shards) = &inner.shards {
            let (done, confirmed) = tokio::sync::oneshot::channel();
            shards
                .send(shards::Request::Subscribe {
                    room: room.to_owned(),
                    done,
                })
                .map_err(|_| unavailable("shutting down"))?;
            return match tokio::time::timeout(COMMAND_TIMEOUT, confirmed).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(_)) => Err(unavailable("shutting down")),
                Err(_) => Err(inner.timed_out()),
            };
        }
        let sink = {
            let link = inner.link.lock().unwrap_or_else(|e| e.into_inner());
            if link.subscribed.contains(room) {
                return Ok(());
            }
            link.sink.clone()
        };
        let Some(mut sink) = sink else {
            return Err(unavailable("not connected"));
        };
        match tokio::time::timeout(COMMAND_TIMEOUT, sink.subscribe(inner.keys.channel(room))).await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(inner.failed(&e)),
            Err(_) => return Err(inner.timed_out()),
        }
        let mut link = inner.link.lock().unwrap_or_else(|e| e.into_inner());
        link.subscribed.insert(room.to_owned());
        Ok(())
    }

    async fn unsubscribe(&self, room: &str) -> Result<(), BrokerError> {
        self.inner.unsubscribe(room).await
    }

    async fn publish(
        &self,
        room: &str,
        publication: Publication,
        policy: HistoryPolicy,
    ) -> Result<Appended, BrokerError> {
        let inner = &self.inner;
        // Not sent to a Redis known to be down: it would wait for a reconnection and could
        // be acknowledged long after (see `PUBLISH_DEADLINE`).
        if !inner.is_up() {
            return Err(unavailable("not connected"));
        }
        let (prefix, suffix) = envelope::message_parts(room, &publication)?;
        let deadline = std::time::SystemTime::now() + PUBLISH_DEADLINE;
        let deadline = deadline
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, millis);
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job = batch::Job {
            room: room.to_owned(),
            dedupe: inner.keys.dedupe(room, &publication.sender, publication.id),
            prefix,
            suffix,
            policy,
            deadline,
            answer,
        };
        let gone = || unavailable("shutting down");
        inner.metrics.publishes_pending.inc();
        if inner.publishes.send(job).is_err() {
            inner.metrics.publishes_pending.dec();
            return Err(gone());
        }
        let published = answered.await.map_err(|_| gone())??;
        Ok(Appended {
            seq: published.seq,
            duplicate: published.duplicate,
        })
    }

    async fn broadcast(&self, room: &str, event: Ephemeral) -> Result<(), BrokerError> {
        self.inner
            .publish_envelope(room, envelope::event(&event))
            .await
    }

    async fn replay(
        &self,
        room: &str,
        since: Option<Position>,
        policy: HistoryPolicy,
    ) -> Result<Replay, BrokerError> {
        let read = self.inner.read_room(room, since, policy, false).await?;
        self.inner.note_join(room, read.position);
        let plan = history::plan_resume(since, read.position, read.oldest, read.continues);
        let frames = match plan.after {
            None => Vec::new(),
            // Redis keeps encoded messages; each joiner's read builds their frames once.
            Some(after) => read
                .entries
                .into_iter()
                .filter(|(seq, _)| *seq > after)
                .map(|(seq, message)| (seq, ws::binary(&message)))
                .collect(),
        };
        Ok(Replay {
            position: read.position,
            recovery: plan.recovery,
            frames,
        })
    }

    async fn history(
        &self,
        room: &str,
        before: Option<Position>,
        limit: usize,
        max_bytes: usize,
        policy: HistoryPolicy,
    ) -> Result<HistoryPage, BrokerError> {
        let inner = &self.inner;
        let mut page = inner.scripts.page.prepare_invoke();
        page.key(inner.keys.meta(room))
            .key(inner.keys.log(room))
            .arg((policy.size as u64).min(LUA_MAX))
            .arg(millis(policy.ttl).min(LUA_MAX))
            .arg(before.map_or(String::new(), |p| p.epoch.to_string()))
            .arg(before.map_or(0, |p| p.seq.min(LUA_MAX)))
            .arg((limit as u64).min(LUA_MAX));
        let read = scripts::page_read(inner.invoke(&page, true).await?)?;
        history::page_end(before, read.position.epoch)?;
        let candidates = read
            .entries
            .iter()
            .map(|(seq, message)| (*seq, &message[..]));
        Ok(history::fill_page(
            read.position,
            candidates,
            read.older,
            limit,
            max_bytes,
        )?)
    }

    async fn presence_add(&self, room: &str, user: &str) -> Result<bool, BrokerError> {
        let inner = &self.inner;
        let _room = inner.lock(room).await;
        {
            let mut local = inner.local.lock().unwrap_or_else(|e| e.into_inner());
            if local.add_if_present(room, user) {
                return Ok(false);
            }
        }
        let mut add = inner.scripts.presence_add.prepare_invoke();
        add.key(inner.keys.users(room))
            .key(inner.keys.user(room, user))
            .arg(&inner.instance)
            .arg(user)
            .arg(millis(inner.config.presence_ttl));
        // Not retried: a second run would answer "present" and the arrival would go
        // unannounced.
        let absent = scripts::int(&inner.invoke(&add, false).await?, "a flag")? == 1;
        let mut local = inner.local.lock().unwrap_or_else(|e| e.into_inner());
        local.add(room, user);
        Ok(absent)
    }

    async fn presence_remove(&self, room: &str, user: &str) -> Result<bool, BrokerError> {
        let inner = &self.inner;
        let _room = inner.lock(room).await;
        {
            let mut local = inner.local.lock().unwrap_or_else(|e| e.into_inner());
            if !local.remove(room, user) {
                return Ok(false);
            }
        }
        // If this fails, the entry is no longer renewed: it expires, and an instance with
        // members in the room reaps it and announces the departure.
        let mut remove = inner.scripts.presence_remove.prepare_invoke();
        remove
            .key(inner.keys.users(room))
            .key(inner.keys.user(room, user))
            .arg(&inner.instance)
            .arg(user);
        Ok(scripts::int(&inner.invoke(&remove, false).await?, "a flag")? == 1)
    }

    async fn presence(&self, room: &str) -> Result<Vec<String>, BrokerError> {
        let inner = &self.inner;
        let mut members = inner.scripts.members.prepare_invoke();
        members.key(inner.keys.users(room));
        let mut users = scripts::texts(inner.invoke(&members, true).await?, "a user name")?;
        users.sort_unstable();
        Ok(users)
    }

    fn health(&self) -> BrokerHealth {
        BrokerHealth {
            store: "redis",
            up: self.inner.is_up(),
        }
    }
}
