//! History pages: `ClientMessage::History` answers the newest retained messages, or those
//! before a position, within the page limit and the frame size; refusals carry the request's
//! id. Idle room histories are forgotten, and the room's next use starts a new epoch.

use std::time::Duration;

use crate::common::{Client, TestServer};
use chorus_protocol::{
    Body, ClientMessage, ErrorCode, HistoryMessage, Position, Recovery, ServerMessage,
};

/// A `History` answer's parts.
#[derive(Debug)]
struct Page {
    position: Position,
    messages: Vec<HistoryMessage>,
    more: bool,
}

impl Page {
    fn seqs(&self) -> Vec<u64> {
        self.messages.iter().map(|m| m.seq).collect()
    }

    /// The position to ask for the page before this one.
    fn before(&self) -> Option<Position> {
        Some(Position {
            epoch: self.position.epoch,
            seq: self.messages[0].seq,
        })
    }
}

/// Ask for a page and expect a `History` answer for `request` in `room`.
async fn page(
    client: &mut Client,
    request: u64,
    room: &str,
    before: Option<Position>,
    limit: u32,
) -> Page {
    match client.history(request, room, before, limit).await {
        ServerMessage::History {
            request: r,
            room: name,
            position,
            messages,
            more,
        } => {
            assert_eq!((r, name.as_str()), (request, room));
            Page {
                position,
                messages,
                more,
            }
        }
        other => panic!("expected a History answer, got {other:?}"),
    }
}

/// Ask for a page and expect it refused: returns the error's (code, id, room).
async fn refused(
    client: &mut Client,
    request: u64,
    room: &str,
    before: Option<Position>,
    limit: u32,
) -> (u16, Option<u64>, Option<String>) {
    match client.history(request, room, before, limit).await {
        ServerMessage::Error { code, id, room, .. } => (code, id, room),
        other => panic!("expected an Error, got {other:?}"),
    }
}

/// Join `room` and return the position in the `Joined` answer.
async fn join(client: &mut Client, room: &str) -> Position {
    match client.join(room).await {
        ServerMessage::Joined { position, .. } => position,
        _ => unreachable!(),
    }
}

/// Publish `body` with `id` and wait for both its ack and its `Message` (which come in
/// either order), so that neither is left to surprise a later read. Returns the sequence.
async fn publish(client: &mut Client, room: &str, id: u64, body: Body) -> u64 {
    client
        .send(ClientMessage::Publish {
            room: room.into(),
            id,
            body,
        })
        .await;
    let (mut seq, mut delivered) = (None, false);
    while seq.is_none() || !delivered {
        match client.recv().await {
            ServerMessage::PublishAck { id: i, seq: s, .. } if i == id => seq = Some(s),
            ServerMessage::Message { id: i, .. } if i == id => delivered = true,
            ServerMessage::Error { id: Some(i), .. } if i == id => panic!("publish {id} refused"),
            _ => {}
        }
    }
    seq.unwrap()
}

/// Publish texts "m1", "m2", ... with ids `1..=n`.
async fn publish_n(client: &mut Client, room: &str, n: u64) {
    for id in 1..=n {
        publish(client, room, id, Body::Text(format!("m{id}"))).await;
    }
}

#[tokio::test]
async fn the_newest_page_holds_the_newest_messages_oldest_first() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let joined = join(&mut alice, "lobby").await;
    publish_n(&mut alice, "lobby", 5).await;

    let page = page(&mut alice, 1, "lobby", None, 3).await;
    assert_eq!(page.seqs(), [3, 4, 5]);
    assert!(page.more);
    assert_eq!(
        page.position,
        Position {
            epoch: joined.epoch,
            seq: 5
        }
    );
    let last = &page.messages[2];
    assert_eq!(
        (last.id, last.sender.as_str(), &last.body),
        (5, "alice", &Body::Text("m5".into()))
    );
    assert!(last.ts > 0);
}

#[tokio::test]
async fn paging_back_with_before_reaches_the_first_message_then_more_is_false() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    join(&mut alice, "lobby").await;
    publish_n(&mut alice, "lobby", 7).await;

    let mut pages = vec![page(&mut alice, 1, "lobby", None, 3).await];
    while pages.last().unwrap().more {
        assert!(pages.len() < 10, "paging does not end: {pages:?}");
        let before = pages.last().unwrap().before();
        let request = pages.len() as u64 + 1;
        pages.push(page(&mut alice, request, "lobby", before, 3).await);
    }
    let seqs: Vec<Vec<u64>> = pages.iter().map(Page::seqs).collect();
    assert_eq!(seqs, [vec![5, 6, 7], vec![2, 3, 4], vec![1]]);
    let texts: Vec<Body> = pages
        .iter()
        .rev()
        .flat_map(|p| p.messages.iter().map(|m| m.body.clone()))
        .collect();
    let expected: Vec<Body> = (1..=7).map(|i| Body::Text(format!("m{i}"))).collect();
    assert_eq!(texts, expected);
}

#[tokio::test]
async fn history_needs_no_join_and_does_not_subscribe() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    join(&mut alice, "lobby").await;
    publish_n(&mut alice, "lobby", 2).await;

    let mut bob = server.connect("bob").await;
    let page = page(&mut bob, 1, "lobby", None, 10).await;
    assert_eq!(page.seqs(), [1, 2]);
    assert!(!page.more);

    // Bob is still not a member: a new message does not reach him.
    alice.publish("lobby", 3, "live").await;
    alice.ack(3).await;
    bob.send(ClientMessage::Ping { nonce: 9 }).await;
    let next = bob.recv().await;
    assert!(
        matches!(next, ServerMessage::Pong { nonce: 9 }),
        "expected only the pong, got {next:?}"
    );
}

#[tokio::test]
async fn a_room_the_token_does_not_permit_is_forbidden_and_a_bad_name_is_invalid() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    join(&mut alice, "lobby").await;
    publish_n(&mut alice, "lobby", 1).await;

    let token = server.token_for("bob", &["public:*"]);
    let mut bob = server.connect_with_token(&token).await.unwrap();
    bob.welcome().await;
    let (code, id, room) = refused(&mut bob, 41, "lobby", None, 10).await;
    assert_eq!(code, ErrorCode::Forbidden.as_u16());
    assert_eq!((id, room.as_deref()), (Some(41), Some("lobby")));
    let (code, id, room) = refused(&mut bob, 42, "public:*", None, 10).await;
    assert_eq!(code, ErrorCode::InvalidRoom.as_u16());
    assert_eq!((id, room.as_deref()), (Some(42), Some("public:*")));
    // A permitted room is answered.
    let page = page(&mut bob, 43, "public:news", None, 10).await;
    assert!(page.messages.is_empty());
}

#[tokio::test]
async fn a_position_from_another_epoch_is_answered_with_epoch_changed() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let joined = join(&mut alice, "lobby").await;
    publish_n(&mut alice, "lobby", 3).await;

    let stale = Position {
        epoch: joined.epoch ^ 1,
        seq: 3,
    };
    let (code, id, room) = refused(&mut alice, 7, "lobby", Some(stale), 10).await;
    assert_eq!(code, ErrorCode::EpochChanged.as_u16());
    assert_eq!(code, 112);
    assert_eq!((id, room.as_deref()), (Some(7), Some("lobby")));
    // The same position in the current epoch is fine.
    let current = Position {
        epoch: joined.epoch,
        seq: 3,
    };
    let page = page(&mut alice, 8, "lobby", Some(current), 10).await;
    assert_eq!(page.seqs(), [1, 2]);
}

#[tokio::test]
async fn a_zero_limit_is_an_invalid_request() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let (code, id, room) = refused(&mut alice, 5, "lobby", None, 0).await;
    assert_eq!(code, ErrorCode::InvalidRequest.as_u16());
    assert_eq!((id, room.as_deref()), (Some(5), Some("lobby")));
}

#[tokio::test]
async fn the_limit_is_clamped_to_history_page_max() {
    let server = TestServer::start_with(|c| c.history_page_max = 2).await;
    let mut alice = server.connect("alice").await;
    join(&mut alice, "lobby").await;
    publish_n(&mut alice, "lobby", 5).await;
    let page = page(&mut alice, 1, "lobby", None, u32::MAX).await;
    assert_eq!(page.seqs(), [4, 5]);
    assert!(page.more);
}

#[tokio::test]
async fn large_bodies_fill_a_page_up_to_the_frame_limit() {
    const MAX_FRAME: usize = 4096;
    let server = TestServer::start_with(|c| c.max_frame = MAX_FRAME).await;
    let mut alice = server.connect("alice").await;
    join(&mut alice, "lobby").await;
    // Two of these fit in a frame, three do not.
    for id in 1..=4 {
        publish(&mut alice, "lobby", id, Body::Text("x".repeat(1500))).await;
    }
    // The harness decodes with the frame limit from the welcome, so a larger answer would
    // fail the test.
    let newest = page(&mut alice, 1, "lobby", None, 100).await;
    assert_eq!(newest.seqs(), [3, 4]);
    assert!(newest.more);
    let older = page(&mut alice, 2, "lobby", newest.before(), 100).await;
    assert_eq!(older.seqs(), [1, 2]);
    assert!(!older.more);

    // A body of the largest size takes a page of its own.
    let max_body = chorus_protocol::validate::max_body(MAX_FRAME);
    for id in 5..=6 {
        publish(&mut alice, "lobby", id, Body::Binary(vec![7; max_body])).await;
    }
    let largest = page(&mut alice, 3, "lobby", None, 100).await;
    assert_eq!(largest.seqs(), [6]);
    assert!(largest.more);
    assert_eq!(largest.messages[0].body.len(), max_body);
}

#[tokio::test]
async fn history_requests_over_the_rate_are_refused_with_rate_limited() {
    let server = TestServer::start_with(|c| {
        c.history_per_second = 1;
        c.history_burst = 2;
    })
    .await;
    let mut alice = server.connect("alice").await;
    page(&mut alice, 1, "lobby", None, 10).await;
    page(&mut alice, 2, "lobby", None, 10).await;
    let (code, id, room) = refused(&mut alice, 3, "lobby", None, 10).await;
    assert_eq!(code, ErrorCode::RateLimited.as_u16());
    assert_eq!((id, room.as_deref()), (Some(3), Some("lobby")));
    // The publish bucket is a separate one.
    join(&mut alice, "lobby").await;
    alice.publish("lobby", 1, "still here").await;
    assert_eq!(alice.ack(1).await, 1);

    let outcome = |o: &str| format!(r#"chorus_history_requests_total{{outcome="{o}"}}"#);
    assert_eq!(server.metric(&outcome("ok")).await, 2.0);
    assert_eq!(server.metric(&outcome("rate_limited")).await, 1.0);
}

#[tokio::test]
async fn answers_come_in_request_order_with_other_replies() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    join(&mut alice, "lobby").await;
    publish_n(&mut alice, "lobby", 3).await;
    alice.send(ClientMessage::Ping { nonce: 1 }).await;
    for request in [10, 11] {
        alice
            .send(ClientMessage::History {
                request,
                room: "lobby".into(),
                before: None,
                limit: 2,
            })
            .await;
    }
    alice.send(ClientMessage::Ping { nonce: 2 }).await;
    let mut order = Vec::new();
    for _ in 0..4 {
        order.push(match alice.recv().await {
            ServerMessage::Pong { nonce } => format!("pong {nonce}"),
            ServerMessage::History { request, .. } => format!("history {request}"),
            other => panic!("unexpected {other:?}"),
        });
    }
    assert_eq!(order, ["pong 1", "history 10", "history 11", "pong 2"]);
}

#[tokio::test]
async fn a_room_without_history_reads_empty_in_epoch_0_and_gets_no_log() {
    let server = TestServer::start().await;
    assert_eq!(server.metric("chorus_room_logs").await, 0.0);
    let mut alice = server.connect("alice").await;
    let page = page(&mut alice, 1, "nobody-here", None, 10).await;
    assert_eq!(page.position, Position { epoch: 0, seq: 0 });
    assert!(page.messages.is_empty() && !page.more);
    assert_eq!(server.metric("chorus_room_logs").await, 0.0);

    let joined = join(&mut alice, "nobody-here").await;
    assert_ne!(joined.epoch, 0, "a live history never has epoch 0");
    assert_eq!(server.metric("chorus_room_logs").await, 1.0);
}

#[tokio::test]
async fn an_idle_room_log_is_forgotten_and_the_next_join_starts_a_new_epoch() {
    let server = TestServer::start_with(|c| {
        c.default_namespace.history_ttl = Duration::from_millis(100);
        c.dedupe_window = Duration::from_millis(100);
        c.history_sweep_interval = Duration::from_millis(20);
    })
    .await;
    let mut alice = server.connect("alice").await;
    // "busy" keeps a member throughout; its messages expire first.
    let busy = join(&mut alice, "busy").await;
    publish(&mut alice, "busy", 1, "kept".into()).await;
    let quiet = join(&mut alice, "quiet").await;
    assert_eq!(publish(&mut alice, "quiet", 2, "gone".into()).await, 1);
    assert_eq!(server.metric("chorus_room_logs").await, 2.0);

    alice
        .send(ClientMessage::Leave {
            room: "quiet".into(),
        })
        .await;
    alice
        .recv_until(|m| matches!(m, ServerMessage::Left { .. }))
        .await;
    server
        .wait_for_metric("chorus_room_logs", |v| v == 1.0)
        .await;

    // The forgotten room: its old position is from another epoch now.
    let old = Position {
        epoch: quiet.epoch,
        seq: 1,
    };
    let (code, ..) = refused(&mut alice, 1, "quiet", Some(old), 10).await;
    assert_eq!(code, ErrorCode::EpochChanged.as_u16());
    match alice.join_since("quiet", Some(old)).await {
        ServerMessage::Joined {
            position, recovery, ..
        } => {
            assert_ne!(position.epoch, quiet.epoch);
            assert_eq!(position.seq, 0);
            assert_eq!(recovery, Recovery::Missed);
        }
        _ => unreachable!(),
    }
    // The room with a member kept its history's epoch and sequence, though its messages
    // expired.
    let page = page(&mut alice, 2, "busy", None, 10).await;
    assert_eq!(
        page.position,
        Position {
            epoch: busy.epoch,
            seq: 1
        }
    );
    assert!(page.messages.is_empty());
}
