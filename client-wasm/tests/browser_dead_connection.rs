//! A silently stalled link is given up within the server's heartbeat timeout: with the
//! server announcing pings every 1 s and a 3 s timeout, the client (with the default 10 s
//! `pong_timeout`) reconnects about 3 s after the link went silent, not 11 s, and a publish
//! sent into the dead link is acknowledged on the new connection that much sooner.

#![cfg(target_arch = "wasm32")]

mod browser_common;

use std::time::Duration;

use browser_common::{
    RECONNECT_WAIT, TestServer, WAIT, connect, fast_options, join_room, next_event_matching,
    now_ms, wait_joined, wait_open, within,
};
use chorus_client::Event;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const ROOM: &str = "chat:stall";

#[wasm_bindgen_test]
async fn a_stalled_link_is_given_up_after_the_servers_heartbeat_timeout() {
    let server =
        TestServer::start(&["--heartbeat-interval", "1s", "--heartbeat-timeout", "3s"]).await;
    let link = server.link().await;
    // The default pong timeout (10 s): only the welcome's timeout can make it sooner.
    let options = fast_options();
    assert_eq!(options.pong_timeout, Duration::from_secs(10));
    let (alice, mut events) = connect(&link.ws, server.token("alice").await, options);
    wait_open(&mut events, "alice", WAIT).await;
    join_room(&alice, &mut events, ROOM).await;

    link.fault("stall").await;
    let stalled_at = now_ms();
    let ack = alice.publish(ROOM, "into the stall");
    // Waits up to 15 s so that a late detection fails with its time, not a timeout.
    next_event_matching(&mut events, "Reconnecting", Duration::from_secs(15), |e| {
        matches!(e, Event::Reconnecting { .. })
    })
    .await;
    let detected_after = now_ms() - stalled_at;
    assert!(
        detected_after < 4_500.0,
        "the stalled link was given up {detected_after:.0} ms after it went silent; the \
         server's heartbeat timeout is 3 s"
    );

    wait_open(&mut events, "alice", RECONNECT_WAIT).await;
    wait_joined(&mut events, ROOM, WAIT).await;
    let ack = within(WAIT, "the ack of the publish sent into the stall", ack)
        .await
        .expect("acknowledged on the new connection");
    let acked_after = now_ms() - stalled_at;
    assert!(
        acked_after < 6_000.0,
        "the publish sent into the stall was acknowledged after {acked_after:.0} ms"
    );
    assert_eq!(ack.room, ROOM);
}
