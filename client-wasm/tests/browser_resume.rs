//! Resume in the browser: a client loses its connection (cut, reset, or silent) while the
//! server keeps running. What others published meanwhile is delivered after the reconnect,
//! in order and once; the client's own queued publishes are acknowledged once and reach
//! everyone once.

#![cfg(target_arch = "wasm32")]

mod browser_common;

use std::time::Duration;

use browser_common::{
    RECONNECT_WAIT, TestServer, WAIT, connect, fast_options, join_room, next_event_matching,
    wait_open, within,
};
use chorus_client::{Body, Client, Event, EventStream, Options};
use chorus_protocol::Recovery;
use futures_util::future::join_all;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const ROOM: &str = "chat:resume";

/// The texts of `room`'s messages, with their sequence numbers and senders, up to and
/// including `last`; fails on anything else about the room after a `Joined` that did not
/// recover.
async fn texts_until(events: &mut EventStream, last: &str) -> Vec<(u64, String, String)> {
    let mut heard = Vec::new();
    let what = format!("the message {last:?}");
    next_event_matching(events, &what, RECONNECT_WAIT, |e| match e {
        Event::Message {
            room,
            seq,
            sender,
            body: Body::Text(text),
            ..
        } if room == ROOM => {
            heard.push((*seq, sender.clone(), text.clone()));
            text == last
        }
        Event::Joined { room, recovery, .. } if room == ROOM => {
            assert_ne!(*recovery, Recovery::Missed, "the rejoin must recover");
            false
        }
        _ => false,
    })
    .await;
    heard
}

fn assert_consecutive(heard: &[(u64, String, String)], who: &str) {
    for pair in heard.windows(2) {
        assert_eq!(
            pair[1].0,
            pair[0].0 + 1,
            "{who}: sequences must follow each other, once each: {heard:?}"
        );
    }
}

/// Alice, through a link that will fail, and Bob, directly, both in `ROOM`.
async fn alice_and_bob(
    server: &TestServer,
    link_ws: &str,
    alice_options: Options,
) -> ((Client, EventStream), (Client, EventStream)) {
    let (alice, mut alice_events) = connect(link_ws, server.token("alice").await, alice_options);
    wait_open(&mut alice_events, "alice", WAIT).await;
    let (bob, mut bob_events) = connect(&server.ws, server.token("bob").await, fast_options());
    wait_open(&mut bob_events, "bob", WAIT).await;
    join_room(&alice, &mut alice_events, ROOM).await;
    join_room(&bob, &mut bob_events, ROOM).await;
    ((alice, alice_events), (bob, bob_events))
}

/// Bob publishes `texts`, each acknowledged.
async fn bob_publishes(bob: &Client, texts: &[&str]) {
    for text in texts {
        within(WAIT, "bob's ack", bob.publish(ROOM, *text))
            .await
            .expect("bob's publish is acknowledged");
    }
}

/// Alice publishes while cut off, reconnects, and gets everything: Bob's messages from
/// while she was away first (the replay), then her own queued ones, each once.
async fn lose_and_resume(server: &TestServer, alice_options: Options, fault: &str) {
    let link = server.link().await;
    let ((alice, mut alice_events), (bob, mut bob_events)) =
        alice_and_bob(server, &link.ws, alice_options).await;
    bob_publishes(&bob, &["before"]).await;
    texts_until(&mut alice_events, "before").await;

    // The fault ends Alice's connection; the cut keeps her out while Bob goes on.
    link.fault(fault).await;
    link.cut().await;
    next_event_matching(&mut alice_events, "Reconnecting", RECONNECT_WAIT, |e| {
        matches!(e, Event::Reconnecting { .. })
    })
    .await;
    let queued: Vec<_> = ["a1", "a2", "a3"]
        .into_iter()
        .map(|text| alice.publish(ROOM, text))
        .collect();
    bob_publishes(&bob, &["b1", "b2", "b3", "b4"]).await;
    link.restore().await;

    let acks = within(RECONNECT_WAIT, "alice's acks", join_all(queued)).await;
    let seqs: Vec<u64> = acks
        .into_iter()
        .map(|ack| ack.expect("a queued publish is acknowledged").seq)
        .collect();
    // Bob's four came first: they were published before Alice could send hers.
    assert_eq!(seqs, [6, 7, 8], "alice's acks, in order, after bob's");

    let alice_heard = texts_until(&mut alice_events, "a3").await;
    assert_consecutive(&alice_heard, "alice");
    let texts: Vec<&str> = alice_heard.iter().map(|(_, _, t)| t.as_str()).collect();
    assert_eq!(texts, ["b1", "b2", "b3", "b4", "a1", "a2", "a3"]);

    let bob_heard = texts_until(&mut bob_events, "a3").await;
    assert_consecutive(&bob_heard, "bob");
    let alices: Vec<&str> = bob_heard
        .iter()
        .filter(|(_, sender, _)| sender == "alice")
        .map(|(_, _, t)| t.as_str())
        .collect();
    assert_eq!(alices, ["a1", "a2", "a3"], "bob got alice's messages once");

    // Nothing more comes: a fence published now is the next message for both.
    server.publish(ROOM, "fence").await;
    for (events, who) in [(&mut alice_events, "alice"), (&mut bob_events, "bob")] {
        let after = texts_until(events, "fence").await;
        assert_eq!(
            after.len(),
            1,
            "{who}: nothing between a3 and the fence: {after:?}"
        );
        assert_eq!(after[0].0, 9, "{who}: the fence follows a3");
    }
}

#[wasm_bindgen_test]
async fn a_reset_connection_resumes_with_nothing_lost_or_duplicated() {
    let server = TestServer::start(&[]).await;
    lose_and_resume(&server, fast_options(), "reset").await;
}

#[wasm_bindgen_test]
async fn a_silent_connection_is_detected_and_resumes_with_nothing_lost_or_duplicated() {
    // Short heartbeats on both sides, so silence is noticed within about a second.
    let server =
        TestServer::start(&["--heartbeat-interval", "200ms", "--heartbeat-timeout", "1s"]).await;
    let options = Options {
        pong_timeout: Duration::from_millis(500),
        ..fast_options()
    };
    lose_and_resume(&server, options, "stall").await;
}
