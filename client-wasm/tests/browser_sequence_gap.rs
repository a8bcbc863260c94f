//! A room message lost on a live connection (the test link drops one frame) is not passed
//! over in silence: the client sees the gap in the sequence numbers, resumes the room from
//! the last message it delivered, and the app gets every message, in order, once, without
//! a `Left` for the room it never left.

#![cfg(target_arch = "wasm32")]

mod browser_common;

use browser_common::{
    TestServer, WAIT, connect, fast_options, join_room, next_event_matching, wait_open, wait_text,
    within,
};
use chorus_client::{Body, Event};
use chorus_protocol::Recovery;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const ROOM: &str = "chat:gap";

#[wasm_bindgen_test]
async fn a_message_lost_on_a_live_connection_is_recovered_in_order() {
    let server = TestServer::start(&[]).await;
    let link = server.link().await;
    let (alice, mut alice_events) = connect(&link.ws, server.token("alice").await, fast_options());
    wait_open(&mut alice_events, "alice", WAIT).await;
    let (bob, mut bob_events) = connect(&server.ws, server.token("bob").await, fast_options());
    wait_open(&mut bob_events, "bob", WAIT).await;
    join_room(&alice, &mut alice_events, ROOM).await;
    join_room(&bob, &mut bob_events, ROOM).await;

    let first = within(WAIT, "the ack of one", bob.publish(ROOM, "one"))
        .await
        .expect("one acked");
    wait_text(&mut alice_events, ROOM, "one", WAIT).await;

    // The next room message to Alice is lost on the way.
    link.drop_message().await;
    for text in ["two", "three"] {
        within(WAIT, "bob's ack", bob.publish(ROOM, text))
            .await
            .expect("acked");
    }

    // Everything Alice hears about the room up to "three".
    let mut heard = Vec::new();
    let mut rejoined = None;
    next_event_matching(
        &mut alice_events,
        "the message \"three\"",
        WAIT,
        |e| match e {
            Event::Message {
                room,
                seq,
                body: Body::Text(text),
                ..
            } if room == ROOM => {
                heard.push((*seq, text.clone()));
                text == "three"
            }
            Event::Joined { room, recovery, .. } if room == ROOM => {
                rejoined = Some(*recovery);
                false
            }
            Event::Left { room } if room == ROOM => panic!("Left {room}, which the app never left"),
            _ => false,
        },
    )
    .await;
    assert_eq!(link.dropped().await, 1, "the link dropped one room message");
    assert_eq!(
        heard,
        vec![
            (first.seq + 1, "two".to_owned()),
            (first.seq + 2, "three".to_owned())
        ],
        "the lost message and the next, in order, once"
    );
    assert_eq!(
        rejoined,
        Some(Recovery::Recovered),
        "the room was resumed from before the gap"
    );

    // The room goes on live.
    within(WAIT, "bob's ack", bob.publish(ROOM, "four"))
        .await
        .expect("acked");
    match wait_text(&mut alice_events, ROOM, "four", WAIT).await {
        Event::Message { seq, .. } => assert_eq!(seq, first.seq + 3),
        other => panic!("not a message: {other:?}"),
    }
}
