//! `GET /metrics` (Prometheus text) names every metric and its values follow what happens;
//! `GET /healthz` answers.

use crate::common::TestServer;
use chorus_protocol::{ClientMessage, ServerMessage};
use reqwest::StatusCode;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn metrics_lists_every_series_from_the_start() {
    let server = TestServer::start().await;
    let response = reqwest::get(server.http_url("/metrics")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    for sample in [
        "chorus_connections",
        "chorus_messages_in_total",
        "chorus_messages_out_total",
        "chorus_bytes_in_total",
        "chorus_bytes_out_total",
        "chorus_auth_failures_total",
        r#"chorus_disconnects_total{reason="slow_consumer"}"#,
        r#"chorus_disconnects_total{reason="heartbeat_timeout"}"#,
        r#"chorus_errors_total{code="bad_frame"}"#,
        r#"chorus_errors_total{code="rate_limited"}"#,
    ] {
        assert!(
            text.lines().any(|line| line == format!("{sample} 0")),
            "no zero sample {sample} in:\n{text}"
        );
    }
}

#[tokio::test]
async fn the_connections_gauge_follows_connections() {
    let server = TestServer::start().await;
    assert_eq!(server.metric("chorus_connections").await, 0.0);
    let mut client = server.connect("alice").await;
    assert_eq!(server.metric("chorus_connections").await, 1.0);
    client.ws.close(None).await.unwrap();
    server
        .wait_for_metric("chorus_connections", |v| v == 0.0)
        .await;
}

#[tokio::test]
async fn traffic_counters_count_frames_and_bytes_both_ways() {
    let server = TestServer::start().await;
    let mut client = server.connect("alice").await;
    let ping = ClientMessage::Ping { nonce: 1 }.encode(usize::MAX).unwrap();
    client.send(ClientMessage::Ping { nonce: 1 }).await;
    assert_eq!(client.recv().await, ServerMessage::Pong { nonce: 1 });

    assert_eq!(server.metric("chorus_messages_in_total").await, 1.0);
    assert_eq!(
        server.metric("chorus_bytes_in_total").await,
        ping.len() as f64
    );
    // The welcome and the pong.
    assert_eq!(server.metric("chorus_messages_out_total").await, 2.0);
    assert!(server.metric("chorus_bytes_out_total").await > 0.0);
}

#[tokio::test]
async fn a_refused_token_counts_as_an_auth_failure() {
    let server = TestServer::start().await;
    assert_eq!(server.metric("chorus_auth_failures_total").await, 0.0);
    assert!(server.connect_with_token("not-a-token").await.is_err());
    assert_eq!(server.metric("chorus_auth_failures_total").await, 1.0);
}

#[tokio::test]
async fn an_undecodable_frame_counts_as_a_bad_frame_error() {
    let server = TestServer::start().await;
    let sample = r#"chorus_errors_total{code="bad_frame"}"#;
    assert_eq!(server.metric(sample).await, 0.0);
    let mut client = server.connect("alice").await;
    client
        .send_raw(Message::Binary(vec![0xff, 0xff, 0xff].into()))
        .await;
    assert_eq!(client.error().await.0, 100);
    assert_eq!(server.metric(sample).await, 1.0);
    assert_eq!(
        server
            .metric(r#"chorus_errors_total{code="text_frame"}"#)
            .await,
        0.0
    );
}

#[tokio::test]
async fn healthz_answers_ok() {
    let server = TestServer::start().await;
    let response = reqwest::get(server.http_url("/healthz")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
