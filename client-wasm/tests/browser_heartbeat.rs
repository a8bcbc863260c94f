//! Heartbeat loss: a server that stops answering (frozen with SIGSTOP, its sockets still
//! open) is detected by missing pongs, and the client reconnects once it answers again.

#![cfg(target_arch = "wasm32")]

mod browser_common;

use std::time::Duration;

use browser_common::{
    RECONNECT_WAIT, TestServer, WAIT, fast_options, join_room, next_event_matching, now_ms,
    open_as, wait_joined, wait_open,
};
use chorus_client::{Event, Options};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const ROOM: &str = "chat:heartbeat";

#[wasm_bindgen_test]
async fn a_frozen_server_is_detected_by_missing_pongs_and_the_client_reconnects_when_it_thaws() {
    let server =
        TestServer::start(&["--heartbeat-interval", "200ms", "--heartbeat-timeout", "2s"]).await;
    let options = Options {
        pong_timeout: Duration::from_millis(300),
        ..fast_options()
    };
    let (alice, mut events) = open_as(&server, "alice", options).await;
    join_room(&alice, &mut events, ROOM).await;

    server.freeze().await;
    let frozen_at = now_ms();
    next_event_matching(&mut events, "Reconnecting", WAIT, |e| {
        matches!(e, Event::Reconnecting { .. })
    })
    .await;
    // A ping every 200 ms, a pong due within 300 ms: about half a second, and far less
    // than the 10 s the default pong timeout would take.
    let detected_after = now_ms() - frozen_at;
    assert!(
        detected_after < 2500.0,
        "the silent server was noticed only after {detected_after:.0} ms"
    );

    server.thaw().await;
    wait_open(&mut events, "alice", RECONNECT_WAIT).await;
    wait_joined(&mut events, ROOM, WAIT).await;
}
