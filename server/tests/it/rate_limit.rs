//! Rate limits: a request over a limit is refused with `RateLimited` (106) and the
//! connection stays open; a client that keeps getting refused is disconnected with 4003.
//!
//! The buckets refill at one token per second, far slower than a test sends, so "rapid"
//! needs no timing.

use crate::common::TestServer;
use chorus_protocol::{ClientMessage, ErrorCode, ServerMessage};

#[tokio::test]
async fn the_publish_after_the_burst_is_rate_limited_and_the_connection_stays_open() {
    let server = TestServer::start_with(|c| {
        c.publish_rate = 1;
        c.publish_burst = 2;
    })
    .await;
    let mut alice = server
        .connect_with_token(&server.token("alice"))
        .await
        .unwrap();
    match alice.welcome().await {
        ServerMessage::Welcome { limits, .. } => {
            assert_eq!((limits.publish_per_second, limits.publish_burst), (1, 2));
        }
        _ => unreachable!(),
    }
    alice.join("lobby").await;
    for id in 1..=3 {
        alice.publish("lobby", id, "spam").await;
    }
    assert_eq!(alice.ack(1).await, 1);
    assert_eq!(alice.ack(2).await, 2);
    let (code, id, room) = alice.error().await;
    assert_eq!(code, ErrorCode::RateLimited.as_u16());
    assert_eq!(code, 106);
    assert_eq!((id, room.as_deref()), (Some(3), Some("lobby")));
    alice.ping(1).await;
}

#[tokio::test]
async fn the_publish_limit_is_per_connection() {
    let server = TestServer::start_with(|c| {
        c.publish_rate = 1;
        c.publish_burst = 1;
    })
    .await;
    let mut tab1 = server.connect("alice").await;
    let mut tab2 = server.connect("alice").await;
    tab1.join("lobby").await;
    tab2.join("lobby").await;
    tab1.publish("lobby", 1, "one").await;
    tab1.ack(1).await;
    tab1.publish("lobby", 2, "two").await;
    assert_eq!(tab1.error().await.0, ErrorCode::RateLimited.as_u16());
    tab2.publish("lobby", 3, "three").await;
    assert_eq!(tab2.ack(3).await, 2);
}

#[tokio::test]
async fn typing_after_the_burst_is_rate_limited_and_the_connection_stays_open() {
    let server = TestServer::start_with(|c| {
        c.typing_rate = 1;
        c.typing_burst = 2;
    })
    .await;
    let mut alice = server.connect("alice").await;
    alice.join("lobby").await;
    alice
        .send(ClientMessage::TypingStarted {
            room: "lobby".into(),
        })
        .await;
    alice
        .send(ClientMessage::TypingStopped {
            room: "lobby".into(),
        })
        .await;
    alice
        .send(ClientMessage::TypingStarted {
            room: "lobby".into(),
        })
        .await;
    // The first two are accepted silently; the third is refused.
    match alice.recv().await {
        ServerMessage::Error { code, id, room, .. } => assert_eq!(
            (code, id, room.as_deref()),
            (ErrorCode::RateLimited.as_u16(), None, Some("lobby"))
        ),
        other => panic!("expected error 106, got {other:?}"),
    }
    alice.ping(1).await;
}

#[tokio::test]
async fn persistent_publish_abuse_ends_with_close_code_4003() {
    let server = TestServer::start_with(|c| {
        c.publish_rate = 1;
        c.publish_burst = 1;
        c.abuse_burst = 3;
    })
    .await;
    let mut alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    alice.join("lobby").await;
    // One accepted, then four refused: the abuse bucket holds three.
    for id in 1..=5 {
        alice.publish("lobby", id, "spam").await;
    }
    assert_eq!(alice.ack(1).await, 1);
    for id in 2..=4 {
        let (code, got, _) = alice.error().await;
        assert_eq!((code, got), (ErrorCode::RateLimited.as_u16(), Some(id)));
    }
    let closed = loop {
        match alice.next().await {
            Ok(ServerMessage::Message { .. } | ServerMessage::Error { id: Some(5), .. }) => {}
            Ok(other) => panic!("expected the connection to close, got {other:?}"),
            Err(closed) => break closed,
        }
    };
    assert_eq!(closed.code(), Some(4003), "{closed:?}");
    assert!(
        matches!(
            closed.notice,
            Some(ServerMessage::Disconnect { code: 4003, .. })
        ),
        "{closed:?}"
    );
    // Nobody else is affected.
    bob.ping(1).await;
}

#[tokio::test]
async fn persistent_bad_frames_end_with_close_code_4003() {
    let server = TestServer::start_with(|c| c.abuse_burst = 3).await;
    let mut alice = server.connect("alice").await;
    for _ in 0..4 {
        alice
            .send_raw(tokio_tungstenite::tungstenite::Message::Binary(
                vec![0xff; 3].into(),
            ))
            .await;
    }
    for _ in 0..3 {
        assert_eq!(alice.error().await.0, ErrorCode::BadFrame.as_u16());
    }
    let closed = loop {
        match alice.next().await {
            Ok(ServerMessage::Error { .. }) => {}
            Ok(other) => panic!("expected the connection to close, got {other:?}"),
            Err(closed) => break closed,
        }
    };
    assert_eq!(closed.code(), Some(4003), "{closed:?}");
    assert!(
        matches!(
            closed.notice,
            Some(ServerMessage::Disconnect { code: 4003, .. })
        ),
        "{closed:?}"
    );
}

#[tokio::test]
async fn repeated_mistakes_that_are_not_abuse_do_not_disconnect() {
    let server = TestServer::start_with(|c| c.abuse_burst = 3).await;
    let mut alice = server.connect("alice").await;
    // Ten publishes to a room not joined: each refused, none counted as abuse.
    for id in 1..=10 {
        alice.publish("elsewhere", id, "oops").await;
        assert_eq!(alice.error().await.0, ErrorCode::NotJoined.as_u16());
    }
    alice.ping(7).await;
}
