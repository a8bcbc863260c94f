//! The command connections: a pool of [`ConnectionManager`]s on one Redis, or one
//! [`ClusterConnection`] to a Redis Cluster, behind one [`Conn`] that scripts and commands
//! run on either way.
//!
//! The cluster connection is redis-rs's: it routes each command by its first key (a
//! script by its first `KEYS` entry, all of one room's slot), follows `MOVED` and `ASK`
//! redirections, and refreshes its slot map when a node answers for a slot it no longer
//! holds. Subscriptions are not made on it (see `shards`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Client, Cmd, IntoConnectionInfo, Pipeline, ProtocolVersion, RedisFuture, Value};

/// How long connecting to a Redis may take.
const CONNECT_TIMEOUT: Duration = super::CONNECT_TIMEOUT;
/// How long Redis may take to answer a command on a live connection (see
/// `PUBLISH_DEADLINE`).
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);

/// Where commands go.
pub(super) enum Commands {
    /// One Redis: connections used in turn.
    Single {
        pool: Vec<ConnectionManager>,
        next: AtomicUsize,
    },
    /// A Redis Cluster: one connection per node, multiplexed, behind one handle.
    Cluster(ClusterConnection),
}

/// A connection to run a command on.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Commands {
    /// `config.redis_pool_size` connections to the Redis at `url`, made lazily: the server
    /// starts while Redis is unreachable.
    pub(super) fn single(url: &str, pool_size: usize) -> redis::RedisResult<Commands> {
        let info = url.into_connection_info()?;
        // RESP3, so a dropped connection is noticed at once rather than by the next command.
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = Client::open(info.set_redis_settings(resp3))?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let pool = (0..pool_size)
            .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), manager.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Commands::Single {
            pool,
            next: AtomicUsize::new(0),
        })
    }

    /// A connection to the Redis Cluster that the seed `nodes` belong to, made lazily.
    pub(super) fn cluster(nodes: &[&str]) -> redis::RedisResult<Commands> {
        let infos = nodes
            .iter()
            .map(|node| node.into_connection_info())
            .collect::<Result<Vec<_>, _>>()?;
        let client = ClusterClientBuilder::new(infos)
            .use_protocol(ProtocolVersion::RESP3)
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            // Redirections and a refreshed slot map need a few attempts during a failover
            // or a migration; past them the request is answered `unavailable`.
            .retries(3)
            .build()?;
        Ok(Commands::Cluster(
            client.get_pending_async_connection_with_config(ClusterConfig::new()),
        ))
    }

    /// The next connection.
    pub(super) fn conn(&self) -> Conn {
        match self {
            Commands::Single { pool, next } => {
                let i = next.fetch_add(1, Ordering::Relaxed) % pool.len();
                Conn::Single(pool[i].clone())
            }
            Commands::Cluster(conn) => Conn::Cluster(conn.clone()),
        }
    }

    /// Every connection, to check them all.
    pub(super) fn all(&self) -> Vec<Conn> {
        match self {
            Commands::Single { pool, .. } => pool.iter().cloned().map(Conn::Single).collect(),
            Commands::Cluster(conn) => vec![Conn::Cluster(conn.clone())],
        }
    }
}

impl Conn {
    /// Redis WAIT on the primary of `slot`, over this connection: how many replicas
    /// acknowledged every write made on it, waiting up to `timeout_ms` for `replicas`.
    pub(super) async fn wait(
        &mut self,
        slot: u16,
        replicas: u32,
        timeout_ms: u64,
    ) -> redis::RedisResult<i64> {
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(timeout_ms);
        match self {
            Conn::Single(conn) => wait.query_async(conn).await,
            Conn::Cluster(conn) => {
                // On the slot's primary: redis-rs would ask every primary and take the least.
                let route = Route::new(slot, SlotAddr::Master);
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                let reply = conn.route_command(wait, routing).await?;
                Ok(redis::from_redis_value(reply)?)
            }
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}
