//! A page reload, as an app handles it with the stored position and its own message ids:
//! the new client joins with `join_since` and gets only what came after, and a publish
//! repeated with the same id (its ack was lost with the old page) reaches the room once.

#![cfg(target_arch = "wasm32")]

mod browser_common;

use browser_common::{
    TestServer, WAIT, fast_options, join_room, next_event_matching, open_as, wait_joined, wait_text,
};
use chorus_client::{Body, Event, Position};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const ROOM: &str = "chat:reload";
/// The app's idempotency key: any integer up to 2^53 - 1.
const KEY: u64 = (1 << 53) - 1;

#[wasm_bindgen_test]
async fn a_reloaded_page_resumes_from_its_stored_position_and_its_repeated_publish_is_delivered_once()
 {
    let server = TestServer::start(&[]).await;
    let (bob, mut bob_events) = open_as(&server, "bob", fast_options()).await;
    join_room(&bob, &mut bob_events, ROOM).await;

    // The first page: joins, sees two messages, keeps its position, publishes with its key.
    let (page, mut events) = open_as(&server, "alice", fast_options()).await;
    let Event::Joined { position, .. } = join_room(&page, &mut events, ROOM).await else {
        unreachable!()
    };
    server.publish(ROOM, "one").await;
    let seq = server.publish(ROOM, "two").await;
    wait_text(&mut events, ROOM, "two", WAIT).await;
    let stored = Position {
        epoch: position.epoch,
        seq,
    };
    let ack = page
        .publish_with_id(ROOM, "hello once", KEY)
        .await
        .expect("acknowledged");
    assert_eq!(ack.id, KEY);
    page.close();
    drop(page);

    // While no page is open.
    server.publish(ROOM, "three").await;

    // The reloaded page.
    let (reloaded, mut events) = open_as(&server, "alice", fast_options()).await;
    reloaded.join_since(ROOM, stored).expect("a valid room");
    wait_joined(&mut events, ROOM, WAIT).await;
    // What came after the stored position is replayed, and nothing before it.
    let mut texts = Vec::new();
    next_event_matching(&mut events, "the message \"three\"", WAIT, |e| match e {
        Event::Message {
            room,
            body: Body::Text(text),
            ..
        } if room == ROOM => {
            texts.push(text.clone());
            text == "three"
        }
        _ => false,
    })
    .await;
    assert_eq!(texts, ["hello once", "three"]);
    // The publish repeated with the same key: the server answers with the first ack.
    let again = reloaded
        .publish_with_id(ROOM, "hello once", KEY)
        .await
        .expect("acknowledged");
    assert_eq!((again.id, again.seq), (KEY, ack.seq));
    assert_eq!(reloaded.pending(), 0);

    // Bob saw it once: the next message he gets after it is the next one published.
    server.publish(ROOM, "four").await;
    let mut heard = Vec::new();
    next_event_matching(&mut bob_events, "the message \"four\"", WAIT, |e| match e {
        Event::Message {
            room,
            body: Body::Text(text),
            ..
        } if room == ROOM => {
            heard.push(text.clone());
            text == "four"
        }
        _ => false,
    })
    .await;
    assert_eq!(heard, ["one", "two", "hello once", "three", "four"]);
}
