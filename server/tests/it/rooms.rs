//! Rooms: joining, leaving, publishing with per-room sequence numbers, and the rules that
//! refuse a join or a publish.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::{Client, TestServer};
use chorus_protocol::{Body, ClientMessage, ErrorCode, Recovery, ServerMessage};
use chorus_server::config::NamespacePolicy;

/// Read until the next `Message` and return it; acks, pongs and presence events are
/// skipped, anything else fails the test.
async fn next_message(client: &mut Client) -> ServerMessage {
    loop {
        match client.recv().await {
            ServerMessage::PublishAck { .. }
            | ServerMessage::Pong { .. }
            | ServerMessage::MemberJoined { .. }
            | ServerMessage::MemberLeft { .. } => continue,
            message @ ServerMessage::Message { .. } => return message,
            other => panic!("expected a Message, got {other:?}"),
        }
    }
}

/// Assert that `message` is the `Message` numbered `seq` in `room`, with `id` from `sender`.
fn assert_message(message: &ServerMessage, room: &str, seq: u64, id: u64, sender: &str) {
    match message {
        ServerMessage::Message {
            room: r,
            seq: s,
            id: i,
            sender: from,
            ..
        } => assert_eq!(
            (r.as_str(), *s, *i, from.as_str()),
            (room, seq, id, sender),
            "{message:?}"
        ),
        other => panic!("expected a Message, got {other:?}"),
    }
}

#[tokio::test]
async fn join_answers_joined_at_seq_0_for_a_new_room() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    match alice.join("lobby").await {
        ServerMessage::Joined {
            position,
            members,
            recovery,
            ..
        } => {
            assert_eq!(position.seq, 0);
            assert_eq!(members, ["alice"]);
            assert_eq!(recovery, Recovery::NotRequested);
        }
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn join_reports_the_rooms_current_position() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let ServerMessage::Joined {
        position: first, ..
    } = alice.join("lobby").await
    else {
        unreachable!()
    };
    alice.publish("lobby", 1, "one").await;
    alice.publish("lobby", 2, "two").await;
    alice.ack(2).await;
    let mut bob = server.connect("bob").await;
    let ServerMessage::Joined { position, .. } = bob.join("lobby").await else {
        unreachable!()
    };
    assert_eq!(position.epoch, first.epoch);
    assert_eq!(position.seq, 2);
}

#[tokio::test]
async fn a_publish_reaches_every_member_including_the_sender_in_sequence() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    for id in [11, 12, 13] {
        alice.publish("lobby", id, &format!("text {id}")).await;
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for (seq, id) in [(1, 11), (2, 12), (3, 13)] {
        // Bob gets the messages and nothing else (no acks meant for alice).
        let message = bob.recv().await;
        assert_message(&message, "lobby", seq, id, "alice");
        let ServerMessage::Message { body, ts, .. } = message else {
            unreachable!()
        };
        assert_eq!(body, Body::Text(format!("text {id}")));
        assert!(
            ts.abs_diff(now_ms) < 60_000,
            "ts {ts} is not the server time"
        );
        assert_message(&next_message(&mut alice).await, "lobby", seq, id, "alice");
    }
}

#[tokio::test]
async fn a_binary_body_arrives_byte_for_byte() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    let bytes: Vec<u8> = (0..=255).collect();
    alice
        .send(ClientMessage::Publish {
            room: "lobby".into(),
            id: 1,
            body: Body::Binary(bytes.clone()),
        })
        .await;
    match bob.recv().await {
        ServerMessage::Message { body, .. } => assert_eq!(body, Body::Binary(bytes)),
        other => panic!("expected a Message, got {other:?}"),
    }
}

#[tokio::test]
async fn the_sender_gets_an_ack_with_room_id_and_seq() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    alice.join("lobby").await;
    for (id, seq) in [(7, 1), (8, 2), (9, 3)] {
        alice.publish("lobby", id, "hi").await;
        let ack = alice
            .recv_until(|m| matches!(m, ServerMessage::PublishAck { .. }))
            .await;
        assert_eq!(
            ack,
            ServerMessage::PublishAck {
                room: "lobby".into(),
                id,
                seq
            }
        );
    }
}

#[tokio::test]
async fn sequence_numbers_are_independent_per_room() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    alice.join("a").await;
    alice.join("b").await;
    alice.publish("a", 1, "a1").await;
    assert_eq!(alice.ack(1).await, 1);
    alice.publish("a", 2, "a2").await;
    assert_eq!(alice.ack(2).await, 2);
    alice.publish("b", 3, "b1").await;
    assert_eq!(alice.ack(3).await, 1);
    alice.publish("a", 4, "a3").await;
    assert_eq!(alice.ack(4).await, 3);
}

#[tokio::test]
async fn a_connection_receives_from_every_room_it_joined() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    alice.join("a").await;
    alice.join("b").await;
    bob.join("a").await;
    bob.join("b").await;
    bob.publish("a", 1, "to a").await;
    bob.publish("b", 2, "to b").await;
    assert_message(&next_message(&mut alice).await, "a", 1, 1, "bob");
    assert_message(&next_message(&mut alice).await, "b", 1, 2, "bob");
}

#[tokio::test]
async fn joining_beyond_max_rooms_gets_too_many_rooms() {
    let server = TestServer::start_with(|c| c.max_rooms_per_connection = 2).await;
    let mut alice = server.connect("alice").await;
    alice.join("a").await;
    alice.join("b").await;
    alice
        .send(ClientMessage::Join {
            room: "c".into(),
            since: None,
        })
        .await;
    let (code, id, room) = alice.error().await;
    assert_eq!(code, ErrorCode::TooManyRooms.as_u16());
    assert_eq!(code, 107);
    assert_eq!((id, room.as_deref()), (None, Some("c")));
    // The refused join left the connection in its rooms, and leaving one makes space.
    alice.publish("b", 1, "still here").await;
    assert_eq!(alice.ack(1).await, 1);
    alice.send(ClientMessage::Leave { room: "a".into() }).await;
    alice
        .recv_until(|m| matches!(m, ServerMessage::Left { .. }))
        .await;
    alice.join("c").await;
}

#[tokio::test]
async fn leave_answers_left_and_stops_delivery() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    alice.join("lobby").await;
    alice.join("barrier").await;
    bob.join("lobby").await;
    bob.join("barrier").await;
    bob.send(ClientMessage::Leave {
        room: "lobby".into(),
    })
    .await;
    assert_eq!(
        bob.recv().await,
        ServerMessage::Left {
            room: "lobby".into()
        }
    );
    alice.publish("lobby", 1, "bob is gone").await;
    alice.ack(1).await;
    // Frames reach a connection in the order they were sent: if the lobby message had been
    // delivered to bob, it would arrive before this one.
    alice.publish("barrier", 2, "barrier").await;
    alice.ack(2).await;
    assert_message(&next_message(&mut bob).await, "barrier", 1, 2, "alice");
}

#[tokio::test]
async fn leaving_a_room_not_joined_is_answered_with_left() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    alice
        .send(ClientMessage::Leave {
            room: "nowhere".into(),
        })
        .await;
    assert_eq!(
        alice.recv().await,
        ServerMessage::Left {
            room: "nowhere".into()
        }
    );
}

#[tokio::test]
async fn joining_a_room_twice_is_answered_with_joined_and_changes_nothing() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    alice.join("lobby").await;
    alice.publish("lobby", 1, "one").await;
    alice.ack(1).await;
    next_message(&mut alice).await;
    match alice.join("lobby").await {
        ServerMessage::Joined {
            position, members, ..
        } => {
            assert_eq!(position.seq, 1);
            assert_eq!(members, ["alice"]);
        }
        _ => unreachable!(),
    }
    // Still one membership: one copy of each message.
    alice.publish("lobby", 2, "two").await;
    alice.publish("lobby", 3, "three").await;
    assert_message(&next_message(&mut alice).await, "lobby", 2, 2, "alice");
    assert_message(&next_message(&mut alice).await, "lobby", 3, 3, "alice");
}

#[tokio::test]
async fn a_token_limited_to_chat_rooms_is_forbidden_elsewhere() {
    let server = TestServer::start().await;
    let token = server.token_for("alice", &["chat:*"]);
    let mut alice = server.connect_with_token(&token).await.unwrap();
    alice.welcome().await;
    alice
        .send(ClientMessage::Join {
            room: "news:x".into(),
            since: None,
        })
        .await;
    let (code, id, room) = alice.error().await;
    assert_eq!(code, ErrorCode::Forbidden.as_u16());
    assert_eq!(code, 104);
    assert_eq!((id, room.as_deref()), (None, Some("news:x")));
    alice.join("chat:x").await;
}

#[tokio::test]
async fn publishing_where_the_namespace_disables_it_gets_publish_disabled() {
    let server = TestServer::start_with(|c| {
        c.namespaces.insert(
            "news".into(),
            NamespacePolicy {
                client_publish: false,
                ..Default::default()
            },
        );
    })
    .await;
    let mut alice = server.connect("alice").await;
    alice.join("news:x").await;
    alice.publish("news:x", 5, "extra!").await;
    let (code, id, room) = alice.error().await;
    assert_eq!(code, ErrorCode::PublishDisabled.as_u16());
    assert_eq!(code, 109);
    assert_eq!((id, room.as_deref()), (Some(5), Some("news:x")));
    // Other namespaces keep the default policy.
    alice.join("chat:x").await;
    alice.publish("chat:x", 6, "hi").await;
    assert_eq!(alice.ack(6).await, 1);
}

#[tokio::test]
async fn joining_a_full_room_gets_room_full() {
    let server = TestServer::start_with(|c| {
        c.namespaces.insert(
            "small".into(),
            NamespacePolicy {
                max_members: 2,
                ..Default::default()
            },
        );
    })
    .await;
    let mut alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    let mut carol = server.connect("carol").await;
    alice.join("small:room").await;
    bob.join("small:room").await;
    carol
        .send(ClientMessage::Join {
            room: "small:room".into(),
            since: None,
        })
        .await;
    let (code, id, room) = carol.error().await;
    assert_eq!(code, ErrorCode::RoomFull.as_u16());
    assert_eq!(code, 108);
    assert_eq!((id, room.as_deref()), (None, Some("small:room")));
    // The limit counts users: a member's second connection still gets in.
    let mut alice_again = server.connect("alice").await;
    alice_again.join("small:room").await;
}
