//! `POST /api/dev/token`: in dev mode, anyone gets a token for a valid user name; outside
//! dev mode the endpoint does not exist.

use crate::common::TestServer;
use chorus_protocol::ServerMessage;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn dev_token(server: &TestServer, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.http_url("/api/dev/token"))
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn dev_mode_hands_out_tokens_that_verify_and_connect() {
    let server = TestServer::start_with(|c| c.dev = true).await;
    let response = dev_token(&server, &json!({ "user": "alice" })).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["user"], "alice");
    let token = answer["token"].as_str().expect("a token");

    let claims = server.auth.verify(token).expect("the token verifies");
    assert_eq!(claims.sub, "alice");
    assert!(!claims.admin, "a dev token must not reach the publish API");

    let mut client = server.connect_with_token(token).await.unwrap();
    assert!(matches!(
        client.welcome().await,
        ServerMessage::Welcome { user, .. } if user == "alice"
    ));
}

#[tokio::test]
async fn an_invalid_user_name_is_a_bad_request() {
    let server = TestServer::start_with(|c| c.dev = true).await;
    for user in ["", " alice", "a\nb", &"x".repeat(65)] {
        let response = dev_token(&server, &json!({ "user": user })).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "user {user:?}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["code"], 111, "user {user:?}");
    }
}

#[tokio::test]
async fn without_dev_mode_there_is_no_token_endpoint() {
    let server = TestServer::start().await;
    assert!(!server.config.dev);
    let status = dev_token(&server, &json!({ "user": "alice" }))
        .await
        .status();
    assert!(
        matches!(
            status,
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
        ),
        "{status}"
    );
}
