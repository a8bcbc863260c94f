//! Redis going back in time: a failover to a replica that lagged, or a restart from a
//! snapshot, brings rooms back at a lower sequence in what was the same epoch. No client may
//! then drop new messages as already seen: every acknowledged message is delivered, or the
//! members are told they missed some (`Joined` with `recovery: missed`, in a new epoch).

use chorus_protocol::{ErrorCode, Position, Recovery, ServerMessage};
use chorus_test_harness::balancer::Balancer;
use chorus_test_harness::redis::RedisServer;
use tokio::time::Instant;

use crate::instances::{Client, Instance, WAIT, is_message, position_of, redis_command, seqs};

/// Make the Redis on `port` a replica of the one on `primary`, and wait until it has
/// everything.
async fn replicate(port: u16, primary: u16) {
    let reply = redis_command(port, &["REPLICAOF", "127.0.0.1", &primary.to_string()]).await;
    assert_eq!(reply, "OK");
    let deadline = Instant::now() + WAIT;
    while !redis_command(port, &["INFO", "replication"])
        .await
        .contains("master_link_status:up")
    {
        assert!(Instant::now() < deadline, "the replica never synced");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The unsolicited `Joined` an instance sends when the room's history changed under it
/// (messages of the old history still on their way before it are passed over: nothing of
/// the new one can come first).
async fn told(client: &mut Client) -> (Position, Recovery) {
    let joined = client
        .recv_until(|m| matches!(m, ServerMessage::Joined { .. }))
        .await;
    let (position, recovery, _) = position_of(&joined);
    (position, recovery)
}

/// Publish `ids` over HTTP on `instance`, each acknowledged: their seqs.
async fn publish_over_http(instance: &Instance, room: &str, ids: std::ops::RangeInclusive<u64>) {
    for id in ids {
        let (status, answer) = instance.http_publish(room, id, "after").await;
        assert_eq!(status, 200, "{answer}");
    }
}

#[tokio::test]
async fn a_failover_to_a_lagging_replica_moves_rooms_to_a_new_epoch_and_loses_nothing_silently() {
    let mut primary = RedisServer::start().await.unwrap();
    let replica = RedisServer::start().await.unwrap();
    replicate(replica.port, primary.port).await;
    // The instances reach Redis through a relay that follows the failover.
    let proxy = Balancer::open(vec![primary.port]).await.unwrap();
    let url = format!("redis://127.0.0.1:{}", proxy.port);
    let instances = Instance::many(&url, 2).await;
    let room = "chat:failover";
    let mut alice = instances[0].connect("alice").await;
    let (start, _, _) = position_of(&alice.join(room, None).await);
    let mut bob = instances[1].connect("bob").await;
    bob.join(room, None).await;
    for id in 1..=5 {
        alice.publish(room, id, "replicated").await;
        assert_eq!(alice.ack(id).await, id);
    }
    // (WAIT on a connection of its own would not wait for the instances' writes.)
    let deadline = Instant::now() + WAIT;
    while redis_command(
        replica.port,
        &["HGET", "chorus:{chat:failover}:meta", "seq"],
    )
    .await
        != "5"
    {
        assert!(Instant::now() < deadline, "the replica never got 1..=5");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // The replica stops following: what the primary acknowledges from now on is what a
    // lagging replica would not have when it is promoted.
    assert_eq!(
        redis_command(replica.port, &["REPLICAOF", "NO", "ONE"]).await,
        "OK"
    );
    for id in 6..=10 {
        alice.publish(room, id, "lost").await;
        assert_eq!(alice.ack(id).await, id);
    }
    let seen = bob.recv_through(|m| is_message(m, 10)).await;
    assert_eq!(seqs(&seen), (1..=10).collect::<Vec<_>>());

    // Failover: new connections go to the replica, and the primary dies.
    proxy.set_backends(vec![replica.port]);
    primary.kill().await.unwrap();

    // Each instance tells its members, in a new epoch, before any message of it: the room
    // continues from what the replica had (5).
    let mut epochs = Vec::new();
    for client in [&mut alice, &mut bob] {
        let (position, recovery) = told(client).await;
        assert_ne!(position.epoch, start.epoch, "a new epoch");
        assert_eq!((position.seq, recovery), (5, Recovery::Missed));
        epochs.push(position.epoch);
    }
    assert_eq!(epochs[0], epochs[1], "one new epoch for everyone");
    for instance in &instances {
        assert!(instance.metric("chorus_epoch_resets_total").await >= 1.0);
    }

    // Six publishes acknowledged as 6..=11 of the new epoch reach every member, none taken
    // for a number already seen.
    publish_over_http(&instances[1], room, 101..=106).await;
    for client in [&mut alice, &mut bob] {
        let seen = client.recv_through(|m| is_message(m, 106)).await;
        assert_eq!(seqs(&seen), (6..=11).collect::<Vec<_>>());
    }

    // A client resuming from what it saw of the old epoch, on either instance, is told
    // too, and gets what it lacks: past the common part (5) everything of the new epoch.
    let mut carol = instances[0].connect("carol").await;
    let old = |seq| Position {
        epoch: start.epoch,
        seq,
    };
    let (position, recovery, _) = position_of(&carol.join(room, Some(old(10))).await);
    assert_eq!(
        position,
        Position {
            epoch: epochs[0],
            seq: 11
        }
    );
    assert_eq!(recovery, Recovery::Missed);
    let seen = carol.recv_through(|m| is_message(m, 106)).await;
    assert_eq!(seqs(&seen), (6..=11).collect::<Vec<_>>());
    // From inside the common part: the rest of it, then the new messages.
    let mut dave = instances[1].connect("dave").await;
    let (_, recovery, _) = position_of(&dave.join(room, Some(old(3))).await);
    assert_eq!(recovery, Recovery::Missed);
    let seen = dave.recv_through(|m| is_message(m, 106)).await;
    assert_eq!(seqs(&seen), (4..=11).collect::<Vec<_>>());
    // A resend of a message the replica had is recognised across the epochs: its seq, no
    // second message. One the replica never had is published (again) as new.
    alice.publish(room, 3, "replicated").await;
    assert_eq!(alice.ack(3).await, 3);
    alice.publish(room, 7, "lost").await;
    assert_eq!(alice.ack(7).await, 12);
    let seen = bob.recv_through(|m| is_message(m, 7)).await;
    assert_eq!(seqs(&seen), vec![12]);
    drop(replica);
    for instance in instances {
        instance.stop().await;
    }
}

#[tokio::test]
async fn with_wait_replicas_a_publish_is_acknowledged_only_once_a_replica_has_it() {
    let primary = RedisServer::start().await.unwrap();
    let mut replica = RedisServer::start().await.unwrap();
    replicate(replica.port, primary.port).await;
    let instance = Instance::start(&primary.url(), |config| {
        config.redis_wait_replicas = 1;
        config.redis_wait_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    instance.wait_health("ok").await;
    let room = "chat:durable";
    let mut alice = instance.connect("alice").await;
    alice.join(room, None).await;
    alice.publish(room, 1, "replicated").await;
    assert_eq!(alice.ack(1).await, 1);
    assert_eq!(
        redis_command(replica.port, &["XLEN", "chorus:{chat:durable}:log"]).await,
        "1",
        "the replica has it once it is acknowledged"
    );

    // Without a replica, a publish is delivered but not acknowledged: the client is told
    // it may be lost, and a resend of it is not published twice.
    replica.kill().await.unwrap();
    alice.publish(room, 2, "unreplicated").await;
    assert_eq!(alice.outcome(2).await, Err(ErrorCode::Unavailable.as_u16()));
    alice.publish(room, 2, "unreplicated").await;
    assert_eq!(alice.outcome(2).await, Err(ErrorCode::Unavailable.as_u16()));

    // A replica again: the resend is acknowledged with the original's seq.
    replica.start_again().await.unwrap();
    replicate(replica.port, primary.port).await;
    alice.publish(room, 2, "unreplicated").await;
    assert_eq!(alice.ack(2).await, 2);
    alice.publish(room, 3, "replicated").await;
    assert_eq!(alice.ack(3).await, 3);
    let seen = alice.recv_through(|m| is_message(m, 3)).await;
    assert_eq!(seqs(&seen), vec![3], "one message 2 and one message 3");
    instance.stop().await;
}

#[tokio::test]
async fn a_redis_restarted_from_an_older_snapshot_tells_members_and_resumes_instead_of_dropping() {
    let mut redis = RedisServer::start_persistent().await.unwrap();
    let instance = Instance::start(&redis.url(), |_| {}).await;
    instance.wait_health("ok").await;
    let room = "chat:snapshot";
    let mut alice = instance.connect("alice").await;
    let (start, _, _) = position_of(&alice.join(room, None).await);
    for id in 1..=5 {
        alice.publish(room, id, "saved").await;
        assert_eq!(alice.ack(id).await, id);
    }
    assert_eq!(redis_command(redis.port, &["SAVE"]).await, "OK");
    for id in 6..=10 {
        alice.publish(room, id, "lost").await;
        assert_eq!(alice.ack(id).await, id);
    }
    // Redis dies and comes back from the snapshot: the room is at 5 again.
    redis.kill().await.unwrap();
    redis.start_again().await.unwrap();
    let (position, recovery) = told(&mut alice).await;
    assert_ne!(position.epoch, start.epoch);
    assert_eq!((position.seq, recovery), (5, Recovery::Missed));

    // Six publishes, acknowledged as 6..=11: the member gets every one.
    publish_over_http(&instance, room, 101..=106).await;
    let seen = alice.recv_through(|m| is_message(m, 106)).await;
    assert_eq!(seqs(&seen), (6..=11).collect::<Vec<_>>());
    // A client resuming from 10 of the old epoch is told, and gets them too.
    let mut bob = instance.connect("bob").await;
    let since = Position {
        epoch: start.epoch,
        seq: 10,
    };
    let (position, recovery, _) = position_of(&bob.join(room, Some(since)).await);
    assert_eq!((position.seq, recovery), (11, Recovery::Missed));
    let seen = bob.recv_through(|m| is_message(m, 106)).await;
    assert_eq!(seqs(&seen), (6..=11).collect::<Vec<_>>());
    instance.stop().await;
}

#[tokio::test]
async fn a_publish_refused_while_redis_stalls_is_never_delivered_later() {
    let redis = RedisServer::start().await.unwrap();
    let instance = Instance::start(&redis.url(), |_| {}).await;
    instance.wait_health("ok").await;
    let room = "chat:stalled";
    let mut alice = instance.connect("alice").await;
    alice.join(room, None).await;
    // Redis stops answering for longer than a publish may wait to run (2 s), not as long
    // as the instance waits for its answer (3 s).
    let port = redis.port;
    let stall = tokio::spawn(async move { redis_command(port, &["DEBUG", "SLEEP", "2.5"]).await });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    alice.publish(room, 1, "refused").await;
    assert_eq!(alice.outcome(1).await, Err(ErrorCode::Unavailable.as_u16()));
    assert_eq!(stall.await.unwrap(), "OK");

    // Redis runs the stalled call now, and refuses it: the next publish is the room's
    // first message, and the refused one never reaches anyone.
    let deadline = Instant::now() + WAIT;
    let seq = loop {
        alice.publish(room, 2, "accepted").await;
        match alice.outcome(2).await {
            Ok(seq) => break seq,
            Err(code) => assert_eq!(code, ErrorCode::Unavailable.as_u16()),
        }
        assert!(Instant::now() < deadline, "never accepted again");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(seq, 1, "the refused publish took no sequence number");
    let seen = alice.recv_through(|m| is_message(m, 2)).await;
    assert!(!seen.iter().any(|m| is_message(m, 1)), "{seen:?}");
    instance.stop().await;
}
