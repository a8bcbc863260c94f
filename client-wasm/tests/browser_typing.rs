//! Typing indicators: another member sees who is typing, and the state ends when the typist
//! goes idle or, unrefreshed, expires.

#![cfg(target_arch = "wasm32")]

mod browser_common;

use std::time::Duration;

use browser_common::{
    TestServer, WAIT, fast_options, join_room, next_event_matching, now_ms, open_as,
};
use chorus_client::{Event, EventStream, Options};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const ROOM: &str = "chat:typing";

async fn wait_typing(events: &mut EventStream, users: &[&str], limit: Duration) {
    let what = format!("Typing {users:?} in {ROOM}");
    next_event_matching(
        events,
        &what,
        limit,
        |e| matches!(e, Event::Typing { room, users: u } if room == ROOM && u == users),
    )
    .await;
}

#[wasm_bindgen_test]
async fn typing_is_seen_by_another_member_and_stops_when_the_typist_goes_idle() {
    // The server's default TTL (5 s): only Alice's idle timer can end the state sooner.
    let server = TestServer::start(&[]).await;
    let idle = Options {
        typing_idle: Duration::from_millis(200),
        ..fast_options()
    };
    let (alice, mut alice_events) = open_as(&server, "alice", idle).await;
    let (bob, mut bob_events) = open_as(&server, "bob", fast_options()).await;
    join_room(&alice, &mut alice_events, ROOM).await;
    join_room(&bob, &mut bob_events, ROOM).await;

    alice.typing(ROOM);
    wait_typing(&mut bob_events, &["alice"], WAIT).await;
    wait_typing(&mut bob_events, &[], Duration::from_secs(3)).await;
}

#[wasm_bindgen_test]
async fn a_typing_state_nobody_refreshes_expires_after_the_servers_ttl() {
    let server = TestServer::start(&["--typing-ttl", "300ms"]).await;
    // Alice would only say "stopped" after 10 s; the state must expire long before.
    let slow_idle = Options {
        typing_idle: Duration::from_secs(10),
        ..fast_options()
    };
    let (alice, mut alice_events) = open_as(&server, "alice", slow_idle).await;
    let (bob, mut bob_events) = open_as(&server, "bob", fast_options()).await;
    join_room(&alice, &mut alice_events, ROOM).await;
    join_room(&bob, &mut bob_events, ROOM).await;

    alice.typing(ROOM);
    wait_typing(&mut bob_events, &["alice"], WAIT).await;
    let started = now_ms();
    wait_typing(&mut bob_events, &[], Duration::from_secs(3)).await;
    let after = now_ms() - started;
    assert!(
        after >= 200.0,
        "the typing state ended after {after:.0} ms, before the 300 ms TTL"
    );
}
