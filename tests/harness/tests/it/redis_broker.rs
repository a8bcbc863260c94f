//! Several chorus-server instances sharing one Redis act as one server: messages, the HTTP
//! publish API, presence, typing, resume, history and deduplication work whichever instance
//! a client is on; a Redis outage degrades the instances without dropping their clients,
//! and they recover (with an epoch change when Redis lost the histories) without a restart.
//!
//! Each test starts its own `redis-server` ([`RedisServer`]) and real servers in-process
//! on 127.0.0.1:0, and talks to them over real WebSockets and HTTP.

use std::collections::HashMap;
use std::time::Duration;

use chorus_protocol::{Body, ClientMessage, ErrorCode, Position, Recovery, ServerMessage};
use chorus_server::Config;
use chorus_test_harness::link::Link;
use chorus_test_harness::redis::RedisServer;
use tokio::time::Instant;

use crate::instances::{Instance, WAIT, is_message, position_of, redis_command, seqs};

#[tokio::test]
async fn messages_published_on_every_instance_reach_every_member_once_in_one_order() {
    let redis = RedisServer::start().await.unwrap();
    let instances = Instance::many(&redis.url(), 3).await;
    let room = "chat:order";
    let mut clients = Vec::new();
    for (i, instance) in instances.iter().enumerate() {
        let mut client = instance.connect(&format!("user{i}")).await;
        client.join(room, None).await;
        clients.push(client);
    }
    const EACH: u64 = 20;
    // Everyone publishes at once, without waiting for acks.
    for (i, client) in clients.iter_mut().enumerate() {
        for n in 0..EACH {
            client
                .publish(room, 1000 * (i as u64 + 1) + n, &format!("{i}:{n}"))
                .await;
        }
    }
    let total = EACH * clients.len() as u64;
    let mut orders = Vec::new();
    for client in &mut clients {
        let mut order = Vec::new();
        while (order.len() as u64) < total {
            if let ServerMessage::Message { seq, id, .. } = client.recv().await {
                order.push((seq, id));
            }
        }
        let seqs: Vec<u64> = order.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "{}", client.user);
        orders.push(order);
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "every member saw the same messages in the same order"
    );
    // Nothing more: a last message is the next thing each member receives.
    clients[0].publish(room, 1, "last").await;
    for client in &mut clients {
        match client
            .recv_until(|m| matches!(m, ServerMessage::Message { .. }))
            .await
        {
            ServerMessage::Message { seq, id: 1, .. } => assert_eq!(seq, total + 1),
            other => panic!("expected the last message, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_http_publish_api_on_any_instance_reaches_members_on_all() {
    let redis = RedisServer::start().await.unwrap();
    let instances = Instance::many(&redis.url(), 3).await;
    let room = "news:api";
    let mut clients = Vec::new();
    for (i, instance) in instances.iter().enumerate() {
        let mut client = instance.connect(&format!("reader{i}")).await;
        client.join(room, None).await;
        clients.push(client);
    }
    for (i, instance) in instances.iter().enumerate() {
        let (status, answer) = instance
            .http_publish(room, 70 + i as u64, "from the api")
            .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["seq"], i as u64 + 1);
    }
    for client in &mut clients {
        let mut got = Vec::new();
        while got.len() < 3 {
            if let ServerMessage::Message {
                seq, id, sender, ..
            } = client.recv().await
            {
                assert_eq!(sender, "backend");
                got.push((seq, id));
            }
        }
        assert_eq!(got, vec![(1, 70), (2, 71), (3, 72)]);
    }
}

#[tokio::test]
async fn presence_across_instances_is_once_per_user() {
    let redis = RedisServer::start().await.unwrap();
    let instances = Instance::many(&redis.url(), 3).await;
    let room = "chat:presence";
    let mut bob = instances[2].connect("bob").await;
    bob.join(room, None).await;

    // Alice's first tab, on instance 0: one MemberJoined.
    let mut tab1 = instances[0].connect("alice").await;
    let (_, _, members) = position_of(&tab1.join(room, None).await);
    assert_eq!(members, vec!["alice", "bob"]);
    let event = bob
        .recv_until(|m| matches!(m, ServerMessage::MemberJoined { .. }))
        .await;
    assert!(matches!(event, ServerMessage::MemberJoined { user, .. } if user == "alice"));

    // Her second tab, on instance 1: no second MemberJoined, and she is listed once.
    let mut tab2 = instances[1].connect("alice").await;
    let (_, _, members) = position_of(&tab2.join(room, None).await);
    assert_eq!(members, vec!["alice", "bob"]);
    // A barrier: the channel is ordered, so an event sent before this message would come
    // before it.
    tab2.publish(room, 1, "barrier").await;
    let seen = bob.recv_through(|m| is_message(m, 1)).await;
    assert!(
        !seen
            .iter()
            .any(|m| matches!(m, ServerMessage::MemberJoined { .. })),
        "{seen:?}"
    );

    // Closing one tab: no MemberLeft.
    tab1.close().await;
    tab2.publish(room, 2, "barrier").await;
    let seen = bob.recv_through(|m| is_message(m, 2)).await;
    assert!(
        !seen
            .iter()
            .any(|m| matches!(m, ServerMessage::MemberLeft { .. })),
        "{seen:?}"
    );

    // Closing the other: exactly one MemberLeft.
    tab2.close().await;
    let mut carol = instances[0].connect("carol").await;
    let (_, _, members) = position_of(&carol.join(room, None).await);
    assert_eq!(members, vec!["bob", "carol"]);
    carol.publish(room, 3, "barrier").await;
    let seen = bob.recv_through(|m| is_message(m, 3)).await;
    let left: Vec<_> = seen
        .iter()
        .filter(|m| matches!(m, ServerMessage::MemberLeft { .. }))
        .collect();
    assert!(
        matches!(&left[..], [ServerMessage::MemberLeft { user, .. }] if user == "alice"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn typing_is_relayed_across_instances_but_not_to_the_typist() {
    let redis = RedisServer::start().await.unwrap();
    let instances = Instance::many(&redis.url(), 2).await;
    let room = "chat:typing";
    let mut alice = instances[0].connect("alice").await;
    alice.join(room, None).await;
    let mut alice_other_tab = instances[1].connect("alice").await;
    alice_other_tab.join(room, None).await;
    let mut bob = instances[1].connect("bob").await;
    bob.join(room, None).await;

    alice
        .send(ClientMessage::TypingStarted { room: room.into() })
        .await;
    let typing = bob
        .recv_until(|m| matches!(m, ServerMessage::Typing { .. }))
        .await;
    assert!(matches!(typing, ServerMessage::Typing { user, typing: true, .. } if user == "alice"));
    alice
        .send(ClientMessage::TypingStopped { room: room.into() })
        .await;
    let typing = bob
        .recv_until(|m| matches!(m, ServerMessage::Typing { .. }))
        .await;
    assert!(matches!(typing, ServerMessage::Typing { user, typing: false, .. } if user == "alice"));

    // Alice's own tabs never see her indicator.
    bob.publish(room, 9, "barrier").await;
    for tab in [&mut alice, &mut alice_other_tab] {
        let seen = tab.recv_through(|m| is_message(m, 9)).await;
        assert!(
            !seen
                .iter()
                .any(|m| matches!(m, ServerMessage::Typing { .. })),
            "{seen:?}"
        );
    }
}

#[tokio::test]
async fn a_resume_on_another_instance_recovers_what_was_missed() {
    let redis = RedisServer::start().await.unwrap();
    let instances = Instance::many(&redis.url(), 3).await;
    let room = "chat:resume";
    let mut bob = instances[1].connect("bob").await;
    bob.join(room, None).await;
    let mut alice = instances[0].connect("alice").await;
    let (start, _, _) = position_of(&alice.join(room, None).await);
    for id in 1..=5 {
        bob.publish(room, id, "before").await;
        bob.ack(id).await;
    }
    let seen = alice.recv_through(|m| is_message(m, 5)).await;
    assert_eq!(seqs(&seen), vec![1, 2, 3, 4, 5]);
    alice.close().await;

    for id in 6..=8 {
        bob.publish(room, id, "while away").await;
        bob.ack(id).await;
    }
    let mut alice = instances[2].connect("alice").await;
    let since = Position {
        epoch: start.epoch,
        seq: 5,
    };
    let (position, recovery, _) = position_of(&alice.join(room, Some(since)).await);
    assert_eq!(recovery, Recovery::Recovered);
    assert_eq!(
        position,
        Position {
            epoch: start.epoch,
            seq: 8
        }
    );
    bob.publish(room, 9, "live").await;
    let seen = alice.recv_through(|m| is_message(m, 9)).await;
    assert_eq!(
        seqs(&seen),
        vec![6, 7, 8, 9],
        "replay, then live, each once"
    );

    // A position from a history that never was answers Missed, with what is retained.
    let mut carol = instances[1].connect("carol").await;
    let stranger = Position {
        epoch: start.epoch ^ 1,
        seq: 3,
    };
    let (_, recovery, _) = position_of(&carol.join(room, Some(stranger)).await);
    assert_eq!(recovery, Recovery::Missed);
    let seen = carol.recv_through(|m| is_message(m, 9)).await;
    assert_eq!(seqs(&seen), (1..=9).collect::<Vec<_>>());
}

#[tokio::test]
async fn history_pages_come_from_any_instance() {
    let redis = RedisServer::start().await.unwrap();
    let instances = Instance::many(&redis.url(), 3).await;
    let room = "chat:history";
    for id in 1..=25 {
        let (status, answer) = instances[0].http_publish(room, id, &format!("m{id}")).await;
        assert_eq!(status, 200, "{answer}");
    }
    let mut reader = instances[1].connect("reader").await;
    let page = |m: ServerMessage| match m {
        ServerMessage::History {
            position,
            messages,
            more,
            ..
        } => (
            position,
            messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
            more,
        ),
        other => panic!("expected a page, got {other:?}"),
    };
    let (position, newest, more) = page(reader.history(1, room, None, 10).await);
    assert_eq!(position.seq, 25);
    assert_eq!((newest, more), ((16..=25).collect(), true));

    let mut other = instances[2].connect("reader").await;
    let before = |seq| {
        Some(Position {
            epoch: position.epoch,
            seq,
        })
    };
    let (_, middle, more) = page(other.history(2, room, before(16), 10).await);
    assert_eq!((middle, more), ((6..=15).collect(), true));
    let (_, oldest, more) = page(reader.history(3, room, before(6), 10).await);
    assert_eq!((oldest, more), ((1..=5).collect(), false));

    // Every field survives the trip through Redis.
    match other.history(4, room, before(2), 1).await {
        ServerMessage::History { messages, .. } => {
            assert_eq!(messages[0].id, 1);
            assert_eq!(messages[0].sender, "backend");
            assert_eq!(messages[0].body, Body::Text("m1".into()));
        }
        other => panic!("{other:?}"),
    }
    // Another epoch is refused; a room never used is an empty history in epoch 0.
    let stale = Some(Position {
        epoch: position.epoch ^ 1,
        seq: 5,
    });
    match reader.history(5, room, stale, 10).await {
        ServerMessage::Error { code, .. } => assert_eq!(code, ErrorCode::EpochChanged.as_u16()),
        other => panic!("{other:?}"),
    }
    let (position, messages, more) = page(reader.history(6, "chat:never", None, 10).await);
    assert_eq!(
        (position, messages, more),
        (Position::default(), vec![], false)
    );
}

#[tokio::test]
async fn a_resend_on_another_instance_gets_the_original_ack_and_no_second_message() {
    let redis = RedisServer::start().await.unwrap();
    let instances = Instance::many(&redis.url(), 3).await;
    let room = "chat:dedupe";
    let mut bob = instances[2].connect("bob").await;
    bob.join(room, None).await;
    let mut alice = instances[0].connect("alice").await;
    alice.join(room, None).await;
    alice.publish(room, 42, "once").await;
    let seq = alice.ack(42).await;

    // The same (user, id) from another connection on another instance.
    let mut again = instances[1].connect("alice").await;
    again.join(room, None).await;
    again.publish(room, 42, "once").await;
    assert_eq!(again.ack(42).await, seq, "the original ack");
    // The same id from another user is another message.
    bob.publish(room, 42, "mine").await;
    let mut seen = Vec::new();
    let mut acked = None;
    while acked.is_none()
        || !seen
            .iter()
            .any(|m| matches!(m, ServerMessage::Message { sender, .. } if sender == "bob"))
    {
        match bob.recv().await {
            ServerMessage::PublishAck { seq, .. } => acked = Some(seq),
            other => seen.push(other),
        }
    }
    assert_eq!(acked, Some(seq + 1));
    assert_eq!(seqs(&seen), vec![seq, seq + 1], "alice's message once");
}

#[tokio::test]
async fn key_prefixes_keep_deployments_sharing_a_redis_apart() {
    let redis = RedisServer::start().await.unwrap();
    let one = Instance::start(&redis.url(), |c| c.redis_prefix = "one".into()).await;
    let two = Instance::start(&redis.url(), |c| c.redis_prefix = "two".into()).await;
    one.wait_health("ok").await;
    two.wait_health("ok").await;
    let room = "chat:shared-name";
    let mut a = one.connect("alice").await;
    a.join(room, None).await;
    let mut b = two.connect("bob").await;
    b.join(room, None).await;

    a.publish(room, 1, "for deployment one").await;
    assert_eq!(a.ack(1).await, 1);
    b.publish(room, 2, "for deployment two").await;
    assert_eq!(b.ack(2).await, 1, "each deployment numbers its own room");
    let seen = b.recv_through(|m| is_message(m, 2)).await;
    assert_eq!(seqs(&seen), vec![1], "nothing from the other deployment");
    let seen = a.recv_through(|m| is_message(m, 1)).await;
    assert_eq!(seqs(&seen), vec![1]);
    assert_eq!(
        redis_command(redis.port, &["EXISTS", "one:{chat:shared-name}:meta"]).await,
        "1"
    );
    assert_eq!(
        redis_command(redis.port, &["EXISTS", "two:{chat:shared-name}:meta"]).await,
        "1"
    );
    assert_eq!(
        redis_command(redis.port, &["EXISTS", "chorus:{chat:shared-name}:meta"]).await,
        "0"
    );
}

#[tokio::test]
async fn frames_built_by_the_publish_script_are_exact_at_every_varint_width() {
    let redis = RedisServer::start().await.unwrap();
    let instances = Instance::many(&redis.url(), 2).await;
    let room = "chat:varint";
    let mut alice = instances[0].connect("alice").await;
    let (position, _, _) = position_of(&alice.join(room, None).await);
    let mut bob = instances[1].connect("bob").await;
    bob.join(room, None).await;
    let meta = format!("chorus:{{{room}}}:meta");
    // Sequence numbers just below each width boundary, and the largest Lua holds exactly.
    for (id, from) in [
        (1u64, 126u64),
        (2, 16_382),
        (3, 2_097_150),
        (4, (1 << 53) - 2),
    ] {
        let set = redis_command(redis.port, &["HSET", &meta, "seq", &from.to_string()]).await;
        assert_eq!(set, "0");
        for n in 0..2 {
            let id = id * 10 + n;
            let body = Body::Binary(vec![n as u8; 130]);
            alice
                .send(ClientMessage::Publish {
                    room: room.into(),
                    id,
                    body: body.clone(),
                })
                .await;
            let seq = from + 1 + n;
            // Bob's frame is the script's, byte for byte, whichever width the seq takes.
            let (frame, ts) = loop {
                let frame = bob.recv_frame().await;
                if let Ok(ServerMessage::Message { ts, .. }) =
                    ServerMessage::decode(&frame, usize::MAX)
                {
                    break (frame, ts);
                }
            };
            let expected = ServerMessage::Message {
                room: room.into(),
                seq,
                id,
                sender: "alice".into(),
                ts,
                body,
            };
            assert_eq!(frame, expected.encode(usize::MAX).unwrap(), "seq {seq}");
            assert_eq!(alice.ack(id).await, seq);
        }
    }
    // The largest sequences read back from the log too.
    let before = Some(Position {
        epoch: position.epoch,
        seq: 1 << 53,
    });
    match bob.history(1, room, before, 1).await {
        ServerMessage::History { messages, .. } => {
            let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
            assert_eq!(seqs, vec![(1 << 53) - 1]);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_redis_outage_degrades_without_dropping_clients_and_recovery_changes_the_epoch() {
    let mut redis = RedisServer::start().await.unwrap();
    let instances = Instance::many(&redis.url(), 2).await;
    let room = "chat:outage";
    let mut alice = instances[0].connect("alice").await;
    let (start, _, _) = position_of(&alice.join(room, None).await);
    let mut bob = instances[1].connect("bob").await;
    bob.join(room, None).await;
    for id in 1..=3 {
        alice.publish(room, id, "before").await;
        alice.ack(id).await;
    }
    let seen = bob.recv_through(|m| is_message(m, 3)).await;
    assert_eq!(seqs(&seen), vec![1, 2, 3]);
    assert_eq!(instances[0].metric("chorus_redis_up").await, 1.0);

    redis.kill().await.unwrap();
    for instance in &instances {
        instance.wait_health("degraded").await;
        assert_eq!(instance.health().await.1["redis"], "down");
        assert_eq!(instance.metric("chorus_redis_up").await, 0.0);
    }
    // Publishing is refused, never silently lost; so are joins and history.
    alice.publish(room, 4, "during").await;
    assert_eq!(alice.outcome(4).await, Err(ErrorCode::Unavailable.as_u16()));
    let (status, answer) = instances[1].http_publish(room, 5, "during").await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["code"], ErrorCode::Unavailable.as_u16());
    match bob.history(1, room, None, 10).await {
        ServerMessage::Error { code, .. } => assert_eq!(code, ErrorCode::Unavailable.as_u16()),
        other => panic!("{other:?}"),
    }
    let mut carol = instances[1].connect("carol").await;
    match carol.join("chat:elsewhere", None).await {
        ServerMessage::Error { code, .. } => assert_eq!(code, ErrorCode::Unavailable.as_u16()),
        other => panic!("{other:?}"),
    }
    // Connected clients stay connected and served.
    alice.ping(1).await;
    bob.ping(2).await;

    // Redis comes back empty: the instances recover by themselves, and tell their members
    // that the history is gone (a new epoch) before any message of it.
    redis.start_again().await.unwrap();
    for instance in &instances {
        instance.wait_health("ok").await;
        assert_eq!(instance.metric("chorus_redis_up").await, 1.0);
    }
    let mut epochs = Vec::new();
    for client in [&mut alice, &mut bob] {
        let reset = client
            .recv_until(|m| {
                matches!(
                    m,
                    ServerMessage::Joined { .. } | ServerMessage::Message { .. }
                )
            })
            .await;
        let (position, recovery, members) = position_of(&reset);
        assert_ne!(position.epoch, start.epoch);
        assert_eq!((position.seq, recovery), (0, Recovery::Missed));
        // Each instance restores its own members' presence before it tells them; the other
        // instance's may come back a moment later (announced with MemberJoined).
        assert!(members.contains(&client.user), "{members:?}");
        epochs.push(position.epoch);
    }
    assert_eq!(epochs[0], epochs[1], "one new history for everyone");
    assert!(instances[0].metric("chorus_epoch_resets_total").await >= 1.0);

    alice.publish(room, 6, "after").await;
    assert_eq!(alice.ack(6).await, 1, "the new history starts at 1");
    for client in [&mut alice, &mut bob] {
        let seen = client.recv_through(|m| is_message(m, 6)).await;
        assert_eq!(seqs(&seen), vec![1], "delivered, not taken for an old seq");
    }
    // A resume from the lost history is Missed; the new one recovers.
    let (_, recovery, _) = position_of(
        &carol
            .join(
                room,
                Some(Position {
                    epoch: start.epoch,
                    seq: 3,
                }),
            )
            .await,
    );
    assert_eq!(recovery, Recovery::Missed);
    let mut dave = instances[0].connect("dave").await;
    let (_, recovery, _) = position_of(
        &dave
            .join(
                room,
                Some(Position {
                    epoch: epochs[0],
                    seq: 0,
                }),
            )
            .await,
    );
    assert_eq!(recovery, Recovery::Recovered);
    let seen = dave.recv_through(|m| is_message(m, 6)).await;
    assert_eq!(seqs(&seen), vec![1]);
    for instance in instances {
        instance.stop().await;
    }
}

#[tokio::test]
async fn an_instance_started_while_redis_is_down_serves_degraded_until_it_answers() {
    let mut redis = RedisServer::start().await.unwrap();
    redis.kill().await.unwrap();
    let instance = Instance::start(&redis.url(), |_| {}).await;
    instance.wait_health("degraded").await;
    let mut alice = instance.connect("alice").await;
    match alice.join("chat:early", None).await {
        ServerMessage::Error { code, .. } => assert_eq!(code, ErrorCode::Unavailable.as_u16()),
        other => panic!("{other:?}"),
    }
    redis.start_again().await.unwrap();
    instance.wait_health("ok").await;
    let (_, recovery, members) = position_of(&alice.join("chat:early", None).await);
    assert_eq!(
        (recovery, members),
        (Recovery::NotRequested, vec!["alice".to_owned()])
    );
    alice.publish("chat:early", 1, "hello").await;
    assert_eq!(alice.ack(1).await, 1);
}

#[tokio::test]
async fn members_of_a_vanished_instance_leave_once_within_the_presence_ttl() {
    const TTL: Duration = Duration::from_millis(600);
    let redis = RedisServer::start().await.unwrap();
    let short = |c: &mut Config| c.presence_ttl = TTL;
    let a = Instance::start(&redis.url(), short).await;
    let c = Instance::start(&redis.url(), short).await;
    // Instance B reaches Redis through a link the test can cut: to everyone else, B is
    // gone, as if it had crashed; its own client stays connected to it.
    let link = Link::open(1, 0, redis.port).await.unwrap();
    let b = Instance::start(&format!("redis://127.0.0.1:{}", link.port), short).await;
    for instance in [&a, &b, &c] {
        instance.wait_health("ok").await;
    }
    let room = "chat:vanish";
    let mut bob = a.connect("bob").await;
    bob.join(room, None).await;
    let mut carol = c.connect("carol").await;
    carol.join(room, None).await;
    let mut alice = b.connect("alice").await;
    alice.join(room, None).await;
    for watcher in [&mut bob, &mut carol] {
        let joined = watcher
            .recv_until(
                |m| matches!(m, ServerMessage::MemberJoined { user, .. } if user == "alice"),
            )
            .await;
        assert!(matches!(joined, ServerMessage::MemberJoined { .. }));
    }

    link.cut();
    let cut_at = Instant::now();
    for watcher in [&mut bob, &mut carol] {
        let left = watcher
            .recv_until(|m| matches!(m, ServerMessage::MemberLeft { .. }))
            .await;
        assert!(matches!(left, ServerMessage::MemberLeft { user, .. } if user == "alice"));
    }
    assert!(
        cut_at.elapsed() < TTL * 4,
        "gone within the ttl and a refresh or two: {:?}",
        cut_at.elapsed()
    );
    let mut dave = a.connect("dave").await;
    let (_, _, members) = position_of(&dave.join(room, None).await);
    assert_eq!(members, vec!["bob", "carol", "dave"], "no zombie");
    // Both remaining instances reap; only one announces. Give each a few refresh rounds.
    tokio::time::sleep(TTL).await;
    carol.publish(room, 1, "barrier").await;
    for watcher in [&mut bob, &mut carol] {
        let seen = watcher.recv_through(|m| is_message(m, 1)).await;
        assert!(
            !seen
                .iter()
                .any(|m| matches!(m, ServerMessage::MemberLeft { user, .. } if user == "alice")),
            "a second MemberLeft: {seen:?}"
        );
    }
    b.wait_health("degraded").await;
    alice.ping(1).await;

    // B comes back: Alice is present again, announced once.
    link.restore();
    b.wait_health("ok").await;
    let joined = bob
        .recv_until(|m| matches!(m, ServerMessage::MemberJoined { .. }))
        .await;
    assert!(matches!(joined, ServerMessage::MemberJoined { user, .. } if user == "alice"));
}

/// A Redis, and an instance on it whose rooms are kept 200 ms after their last use (history
/// ttl, dedupe window and presence ttl all 200 ms), up.
async fn short_lived_rooms() -> (RedisServer, Instance) {
    let redis = RedisServer::start().await.unwrap();
    let short = |c: &mut Config| {
        c.dedupe_window = Duration::from_millis(200);
        c.presence_ttl = Duration::from_millis(200);
        c.default_namespace.history_ttl = Duration::from_millis(200);
    };
    let instance = Instance::start(&redis.url(), short).await;
    instance.wait_health("ok").await;
    (redis, instance)
}

#[tokio::test]
async fn a_room_published_to_outlives_its_keep_time_many_times_over() {
    let (redis, instance) = short_lived_rooms().await;
    // Only publishes keep this room: no member joins or renews it. For five times its
    // keep time (200 ms), one publish every 40 ms: one epoch, one sequence throughout.
    let room = "chat:busy";
    let meta = format!("chorus:{{{room}}}:meta");
    let mut epoch = None;
    for id in 1..=25 {
        let (status, body) = instance.http_publish(room, id, "still here").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["seq"], id, "publish {id}: {body}");
        let now = redis_command(redis.port, &["HGET", &meta, "epoch"]).await;
        assert_eq!(epoch.get_or_insert(now.clone()), &now, "publish {id}");
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

#[tokio::test]
async fn an_idle_room_is_forgotten_by_expiry_and_starts_a_new_epoch() {
    let (redis, instance) = short_lived_rooms().await;
    let room = "chat:idle";
    let mut alice = instance.connect("alice").await;
    let (start, _, _) = position_of(&alice.join(room, None).await);
    alice.publish(room, 1, "soon forgotten").await;
    alice.ack(1).await;
    alice.send(ClientMessage::Leave { room: room.into() }).await;
    alice
        .recv_until(|m| matches!(m, ServerMessage::Left { .. }))
        .await;

    let meta = format!("chorus:{{{room}}}:meta");
    let deadline = Instant::now() + WAIT;
    let mut keys: HashMap<&str, String> = HashMap::new();
    while redis_command(redis.port, &["EXISTS", &meta]).await != "0" {
        assert!(Instant::now() < deadline, "the room's keys never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for part in ["log", "users", "u:alice"] {
        let key = format!("chorus:{{{room}}}:{part}");
        keys.insert(part, redis_command(redis.port, &["EXISTS", &key]).await);
    }
    assert!(keys.values().all(|v| v == "0"), "{keys:?}");
    let (position, recovery, _) = position_of(
        &alice
            .join(
                room,
                Some(Position {
                    epoch: start.epoch,
                    seq: 1,
                }),
            )
            .await,
    );
    assert_eq!(recovery, Recovery::Missed);
    assert_ne!(position.epoch, start.epoch);
    assert_eq!(position.seq, 0);
}

#[tokio::test]
async fn members_of_an_instance_that_lost_its_subscription_miss_nothing_or_are_told() {
    let redis = RedisServer::start().await.unwrap();
    let small = |c: &mut Config| {
        let policy = chorus_server::config::NamespacePolicy {
            history_size: 2,
            ..Default::default()
        };
        c.namespaces.insert("small".into(), policy);
    };
    let a = Instance::start(&redis.url(), small).await;
    let link = Link::open(1, 0, redis.port).await.unwrap();
    let b = Instance::start(&format!("redis://127.0.0.1:{}", link.port), small).await;
    a.wait_health("ok").await;
    b.wait_health("ok").await;
    // "busy" has had messages on B before the loss, "quiet" none; "small:gap" keeps only
    // the last 2 messages, fewer than B's member will miss.
    let rooms = ["chat:busy", "chat:quiet", "small:gap"];
    let mut alice = a.connect("alice").await;
    let mut bob = b.connect("bob").await;
    let mut epochs = HashMap::new();
    for room in rooms {
        alice.join(room, None).await;
        let (position, _, _) = position_of(&bob.join(room, None).await);
        epochs.insert(room, position.epoch);
    }
    for id in 1..=3 {
        alice.publish("chat:busy", id, "before").await;
        alice.ack(id).await;
    }
    let seen = bob.recv_through(|m| is_message(m, 3)).await;
    assert_eq!(seqs(&seen), vec![1, 2, 3]);

    link.cut();
    b.wait_health("degraded").await;
    let mut id = 10;
    for (room, count) in [("chat:busy", 3), ("chat:quiet", 2), ("small:gap", 5)] {
        for _ in 0..count {
            id += 1;
            alice.publish(room, id, "while B is cut off").await;
            alice.ack(id).await;
        }
    }
    link.restore();
    b.wait_health("ok").await;
    for room in rooms {
        id += 1;
        alice.publish(room, id, "after").await;
        alice.ack(id).await;
    }
    // Bob's frames, per room, in order.
    let mut per_room: HashMap<String, Vec<ServerMessage>> = HashMap::new();
    while per_room.values().map(|m| seqs(m).len()).sum::<usize>() < 4 + 3 + 3 {
        let message = bob.recv().await;
        let room = match &message {
            ServerMessage::Message { room, .. } | ServerMessage::Joined { room, .. } => room,
            _ => continue,
        };
        per_room.entry(room.clone()).or_default().push(message);
    }
    assert_eq!(
        seqs(&per_room["chat:busy"]),
        vec![4, 5, 6, 7],
        "the gap, then live"
    );
    assert_eq!(seqs(&per_room["chat:quiet"]), vec![1, 2, 3]);
    // Only the last two of the five are still in the log: Bob is told he missed some, in
    // the same history, then gets what is retained.
    let gap = &per_room["small:gap"];
    let (position, recovery, _) = position_of(&gap[0]);
    assert_eq!(recovery, Recovery::Missed);
    assert_eq!(
        position,
        Position {
            epoch: epochs["small:gap"],
            seq: 3
        }
    );
    assert_eq!(seqs(&gap[1..]), vec![4, 5, 6]);
    for room in ["chat:busy", "chat:quiet"] {
        assert!(
            !per_room[room]
                .iter()
                .any(|m| matches!(m, ServerMessage::Joined { .. })),
            "{room}: {:?}",
            per_room[room]
        );
    }
}

#[tokio::test]
async fn messages_past_the_history_ttl_are_neither_paged_nor_replayed() {
    let redis = RedisServer::start().await.unwrap();
    let instance = Instance::start(&redis.url(), |c| {
        c.default_namespace.history_ttl = Duration::from_millis(300);
    })
    .await;
    instance.wait_health("ok").await;
    let room = "chat:ttl";
    let mut alice = instance.connect("alice").await;
    let (start, _, _) = position_of(&alice.join(room, None).await);
    for id in 1..=3 {
        alice.publish(room, id, "short-lived").await;
        alice.ack(id).await;
    }
    let log = format!("chorus:{{{room}}}:log");
    assert_eq!(redis_command(redis.port, &["XLEN", &log]).await, "3");
    // Wait for them to age out of what the history serves.
    let deadline = Instant::now() + WAIT;
    let mut request = 0;
    loop {
        request += 1;
        match alice.history(request, room, None, 10).await {
            ServerMessage::History { messages, .. } if messages.is_empty() => break,
            ServerMessage::History { .. } => {}
            other => panic!("{other:?}"),
        }
        assert!(Instant::now() < deadline, "messages never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        redis_command(redis.port, &["XLEN", &log]).await,
        "0",
        "trimmed"
    );
    let mut bob = instance.connect("bob").await;
    let at = |seq| {
        Some(Position {
            epoch: start.epoch,
            seq,
        })
    };
    let (position, recovery, _) = position_of(&bob.join(room, at(1)).await);
    assert_eq!((position.seq, recovery), (3, Recovery::Missed));
    let mut carol = instance.connect("carol").await;
    let (_, recovery, _) = position_of(&carol.join(room, at(3)).await);
    assert_eq!(recovery, Recovery::Recovered, "nothing missed after seq 3");
}

#[tokio::test]
async fn a_room_with_damaged_keys_does_not_take_the_other_rooms_down() {
    let redis = RedisServer::start().await.unwrap();
    let instance = Instance::start(&redis.url(), |_| {}).await;
    instance.wait_health("ok").await;
    let (damaged, healthy) = ("chat:damaged", "chat:healthy");
    let mut bob = instance.connect("bob").await;
    bob.join(damaged, None).await;
    let mut carol = instance.connect("carol").await;
    carol.join(healthy, None).await;

    // Another program's key where the room's log goes, then an epoch change announced on
    // the room's channel: the instance reads the log to catch the room up, and Redis
    // refuses.
    let log = format!("chorus:{{{damaged}}}:log");
    assert_eq!(redis_command(redis.port, &["SET", &log, "x"]).await, "OK");
    let channel = format!("chorus:{{{damaged}}}:ch");
    let reset = "\u{3}\u{5}"; // envelope tag 3 (reset), epoch 5
    assert_eq!(
        redis_command(redis.port, &["PUBLISH", &channel, reset]).await,
        "1"
    );
    let deadline = Instant::now() + WAIT;
    while instance.metric("chorus_redis_errors_total").await < 1.0 {
        assert!(Instant::now() < deadline, "the catch-up never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The other room is served throughout.
    let (status, body) = instance.http_publish(healthy, 1, "still served").await;
    assert_eq!(status, 200, "{body}");
    let got = carol.recv_through(|m| is_message(m, 1)).await;
    assert_eq!(seqs(&got), vec![1]);
    assert_eq!(instance.health().await.1["status"], "ok");

    // Repaired, the room is served again.
    assert_eq!(redis_command(redis.port, &["DEL", &log]).await, "1");
    let (status, body) = instance.http_publish(damaged, 1, "served again").await;
    assert_eq!(status, 200, "{body}");
    let got = bob.recv_through(|m| is_message(m, 1)).await;
    assert_eq!(seqs(&got).last(), Some(&1));
}

#[tokio::test]
async fn a_publish_redis_refuses_takes_no_seq_and_a_resend_is_published() {
    let redis = RedisServer::start().await.unwrap();
    let instance = Instance::start(&redis.url(), |_| {}).await;
    instance.wait_health("ok").await;
    let room = "chat:damaged-log";
    assert_eq!(instance.http_publish(room, 1, "first").await.0, 200);
    // Another program's key where the room's log goes: the publish's XADD fails, after the
    // publish claimed its dedupe key.
    let log = format!("chorus:{{{room}}}:log");
    assert_eq!(redis_command(redis.port, &["SET", &log, "x"]).await, "OK");
    let (status, body) = instance.http_publish(room, 2, "refused").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("WRONGTYPE"),
        "{body}"
    );

    // Once the key is gone, the resend is published (not answered as a duplicate of what
    // never was), with the next seq.
    assert_eq!(redis_command(redis.port, &["DEL", &log]).await, "1");
    let mut member = instance.connect("bob").await;
    let (position, _, _) = position_of(&member.join(room, None).await);
    assert_eq!(position.seq, 1);
    let (status, body) = instance.http_publish(room, 2, "published").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["seq"], 2, "{body}");
    let got = member.recv_through(|m| is_message(m, 2)).await;
    assert_eq!(seqs(&got), vec![2]);
    assert!(
        matches!(&got[0], ServerMessage::Message { body: Body::Text(t), .. } if t == "published"),
        "{got:?}"
    );
}

#[tokio::test]
async fn publishes_waiting_for_redis_share_script_calls_and_each_gets_its_own_answer() {
    let redis = RedisServer::start().await.unwrap();
    let pool = 2;
    let instance = Instance::start(&redis.url(), |c| c.redis_pool_size = pool).await;
    instance.wait_health("ok").await;
    let rooms = [
        "chat:batch-0",
        "chat:batch-1",
        "chat:batch-2",
        "chat:batch-3",
    ];
    let mut member = instance.connect("bob").await;
    member.join(rooms[0], None).await;
    // The script loaded, and counted from here.
    assert_eq!(instance.http_publish(rooms[0], 1000, "first").await.0, 200);
    let calls_before = instance.metric("chorus_redis_publish_calls_total").await;

    // A room whose keys another program damaged: its publishes are refused.
    let broken = "chat:batch-broken";
    let meta = format!("chorus:{{{broken}}}:meta");
    assert_eq!(redis_command(redis.port, &["SET", &meta, "x"]).await, "OK");

    // Redis holds every script while its clients' writes are paused: the publishes gather.
    // Each room gets ids 1..=10, and ids 1..=3 once more (resends); the broken room, one
    // among them.
    let mut publishes = Vec::new();
    for room in rooms {
        for id in (1..=10).chain(1..=3) {
            publishes.push((room, id));
        }
    }
    publishes.insert(20, (broken, 1));
    assert_eq!(
        redis_command(redis.port, &["CLIENT", "PAUSE", "20000", "WRITE"]).await,
        "OK"
    );
    let (answers, ()) = tokio::join!(
        futures_util::future::join_all(
            publishes
                .iter()
                .map(|&(room, id)| instance.http_publish(room, id, "batched")),
        ),
        async {
            let deadline = Instant::now() + WAIT;
            while instance.metric("chorus_redis_publishes_pending").await < publishes.len() as f64 {
                assert!(Instant::now() < deadline, "the publishes never all waited");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            redis_command(redis.port, &["CLIENT", "UNPAUSE"]).await;
        }
    );

    // Each publish its own answer: every id of a room a seq of its own, a resend its
    // original's, and the broken room's publish refused alone.
    let mut seqs_of: HashMap<&str, HashMap<u64, u64>> = HashMap::new();
    for (&(room, id), (status, body)) in publishes.iter().zip(&answers) {
        if room == broken {
            assert_eq!(*status, 503, "{body}");
            assert!(
                body["error"].as_str().unwrap().contains("WRONGTYPE"),
                "{body}"
            );
            continue;
        }
        assert_eq!(*status, 200, "{room} {id}: {body}");
        let seq = body["seq"].as_u64().unwrap();
        let earlier = seqs_of.entry(room).or_default().insert(id, seq);
        assert!(
            earlier.is_none_or(|e| e == seq),
            "{room} {id}: {earlier:?} then {seq}"
        );
    }
    for room in rooms {
        let mut seqs: Vec<u64> = seqs_of[room].values().copied().collect();
        seqs.sort_unstable();
        let first = if room == rooms[0] { 2 } else { 1 };
        assert_eq!(seqs, (first..first + 10).collect::<Vec<_>>(), "{room}");
    }
    // In a handful of calls: what the tasks took while Redis was paused (one publish or
    // more each), then what gathered behind them.
    let calls = instance.metric("chorus_redis_publish_calls_total").await - calls_before;
    assert!(
        calls <= 2.0 * pool as f64,
        "{} publishes took {calls} calls",
        publishes.len()
    );
    assert_eq!(instance.metric("chorus_redis_publishes_pending").await, 0.0);
    // The member got each of its room's messages once, in order.
    let got = member.recv_through(|m| is_message(m, 10)).await;
    assert_eq!(seqs(&got), (1..=11).collect::<Vec<_>>());
}
