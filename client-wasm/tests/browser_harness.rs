//! The test plumbing itself: a test page in headless Chromium reaches the controller, the
//! servers it starts, and their token check, with a raw browser WebSocket (no client).

#![cfg(target_arch = "wasm32")]

mod browser_common;

use browser_common::{RawEvent, RawSocket, TestServer, WAIT, control, get_str};
use chorus_protocol::{DEFAULT_MAX_FRAME, ServerMessage};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

fn welcome_user(event: RawEvent) -> String {
    let RawEvent::Binary(frame) = event else {
        panic!("expected a binary frame, got {event:?}");
    };
    match ServerMessage::decode(&frame, DEFAULT_MAX_FRAME).expect("a server message") {
        ServerMessage::Welcome { user, .. } => user,
        other => panic!("expected Welcome, got {other:?}"),
    }
}

#[wasm_bindgen_test]
async fn a_test_page_reaches_the_controller_and_a_server_survives_a_restart_on_its_port() {
    let health = control("GET", "/healthz", None).await;
    assert_eq!(get_str(&health, "status"), "ok");

    let server = TestServer::start(&[]).await;
    let token = server.token("smoke").await;
    let auth = format!("chorus.auth.{token}");
    let mut socket = RawSocket::open(&server.ws, &["chorus.v1", &auth]);
    assert_eq!(socket.next(WAIT).await, RawEvent::Open);
    assert_eq!(socket.ws.protocol(), "chorus.v1");
    assert_eq!(welcome_user(socket.next(WAIT).await), "smoke");

    server.stop().await;
    socket
        .next_matching("the server's 1001 close", WAIT, |e| {
            *e == RawEvent::Close(1001)
        })
        .await;

    server.start_again().await;
    let mut again = RawSocket::open(&server.ws, &["chorus.v1", &auth]);
    assert_eq!(again.next(WAIT).await, RawEvent::Open);
    assert_eq!(welcome_user(again.next(WAIT).await), "smoke");
}

#[wasm_bindgen_test]
async fn a_token_signed_with_another_secret_is_refused_before_the_upgrade() {
    let server = TestServer::start(&[]).await;
    let bad = format!("chorus.auth.{}", server.bad_token().await);
    let mut socket = RawSocket::open(&server.ws, &["chorus.v1", &bad]);
    // A refused upgrade looks like a network failure to a page: error, then 1006.
    assert_eq!(socket.next(WAIT).await, RawEvent::Error);
    assert_eq!(socket.next(WAIT).await, RawEvent::Close(1006));
    assert_eq!(server.metric("chorus_auth_failures_total").await, 1.0);
}
