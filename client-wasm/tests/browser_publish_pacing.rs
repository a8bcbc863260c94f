//! A full offline queue flushed after an outage stays within the server's publish rate: the
//! client paces its publishes to the rate and burst the welcome announces, so none is
//! refused as rate limited (106) and the server never closes the connection for abuse
//! (4003), where sending them all at once got dozens refused and the user locked out.

#![cfg(target_arch = "wasm32")]

mod browser_common;

use std::time::Duration;

use browser_common::{
    RECONNECT_WAIT, TestServer, WAIT, connect, drain_ready, fast_options, join_room,
    next_event_matching, wait_open, within,
};
use chorus_client::{Event, Options};
use futures_util::future::join_all;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const ROOM: &str = "chat:pacing";
const QUEUED: usize = 150;

#[wasm_bindgen_test]
async fn a_queue_flushed_after_an_outage_gets_no_rate_limit_refusal_and_no_abuse_close() {
    // The server's default publish limits, spelled out: 50 a second, bursts of 100.
    let server = TestServer::start(&["--publish-rate", "50", "--publish-burst", "100"]).await;
    let link = server.link().await;
    let options = Options {
        // Within the default queue bound of 256.
        queue_max_messages: 256,
        publish_timeout: Duration::from_secs(30),
        ..fast_options()
    };
    let (alice, mut events) = connect(&link.ws, server.token("alice").await, options);
    wait_open(&mut events, "alice", WAIT).await;
    join_room(&alice, &mut events, ROOM).await;

    link.cut().await;
    next_event_matching(&mut events, "Reconnecting", WAIT, |e| {
        matches!(e, Event::Reconnecting { .. })
    })
    .await;
    let acks: Vec<_> = (0..QUEUED)
        .map(|i| alice.publish(ROOM, format!("queued {i}")))
        .collect();
    assert_eq!(alice.pending(), QUEUED, "all queued while offline");

    link.restore().await;
    wait_open(&mut events, "alice", RECONNECT_WAIT).await;
    let results = within(
        Duration::from_secs(20),
        "every queued publish settled",
        join_all(acks),
    )
    .await;
    let refused: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|e| e.code())
        .collect();
    assert!(
        refused.is_empty(),
        "{} of {QUEUED} publishes failed, codes {refused:?}",
        refused.len()
    );
    let mut seqs: Vec<u64> = results.iter().map(|r| r.as_ref().unwrap().seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(
        seqs.len(),
        QUEUED,
        "each acknowledged with a sequence of its own"
    );

    // The connection that carried them is still the one open: no close, no reconnect.
    let (after, _) = drain_ready(&mut events);
    assert!(
        !after.iter().any(|e| matches!(
            e,
            Event::Reconnecting { .. } | Event::Close { .. } | Event::Error { .. }
        )),
        "the connection was not interrupted: {after:?}"
    );
    assert_eq!(
        server
            .metric("chorus_errors_total{code=\"rate_limited\"}")
            .await,
        0.0,
        "no publish refused as rate limited"
    );
    assert_eq!(
        server
            .metric("chorus_disconnects_total{reason=\"policy_violation\"}")
            .await,
        0.0,
        "no abuse close"
    );
}
