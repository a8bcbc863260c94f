//! `POST /api/publish`: the backend publishes with the token secret or an admin token;
//! everyone else is refused with a status and a stable code.

use std::time::Duration;

use crate::common::{SECRET, TestServer};
use chorus_protocol::{Body, ServerMessage};
use chorus_server::config::NamespacePolicy;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Publish `body` with `Authorization: Bearer <bearer>` (none if `None`); the status and the
/// JSON answer.
async fn publish(server: &TestServer, bearer: Option<&str>, body: &Value) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .post(server.http_url("/api/publish"))
        .json(body);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// The next message must be a `Message`; returns (seq, id, sender, body).
async fn next_message(client: &mut crate::common::Client) -> (u64, u64, String, Body) {
    match client.recv().await {
        ServerMessage::Message {
            seq,
            id,
            sender,
            body,
            ..
        } => (seq, id, sender, body),
        other => panic!("expected a message, got {other:?}"),
    }
}

fn admin_token(server: &TestServer, user: &str, admin: bool) -> String {
    server
        .auth
        .issue(user, Duration::from_secs(60), vec!["*".into()], admin)
        .unwrap()
}

#[tokio::test]
async fn the_secret_holder_publishes_text_as_server() {
    let server = TestServer::start().await;
    let mut member = server.connect("alice").await;
    member.join("lobby").await;

    let (status, answer) = publish(
        &server,
        Some(SECRET),
        &json!({ "room": "lobby", "text": "maintenance at noon" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["room"], "lobby");
    assert_eq!(answer["seq"], 1);
    let id = answer["id"].as_u64().expect("a numeric id");
    assert_eq!(answer.as_object().unwrap().len(), 3, "{answer}");

    assert_eq!(
        next_message(&mut member).await,
        (
            1,
            id,
            "server".into(),
            Body::Text("maintenance at noon".into())
        )
    );
}

#[tokio::test]
async fn a_base64_binary_body_arrives_as_bytes() {
    let server = TestServer::start().await;
    let mut member = server.connect("alice").await;
    member.join("lobby").await;

    // "AAH/" is base64 for 00 01 ff.
    let (status, answer) = publish(
        &server,
        Some(SECRET),
        &json!({ "room": "lobby", "binary": "AAH/", "id": 42 }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["id"], 42);
    let (_, id, _, body) = next_message(&mut member).await;
    assert_eq!(id, 42);
    assert_eq!(body, Body::Binary(vec![0x00, 0x01, 0xff]));
}

#[tokio::test]
async fn an_admin_token_publishes_under_its_user() {
    let server = TestServer::start().await;
    let mut member = server.connect("alice").await;
    member.join("lobby").await;

    let token = admin_token(&server, "ops", true);
    let (status, answer) = publish(
        &server,
        Some(&token),
        &json!({ "room": "lobby", "text": "hello" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, _, sender, _) = next_message(&mut member).await;
    assert_eq!(sender, "ops");
}

#[tokio::test]
async fn a_token_without_admin_is_forbidden() {
    let server = TestServer::start().await;
    let token = admin_token(&server, "alice", false);
    let (status, answer) = publish(
        &server,
        Some(&token),
        &json!({ "room": "lobby", "text": "hello" }),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["code"], 104);
}

#[tokio::test]
async fn a_missing_or_invalid_bearer_is_unauthorized() {
    let server = TestServer::start().await;
    let body = json!({ "room": "lobby", "text": "hello" });
    let other_secret = chorus_server::auth::Auth::new("another-secret-0123456789")
        .issue("ops", Duration::from_secs(60), vec!["*".into()], true)
        .unwrap();
    for bearer in [None, Some("wrong"), Some(other_secret.as_str())] {
        let (status, _) = publish(&server, bearer, &body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "bearer {bearer:?}");
    }
    assert_eq!(server.metric("chorus_auth_failures_total").await, 3.0);
}

#[tokio::test]
async fn an_invalid_room_is_a_bad_request_with_code_102() {
    let server = TestServer::start().await;
    let (status, answer) = publish(
        &server,
        Some(SECRET),
        &json!({ "room": "no spaces", "text": "hello" }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["code"], 102);
}

#[tokio::test]
async fn a_body_over_max_body_is_too_large_with_code_103() {
    let server = TestServer::start().await;
    let text = "x".repeat(server.config.max_body() + 1);
    let (status, answer) = publish(
        &server,
        Some(SECRET),
        &json!({ "room": "lobby", "text": text }),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer["code"], 103);

    // Exactly max_body fits.
    let text = "x".repeat(server.config.max_body());
    let (status, answer) = publish(
        &server,
        Some(SECRET),
        &json!({ "room": "lobby", "text": text }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn malformed_json_is_a_bad_request() {
    let server = TestServer::start().await;
    let response = reqwest::Client::new()
        .post(server.http_url("/api/publish"))
        .bearer_auth(SECRET)
        .body(r#"{"room": "lobby", "text": "#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // Neither body, or both, is as bad.
    for body in [
        json!({ "room": "lobby" }),
        json!({ "room": "lobby", "text": "a", "binary": "AAH/" }),
    ] {
        let (status, answer) = publish(&server, Some(SECRET), &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["code"], 111);
    }
}

#[tokio::test]
async fn the_api_publishes_where_clients_may_not() {
    let server = TestServer::start_with(|c| {
        c.namespaces.insert(
            "news".into(),
            NamespacePolicy {
                client_publish: false,
                ..NamespacePolicy::default()
            },
        );
    })
    .await;
    let mut reader = server.connect("alice").await;
    reader.join("news:tech").await;
    reader.publish("news:tech", 1, "from a client").await;
    let (code, id, room) = reader.error().await;
    assert_eq!(
        (code, id, room.as_deref()),
        (109, Some(1), Some("news:tech"))
    );

    let (status, answer) = publish(
        &server,
        Some(SECRET),
        &json!({ "room": "news:tech", "text": "from the backend" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (seq, _, sender, body) = next_message(&mut reader).await;
    assert_eq!(seq, 1);
    assert_eq!(sender, "server");
    assert_eq!(body, Body::Text("from the backend".into()));
}

#[tokio::test]
async fn an_admin_token_is_limited_to_its_rooms_and_its_own_name() {
    let server = TestServer::start().await;
    let token = server
        .auth
        .issue("ops", Duration::from_secs(60), vec!["ops:*".into()], true)
        .unwrap();
    let cases = [
        (
            json!({ "room": "lobby", "text": "outside its rooms" }),
            StatusCode::FORBIDDEN,
        ),
        (
            json!({ "room": "ops:alerts", "text": "spoofed", "sender": "alice" }),
            StatusCode::FORBIDDEN,
        ),
        (
            json!({ "room": "ops:alerts", "text": "fine", "sender": "ops" }),
            StatusCode::OK,
        ),
    ];
    for (request, expected) in cases {
        let (status, answer) = publish(&server, Some(&token), &request).await;
        assert_eq!(status, expected, "{request} -> {answer}");
        if expected == StatusCode::FORBIDDEN {
            assert_eq!(answer["code"], 104);
        }
    }
    assert_eq!(
        server
            .metric("chorus_errors_total{code=\"forbidden\"}")
            .await,
        2.0
    );
}

#[tokio::test]
async fn the_secret_holder_may_name_any_sender() {
    let server = TestServer::start().await;
    let mut member = server.connect("alice").await;
    member.join("lobby").await;
    let (status, answer) = publish(
        &server,
        Some(SECRET),
        &json!({ "room": "lobby", "text": "hi", "sender": "billing bot" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, _, sender, _) = next_message(&mut member).await;
    assert_eq!(sender, "billing bot");
}
