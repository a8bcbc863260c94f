//! Graceful shutdown: queued messages go out, then every client gets a disconnect notice
//! (1001, retry later) and a 1001 close; `run` returns `Ok` and the port is closed.

use crate::common::{Client, SECRET, TestServer};
use chorus_protocol::{Reconnect, ServerMessage};
use serde_json::json;

/// Read the rest of a connection: the messages before the notice, then the notice's
/// reconnect hint (checking that notice and close frame both say 1001).
async fn rest_until_shutdown(client: &mut Client) -> (Vec<ServerMessage>, Reconnect) {
    let mut messages = Vec::new();
    loop {
        match client.next().await {
            Ok(message) => messages.push(message),
            Err(closed) => {
                assert_eq!(closed.code(), Some(1001), "{closed:?}");
                let Some(ServerMessage::Disconnect {
                    code: 1001,
                    reconnect,
                    ..
                }) = closed.notice
                else {
                    panic!("expected a 1001 disconnect notice, got {closed:?}");
                };
                return (messages, reconnect);
            }
        }
    }
}

fn is_retry_later(reconnect: Reconnect) -> bool {
    matches!(reconnect, Reconnect::RetryAfter(ms) if ms > 0)
}

#[tokio::test]
async fn shutdown_tells_every_client_to_come_back_later_and_closes_with_1001() {
    let mut server = TestServer::start().await;
    let mut idle = server.connect("alice").await;
    let mut member = server.connect("bob").await;
    member.join("lobby").await;

    server.shutdown().await.expect("run returns Ok");

    for client in [&mut idle, &mut member] {
        let (messages, reconnect) = rest_until_shutdown(client).await;
        assert!(messages.is_empty(), "{messages:?}");
        assert!(is_retry_later(reconnect), "{reconnect:?}");
    }
}

#[tokio::test]
async fn messages_queued_before_shutdown_are_delivered_before_the_notice() {
    let mut server = TestServer::start_with(|c| {
        // Room for everything below: this member is slow, not a slow consumer.
        c.queue_max_messages = 100_000;
        c.queue_max_bytes = 64 << 20;
    })
    .await;
    let mut member = server.connect_with_receive_buffer("alice", 4096).await;
    member.join("lobby").await;

    // The member reads nothing yet, and 8 MiB is more than its socket's buffers hold, so its
    // write is stuck and the rest waits in its queue when shutdown begins.
    let count = 256;
    let text = "x".repeat(32 * 1024);
    let http = reqwest::Client::new();
    for id in 1..=count {
        let response = http
            .post(server.http_url("/api/publish"))
            .bearer_auth(SECRET)
            .json(&json!({ "room": "lobby", "text": text, "id": id }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    // Shutdown waits for the queue to drain, which needs the member to read.
    let (result, (messages, _)) = tokio::join!(server.shutdown(), rest_until_shutdown(&mut member));
    result.expect("run returns Ok");
    let ids: Vec<u64> = messages
        .into_iter()
        .map(|m| match m {
            ServerMessage::Message { id, .. } => id,
            other => panic!("expected a message, got {other:?}"),
        })
        .collect();
    assert_eq!(ids.len() as u64, count, "messages lost at shutdown");
    assert_eq!(ids, (1..=count).collect::<Vec<_>>());
}

#[tokio::test]
async fn after_shutdown_new_connections_are_refused() {
    let mut server = TestServer::start().await;
    server.shutdown().await.expect("run returns Ok");

    let token = server.token("alice");
    assert!(server.connect_with_token(&token).await.is_err());
    assert!(
        reqwest::get(server.http_url("/healthz")).await.is_err(),
        "the HTTP port still answers"
    );
}
