//! Joins are rate limited per connection, as publishes and typing are: every join is
//! heard by the whole room (`MemberJoined`, then `MemberLeft` at the leave), so a join/leave
//! loop beyond the burst is refused with `RateLimited` (106), unheard by the room, and
//! counted as abuse. A Leave is never refused: each one the room hears follows a join it
//! heard. Within the rate, and for a reconnect's rejoin of every room at once, nothing is
//! refused.
//!
//! The bucket of the refusing tests refills at one token per second, far slower than a test
//! sends, so "beyond the burst" needs no timing.

use std::time::Duration;

use crate::common::{Client, TestServer};
use chorus_protocol::{ClientMessage, ErrorCode, ServerMessage};

/// Send a Join for `room` and return its answer: `Ok(())` for `Joined`, `Err(code)` for an
/// error about the room.
async fn try_join(client: &mut Client, room: &str) -> Result<(), u16> {
    client
        .send(ClientMessage::Join {
            room: room.into(),
            since: None,
        })
        .await;
    match client
        .recv_until(|m| {
            matches!(m, ServerMessage::Joined { room: r, .. } if r == room)
                || matches!(m, ServerMessage::Error { room: Some(r), .. } if r == room)
        })
        .await
    {
        ServerMessage::Joined { .. } => Ok(()),
        ServerMessage::Error { code, .. } => Err(code),
        _ => unreachable!(),
    }
}

/// Send a Leave for `room` and wait for its `Left`.
async fn leave(client: &mut Client, room: &str) {
    client
        .send(ClientMessage::Leave { room: room.into() })
        .await;
    client
        .recv_until(|m| matches!(m, ServerMessage::Left { room: r } if r == room))
        .await;
}

#[tokio::test]
async fn a_join_leave_loop_beyond_the_burst_is_refused_with_106_and_unheard_by_the_room() {
    let server = TestServer::start_with(|c| {
        c.membership_rate = 1;
        c.membership_burst = 3;
    })
    .await;
    let mut alice = server.connect("alice").await;
    alice.join("lobby").await;
    let mut mallory = server.connect("mallory").await;
    let mut answers = Vec::new();
    for _ in 0..6 {
        answers.push(try_join(&mut mallory, "lobby").await);
        leave(&mut mallory, "lobby").await;
    }
    let refused = Err(ErrorCode::RateLimited.as_u16());
    assert_eq!(answers, [Ok(()), Ok(()), Ok(()), refused, refused, refused]);
    // The connection stays open.
    mallory.ping(1).await;

    // Carol joins last: everything the room heard of mallory reached alice before her.
    let mut carol = server.connect("carol").await;
    carol.join("lobby").await;
    let (mut joined, mut left) = (0, 0);
    loop {
        match alice.recv().await {
            ServerMessage::MemberJoined { user, .. } if user == "carol" => break,
            ServerMessage::MemberJoined { user, .. } if user == "mallory" => joined += 1,
            ServerMessage::MemberLeft { user, .. } if user == "mallory" => left += 1,
            _ => {}
        }
    }
    assert_eq!(
        (joined, left),
        (3, 3),
        "the room heard only the accepted joins"
    );
}

#[tokio::test]
async fn persistent_join_flooding_ends_with_close_code_4003() {
    let server = TestServer::start_with(|c| {
        c.membership_rate = 1;
        c.membership_burst = 1;
        c.abuse_burst = 3;
    })
    .await;
    let mut mallory = server.connect("mallory").await;
    let mut bob = server.connect("bob").await;
    // One accepted, then refused until the abuse bucket (three) runs out.
    assert_eq!(try_join(&mut mallory, "lobby").await, Ok(()));
    leave(&mut mallory, "lobby").await;
    for _ in 0..3 {
        assert_eq!(
            try_join(&mut mallory, "lobby").await,
            Err(ErrorCode::RateLimited.as_u16())
        );
    }
    mallory
        .send(ClientMessage::Join {
            room: "lobby".into(),
            since: None,
        })
        .await;
    let closed = loop {
        match mallory.next().await {
            Ok(ServerMessage::Error { .. }) => {}
            Ok(other) => panic!("expected the connection to close, got {other:?}"),
            Err(closed) => break closed,
        }
    };
    assert_eq!(closed.code(), Some(4003), "{closed:?}");
    bob.ping(1).await;
}

#[tokio::test]
async fn a_rejoin_of_every_room_at_once_is_not_refused_by_default() {
    let server = TestServer::start().await;
    let rooms = server.config.max_rooms_per_connection;
    let mut alice = server.connect("alice").await;
    // What a client does after a reconnect: every Join at once, then the answers.
    for n in 0..rooms {
        alice
            .send(ClientMessage::Join {
                room: format!("room{n}"),
                since: None,
            })
            .await;
    }
    for n in 0..rooms {
        let room = format!("room{n}");
        let answer = alice
            .recv_until(|m| {
                matches!(
                    m,
                    ServerMessage::Joined { .. } | ServerMessage::Error { .. }
                )
            })
            .await;
        assert!(
            matches!(&answer, ServerMessage::Joined { room: r, .. } if *r == room),
            "expected Joined for {room}, got {answer:?}"
        );
    }
    for n in 0..rooms {
        leave(&mut alice, &format!("room{n}")).await;
    }
    alice.ping(1).await;
}

#[tokio::test]
async fn joins_within_the_rate_are_never_refused() {
    // A burst of one, so that only the rate lets a join through: one token each 50 ms.
    let server = TestServer::start_with(|c| {
        c.membership_rate = 20;
        c.membership_burst = 1;
    })
    .await;
    let mut alice = server.connect("alice").await;
    for _ in 0..5 {
        assert_eq!(try_join(&mut alice, "lobby").await, Ok(()));
        leave(&mut alice, "lobby").await;
        // Pacing, not waiting for an event: the next join leaves twice the token's interval
        // after the server took this one (it did before answering), however slow the
        // machine; a slower one only spaces them more.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
