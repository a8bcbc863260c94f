//! A Redis Cluster of a test's own: `redis-server` nodes on free ports of 127.0.0.1, joined
//! by `redis-cli --cluster create`, and the changes a test puts a cluster client through:
//! a primary killed ([`RedisCluster::kill_primary_of`]), a manual failover
//! ([`RedisCluster::failover`]) and a slot moved to another primary
//! ([`RedisCluster::migrate_slot`], or step by step from
//! [`RedisCluster::begin_migration`]).
//!
//! Every change waits until the cluster has settled: every running node says
//! `cluster_state:ok`, all of them see the same nodes, roles and slot owners in
//! `CLUSTER NODES` (failed nodes left out), and every replica's link to its primary is up.
//!
//! The nodes save nothing by themselves (`--save ""`, no AOF) and write only in a private
//! temp dir (their `nodes-<port>.conf`, and the RDB of a replica's full sync), removed on
//! drop; the nodes are killed on drop.
//!
//! ```no_run
//! # async fn example() -> chorus_test_harness::Result<()> {
//! use chorus_test_harness::redis::command;
//! use chorus_test_harness::redis_cluster::RedisCluster;
//!
//! let mut cluster = RedisCluster::start(3, 1).await?;
//! let slot = RedisCluster::slot_of("room:1");
//! command(cluster.owner_of(slot).await?, &["SET", "room:1", "x"]).await?.ok()?;
//! let promoted = cluster.kill_primary_of(slot).await?;
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::process::{TempDir, free_port};
use crate::redis::{
    Connection, POLL, Reply, command, info_field, kill_and_reap, test_server, wait_ready,
};
use crate::{Error, Result};

/// Slots in a Redis Cluster.
pub const SLOTS: u16 = 16384;
/// A node's cluster bus port is its port plus this.
const BUS_PORT_OFFSET: u16 = 10000;
/// `--cluster-node-timeout`: a node not answering for this long is failing, and its replica
/// takes over about a second or two later.
pub const NODE_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long the cluster may take to settle after a change (a failover takes a few seconds).
const SETTLE_WITHIN: Duration = Duration::from_secs(30);
/// How long `redis-cli --cluster create` may take (it waits a second or two by itself).
const CREATE_WITHIN: Duration = Duration::from_secs(60);
/// How long a node may take to answer the harness's questions before it counts as silent.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);
/// Keys moved by one `MIGRATE`.
const MIGRATE_BATCH: usize = 100;
/// `MIGRATE`'s timeout, in milliseconds.
const MIGRATE_TIMEOUT_MS: &str = "5000";
/// Spawn attempts on fresh ports when a newly chosen port turns out to be taken.
const SPAWN_ATTEMPTS: usize = 5;

/// A running Redis Cluster (see the module's doc).
#[derive(Debug)]
pub struct RedisCluster {
    /// Every node started, in the order they were given to `redis-cli --cluster create`.
    nodes: Vec<Node>,
    /// Removed on drop, once the processes are gone.
    dir: TempDir,
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in self.nodes.iter_mut().filter_map(|node| node.child.as_mut()) {
            let _ = child.start_kill();
        }
        for child in self.nodes.iter_mut().filter_map(|node| node.child.as_mut()) {
            kill_and_reap(child);
        }
    }
}

/// One node's process.
#[derive(Debug)]
struct Node {
    port: u16,
    /// `None` once killed.
    child: Option<Child>,
}

/// A slot on its way from one primary to another: begun by
/// [`RedisCluster::begin_migration`] (the target `IMPORTING` it, the source `MIGRATING`
/// it), its keys moved by [`RedisCluster::migrate_keys`], and given to the target by
/// [`RedisCluster::finish_migration`].
#[derive(Debug, Clone)]
pub struct Migration {
    /// The slot.
    pub slot: u16,
    /// The source primary's port.
    pub from: u16,
    /// The target primary's port.
    pub to: u16,
    from_id: String,
    to_id: String,
}

/// What one node says about one (not failed) node in `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeView {
    id: String,
    /// Its primary's port if it is a replica.
    primary: Option<u16>,
    /// The slot ranges it owns, as `(first, last)`, in order.
    slots: Vec<(u16, u16)>,
}

/// The cluster as one node sees it: port → node.
type View = BTreeMap<u16, NodeView>;

impl RedisCluster {
    /// Start `primaries` × (1 + `replicas_per_primary`) nodes, join them with `redis-cli
    /// --cluster create ... --cluster-replicas N --cluster-yes` (`redis-cli` from `PATH`, or
    /// `CHORUS_REDIS_CLI`; `redis-server` as for [`crate::redis::RedisServer::start`]), and
    /// wait until the cluster has settled with every slot assigned and every replica in
    /// sync. Redis Cluster needs at least 3 primaries. A few seconds.
    pub async fn start(primaries: usize, replicas_per_primary: usize) -> Result<RedisCluster> {
        if primaries < 3 {
            return Err(Error::BadRequest(
                "a Redis Cluster needs at least 3 primaries".into(),
            ));
        }
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            dir: TempDir::new("chorus-redis-cluster")?,
        };
        for _ in 0..primaries * (1 + replicas_per_primary) {
            let node = cluster.spawn_node().await?;
            cluster.nodes.push(node);
        }
        cluster.create(replicas_per_primary).await?;
        let replicas = primaries * replicas_per_primary;
        cluster
            .settle(
                &format!("{primaries} primaries with slots and {replicas} replicas"),
                |view| {
                    let with_slots = view
                        .values()
                        .filter(|n| n.primary.is_none() && !n.slots.is_empty())
                        .count();
                    let replicas_seen = view.values().filter(|n| n.primary.is_some()).count();
                    with_slots == primaries && replicas_seen == replicas
                },
            )
            .await?;
        Ok(cluster)
    }

    /// A node on a free port whose bus port is free too, answering.
    async fn spawn_node(&self) -> Result<Node> {
        let mut last_error = None;
        for _ in 0..SPAWN_ATTEMPTS {
            let port = free_port_with_bus()?;
            let dir = self.dir.path();
            let (binary, mut command) = test_server(port, dir, &format!("dump-{port}.rdb"));
            let mut child = command
                .args(["--cluster-enabled", "yes", "--cluster-config-file"])
                .arg(dir.join(format!("nodes-{port}.conf")))
                .arg("--cluster-node-timeout")
                .arg(NODE_TIMEOUT.as_millis().to_string())
                .spawn()
                .map_err(|e| std::io::Error::new(e.kind(), format!("{binary}: {e}")))?;
            match wait_ready(&mut child, port).await {
                Ok(()) => {
                    return Ok(Node {
                        port,
                        child: Some(child),
                    });
                }
                // The port or the bus port may have been taken between our probe and the
                // node's bind.
                Err(e @ Error::Exited(_)) => last_error = Some(e),
                Err(e) => {
                    let _ = child.kill().await;
                    return Err(e);
                }
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    async fn create(&self, replicas_per_primary: usize) -> Result<()> {
        let cli = std::env::var("CHORUS_REDIS_CLI").unwrap_or_else(|_| "redis-cli".to_owned());
        let mut create = Command::new(&cli);
        create.args(["--cluster", "create"]);
        for node in &self.nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        create
            .args(["--cluster-replicas", &replicas_per_primary.to_string()])
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let output = tokio::time::timeout(CREATE_WITHIN, create.output())
            .await
            .map_err(|_| {
                Error::Redis(format!(
                    "{cli} --cluster create took over {CREATE_WITHIN:?}"
                ))
            })?
            .map_err(|e| std::io::Error::new(e.kind(), format!("{cli}: {e}")))?;
        if !output.status.success() {
            return Err(Error::Redis(format!(
                "{cli} --cluster create failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        Ok(())
    }

    /// The Redis Cluster slot of `key`: CRC16 (XMODEM) of its hash tag, the part between the
    /// first `{` and the first `}` after it if that is not empty, else of the whole key;
    /// modulo 16384. `{user1}.a` and `{user1}.b` share a slot; `a{}{b}` hashes as a whole.
    pub fn slot_of(key: &str) -> u16 {
        let key = key.as_bytes();
        let tag = key.iter().position(|&b| b == b'{').and_then(|open| {
            let rest = &key[open + 1..];
            let len = rest.iter().position(|&b| b == b'}')?;
            (len > 0).then(|| &rest[..len])
        });
        crc16_xmodem(tag.unwrap_or(key)) % SLOTS
    }

    /// The ports of the running nodes (killed ones left out), in creation order.
    pub fn node_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|node| node.child.is_some())
            .map(|node| node.port)
            .collect()
    }

    /// `redis://127.0.0.1:PORT` of every running node, comma-separated: the seeds for a
    /// cluster client.
    pub fn seeds(&self) -> String {
        self.node_ports()
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The port of the primary that owns `slot` now, as the first running node that answers
    /// sees it.
    pub async fn owner_of(&self, slot: u16) -> Result<u16> {
        owner_in(&self.view().await?, slot)
    }

    /// The ports of the replicas of the primary on `port`, in order, as the first running
    /// node that answers sees them (failed ones left out).
    pub async fn replicas_of(&self, port: u16) -> Result<Vec<u16>> {
        Ok(replicas_in(&self.view().await?, port))
    }

    /// The ports of the primaries that own slots, in order, as the first running node that
    /// answers sees them.
    pub async fn primaries(&self) -> Result<Vec<u16>> {
        Ok(self
            .view()
            .await?
            .iter()
            .filter(|(_, node)| node.primary.is_none() && !node.slots.is_empty())
            .map(|(port, _)| *port)
            .collect())
    }

    /// A primary other than the one on `port`: where to move a slot of it.
    pub async fn another_primary(&self, port: u16) -> Result<u16> {
        self.primaries()
            .await?
            .into_iter()
            .find(|&p| p != port)
            .ok_or_else(|| Error::Redis("a cluster of one primary".into()))
    }

    /// How many clients of the node on `port` are subscribed to the shard channel `channel`
    /// (`PUBSUB SHARDNUMSUB`; each node counts only its own clients).
    pub async fn shard_numsub(&self, port: u16, channel: &str) -> Result<i64> {
        let reply = command(port, &["PUBSUB", "SHARDNUMSUB", channel])
            .await?
            .ok()?;
        reply
            .as_array()
            .and_then(|items| items.get(1))
            .and_then(Reply::as_int)
            .ok_or_else(|| Error::Redis(format!("PUBSUB SHARDNUMSUB answered {reply:?}")))
    }

    /// SIGKILL the node on `port` and wait for its exit; nothing more (the cluster notices
    /// after [`NODE_TIMEOUT`]). Killing a killed node does nothing.
    pub async fn kill_node(&mut self, port: u16) -> Result<()> {
        let node = self
            .nodes
            .iter_mut()
            .find(|node| node.port == port)
            .ok_or_else(|| Error::BadRequest(format!("no node on port {port}")))?;
        if let Some(mut child) = node.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// SIGKILL the primary that owns `slot`, then wait until one of its replicas is promoted
    /// and owns the slot in every remaining node's view, with `cluster_state:ok`
    /// everywhere. Answers the new primary's port. What the replica had not received is
    /// lost: `WAIT 1 <ms>` on the primary first for a write that must survive.
    pub async fn kill_primary_of(&mut self, slot: u16) -> Result<u16> {
        let view = self.settled_view().await?;
        let owner = owner_in(&view, slot)?;
        let replicas = replicas_in(&view, owner);
        if replicas.is_empty() {
            return Err(Error::Conflict(format!(
                "the primary on {owner} (slot {slot}) has no replica to take over"
            )));
        }
        self.kill_node(owner).await?;
        let view = self
            .settle(
                &format!("slot {slot} owned by one of {replicas:?}, the replicas of {owner}"),
                |view| owner_in(view, slot).is_ok_and(|port| replicas.contains(&port)),
            )
            .await?;
        owner_in(&view, slot)
    }

    /// A manual failover of the primary that owns `slot`: `CLUSTER FAILOVER` on its first
    /// replica, then wait until that replica owns the slot and the old primary is its
    /// replica, in sync, in every node's view. Nothing acknowledged is lost. Answers the new
    /// primary's port.
    pub async fn failover(&self, slot: u16) -> Result<u16> {
        let view = self.settled_view().await?;
        let owner = owner_in(&view, slot)?;
        let Some(&replica) = replicas_in(&view, owner).first() else {
            return Err(Error::Conflict(format!(
                "the primary on {owner} (slot {slot}) has no replica to fail over to"
            )));
        };
        command(replica, &["CLUSTER", "FAILOVER"]).await?.ok()?;
        self.settle(
            &format!("slot {slot} owned by {replica}, with {owner} its replica"),
            |view| {
                owner_in(view, slot).is_ok_and(|port| port == replica)
                    && view
                        .get(&owner)
                        .is_some_and(|old| old.primary == Some(replica))
            },
        )
        .await?;
        Ok(replica)
    }

    /// Move `slot`, with its keys, to the primary on `to`: [`RedisCluster::begin_migration`]
    /// then [`RedisCluster::finish_migration`], the steps of `redis-cli --cluster reshard`.
    /// Clients may keep reading and writing the slot's keys meanwhile (following `-ASK` and
    /// `-MOVED`). An error if the slot is on `to` already or `to` is not a primary.
    pub async fn migrate_slot(&self, slot: u16, to: u16) -> Result<()> {
        let migration = self.begin_migration(slot, to).await?;
        self.finish_migration(&migration).await
    }

    /// Start moving `slot` to the primary on `to`: `CLUSTER SETSLOT <slot> IMPORTING
    /// <source-id>` on the target, then `CLUSTER SETSLOT <slot> MIGRATING <target-id>` on
    /// the source. From then on the source answers `-ASK` for the slot's keys it does not
    /// have, and the target serves them after `ASKING`.
    pub async fn begin_migration(&self, slot: u16, to: u16) -> Result<Migration> {
        let view = self.settled_view().await?;
        let from = owner_in(&view, slot)?;
        if from == to {
            return Err(Error::Conflict(format!("slot {slot} is already on {to}")));
        }
        let target = view
            .get(&to)
            .filter(|node| node.primary.is_none())
            .ok_or_else(|| Error::BadRequest(format!("no primary on port {to}")))?;
        let migration = Migration {
            slot,
            from,
            to,
            from_id: view[&from].id.clone(),
            to_id: target.id.clone(),
        };
        let slot = slot.to_string();
        command(
            to,
            &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &migration.from_id],
        )
        .await?
        .ok()?;
        command(
            from,
            &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &migration.to_id],
        )
        .await?
        .ok()?;
        Ok(migration)
    }

    /// Move the keys the source of `migration` has in its slot now to the target
    /// (`CLUSTER GETKEYSINSLOT` and `MIGRATE`, until the source has none); answers how many
    /// were moved. Keys written meanwhile to the slot but not on the source are created on
    /// the target (`-ASK`), so once empty the source stays empty.
    pub async fn migrate_keys(&self, migration: &Migration) -> Result<usize> {
        let slot = migration.slot.to_string();
        let batch = MIGRATE_BATCH.to_string();
        let to = migration.to.to_string();
        let mut moved = 0;
        loop {
            let keys = command(migration.from, &["CLUSTER", "GETKEYSINSLOT", &slot, &batch])
                .await?
                .ok()?;
            let keys: Vec<&[u8]> = match &keys {
                Reply::Array(keys) if keys.is_empty() => return Ok(moved),
                Reply::Array(keys) => keys
                    .iter()
                    .map(|key| match key {
                        Reply::Bulk(key) => Ok(key.as_slice()),
                        other => Err(Error::Redis(format!("GETKEYSINSLOT gave {other:?}"))),
                    })
                    .collect::<Result<_>>()?,
                other => return Err(Error::Redis(format!("GETKEYSINSLOT answered {other:?}"))),
            };
            let mut args: Vec<&[u8]> = vec![
                b"MIGRATE",
                b"127.0.0.1",
                to.as_bytes(),
                b"",
                b"0",
                MIGRATE_TIMEOUT_MS.as_bytes(),
                b"KEYS",
            ];
            args.extend(&keys);
            let reply = command(migration.from, &args).await?;
            match reply {
                // NOKEY: they all expired or were deleted meanwhile.
                Reply::Status(status) if status == "OK" || status == "NOKEY" => {}
                other => {
                    return Err(Error::Redis(format!(
                        "MIGRATE of slot {slot} from {} to {to} answered {other:?}",
                        migration.from
                    )));
                }
            }
            moved += keys.len();
        }
    }

    /// End `migration`: move the keys left ([`RedisCluster::migrate_keys`]), give the slot
    /// to the target with `CLUSTER SETSLOT <slot> NODE <target-id>` on the target first,
    /// then the source, then every other primary, move any key still on the source, and
    /// wait until every node sees the target as the slot's owner.
    pub async fn finish_migration(&self, migration: &Migration) -> Result<()> {
        self.migrate_keys(migration).await?;
        let slot = migration.slot.to_string();
        let set_node = ["CLUSTER", "SETSLOT", &slot, "NODE", &migration.to_id];
        // The target first: were the others told first and the target lost, the slot would
        // have no owner (redis/redis#7116).
        command(migration.to, &set_node).await?.ok()?;
        let source_demoted = match command(migration.from, &set_node).await? {
            // A source that gave away its last slot may already have become a replica of
            // the target (redis/redis#9223).
            Reply::Error(e) if e.starts_with("ERR Please use SETSLOT only with masters") => true,
            reply => {
                reply.ok()?;
                false
            }
        };
        let view = self.view().await?;
        let running = self.node_ports();
        for (port, node) in &view {
            let other = *port != migration.from && *port != migration.to;
            if other && node.primary.is_none() && running.contains(port) {
                command(*port, &set_node).await?.ok()?;
            }
        }
        // The source has been empty since `migrate_keys`, as it answered `-ASK` for any
        // key it did not have; make sure (a demoted source holds the target's keys).
        if !source_demoted {
            self.migrate_keys(migration).await?;
        }
        self.settle(
            &format!("slot {} owned by {}", migration.slot, migration.to),
            |view| owner_in(view, migration.slot).is_ok_and(|port| port == migration.to),
        )
        .await?;
        Ok(())
    }

    /// The cluster as the first running node that answers sees it.
    async fn view(&self) -> Result<View> {
        let mut errors = Vec::new();
        for port in self.node_ports() {
            let nodes = tokio::time::timeout(ANSWER_WITHIN, command(port, &["CLUSTER", "NODES"]));
            match nodes.await {
                Ok(Ok(reply)) => return parse_nodes(&reply.ok()?.into_text()?),
                Ok(Err(e)) => errors.push(format!("{port}: {e}")),
                Err(_) => errors.push(format!("{port}: silent for {ANSWER_WITHIN:?}")),
            }
        }
        Err(Error::Redis(format!(
            "no node answered CLUSTER NODES: {errors:?}"
        )))
    }

    /// The view once the cluster has settled (at once, unless something is changing).
    async fn settled_view(&self) -> Result<View> {
        self.settle("settled", |_| true).await
    }

    /// Wait until the cluster has settled (see the module's doc) in a state where `done`
    /// holds, and answer that state.
    async fn settle(&self, what: &str, done: impl Fn(&View) -> bool) -> Result<View> {
        let deadline = tokio::time::Instant::now() + SETTLE_WITHIN;
        loop {
            let last = match self.observe().await {
                Ok(view) if done(&view) => return Ok(view),
                Ok(view) => format!("settled, but not yet so:\n{}", describe(&view)),
                Err(e) => e,
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Redis(format!(
                    "the cluster did not settle with {what} within {SETTLE_WITHIN:?}; last: {last}"
                )));
            }
            tokio::time::sleep(POLL * 2).await;
        }
    }

    /// One look at every running node: the view they agree on if the cluster has settled,
    /// else what is not so yet.
    async fn observe(&self) -> Result<View, String> {
        let running = self.node_ports();
        let mut agreed: Option<(u16, View)> = None;
        for &port in &running {
            let (state, view, replication) =
                tokio::time::timeout(ANSWER_WITHIN, observe_node(port))
                    .await
                    .map_err(|_| format!("{port} silent for {ANSWER_WITHIN:?}"))?
                    .map_err(|e| format!("{port}: {e}"))?;
            if state != "ok" {
                return Err(format!("{port} says cluster_state:{state}"));
            }
            let me = view
                .get(&port)
                .ok_or_else(|| format!("{port} does not list itself:\n{}", describe(&view)))?;
            if me.primary.is_some() {
                let link = info_field(&replication, "master_link_status").unwrap_or("?");
                if link != "up" {
                    return Err(format!("{port} (a replica) has master_link_status:{link}"));
                }
            }
            match &agreed {
                Some((first, first_view)) if *first_view != view => {
                    return Err(format!(
                        "{first} and {port} disagree:\n{first} sees:\n{}{port} sees:\n{}",
                        describe(first_view),
                        describe(&view)
                    ));
                }
                Some(_) => {}
                None => agreed = Some((port, view)),
            }
        }
        let (_, view) = agreed.ok_or("no node is running")?;
        let seen: BTreeSet<u16> = view.keys().copied().collect();
        if seen != running.iter().copied().collect() {
            return Err(format!(
                "the nodes see {seen:?} not failed, but {running:?} run:\n{}",
                describe(&view)
            ));
        }
        Ok(view)
    }
}

/// `cluster_state`, the view, and `INFO replication` of the node on `port`.
async fn observe_node(port: u16) -> Result<(String, View, String)> {
    let mut connection = Connection::open(port).await?;
    let info = connection
        .command(&["CLUSTER", "INFO"])
        .await?
        .ok()?
        .into_text()?;
    let nodes = connection
        .command(&["CLUSTER", "NODES"])
        .await?
        .ok()?
        .into_text()?;
    let replication = connection
        .command(&["INFO", "replication"])
        .await?
        .ok()?
        .into_text()?;
    let state = info_field(&info, "cluster_state").unwrap_or("?").to_owned();
    Ok((state, parse_nodes(&nodes)?, replication))
}

/// The nodes not failed (nor in a handshake, nor without an address) in the text of
/// `CLUSTER NODES`: `<id> <ip:port@bus-port[,hostname]> <flags> <primary-id or -> <ping-sent>
/// <pong-received> <epoch> <link> <slot or first-last or [slot->-id] ...>`.
fn parse_nodes(text: &str) -> Result<View> {
    let malformed = |line: &str| Error::Redis(format!("unexpected CLUSTER NODES line: {line}"));
    let mut port_of_id = HashMap::new();
    let mut nodes = Vec::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [id, address, flags, primary, _, _, _, _, slots @ ..] = fields.as_slice() else {
            return Err(malformed(line));
        };
        let port: u16 = address
            .split(['@', ','])
            .next()
            .and_then(|address| address.rsplit_once(':'))
            .and_then(|(_, port)| port.parse().ok())
            .ok_or_else(|| malformed(line))?;
        port_of_id.insert(*id, port);
        let gone = ["fail", "fail?", "handshake", "noaddr"];
        if flags.split(',').any(|flag| gone.contains(&flag)) {
            continue;
        }
        let mut ranges = Vec::new();
        // `[slot->-id]` / `[slot-<-id]`: a migration this node takes part in, not ownership.
        for range in slots.iter().filter(|slot| !slot.starts_with('[')) {
            let (first, last) = range.split_once('-').unwrap_or((range, range));
            let parse = |slot: &str| slot.parse::<u16>().map_err(|_| malformed(line));
            ranges.push((parse(first)?, parse(last)?));
        }
        ranges.sort_unstable();
        nodes.push((port, *id, *primary, ranges));
    }
    nodes
        .into_iter()
        .map(|(port, id, primary, slots)| {
            let primary = match primary {
                "-" => None,
                primary => Some(*port_of_id.get(primary).ok_or_else(|| {
                    Error::Redis(format!("{id}'s primary {primary} is not listed"))
                })?),
            };
            let node = NodeView {
                id: id.to_owned(),
                primary,
                slots,
            };
            Ok((port, node))
        })
        .collect()
}

/// The primary that owns `slot` in `view`.
fn owner_in(view: &View, slot: u16) -> Result<u16> {
    view.iter()
        .find(|(_, node)| {
            node.primary.is_none()
                && node
                    .slots
                    .iter()
                    .any(|&(first, last)| (first..=last).contains(&slot))
        })
        .map(|(port, _)| *port)
        .ok_or_else(|| Error::Redis(format!("no node owns slot {slot}:\n{}", describe(view))))
}

/// The replicas of the node on `port` in `view`.
fn replicas_in(view: &View, port: u16) -> Vec<u16> {
    view.iter()
        .filter(|(_, node)| node.primary == Some(port))
        .map(|(port, _)| *port)
        .collect()
}

/// One line per node, for error messages: `7000 primary 0-5460` / `7003 replica of 7000`.
fn describe(view: &View) -> String {
    let mut text = String::new();
    for (port, node) in view {
        let _ = match node.primary {
            Some(primary) => writeln!(text, "  {port} replica of {primary}"),
            None => {
                let slots: Vec<String> = node
                    .slots
                    .iter()
                    .map(|&(first, last)| {
                        if first == last {
                            first.to_string()
                        } else {
                            format!("{first}-{last}")
                        }
                    })
                    .collect();
                writeln!(text, "  {port} primary {}", slots.join(" "))
            }
        };
    }
    text
}

/// A free port on 127.0.0.1 whose cluster bus port (port + 10000) is free too.
fn free_port_with_bus() -> Result<u16> {
    for _ in 0..100 {
        let port = free_port()?;
        if let Some(bus) = port.checked_add(BUS_PORT_OFFSET)
            && std::net::TcpListener::bind(("127.0.0.1", bus)).is_ok()
        {
            return Ok(port);
        }
    }
    Err(Error::Io(std::io::Error::new(
        std::io::ErrorKind::AddrNotAvailable,
        "no free port with a free bus port (port + 10000)",
    )))
}

/// CRC16-CCITT (XMODEM), as Redis Cluster hashes keys (the `crc16` crate, as the server).
fn crc16_xmodem(bytes: &[u8]) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hash_to_the_slots_redis_gives_them() {
        // The check value of CRC16/XMODEM, and `CLUSTER KEYSLOT` of a Redis 7.0.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31c3);
        assert_eq!(RedisCluster::slot_of("foo"), 12182);
        assert_eq!(RedisCluster::slot_of("bar"), 5061);
        assert_eq!(RedisCluster::slot_of(""), 0);
        assert_eq!(
            RedisCluster::slot_of("{user1000}.following"),
            RedisCluster::slot_of("{user1000}.followers")
        );
        assert_eq!(
            RedisCluster::slot_of("{user1000}.following"),
            RedisCluster::slot_of("user1000")
        );
        // An empty tag: the whole key.
        assert_eq!(
            RedisCluster::slot_of("foo{}{bar}"),
            crc16_xmodem(b"foo{}{bar}") % SLOTS
        );
        assert_ne!(
            RedisCluster::slot_of("foo{}{bar}"),
            RedisCluster::slot_of("bar")
        );
        // The first `{` and the first `}` after it.
        assert_eq!(
            RedisCluster::slot_of("foo{{bar}}zap"),
            crc16_xmodem(b"{bar") % SLOTS
        );
        assert_eq!(
            RedisCluster::slot_of("foo{bar}{zap}"),
            RedisCluster::slot_of("bar")
        );
        assert_eq!(
            RedisCluster::slot_of("foo{bar"),
            crc16_xmodem(b"foo{bar") % SLOTS
        );
    }

    #[test]
    fn cluster_nodes_text_becomes_a_view() {
        let text = "\
            aaa 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 [5461->-bbb]\n\
            bbb 127.0.0.1:30002@40002,host master - 0 1 2 connected 5461 5462-10922\n\
            ccc 127.0.0.1:30003@40003 master,fail - 0 1 3 disconnected\n\
            ddd 127.0.0.1:30004@40004 slave aaa 0 1 1 connected\n\
            eee 127.0.0.1:30005@40005 slave ccc 0 1 3 connected 10923-16383\n";
        let view = parse_nodes(text).unwrap();
        assert_eq!(
            view.keys().copied().collect::<Vec<_>>(),
            [30001, 30002, 30004, 30005]
        );
        assert_eq!(view[&30001].slots, [(0, 5460)]);
        assert_eq!(view[&30002].slots, [(5461, 5461), (5462, 10922)]);
        assert_eq!(view[&30004].primary, Some(30001));
        assert_eq!(view[&30005].primary, Some(30003));
        assert_eq!(owner_in(&view, 5461).unwrap(), 30002);
        assert_eq!(owner_in(&view, 0).unwrap(), 30001);
        // A replica's slots are not ownership.
        assert!(owner_in(&view, 16000).is_err());
        assert_eq!(replicas_in(&view, 30001), [30004]);
    }
}
