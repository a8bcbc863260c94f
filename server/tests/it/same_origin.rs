//! By default a browser may connect only from the server's own origin: scheme, host and
//! port. The server speaks plain HTTP, so its origin is `http://<Host>` (or `https://<Host>`
//! when a TLS-terminating proxy says `X-Forwarded-Proto: https`); a page on another scheme
//! or port is refused with 403 before the upgrade. Clients that send no Origin (not
//! browsers) are governed by their token alone.

use crate::common::{Client, TestServer, assert_refused};
use chorus_protocol::{AUTH_SUBPROTOCOL_PREFIX, SUBPROTOCOL};
use tokio_tungstenite::tungstenite;

/// Upgrade as `user` with the given extra headers (the token in the auth subprotocol).
async fn connect_with(
    server: &TestServer,
    user: &str,
    headers: &[(&str, &str)],
) -> Result<Client, tungstenite::Error> {
    let protocols = format!(
        "{SUBPROTOCOL}, {AUTH_SUBPROTOCOL_PREFIX}{}",
        server.token(user)
    );
    let mut all = vec![("sec-websocket-protocol", protocols.as_str())];
    all.extend_from_slice(headers);
    server.connect_request(server.ws_request(None, &all)).await
}

/// The socket opened and the server speaks the protocol on it.
async fn assert_open(result: Result<Client, tungstenite::Error>) {
    let mut client = result.expect("the upgrade must be accepted");
    client.welcome().await;
    client.ping(1).await;
}

#[tokio::test]
async fn the_servers_own_http_origin_is_accepted() {
    let server = TestServer::start().await;
    let own = format!("http://127.0.0.1:{}", server.addr.port());
    assert_open(connect_with(&server, "alice", &[("origin", &own)]).await).await;
}

#[tokio::test]
async fn an_https_origin_on_the_plain_http_server_gets_403() {
    let server = TestServer::start().await;
    let https = format!("https://127.0.0.1:{}", server.addr.port());
    assert_refused(
        connect_with(&server, "alice", &[("origin", &https)]).await,
        403,
    );
}

#[tokio::test]
async fn another_port_on_the_same_host_gets_403() {
    let server = TestServer::start().await;
    let other = format!("http://127.0.0.1:{}", server.addr.port().wrapping_add(1));
    assert_refused(
        connect_with(&server, "alice", &[("origin", &other)]).await,
        403,
    );
}

#[tokio::test]
async fn an_upgrade_without_origin_is_governed_by_the_token_alone() {
    let server = TestServer::start().await;
    assert_open(connect_with(&server, "alice", &[]).await).await;
}

#[tokio::test]
async fn default_ports_are_the_same_origin_written_or_not() {
    let server = TestServer::start().await;
    // What a browser sends for a page on port 80, against a Host with or without the port.
    for host in ["chat.example", "chat.example:80"] {
        for origin in ["http://chat.example", "http://chat.example:80"] {
            assert_open(
                connect_with(&server, "alice", &[("host", host), ("origin", origin)]).await,
            )
            .await;
        }
    }
    assert_refused(
        connect_with(
            &server,
            "alice",
            &[
                ("host", "chat.example"),
                ("origin", "http://chat.example:8080"),
            ],
        )
        .await,
        403,
    );
}

#[tokio::test]
async fn behind_a_tls_proxy_the_https_origin_is_the_servers_own() {
    let server = TestServer::start().await;
    let behind_tls = |origin: &'static str| {
        [
            ("host", "chat.example"),
            ("x-forwarded-proto", "https"),
            ("origin", origin),
        ]
    };
    assert_open(connect_with(&server, "alice", &behind_tls("https://chat.example")).await).await;
    assert_open(connect_with(&server, "alice", &behind_tls("https://chat.example:443")).await)
        .await;
    // Behind TLS, the plain-HTTP page is another origin.
    assert_refused(
        connect_with(&server, "alice", &behind_tls("http://chat.example")).await,
        403,
    );
}
