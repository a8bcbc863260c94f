//! Publishes made while the server is down wait in the offline queue, go out after the
//! reconnect, are acknowledged, and reach the other members exactly once.

#![cfg(target_arch = "wasm32")]

mod browser_common;

use browser_common::{
    RECONNECT_WAIT, TestServer, WAIT, connect, fast_options, join_room, next_event_matching,
    wait_joined, wait_open, wait_text, within,
};
use chorus_client::{Body, Event};
use futures_util::FutureExt;
use futures_util::future::join;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const ROOM: &str = "chat:offline";

#[wasm_bindgen_test]
async fn publishes_queued_while_the_server_is_down_are_sent_and_acked_after_the_reconnect() {
    let server = TestServer::start(&[]).await;
    // Alice reaches the server through a link, so that the test can let Bob back in first:
    // a member who rejoins after a message was published does not get it (the restarted
    // server has no history to replay).
    let link = server.link().await;
    let (alice, mut alice_events) = connect(&link.ws, server.token("alice").await, fast_options());
    wait_open(&mut alice_events, "alice", WAIT).await;
    let (bob, mut bob_events) = connect(&server.ws, server.token("bob").await, fast_options());
    wait_open(&mut bob_events, "bob", WAIT).await;
    join_room(&alice, &mut alice_events, ROOM).await;
    join_room(&bob, &mut bob_events, ROOM).await;

    server.stop().await;
    link.cut().await;
    next_event_matching(&mut alice_events, "Reconnecting", WAIT, |e| {
        matches!(e, Event::Reconnecting { .. })
    })
    .await;
    let mut first = alice.publish(ROOM, "one");
    let mut second = alice.publish(ROOM, "two");
    assert!(
        (&mut first).now_or_never().is_none(),
        "pending while offline"
    );
    assert!(
        (&mut second).now_or_never().is_none(),
        "pending while offline"
    );

    server.start_again().await;
    wait_open(&mut bob_events, "bob", RECONNECT_WAIT).await;
    wait_joined(&mut bob_events, ROOM, WAIT).await;
    link.restore().await;

    let (first, second) = within(RECONNECT_WAIT, "both acks", join(first, second)).await;
    let (first, second) = (first.expect("one acked"), second.expect("two acked"));
    assert_eq!(
        (first.seq, second.seq),
        (1, 2),
        "sent in order to the new history"
    );

    // Everything Bob hears in the room up to a fence published after both acks.
    server.publish(ROOM, "fence").await;
    let mut heard = Vec::new();
    next_event_matching(&mut bob_events, "the fence", WAIT, |e| {
        let Event::Message {
            room,
            sender,
            body: Body::Text(text),
            id,
            ..
        } = e
        else {
            return false;
        };
        if room != ROOM {
            return false;
        }
        heard.push((sender.clone(), text.clone(), *id));
        text == "fence"
    })
    .await;
    let alices: Vec<_> = heard.iter().filter(|(s, ..)| s == "alice").collect();
    assert_eq!(
        alices,
        [
            &("alice".to_owned(), "one".to_owned(), first.id),
            &("alice".to_owned(), "two".to_owned(), second.id)
        ],
        "Bob got each queued message once; heard {heard:?}"
    );
    // Alice got her own messages too.
    wait_text(&mut alice_events, ROOM, "two", WAIT).await;
}
