//! The token is checked before the upgrade: a good one opens a socket for its user, anything
//! else gets HTTP 401 and no socket. A client's token probe (`probe=1`) gets a 200 that says
//! which.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::{TestServer, assert_refused};
use chorus_protocol::{PROTOCOL_VERSION, SUBPROTOCOL, ServerMessage};
use chorus_server::auth::{Auth, Claims};

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn a_valid_token_is_accepted_and_the_welcome_names_its_user() {
    let server = TestServer::start().await;
    let mut client = server
        .connect_with_token(&server.token("alice"))
        .await
        .expect("a valid token must be accepted");
    match client.welcome().await {
        ServerMessage::Welcome { user, protocol, .. } => {
            assert_eq!(user, "alice");
            assert_eq!(protocol, PROTOCOL_VERSION);
        }
        _ => unreachable!(),
    }
    client.ping(1).await;
}

#[tokio::test]
async fn a_missing_token_gets_401() {
    let server = TestServer::start().await;
    let result = server.connect_with_protocols(Some(SUBPROTOCOL), None).await;
    assert_refused(result, 401);
}

#[tokio::test]
async fn a_token_signed_with_another_secret_gets_401() {
    let server = TestServer::start().await;
    let forged = Auth::new("another-secret-0123456789")
        .issue("alice", Duration::from_secs(3600), vec!["*".into()], false)
        .unwrap();
    assert_refused(server.connect_with_token(&forged).await, 401);
}

#[tokio::test]
async fn a_garbage_token_gets_401() {
    let server = TestServer::start().await;
    assert_refused(server.connect_with_token("not-a-jwt").await, 401);
    assert_refused(server.connect_with_token("a.b.c").await, 401);
}

#[tokio::test]
async fn an_expired_token_gets_401() {
    let server = TestServer::start().await;
    let now = unix_now();
    let expired = server
        .auth
        .sign(&Claims {
            sub: "alice".into(),
            exp: now - 10,
            iat: now - 3600,
            rooms: vec!["*".into()],
            admin: false,
        })
        .unwrap();
    assert_refused(server.connect_with_token(&expired).await, 401);
}

#[tokio::test]
async fn the_token_may_come_in_the_query_from_a_client_offering_no_subprotocol() {
    let server = TestServer::start().await;
    let query = format!("token={}", server.token("bob"));
    let mut client = server
        .connect_with_protocols(None, Some(&query))
        .await
        .expect("the ?token= fallback must be accepted");
    // Nothing was offered, so nothing may be selected.
    assert_eq!(client.protocol, None);
    match client.welcome().await {
        ServerMessage::Welcome { user, .. } => assert_eq!(user, "bob"),
        _ => unreachable!(),
    }
    client.ping(1).await;
}

#[tokio::test]
async fn a_bad_token_in_the_query_gets_401() {
    let server = TestServer::start().await;
    let result = server
        .connect_with_protocols(None, Some("token=not-a-jwt"))
        .await;
    assert_refused(result, 401);
}

#[tokio::test]
async fn refused_upgrades_are_counted_and_open_no_connection() {
    let server = TestServer::start().await;
    assert_eq!(server.metric("chorus_auth_failures_total").await, 0.0);
    assert_refused(server.connect_with_token("not-a-jwt").await, 401);
    assert_refused(
        server.connect_with_protocols(Some(SUBPROTOCOL), None).await,
        401,
    );
    assert_eq!(server.metric("chorus_auth_failures_total").await, 2.0);
    assert_eq!(server.metric("chorus_connections").await, 0.0);
}

/// Browsers cannot read the status of a refused upgrade; the client probes with a plain GET.
#[tokio::test]
async fn a_plain_get_tells_a_refused_token_from_a_good_one_and_allowed_origins_may_read_it() {
    let server =
        TestServer::start_with(|c| c.allowed_origins = vec!["https://app.example".into()]).await;
    let client = reqwest::Client::new();
    let probe = |token: String| {
        client
            .get(server.http_url(&format!("/ws?token={token}")))
            .header("origin", "https://app.example")
            .send()
    };
    let refused = probe("garbage".into()).await.unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let good = probe(server.token("alice")).await.unwrap();
    assert!(good.status().is_client_error());
    assert_ne!(good.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert_eq!(
        good.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    // The probe follows a refused upgrade, which was counted: the probe is not.
    assert_eq!(server.metric("chorus_auth_failures_total").await, 0.0);
}

/// The client's token probe (`probe=1`) gets a 200 either way, which a browser does not log
/// as a failed request; its JSON says whether the token is accepted.
#[tokio::test]
async fn the_token_probe_answers_200_with_the_verdict_and_allowed_origins_may_read_it() {
    let server =
        TestServer::start_with(|c| c.allowed_origins = vec!["https://app.example".into()]).await;
    let client = reqwest::Client::new();
    let probe = |query: String| {
        client
            .get(server.http_url(&format!("/ws?{query}")))
            .header("origin", "https://app.example")
            .send()
    };
    let now = unix_now();
    let expired = server
        .auth
        .sign(&Claims {
            sub: "alice".into(),
            exp: now - 10,
            iat: now - 3600,
            rooms: vec!["*".into()],
            admin: false,
        })
        .unwrap();
    for query in [
        "token=garbage&probe=1".to_owned(),
        format!("token={expired}&probe=1"),
        "probe=1".to_owned(),
    ] {
        let refused = probe(query.clone()).await.unwrap();
        assert_eq!(refused.status(), reqwest::StatusCode::OK, "{query}");
        assert_eq!(
            refused.headers()["access-control-allow-origin"],
            "https://app.example"
        );
        assert_eq!(refused.headers()["cache-control"], "no-store");
        let answer: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(answer["token"], "refused", "{query}");
        assert!(
            answer["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{answer}"
        );
    }
    let accepted = probe(format!("token={}&probe=1", server.token("alice")))
        .await
        .unwrap();
    assert_eq!(accepted.status(), reqwest::StatusCode::OK);
    assert_eq!(
        accepted.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let answer: serde_json::Value = accepted.json().await.unwrap();
    assert_eq!(answer, serde_json::json!({ "token": "accepted" }));
    // Without `probe=1` a plain GET keeps its old answer, for older clients.
    let old = probe("token=garbage".into()).await.unwrap();
    assert_eq!(old.status(), reqwest::StatusCode::UNAUTHORIZED);
    // Probes follow refused upgrades, which were counted: probes are not.
    assert_eq!(server.metric("chorus_auth_failures_total").await, 0.0);
    assert_eq!(server.metric("chorus_connections").await, 0.0);
}
