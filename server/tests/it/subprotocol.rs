//! The handshake: the server selects exactly `chorus.v1` (never the token-bearing
//! subprotocol), refuses clients that do not speak it, and lets browsers in only from
//! allowed origins.

use crate::common::{Client, TestServer, assert_refused};
use chorus_protocol::{AUTH_SUBPROTOCOL_PREFIX, SUBPROTOCOL};
use tokio_tungstenite::tungstenite;

/// Connect as `user`, offering `chorus.v1` and the auth subprotocol, with an Origin header.
async fn connect_from(
    server: &TestServer,
    user: &str,
    origin: &str,
) -> Result<Client, tungstenite::Error> {
    let protocols = format!(
        "{SUBPROTOCOL}, {AUTH_SUBPROTOCOL_PREFIX}{}",
        server.token(user)
    );
    let request = server.ws_request(
        None,
        &[("sec-websocket-protocol", &protocols), ("origin", origin)],
    );
    server.connect_request(request).await
}

/// The socket opened and the server speaks the protocol on it.
async fn assert_open(result: Result<Client, tungstenite::Error>) {
    let mut client = result.expect("the upgrade must be accepted");
    client.welcome().await;
    client.ping(1).await;
}

#[tokio::test]
async fn the_server_selects_chorus_v1_and_never_echoes_the_token() {
    let server = TestServer::start().await;
    let client = server
        .connect_with_token(&server.token("alice"))
        .await
        .unwrap();
    assert_eq!(client.protocol.as_deref(), Some(SUBPROTOCOL));
}

#[tokio::test]
async fn the_server_selects_chorus_v1_even_when_the_token_is_offered_first() {
    let server = TestServer::start().await;
    let protocols = format!(
        "{AUTH_SUBPROTOCOL_PREFIX}{}, {SUBPROTOCOL}",
        server.token("alice")
    );
    let client = server
        .connect_with_protocols(Some(&protocols), None)
        .await
        .unwrap();
    assert_eq!(client.protocol.as_deref(), Some(SUBPROTOCOL));
}

#[tokio::test]
async fn offering_only_an_unknown_subprotocol_gets_400() {
    let server = TestServer::start().await;
    let query = format!("token={}", server.token("alice"));
    let result = server
        .connect_with_protocols(Some("chat.v2"), Some(&query))
        .await;
    assert_refused(result, 400);
}

#[tokio::test]
async fn offering_the_token_without_chorus_v1_gets_400() {
    let server = TestServer::start().await;
    let protocols = format!("{AUTH_SUBPROTOCOL_PREFIX}{}", server.token("alice"));
    let result = server.connect_with_protocols(Some(&protocols), None).await;
    assert_refused(result, 400);
}

#[tokio::test]
async fn a_listed_origin_is_accepted() {
    let server = TestServer::start_with(|c| {
        c.allowed_origins = vec!["https://good.example".into()];
    })
    .await;
    assert_open(connect_from(&server, "alice", "https://good.example").await).await;
}

#[tokio::test]
async fn an_unlisted_origin_gets_403() {
    let server = TestServer::start_with(|c| {
        c.allowed_origins = vec!["https://good.example".into()];
    })
    .await;
    assert_refused(
        connect_from(&server, "alice", "https://evil.example").await,
        403,
    );
}

#[tokio::test]
async fn by_default_the_servers_own_origin_is_accepted() {
    let server = TestServer::start().await;
    let own = format!("http://{}", server.addr);
    assert_open(connect_from(&server, "alice", &own).await).await;
}

#[tokio::test]
async fn by_default_a_foreign_origin_gets_403() {
    let server = TestServer::start().await;
    assert_refused(
        connect_from(&server, "alice", "https://evil.example").await,
        403,
    );
    // Same host, another port: another origin.
    let other_port = format!("http://127.0.0.1:{}", server.addr.port().wrapping_add(1));
    assert_refused(connect_from(&server, "alice", &other_port).await, 403);
}

#[tokio::test]
async fn dev_mode_accepts_localhost_origins() {
    let server = TestServer::start_with(|c| c.dev = true).await;
    assert_open(connect_from(&server, "alice", "http://localhost:1234").await).await;
    assert_open(connect_from(&server, "alice", "http://127.0.0.1:5173").await).await;
}

#[tokio::test]
async fn dev_mode_still_refuses_foreign_origins() {
    let server = TestServer::start_with(|c| c.dev = true).await;
    assert_refused(
        connect_from(&server, "alice", "https://evil.example").await,
        403,
    );
    assert_refused(
        connect_from(&server, "alice", "http://localhost.evil.example").await,
        403,
    );
}
