//! A token the server refuses ends the client with an `unauthorized` error and a close,
//! after one failed socket and one probe (which the server answers 200, saying the token is
//! refused): no retry storm.

#![cfg(target_arch = "wasm32")]

mod browser_common;

use browser_common::{TestServer, WAIT, connect, fast_options, next_event_matching, within};
use chorus_client::{Event, State};
use futures_util::StreamExt;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// `ClientErrorCode::Unauthorized`.
const UNAUTHORIZED: u16 = 600;

#[wasm_bindgen_test]
async fn a_refused_token_ends_in_an_unauthorized_error_and_a_close_without_retrying() {
    let server = TestServer::start(&[]).await;
    let (client, mut events) = connect(&server.ws, server.bad_token().await, fast_options());

    let mut seen = Vec::new();
    next_event_matching(&mut events, "Close", WAIT, |e| {
        seen.push(e.clone());
        matches!(e, Event::Close { .. })
    })
    .await;
    assert!(
        seen.iter().any(|e| matches!(
            e,
            Event::Error {
                code: UNAUTHORIZED,
                ..
            }
        )),
        "an unauthorized error before the close; got {seen:#?}"
    );
    assert!(
        !seen.iter().any(|e| matches!(e, Event::Open { .. })),
        "never opened; got {seen:#?}"
    );
    assert_eq!(client.state(), State::Closed);
    // The stream ends after the close.
    assert_eq!(
        within(WAIT, "the end of the stream", events.next()).await,
        None
    );

    // One refused upgrade; the probe after it, which told the refused token from a network
    // failure (a browser cannot see the status of a refused upgrade), is not counted.
    let failures = server.metric("chorus_auth_failures_total").await;
    assert_eq!(failures, 1.0, "the server refused {failures} upgrades");
}
