//! Typing indicators: relayed to the other members, throttled, stopped, expired, and
//! cleared by a publish or a departure.

use std::time::Duration;

use crate::common::{Client, TestServer};
use chorus_protocol::{Body, ClientMessage, ServerMessage};
use tokio::time::Instant;

const ROOM: &str = "lobby";

fn typing(user: &str, typing: bool) -> ServerMessage {
    ServerMessage::Typing {
        room: ROOM.into(),
        user: user.into(),
        typing,
    }
}

async fn start_typing(client: &mut Client) {
    client
        .send(ClientMessage::TypingStarted { room: ROOM.into() })
        .await;
}

/// Once the pong for `nonce` arrives, the connection has handled everything sent before
/// the ping.
async fn fence(client: &mut Client, nonce: u64) {
    client.send(ClientMessage::Ping { nonce }).await;
    let pong = client.recv().await;
    assert_eq!(pong, ServerMessage::Pong { nonce });
}

/// `alice` and `bob` in the room, every presence event read.
async fn alice_and_bob(server: &TestServer) -> (Client, Client) {
    let mut alice = server.connect("alice").await;
    alice.join(ROOM).await;
    let mut bob = server.connect("bob").await;
    bob.join(ROOM).await;
    assert_eq!(
        alice.recv().await,
        ServerMessage::MemberJoined {
            room: ROOM.into(),
            user: "bob".into()
        }
    );
    (alice, bob)
}

/// The next message must be `id` published by `sender`: proof that nothing came before it.
async fn expect_message(client: &mut Client, sender: &str, id: u64) {
    match client.recv().await {
        ServerMessage::Message {
            sender: s, id: i, ..
        } if s == sender && i == id => {}
        other => panic!("expected message {id} from {sender}, got {other:?}"),
    }
}

#[tokio::test]
async fn typing_started_reaches_other_members_but_not_the_typists_own_connections() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    alice.join(ROOM).await;
    let mut alice_phone = server.connect("alice").await;
    alice_phone.join(ROOM).await;
    let mut bob = server.connect("bob").await;
    bob.join(ROOM).await;
    for connection in [&mut alice, &mut alice_phone] {
        assert!(matches!(
            connection.recv().await,
            ServerMessage::MemberJoined { user, .. } if user == "bob"
        ));
    }

    start_typing(&mut alice).await;
    assert_eq!(bob.recv().await, typing("alice", true));

    // Bob's message was published after the relay, so had alice's connections been sent the
    // relay, it would come first.
    bob.publish(ROOM, 1, "hi").await;
    bob.ack(1).await;
    expect_message(&mut alice, "bob", 1).await;
    expect_message(&mut alice_phone, "bob", 1).await;
}

#[tokio::test]
async fn a_burst_of_typing_started_is_relayed_once_per_throttle_window() {
    let throttle = Duration::from_millis(300);
    let server = TestServer::start_with(|c| {
        c.typing_throttle = throttle;
        c.typing_ttl = Duration::from_secs(30);
    })
    .await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    let mut carol = server.connect("carol").await;
    carol.join(ROOM).await;
    for member in [&mut alice, &mut bob] {
        assert!(matches!(
            member.recv().await,
            ServerMessage::MemberJoined { user, .. } if user == "carol"
        ));
    }

    let burst_started = Instant::now();
    for _ in 0..5 {
        start_typing(&mut alice).await;
    }
    fence(&mut alice, 1).await;
    assert!(
        burst_started.elapsed() < throttle,
        "the burst took longer than the throttle window; the test proves nothing"
    );
    assert_eq!(bob.recv().await, typing("alice", true));
    let first_relay_seen = Instant::now();
    // Every relay of the burst is queued for bob before carol publishes.
    carol.publish(ROOM, 1, "fence").await;
    carol.ack(1).await;
    expect_message(&mut bob, "carol", 1).await;

    // The server stamped the first relay before bob saw it, so the window is over by now.
    tokio::time::sleep_until(first_relay_seen + throttle).await;
    start_typing(&mut alice).await;
    assert_eq!(bob.recv().await, typing("alice", true));
}

#[tokio::test]
async fn typing_stopped_is_relayed_at_once() {
    // A ttl far beyond the harness timeout: a stop seen at all did not come from expiry.
    let server = TestServer::start_with(|c| c.typing_ttl = Duration::from_secs(60)).await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;

    start_typing(&mut alice).await;
    assert_eq!(bob.recv().await, typing("alice", true));
    alice
        .send(ClientMessage::TypingStopped { room: ROOM.into() })
        .await;
    assert_eq!(bob.recv().await, typing("alice", false));
}

#[tokio::test]
async fn typing_expires_when_not_refreshed_within_the_ttl() {
    let ttl = Duration::from_millis(200);
    let server = TestServer::start_with(|c| c.typing_ttl = ttl).await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;

    let sent = Instant::now();
    start_typing(&mut alice).await;
    assert_eq!(bob.recv().await, typing("alice", true));
    assert_eq!(bob.recv().await, typing("alice", false));
    assert!(
        sent.elapsed() >= ttl,
        "typing ended after {:?}, before the ttl of {ttl:?}",
        sent.elapsed()
    );
}

#[tokio::test]
async fn publishing_ends_the_senders_typing() {
    let server = TestServer::start_with(|c| c.typing_ttl = Duration::from_secs(60)).await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;

    start_typing(&mut alice).await;
    assert_eq!(bob.recv().await, typing("alice", true));
    alice.publish(ROOM, 1, "done typing").await;

    let mut seen = [bob.recv().await, bob.recv().await];
    seen.sort_by_key(|m| matches!(m, ServerMessage::Typing { .. }));
    assert!(
        matches!(&seen[0], ServerMessage::Message { sender, body: Body::Text(t), .. } if sender == "alice" && t == "done typing"),
        "expected alice's message, got {:?}",
        seen[0]
    );
    assert_eq!(seen[1], typing("alice", false));
}

#[tokio::test]
async fn a_typist_whose_connection_closes_is_relayed_as_stopped() {
    let server = TestServer::start_with(|c| c.typing_ttl = Duration::from_secs(60)).await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;

    start_typing(&mut alice).await;
    assert_eq!(bob.recv().await, typing("alice", true));
    alice.ws.close(None).await.unwrap();

    assert_eq!(bob.recv().await, typing("alice", false));
    assert_eq!(
        bob.recv().await,
        ServerMessage::MemberLeft {
            room: ROOM.into(),
            user: "alice".into()
        }
    );
}
