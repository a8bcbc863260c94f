//! Idempotent publish: a resend of the same (user, id) within the dedupe window is answered
//! with the original ack and never delivered twice.

use crate::common::{SECRET, TestServer};
use chorus_protocol::ServerMessage;
use serde_json::json;

#[tokio::test]
async fn a_resent_publish_gets_the_original_ack_and_is_delivered_once() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    alice
        .recv_until(|m| matches!(m, ServerMessage::MemberJoined { .. }))
        .await;

    alice.publish("lobby", 42, "once").await;
    assert_eq!(alice.ack(42).await, 1);
    // The same id again, as after a lost ack, from another connection of the same user.
    let mut alice_tab = server.connect("alice").await;
    alice_tab.join("lobby").await;
    alice_tab.publish("lobby", 42, "once").await;
    assert_eq!(alice_tab.ack(42).await, 1);
    // A new id is a new message; bob sees seq 1 then seq 2, nothing in between.
    alice.publish("lobby", 43, "twice?").await;
    assert_eq!(alice.ack(43).await, 2);
    let seqs: Vec<u64> = [bob.recv().await, bob.recv().await]
        .into_iter()
        .map(|m| match m {
            ServerMessage::Message { seq, .. } => seq,
            other => panic!("expected a message, got {other:?}"),
        })
        .collect();
    assert_eq!(seqs, vec![1, 2]);
}

#[tokio::test]
async fn the_same_id_from_another_user_is_another_message() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    alice.publish("lobby", 7, "from alice").await;
    assert_eq!(alice.ack(7).await, 1);
    bob.publish("lobby", 7, "from bob").await;
    assert_eq!(bob.ack(7).await, 2);
}

#[tokio::test]
async fn the_http_api_is_idempotent_with_an_explicit_id() {
    let server = TestServer::start().await;
    let mut member = server.connect("alice").await;
    member.join("lobby").await;
    let client = reqwest::Client::new();
    let mut seqs = Vec::new();
    for _ in 0..2 {
        let answer: serde_json::Value = client
            .post(server.http_url("/api/publish"))
            .bearer_auth(SECRET)
            .json(&json!({ "room": "lobby", "text": "deploy done", "id": 99 }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seqs.push(answer["seq"].as_u64().unwrap());
    }
    assert_eq!(seqs, vec![1, 1]);
    assert!(matches!(
        member.recv().await,
        ServerMessage::Message { seq: 1, .. }
    ));
    member.ping(1).await;
    assert_eq!(server.metric("chorus_publishes_total").await, 1.0);
}

#[tokio::test]
async fn with_a_zero_window_a_resend_is_a_new_message() {
    let server = TestServer::start_with(|c| c.dedupe_window = std::time::Duration::ZERO).await;
    let mut alice = server.connect("alice").await;
    alice.join("lobby").await;
    alice.publish("lobby", 5, "a").await;
    assert_eq!(alice.ack(5).await, 1);
    alice.publish("lobby", 5, "a").await;
    assert_eq!(alice.ack(5).await, 2);
}
