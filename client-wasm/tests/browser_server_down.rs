//! A server that is down: after the first failed socket, each attempt starts with the token
//! probe, whose network error the shell reports as "unreachable", and opens no socket; once
//! the server is back the probe accepts the token and the client reconnects and rejoins.

#![cfg(target_arch = "wasm32")]

mod browser_common;

use browser_common::{
    RECONNECT_WAIT, TestServer, WAIT, fast_options, join_room, next_event_matching, open_as,
    wait_joined, wait_open,
};
use chorus_client::{Event, State};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const ROOM: &str = "chat:down";

#[wasm_bindgen_test]
async fn while_the_server_is_down_attempts_probe_and_the_client_comes_back_with_it() {
    let server = TestServer::start(&[]).await;
    let (alice, mut events) = open_as(&server, "alice", fast_options()).await;
    join_room(&alice, &mut events, ROOM).await;

    server.kill().await;
    // The connection is lost; the first attempt opens a socket, which fails ("connection
    // failed"); the attempts after it probe, and the probe's network error is "server
    // unreachable". Twice, to see the probe repeat.
    let mut seen = Vec::new();
    for _ in 0..2 {
        next_event_matching(&mut events, "an unreachable server", WAIT, |e| {
            seen.push(e.clone());
            matches!(e, Event::Reconnecting { code: 1006, reason, .. } if reason == "server unreachable")
        })
        .await;
    }
    let reasons: Vec<&str> = seen
        .iter()
        .filter_map(|e| match e {
            Event::Reconnecting { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "connection lost",
            "connection failed",
            "server unreachable",
            "server unreachable"
        ],
        "{seen:#?}"
    );
    assert!(
        seen.iter().any(|e| matches!(
            e,
            Event::State {
                state: State::Reconnecting,
                code: 1006,
                ..
            }
        )),
        "{seen:#?}"
    );

    server.start_again().await;
    wait_open(&mut events, "alice", RECONNECT_WAIT).await;
    wait_joined(&mut events, ROOM, WAIT).await;
    assert_eq!(alice.state(), State::Open);
}
