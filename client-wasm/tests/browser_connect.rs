//! Connecting with a valid token opens the client as the token's user.

#![cfg(target_arch = "wasm32")]

mod browser_common;

use browser_common::{TestServer, WAIT, connect, fast_options, next_event_matching};
use chorus_client::{Event, State};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn a_client_with_a_valid_token_opens_as_the_tokens_user() {
    let server = TestServer::start(&[]).await;
    let (client, mut events) = connect(&server.ws, server.token("alice").await, fast_options());

    let open = next_event_matching(&mut events, "Open", WAIT, |e| {
        matches!(e, Event::Open { .. } | Event::Close { .. })
    })
    .await;
    let Event::Open { session, user } = open else {
        panic!("closed instead of opening: {open:?}");
    };
    assert_eq!(user, "alice");
    assert!(!session.is_empty(), "the server names the session");
    assert_eq!(client.state(), State::Open);
    assert_eq!(server.metric("chorus_connections").await, 1.0);
}
