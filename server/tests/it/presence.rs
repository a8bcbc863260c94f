//! Presence counts users, not connections: `Joined.members` lists each user once, and
//! `MemberJoined` / `MemberLeft` fire on a user's first and last connection in a room.
//!
//! To show that an event was *not* sent, a test publishes a marker message afterwards:
//! frames reach a connection in the order they were queued, so an unwanted event would
//! arrive before the marker.

use crate::common::{Client, TestServer};
use chorus_protocol::{ClientMessage, ServerMessage};
use chorus_server::config::NamespacePolicy;

fn member_joined(room: &str, user: &str) -> ServerMessage {
    ServerMessage::MemberJoined {
        room: room.into(),
        user: user.into(),
    }
}

fn member_left(room: &str, user: &str) -> ServerMessage {
    ServerMessage::MemberLeft {
        room: room.into(),
        user: user.into(),
    }
}

/// The next message to `client`, skipping replies to its own requests.
async fn next_event(client: &mut Client) -> ServerMessage {
    client
        .recv_until(|m| {
            !matches!(
                m,
                ServerMessage::PublishAck { .. } | ServerMessage::Pong { .. }
            )
        })
        .await
}

/// `publisher` publishes marker `id` to `room`; assert that it is the next event `watcher`
/// sees.
async fn assert_nothing_before_marker(
    publisher: &mut Client,
    watcher: &mut Client,
    room: &str,
    id: u64,
) {
    publisher.publish(room, id, "marker").await;
    publisher.ack(id).await;
    match next_event(watcher).await {
        ServerMessage::Message { id: got, .. } if got == id => {}
        other => panic!("expected marker {id} and nothing before it, got {other:?}"),
    }
}

/// The members listed in a `Joined`, sorted (the protocol does not promise an order).
fn members(joined: &ServerMessage) -> Vec<String> {
    match joined {
        ServerMessage::Joined { members, .. } => {
            let mut members = members.clone();
            members.sort();
            members
        }
        other => panic!("expected Joined, got {other:?}"),
    }
}

#[tokio::test]
async fn joined_lists_the_users_present() {
    let server = TestServer::start().await;
    let mut bob = server.connect("bob").await;
    let mut alice = server.connect("alice").await;
    let mut carol = server.connect("carol").await;
    assert_eq!(members(&bob.join("lobby").await), ["bob"]);
    assert_eq!(members(&alice.join("lobby").await), ["alice", "bob"]);
    assert_eq!(
        members(&carol.join("lobby").await),
        ["alice", "bob", "carol"]
    );
}

#[tokio::test]
async fn others_see_member_joined_and_member_left() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    assert_eq!(next_event(&mut alice).await, member_joined("lobby", "bob"));
    bob.send(ClientMessage::Leave {
        room: "lobby".into(),
    })
    .await;
    assert_eq!(next_event(&mut alice).await, member_left("lobby", "bob"));
}

#[tokio::test]
async fn a_joining_user_is_not_told_of_their_own_arrival() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    assert_nothing_before_marker(&mut alice, &mut bob, "lobby", 1).await;
}

#[tokio::test]
async fn a_second_tab_of_a_present_user_is_not_a_new_member() {
    let server = TestServer::start().await;
    let mut bob = server.connect("bob").await;
    let mut tab1 = server.connect("alice").await;
    let mut tab2 = server.connect("alice").await;
    bob.join("lobby").await;
    tab1.join("lobby").await;
    assert_eq!(next_event(&mut bob).await, member_joined("lobby", "alice"));
    assert_eq!(members(&tab2.join("lobby").await), ["alice", "bob"]);
    assert_nothing_before_marker(&mut tab1, &mut bob, "lobby", 1).await;
}

#[tokio::test]
async fn member_left_comes_only_when_the_users_last_tab_closes() {
    let server = TestServer::start().await;
    let mut bob = server.connect("bob").await;
    let mut tab1 = server.connect("alice").await;
    let mut tab2 = server.connect("alice").await;
    bob.join("lobby").await;
    tab1.join("lobby").await;
    tab2.join("lobby").await;
    assert_eq!(next_event(&mut bob).await, member_joined("lobby", "alice"));

    tab1.close_and_wait().await;
    assert_nothing_before_marker(&mut tab2, &mut bob, "lobby", 1).await;
    // Alice is still present through her other tab.
    assert_eq!(members(&bob.join("lobby").await), ["alice", "bob"]);
    tab2.close_and_wait().await;
    assert_eq!(next_event(&mut bob).await, member_left("lobby", "alice"));
}

#[tokio::test]
async fn still_present_after_one_tab_closes() {
    let server = TestServer::start().await;
    let mut bob = server.connect("bob").await;
    let mut tab1 = server.connect("alice").await;
    let mut tab2 = server.connect("alice").await;
    bob.join("lobby").await;
    tab1.join("lobby").await;
    tab2.join("lobby").await;
    tab1.close_and_wait().await;
    let mut carol = server.connect("carol").await;
    assert_eq!(
        members(&carol.join("lobby").await),
        ["alice", "bob", "carol"]
    );
    tab2.close_and_wait().await;
    let mut dave = server.connect("dave").await;
    assert_eq!(members(&dave.join("lobby").await), ["bob", "carol", "dave"]);
}

#[tokio::test]
async fn an_abrupt_disconnect_yields_member_left() {
    let server = TestServer::start().await;
    let mut bob = server.connect("bob").await;
    let mut alice = server.connect("alice").await;
    bob.join("lobby").await;
    alice.join("lobby").await;
    assert_eq!(next_event(&mut bob).await, member_joined("lobby", "alice"));
    // Drop the TCP connection without a close handshake.
    drop(alice);
    assert_eq!(next_event(&mut bob).await, member_left("lobby", "alice"));
}

#[tokio::test]
async fn a_namespace_without_presence_lists_no_members_and_sends_no_events() {
    let server = TestServer::start_with(|c| {
        c.namespaces.insert(
            "quiet".into(),
            NamespacePolicy {
                presence: false,
                ..Default::default()
            },
        );
    })
    .await;
    let mut alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    assert_eq!(members(&alice.join("quiet:x").await), Vec::<String>::new());
    assert_eq!(members(&bob.join("quiet:x").await), Vec::<String>::new());
    assert_nothing_before_marker(&mut bob, &mut alice, "quiet:x", 1).await;
    // Joining again repeats the answer, still without members.
    assert_eq!(members(&alice.join("quiet:x").await), Vec::<String>::new());

    bob.send(ClientMessage::Leave {
        room: "quiet:x".into(),
    })
    .await;
    bob.recv_until(|m| matches!(m, ServerMessage::Left { .. }))
        .await;
    // Bob's leave is done, so a MemberLeft would already be queued for alice.
    alice.publish("quiet:x", 2, "marker").await;
    match next_event(&mut alice).await {
        ServerMessage::Message { id: 2, .. } => {}
        other => panic!("expected marker 2 and nothing before it, got {other:?}"),
    }
}
