//! The test Redis Cluster: it starts with every node agreeing, routes each key to the
//! primary of its slot, promotes a replica when its primary is killed or on a manual
//! failover, and moves a slot with its keys, even while a client writes to it.
//!
//! Each test starts a cluster of its own: 3 primaries with a replica each.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use chorus_test_harness::redis::{Connection, Reply, command, info_field};
use chorus_test_harness::redis_cluster::RedisCluster;
use tokio::time::Instant;

/// How long a test waits for a client's progress.
const WAIT: Duration = Duration::from_secs(10);

fn ok() -> Reply {
    Reply::Status("OK".into())
}

fn bulk(text: &str) -> Reply {
    Reply::Bulk(text.as_bytes().to_vec())
}

/// The port named by a `-MOVED <slot> <ip>:<port>` or `-ASK ...` error, if `reply` is one
/// of `kind`.
fn redirect(reply: &Reply, kind: &str) -> Option<(u16, u16)> {
    let Reply::Error(error) = reply else {
        return None;
    };
    let mut words = error.split(' ');
    if words.next()? != kind {
        return None;
    }
    let slot = words.next()?.parse().ok()?;
    let port = words.next()?.rsplit_once(':')?.1.parse().ok()?;
    Some((slot, port))
}

async fn cluster_state(port: u16) -> String {
    let info = command(port, &["CLUSTER", "INFO"]).await.unwrap();
    let info = info.into_text().unwrap();
    info_field(&info, "cluster_state").unwrap().to_owned()
}

#[tokio::test]
async fn a_cluster_starts_and_every_node_agrees() {
    let cluster = RedisCluster::start(3, 1).await.unwrap();
    let ports = cluster.node_ports();
    assert_eq!(ports.len(), 6);
    let seeds: Vec<String> = ports
        .iter()
        .map(|port| format!("redis://127.0.0.1:{port}"))
        .collect();
    assert_eq!(cluster.seeds(), seeds.join(","));

    let primaries = cluster.primaries().await.unwrap();
    assert_eq!(primaries.len(), 3);
    let mut roles: Vec<u16> = primaries.clone();
    for &primary in &primaries {
        let replicas = cluster.replicas_of(primary).await.unwrap();
        assert_eq!(replicas.len(), 1, "replicas of {primary}: {replicas:?}");
        roles.extend(replicas);
    }
    roles.sort_unstable();
    let mut sorted = ports.clone();
    sorted.sort_unstable();
    assert_eq!(roles, sorted);

    let slots = command(ports[0], &["CLUSTER", "SLOTS"]).await.unwrap();
    for &port in &ports {
        let info = command(port, &["CLUSTER", "INFO"]).await.unwrap();
        let info = info.into_text().unwrap();
        assert_eq!(info_field(&info, "cluster_state"), Some("ok"), "{port}");
        assert_eq!(info_field(&info, "cluster_slots_assigned"), Some("16384"));
        assert_eq!(info_field(&info, "cluster_known_nodes"), Some("6"));
        assert_eq!(command(port, &["CLUSTER", "SLOTS"]).await.unwrap(), slots);
        assert_eq!(command(port, &["DEBUG", "SLEEP", "0"]).await.unwrap(), ok());
    }

    // The harness hashes keys as Redis does.
    let keys = [
        "foo",
        "bar",
        "",
        "room:lobby",
        "{user1000}.following",
        "{user1000}.followers",
        "foo{}{bar}",
        "foo{{bar}}zap",
        "foo{bar}{zap}",
        "{",
        "}{",
        "chorus:{room-7}:history",
        "ünïcode",
    ];
    for key in keys {
        let slot = command(ports[0], &["CLUSTER", "KEYSLOT", key])
            .await
            .unwrap();
        let expected = i64::from(RedisCluster::slot_of(key));
        assert_eq!(slot, Reply::Int(expected), "{key:?}");
    }
    assert_eq!(RedisCluster::slot_of("foo"), 12182);
}

#[tokio::test]
async fn commands_reach_the_owner_of_each_slot() {
    let cluster = RedisCluster::start(3, 1).await.unwrap();
    let mut owners = std::collections::BTreeSet::new();
    for i in 0..300 {
        let key = format!("key:{i}");
        let slot = RedisCluster::slot_of(&key);
        let owner = cluster.owner_of(slot).await.unwrap();
        owners.insert(owner);
        assert_eq!(
            command(owner, &["SET", &key, &i.to_string()])
                .await
                .unwrap(),
            ok()
        );
        assert_eq!(
            command(owner, &["GET", &key]).await.unwrap(),
            bulk(&i.to_string())
        );
        // Any other node sends the client to the owner.
        for other in cluster.node_ports().into_iter().filter(|&p| p != owner) {
            let moved = command(other, &["GET", &key]).await.unwrap();
            assert_eq!(redirect(&moved, "MOVED"), Some((slot, owner)), "{moved:?}");
        }
    }
    assert_eq!(owners.len(), 3);

    // Shard channels live on their slot's owner; each node counts its own subscribers.
    let channel = "room:lobby";
    let owner = cluster
        .owner_of(RedisCluster::slot_of(channel))
        .await
        .unwrap();
    let mut subscriber = Connection::open(owner).await.unwrap();
    let subscribed = subscriber.command(&["SSUBSCRIBE", channel]).await.unwrap();
    assert_eq!(
        subscribed,
        Reply::Array(vec![bulk("ssubscribe"), bulk(channel), Reply::Int(1)])
    );
    assert_eq!(cluster.shard_numsub(owner, channel).await.unwrap(), 1);
    for other in cluster.node_ports().into_iter().filter(|&p| p != owner) {
        assert_eq!(cluster.shard_numsub(other, channel).await.unwrap(), 0);
    }
    drop(subscriber);
    let deadline = Instant::now() + WAIT;
    while cluster.shard_numsub(owner, channel).await.unwrap() != 0 {
        assert!(Instant::now() < deadline, "the subscriber is still counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn killing_a_primary_promotes_its_replica_with_acknowledged_writes() {
    let mut cluster = RedisCluster::start(3, 1).await.unwrap();
    let key = "survivor";
    let slot = RedisCluster::slot_of(key);
    let old = cluster.owner_of(slot).await.unwrap();
    let replicas = cluster.replicas_of(old).await.unwrap();
    // `WAIT` waits for the writes made on its own connection.
    let mut connection = Connection::open(old).await.unwrap();
    assert_eq!(connection.command(&["SET", key, "1"]).await.unwrap(), ok());
    let acked = connection.command(&["WAIT", "1", "1000"]).await.unwrap();
    assert_eq!(acked, Reply::Int(1));

    let started = Instant::now();
    let new = cluster.kill_primary_of(slot).await.unwrap();
    eprintln!("failover after a kill took {:?}", started.elapsed());

    assert!(replicas.contains(&new), "{new} is not one of {replicas:?}");
    assert!(!cluster.node_ports().contains(&old));
    assert_eq!(cluster.node_ports().len(), 5);
    assert_eq!(cluster.owner_of(slot).await.unwrap(), new);
    assert_eq!(command(new, &["GET", key]).await.unwrap(), bulk("1"));
    assert_eq!(command(new, &["SET", key, "2"]).await.unwrap(), ok());
    for port in cluster.node_ports() {
        assert_eq!(cluster_state(port).await, "ok", "{port}");
    }
    assert!(!cluster.seeds().contains(&format!(":{old}")));
}

#[tokio::test]
async fn a_manual_failover_swaps_a_primary_and_its_replica() {
    let cluster = RedisCluster::start(3, 1).await.unwrap();
    let key = "swapped";
    let slot = RedisCluster::slot_of(key);
    let old = cluster.owner_of(slot).await.unwrap();
    assert_eq!(command(old, &["SET", key, "1"]).await.unwrap(), ok());

    let new = cluster.failover(slot).await.unwrap();

    assert_ne!(new, old);
    assert_eq!(cluster.owner_of(slot).await.unwrap(), new);
    assert_eq!(cluster.replicas_of(new).await.unwrap(), [old]);
    assert_eq!(command(new, &["GET", key]).await.unwrap(), bulk("1"));
    let moved = command(old, &["SET", key, "2"]).await.unwrap();
    assert_eq!(redirect(&moved, "MOVED"), Some((slot, new)), "{moved:?}");
    assert_eq!(cluster.node_ports().len(), 6);
}

#[tokio::test]
async fn migrating_a_slot_moves_its_keys_to_the_target() {
    let cluster = RedisCluster::start(3, 1).await.unwrap();
    let slot = RedisCluster::slot_of("{moved}");
    let from = cluster.owner_of(slot).await.unwrap();
    let to = cluster.another_primary(from).await.unwrap();
    // More than one `MIGRATE` batch.
    let keys: Vec<String> = (0..250).map(|i| format!("{{moved}}:{i}")).collect();
    for key in &keys {
        assert_eq!(command(from, &["SET", key, key]).await.unwrap(), ok());
    }
    let other_key = "key:outside";
    let other_owner = cluster
        .owner_of(RedisCluster::slot_of(other_key))
        .await
        .unwrap();
    assert_eq!(
        command(other_owner, &["SET", other_key, "x"])
            .await
            .unwrap(),
        ok()
    );

    cluster.migrate_slot(slot, to).await.unwrap();

    assert_eq!(cluster.owner_of(slot).await.unwrap(), to);
    let count = |port: u16| async move {
        command(port, &["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()])
            .await
            .unwrap()
    };
    assert_eq!(count(to).await, Reply::Int(250));
    assert_eq!(count(from).await, Reply::Int(0));
    for key in &keys {
        assert_eq!(command(to, &["GET", key]).await.unwrap(), bulk(key));
    }
    for port in cluster.node_ports().into_iter().filter(|&p| p != to) {
        let moved = command(port, &["GET", &keys[0]]).await.unwrap();
        assert_eq!(
            redirect(&moved, "MOVED"),
            Some((slot, to)),
            "{port}: {moved:?}"
        );
    }
    // Other slots stay where they were.
    assert_eq!(
        command(other_owner, &["GET", other_key]).await.unwrap(),
        bulk("x")
    );
}

/// SET like a cluster client: to the node last known to own the slot, following `-MOVED`
/// (and remembering it) and `-ASK` (`ASKING` first, just for this command). Counts ASKs.
async fn cluster_set(owner: &mut u16, asks: &AtomicUsize, key: &str, value: &str) -> Reply {
    for _ in 0..5 {
        let reply = command(*owner, &["SET", key, value]).await.unwrap();
        if let Some((_, port)) = redirect(&reply, "MOVED") {
            *owner = port;
            continue;
        }
        if let Some((_, port)) = redirect(&reply, "ASK") {
            asks.fetch_add(1, Ordering::Relaxed);
            let mut connection = Connection::open(port).await.unwrap();
            assert_eq!(connection.command(&["ASKING"]).await.unwrap(), ok());
            return connection.command(&["SET", key, value]).await.unwrap();
        }
        return reply;
    }
    panic!("redirected more than 5 times for {key}");
}

#[tokio::test]
async fn a_slot_migrates_while_a_client_writes_to_it() {
    let cluster = RedisCluster::start(3, 1).await.unwrap();
    let slot = RedisCluster::slot_of("{live}");
    let from = cluster.owner_of(slot).await.unwrap();
    let to = cluster.another_primary(from).await.unwrap();

    // A writer that creates `{live}:0`, `{live}:1`, ... and overwrites `{live}:counter`,
    // one acknowledged write after the other, until stopped.
    let written = Arc::new(AtomicUsize::new(0));
    let asks = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (written, asks, stop) = (written.clone(), asks.clone(), stop.clone());
        async move {
            let mut owner = from;
            while !stop.load(Ordering::Relaxed) {
                let i = written.load(Ordering::Relaxed);
                let value = i.to_string();
                let reply = cluster_set(&mut owner, &asks, &format!("{{live}}:{i}"), &value).await;
                assert_eq!(reply, ok(), "SET {{live}}:{i}");
                let reply = cluster_set(&mut owner, &asks, "{live}:counter", &value).await;
                assert_eq!(reply, ok(), "SET {{live}}:counter {i}");
                written.fetch_add(1, Ordering::Relaxed);
            }
            owner
        }
    });
    let wait_for_writes = |n: usize| {
        let written = written.clone();
        async move {
            let target = written.load(Ordering::Relaxed) + n;
            let deadline = Instant::now() + WAIT;
            while written.load(Ordering::Relaxed) < target {
                assert!(Instant::now() < deadline, "the writer stalled");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };

    wait_for_writes(50).await;
    let migration = cluster.begin_migration(slot, to).await.unwrap();
    assert_eq!((migration.from, migration.to), (from, to));
    // New keys now go to the target (`-ASK`); the source keeps the keys it has until they
    // are migrated. (The write under way when the migration began may have had its new
    // key created on the source.)
    wait_for_writes(20).await;
    let asked = asks.load(Ordering::Relaxed);
    assert!(asked >= 19, "{asked} writes asked");
    let moved = cluster.migrate_keys(&migration).await.unwrap();
    // At least the 50 keys written before and the counter.
    assert!(moved >= 51, "moved {moved}");
    wait_for_writes(20).await;
    cluster.finish_migration(&migration).await.unwrap();
    wait_for_writes(20).await;
    stop.store(true, Ordering::Relaxed);
    let last_owner = writer.await.unwrap();
    assert_eq!(last_owner, to);

    let n = written.load(Ordering::Relaxed);
    assert_eq!(cluster.owner_of(slot).await.unwrap(), to);
    let count = |port: u16| async move {
        command(port, &["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()])
            .await
            .unwrap()
    };
    assert_eq!(count(from).await, Reply::Int(0));
    assert_eq!(count(to).await, Reply::Int(i64::try_from(n).unwrap() + 1));
    for i in 0..n {
        let key = format!("{{live}}:{i}");
        assert_eq!(
            command(to, &["GET", &key]).await.unwrap(),
            bulk(&i.to_string())
        );
    }
    let last = (n - 1).to_string();
    assert_eq!(
        command(to, &["GET", "{live}:counter"]).await.unwrap(),
        bulk(&last)
    );
    eprintln!(
        "{n} writes during the migration, {} redirected with ASK",
        asks.load(Ordering::Relaxed)
    );
}
