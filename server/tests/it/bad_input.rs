//! Bad input is answered with an `Error` carrying its stable code, and the connection stays
//! usable; other connections do not notice. Only a frame over `max_frame` ends the
//! connection, with close code 1009.

use crate::common::{Client, TestServer};
use chorus_protocol::{Body, ClientMessage, ErrorCode, ServerMessage, validate};
use tokio_tungstenite::tungstenite::Message;

/// Small, to keep oversized frames cheap.
const MAX_FRAME: usize = 4096;

/// A server with a small frame limit, a client `alice` in `lobby` and a bystander `bob` in
/// `lobby`.
async fn setup() -> (TestServer, Client, Client) {
    let server = TestServer::start_with(|c| c.max_frame = MAX_FRAME).await;
    let mut alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    assert!(matches!(
        alice.recv().await,
        ServerMessage::MemberJoined { .. }
    ));
    (server, alice, bob)
}

/// The next message must be an `Error` with these fields.
async fn assert_error(client: &mut Client, code: ErrorCode, id: Option<u64>, room: Option<&str>) {
    match client.recv().await {
        ServerMessage::Error {
            code: got,
            id: got_id,
            room: got_room,
            ..
        } => assert_eq!(
            (got, got_id, got_room.as_deref()),
            (code.as_u16(), id, room),
            "expected error {} ({})",
            code.as_u16(),
            code.name()
        ),
        other => panic!("expected error {}, got {other:?}", code.as_u16()),
    }
}

/// Both connections still work: alice answers pings and can publish, bob receives it.
async fn assert_unaffected(alice: &mut Client, bob: &mut Client) {
    alice.ping(42).await;
    alice.publish("lobby", 1000, "still here").await;
    alice.ack(1000).await;
    bob.recv_until(|m| matches!(m, ServerMessage::Message { id: 1000, .. }))
        .await;
    bob.ping(43).await;
}

#[tokio::test]
async fn the_welcome_announces_the_frame_and_body_limits() {
    let server = TestServer::start_with(|c| c.max_frame = MAX_FRAME).await;
    let mut alice = server
        .connect_with_token(&server.token("alice"))
        .await
        .unwrap();
    match alice.welcome().await {
        ServerMessage::Welcome { limits, .. } => {
            assert_eq!(limits.max_frame as usize, MAX_FRAME);
            assert_eq!(limits.max_body as usize, validate::max_body(MAX_FRAME));
        }
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn an_undecodable_frame_gets_bad_frame() {
    let (_server, mut alice, mut bob) = setup().await;
    alice
        .send_raw(Message::Binary(vec![0xff, 0xff, 0xff].into()))
        .await;
    assert_error(&mut alice, ErrorCode::BadFrame, None, None).await;
    assert_unaffected(&mut alice, &mut bob).await;
}

#[tokio::test]
async fn a_message_followed_by_extra_bytes_gets_bad_frame() {
    let (_server, mut alice, mut bob) = setup().await;
    let mut frame = ClientMessage::Ping { nonce: 1 }.encode(MAX_FRAME).unwrap();
    frame.push(0);
    alice.send_raw(Message::Binary(frame.into())).await;
    assert_error(&mut alice, ErrorCode::BadFrame, None, None).await;
    assert_unaffected(&mut alice, &mut bob).await;
}

#[tokio::test]
async fn a_text_frame_gets_text_frame() {
    let (_server, mut alice, mut bob) = setup().await;
    alice
        .send_raw(Message::Text(r#"{"join":"lobby"}"#.into()))
        .await;
    assert_error(&mut alice, ErrorCode::TextFrame, None, None).await;
    assert_unaffected(&mut alice, &mut bob).await;
}

#[tokio::test]
async fn joining_an_invalid_room_name_gets_invalid_room() {
    let (_server, mut alice, mut bob) = setup().await;
    for room in ["bad room", "", ":tech", "news:*"] {
        alice
            .send(ClientMessage::Join {
                room: room.into(),
                since: None,
            })
            .await;
        assert_error(&mut alice, ErrorCode::InvalidRoom, None, Some(room)).await;
    }
    assert_unaffected(&mut alice, &mut bob).await;
}

#[tokio::test]
async fn a_body_over_max_body_gets_body_too_large_with_the_publish_id() {
    let (_server, mut alice, mut bob) = setup().await;
    let max_body = validate::max_body(MAX_FRAME);
    alice
        .send(ClientMessage::Publish {
            room: "lobby".into(),
            id: 7,
            body: Body::Binary(vec![0; max_body + 1]),
        })
        .await;
    assert_error(&mut alice, ErrorCode::BodyTooLarge, Some(7), Some("lobby")).await;
    // Exactly max_body is fine, and reaches the others.
    alice
        .send(ClientMessage::Publish {
            room: "lobby".into(),
            id: 8,
            body: Body::Text("x".repeat(max_body)),
        })
        .await;
    assert_eq!(alice.ack(8).await, 1);
    match bob
        .recv_until(|m| matches!(m, ServerMessage::Message { .. }))
        .await
    {
        ServerMessage::Message { id, body, .. } => assert_eq!((id, body.len()), (8, max_body)),
        _ => unreachable!(),
    }
    assert_unaffected(&mut alice, &mut bob).await;
}

#[tokio::test]
async fn publishing_to_a_room_not_joined_gets_not_joined() {
    let (_server, mut alice, mut bob) = setup().await;
    alice.publish("elsewhere", 9, "hello?").await;
    assert_error(&mut alice, ErrorCode::NotJoined, Some(9), Some("elsewhere")).await;
    assert_unaffected(&mut alice, &mut bob).await;
}

#[tokio::test]
async fn typing_in_a_room_not_joined_gets_not_joined() {
    let (_server, mut alice, mut bob) = setup().await;
    alice
        .send(ClientMessage::TypingStarted {
            room: "elsewhere".into(),
        })
        .await;
    assert_error(&mut alice, ErrorCode::NotJoined, None, Some("elsewhere")).await;
    alice
        .send(ClientMessage::TypingStopped {
            room: "elsewhere".into(),
        })
        .await;
    assert_error(&mut alice, ErrorCode::NotJoined, None, Some("elsewhere")).await;
    assert_unaffected(&mut alice, &mut bob).await;
}

#[tokio::test]
async fn a_frame_over_max_frame_closes_with_1009() {
    let (_server, mut alice, mut bob) = setup().await;
    alice
        .send_raw(Message::Binary(vec![0; MAX_FRAME + 1].into()))
        .await;
    let closed = alice.closed().await;
    assert_eq!(closed.code(), Some(1009), "{closed:?}");
    if let Some(notice) = &closed.notice {
        assert!(
            matches!(notice, ServerMessage::Disconnect { code: 1009, .. }),
            "{notice:?}"
        );
    }
    bob.ping(1).await;
}

#[tokio::test]
async fn a_frame_of_exactly_max_frame_is_accepted() {
    let (_server, mut alice, mut bob) = setup().await;
    // A publish whose encoding is exactly MAX_FRAME bytes; its body is over max_body, so
    // it is refused with an error, not a close.
    let overhead = ClientMessage::Publish {
        room: "lobby".into(),
        id: 1,
        body: Body::Binary(Vec::new()),
    }
    .encode(MAX_FRAME)
    .unwrap()
    .len();
    // The body's length prefix grows from one byte to two.
    let body = vec![0; MAX_FRAME - overhead - 1];
    let frame = ClientMessage::Publish {
        room: "lobby".into(),
        id: 1,
        body: Body::Binary(body),
    }
    .encode(usize::MAX)
    .unwrap();
    assert_eq!(frame.len(), MAX_FRAME);
    alice.send_raw(Message::Binary(frame.into())).await;
    assert_error(&mut alice, ErrorCode::BodyTooLarge, Some(1), Some("lobby")).await;
    assert_unaffected(&mut alice, &mut bob).await;
}
