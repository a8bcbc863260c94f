//! Chorus on a Redis Cluster (`--redis-cluster`): a real cluster of three primaries with a
//! replica each, started by the test, and three chorus-server instances on it. Rooms spread
//! over the slots; their channels are shard channels, subscribed only on the primary that
//! owns the room's slot; and subscriptions follow their slot when it moves (a migration, a
//! primary killed and its replica promoted) without a message lost or delivered twice
//! unannounced.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chorus_protocol::{ClientMessage, Position, Recovery, ServerMessage};
use chorus_test_harness::redis::command;
use chorus_test_harness::redis_cluster::RedisCluster;
use tokio::time::Instant;

use crate::instances::{Client, Instance, WAIT};

/// Three instances on `cluster`, each up before returning.
async fn instances(cluster: &RedisCluster) -> Vec<Instance> {
    let mut instances = Vec::new();
    for _ in 0..3 {
        let instance = Instance::start(&cluster.seeds(), |config| {
            config.redis_cluster = true;
        })
        .await;
        instance.wait_health("ok").await;
        instances.push(instance);
    }
    instances
}

/// `room`'s shard channel, as the server names it.
fn channel(room: &str) -> String {
    format!("chorus:{{{room}}}:ch")
}

/// What a member saw of one room: message ids in order, and the `Joined` it was sent
/// unasked (an epoch change) as the index in `ids` it came before.
#[derive(Debug, Default)]
struct Seen {
    ids: Vec<u64>,
    resets: Vec<(usize, Position, Recovery)>,
}

/// Read `client`'s frames until every id of `wanted` (per room) has arrived.
async fn collect(
    client: &mut Client,
    wanted: &HashMap<String, BTreeSet<u64>>,
) -> HashMap<String, Seen> {
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let done = |seen: &HashMap<String, Seen>| {
        wanted.iter().all(|(room, ids)| {
            seen.get(room)
                .is_some_and(|s| ids.iter().all(|id| s.ids.contains(id)))
        })
    };
    while !done(&seen) {
        match client.recv().await {
            ServerMessage::Message { room, id, .. } => seen.entry(room).or_default().ids.push(id),
            ServerMessage::Joined {
                room,
                position,
                recovery,
                ..
            } => {
                let entry = seen.entry(room).or_default();
                let at = entry.ids.len();
                entry.resets.push((at, position, recovery));
            }
            _ => {}
        }
    }
    seen
}

/// Publish `id` in `room` over HTTP on `instance`, again while refused (a slot moving or a
/// failover in progress): a resend is never published twice.
async fn publish_until_acked(instance: &Instance, room: &str, id: u64) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, answer) = instance.http_publish(room, id, "m").await;
        if status == 200 {
            return answer["seq"].as_u64().expect("a seq");
        }
        assert_eq!(status, 503, "{answer}");
        assert!(
            Instant::now() < deadline,
            "publish {id} in {room} never acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn rooms_over_the_slots_reach_every_member_once_in_order_on_sharded_channels() {
    let cluster = RedisCluster::start(3, 1).await.unwrap();
    let instances = instances(&cluster).await;
    let rooms: Vec<String> = (0..30).map(|i| format!("room:{i}")).collect();
    let mut owners = BTreeSet::new();
    for room in &rooms {
        owners.insert(
            cluster
                .owner_of(RedisCluster::slot_of(&channel(room)))
                .await
                .unwrap(),
        );
    }
    assert_eq!(owners.len(), 3, "the rooms are spread over every primary");

    let mut clients = Vec::new();
    for (i, instance) in instances.iter().enumerate() {
        let mut client = instance.connect(&format!("user{i}")).await;
        for room in &rooms {
            let (_, recovery, _) = crate::instances::position_of(&client.join(room, None).await);
            assert_eq!(recovery, Recovery::NotRequested);
        }
        clients.push(client);
    }
    // Channels are sharded: each room's is subscribed (once per instance) on the primary
    // that owns its slot, on no other node, and not as a classic channel.
    for room in &rooms {
        let owner = cluster
            .owner_of(RedisCluster::slot_of(&channel(room)))
            .await
            .unwrap();
        for port in cluster.node_ports() {
            let subscribers = cluster.shard_numsub(port, &channel(room)).await.unwrap();
            let expected = if port == owner { 3 } else { 0 };
            assert_eq!(subscribers, expected, "{room} on node {port}");
            let classic = command(port, &["PUBSUB", "NUMSUB", &channel(room)])
                .await
                .unwrap();
            assert_eq!(
                classic
                    .as_array()
                    .and_then(|a| a.get(1))
                    .and_then(|n| n.as_int()),
                Some(0)
            );
        }
    }

    // Typing travels the shard channel to the other instances, not to the typist.
    clients[0]
        .send(ClientMessage::TypingStarted {
            room: rooms[7].clone(),
        })
        .await;
    for client in &mut clients[1..] {
        let typing = client
            .recv_until(|m| matches!(m, ServerMessage::Typing { .. }))
            .await;
        assert!(
            matches!(&typing, ServerMessage::Typing { room, user, typing: true } if *room == rooms[7] && user == "user0"),
            "{typing:?}"
        );
    }

    // Every instance publishes into every room.
    let mut wanted: HashMap<String, BTreeSet<u64>> = HashMap::new();
    for (r, room) in rooms.iter().enumerate() {
        for k in 0..3u64 {
            let id = (r as u64) * 10 + k + 1;
            let seq = publish_until_acked(&instances[k as usize], room, id).await;
            assert_eq!(seq, k + 1, "{room}");
            wanted.entry(room.clone()).or_default().insert(id);
        }
    }
    let mut orders = Vec::new();
    for client in &mut clients {
        let seen = collect(client, &wanted).await;
        for (room, s) in &seen {
            assert!(s.resets.is_empty(), "{room}: {:?}", s.resets);
            let unique: BTreeSet<u64> = s.ids.iter().copied().collect();
            assert_eq!(
                unique.len(),
                s.ids.len(),
                "{room}: a message twice: {:?}",
                s.ids
            );
        }
        orders.push(seen);
    }
    // History and presence read the room's shard from any instance.
    match clients[2].history(1, &rooms[3], None, 10).await {
        ServerMessage::History { messages, .. } => {
            let ids: Vec<u64> = messages.iter().map(|m| m.id).collect();
            assert_eq!(ids, orders[2][&rooms[3]].ids);
        }
        other => panic!("{other:?}"),
    }
    let mut late = instances[1].connect("late").await;
    let (_, _, members) = crate::instances::position_of(&late.join(&rooms[5], None).await);
    assert_eq!(members, ["late", "user0", "user1", "user2"]);
    for room in &rooms {
        let first = &orders[0][room].ids;
        for other in &orders[1..] {
            assert_eq!(&other[room].ids, first, "{room}: one order for everyone");
        }
    }
    for instance in instances {
        instance.stop().await;
    }
}

/// A member's view of `room` after a change: every acknowledged id once, in the order of
/// their seqs; an unsolicited `Joined` is allowed only as `Missed` in a new epoch.
fn check_every_ack_delivered(room: &str, seen: &Seen, acked: &[(u64, u64)]) {
    let mut by_seq = acked.to_vec();
    by_seq.sort_by_key(|(_, seq)| *seq);
    let ids: Vec<u64> = by_seq.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        seen.ids, ids,
        "{room}: every acknowledged message once, in order"
    );
    for (_, _, recovery) in &seen.resets {
        assert_eq!(*recovery, Recovery::Missed, "{room}");
    }
}

#[tokio::test]
async fn a_busy_rooms_slot_migrates_without_a_message_lost_or_duplicated() {
    let cluster = RedisCluster::start(3, 1).await.unwrap();
    let instances = instances(&cluster).await;
    let room = "chat:moving";
    let slot = RedisCluster::slot_of(&channel(room));
    let source = cluster.owner_of(slot).await.unwrap();
    let target = cluster.another_primary(source).await.unwrap();
    let mut members = Vec::new();
    for (i, instance) in instances.iter().enumerate() {
        let mut member = instance.connect(&format!("member{i}")).await;
        member.join(room, None).await;
        members.push(member);
    }

    // Publishing goes on (every instance in turn) while the slot moves.
    let publisher = {
        let addrs: Vec<String> = instances.iter().map(|i| i.url("")).collect();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for id in 1..=150u64 {
                let url = &addrs[id as usize % addrs.len()];
                acked.push((id, http_publish_until_acked(url, room, id).await));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    cluster.migrate_slot(slot, target).await.unwrap();
    let acked = publisher.await.unwrap();
    assert_eq!(cluster.owner_of(slot).await.unwrap(), target);

    let wanted: HashMap<String, BTreeSet<u64>> =
        HashMap::from([(room.to_owned(), (1..=150).collect())]);
    for member in &mut members {
        let seen = collect(member, &wanted).await;
        check_every_ack_delivered(room, &seen[room], &acked);
        // The room's keys were written by another node: it went on in a new epoch, and
        // the members were told.
        assert!(!seen[room].resets.is_empty(), "no epoch change announced");
    }
    // The subscriptions moved with the slot.
    let deadline = Instant::now() + WAIT;
    while cluster.shard_numsub(target, &channel(room)).await.unwrap() != 3 {
        assert!(Instant::now() < deadline, "the subscriptions never moved");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        cluster.shard_numsub(source, &channel(room)).await.unwrap(),
        0
    );
    for instance in instances {
        instance.stop().await;
    }
}

/// `POST /api/publish` on the instance at `base` until acknowledged: its seq.
async fn http_publish_until_acked(base: &str, room: &str, id: u64) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let response = reqwest::Client::new()
            .post(format!("{base}/api/publish"))
            .bearer_auth(crate::instances::SECRET)
            .json(&serde_json::json!({ "room": room, "id": id, "text": "m", "sender": "backend" }))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let answer: serde_json::Value = response.json().await.unwrap();
        if status == 200 {
            return answer["seq"].as_u64().expect("a seq");
        }
        assert_eq!(status, 503, "{answer}");
        assert!(Instant::now() < deadline, "publish {id} never acknowledged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_primary_killed_while_rooms_publish_loses_nothing_silently() {
    let mut cluster = RedisCluster::start(3, 1).await.unwrap();
    let instances = instances(&cluster).await;
    let rooms: Vec<String> = (0..6).map(|i| format!("busy:{i}")).collect();
    let victim = cluster
        .owner_of(RedisCluster::slot_of(&channel(&rooms[0])))
        .await
        .unwrap();
    let mut members = Vec::new();
    for (i, instance) in instances.iter().enumerate() {
        let mut member = instance.connect(&format!("member{i}")).await;
        for room in &rooms {
            member.join(room, None).await;
        }
        members.push(member);
    }
    let addrs: Vec<String> = instances.iter().map(|i| i.url("")).collect();
    let publisher = {
        let rooms = rooms.clone();
        tokio::spawn(async move {
            let mut acked: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
            for id in 1..=60u64 {
                for room in &rooms {
                    let url = &addrs[id as usize % addrs.len()];
                    let seq = http_publish_until_acked(url, room, id).await;
                    acked.entry(room.clone()).or_default().push((id, seq));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let promoted = cluster
        .kill_primary_of(RedisCluster::slot_of(&channel(&rooms[0])))
        .await
        .unwrap();
    assert_ne!(promoted, victim);
    let acked = publisher.await.unwrap();

    // The last message of each room comes after the failover; what the promoted replica
    // lacked may be gone (acknowledged by the dead primary), but then the members are told.
    let wanted: HashMap<String, BTreeSet<u64>> = rooms
        .iter()
        .map(|room| (room.clone(), BTreeSet::from([60])))
        .collect();
    let killed = RedisCluster::slot_of(&channel(&rooms[0]));
    for member in &mut members {
        let seen = collect(member, &wanted).await;
        for room in &rooms {
            let s = &seen[room];
            let moved = cluster
                .owner_of(RedisCluster::slot_of(&channel(room)))
                .await
                .unwrap()
                == cluster.owner_of(killed).await.unwrap();
            assert_eq!(
                !s.resets.is_empty(),
                moved,
                "{room}: told iff its primary died"
            );
            if s.resets.is_empty() {
                check_every_ack_delivered(room, s, &acked[room]);
            } else {
                // Told, in a new epoch: no message twice, and whatever is missing was
                // announced.
                for (_, position, recovery) in &s.resets {
                    assert_eq!(*recovery, Recovery::Missed, "{room}");
                    assert_ne!(position.epoch, 0);
                }
                let unique: BTreeSet<u64> = s.ids.iter().copied().collect();
                assert_eq!(unique.len(), s.ids.len(), "{room}: {:?}", s.ids);
            }
        }
    }
    for instance in instances {
        instance.stop().await;
    }
}
