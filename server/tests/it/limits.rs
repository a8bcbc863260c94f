//! Connection limits and token expiry: a connection past a limit opens only to be told why
//! it closes; a connection whose token expires is closed with 4002.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::{Client, Closed, TestServer};
use chorus_protocol::{ClientMessage, Reconnect, ServerMessage};
use chorus_server::auth::Claims;

/// Answers a ping: the connection is open and served.
async fn assert_alive(client: &mut Client) {
    client.send(ClientMessage::Ping { nonce: 7 }).await;
    assert_eq!(client.recv().await, ServerMessage::Pong { nonce: 7 });
}

/// The code and reconnect hint of the notice that came before the close; both codes agree.
fn disconnect(closed: &Closed) -> (u16, Reconnect) {
    match &closed.notice {
        Some(ServerMessage::Disconnect {
            code, reconnect, ..
        }) => {
            assert_eq!(
                closed.code(),
                Some(*code),
                "notice and close frame disagree"
            );
            (*code, *reconnect)
        }
        other => panic!("expected a disconnect notice, got {other:?} ({closed:?})"),
    }
}

#[tokio::test]
async fn a_users_connection_beyond_the_per_user_limit_is_closed_with_4004() {
    let server = TestServer::start_with(|c| c.max_connections_per_user = 1).await;
    let mut first = server.connect("alice").await;

    let mut second = server
        .connect_with_token(&server.token("alice"))
        .await
        .expect("the socket opens, to carry the reason");
    let closed = second.closed().await;
    assert_eq!(
        disconnect(&closed),
        (4004, Reconnect::RetryAfter(30_000)),
        "{closed:?}"
    );

    // The limit is per user, and the first connection is untouched.
    let mut bob = server.connect("bob").await;
    assert_alive(&mut bob).await;
    assert_alive(&mut first).await;
}

#[tokio::test]
async fn a_closed_connection_gives_its_slot_back() {
    let server = TestServer::start_with(|c| c.max_connections_per_user = 1).await;
    let mut first = server.connect("alice").await;
    first.ws.close(None).await.unwrap();
    server
        .wait_for_metric("chorus_connections", |v| v == 0.0)
        .await;

    let mut again = server.connect("alice").await;
    assert_alive(&mut again).await;
}

#[tokio::test]
async fn a_connection_beyond_the_server_limit_is_closed_with_4005() {
    let server = TestServer::start_with(|c| c.max_connections = 1).await;
    let mut alice = server.connect("alice").await;

    let mut bob = server
        .connect_with_token(&server.token("bob"))
        .await
        .expect("the socket opens, to carry the reason");
    let closed = bob.closed().await;
    let (code, reconnect) = disconnect(&closed);
    assert_eq!(code, 4005);
    assert!(
        matches!(reconnect, Reconnect::RetryAfter(ms) if ms >= 1000),
        "a full server asks for a delay, got {reconnect:?}"
    );
    assert_alive(&mut alice).await;
}

#[tokio::test]
async fn a_connection_is_closed_with_4002_when_its_token_expires() {
    // No leeway: the connection ends at `exp` itself, and the token is refused from then.
    let server = TestServer::start_with(|c| c.token_leeway = Duration::ZERO).await;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    // Expiry is in whole seconds: this token has between one and two seconds left.
    let exp = now.as_secs() + 2;
    let token = server
        .auth
        .sign(&Claims {
            sub: "alice".into(),
            exp,
            iat: now.as_secs(),
            rooms: vec!["*".into()],
            admin: false,
        })
        .unwrap();
    let mut alice = server.connect_with_token(&token).await.unwrap();
    alice.welcome().await;
    assert_alive(&mut alice).await;

    let closed = alice.closed().await;
    let expired_at = UNIX_EPOCH + Duration::from_secs(exp);
    // The server's clock for the deadline is monotonic; allow it a little drift from the
    // wall clock.
    assert!(
        SystemTime::now() + Duration::from_millis(50) >= expired_at,
        "closed {:?} before the token expired",
        expired_at
            .duration_since(SystemTime::now())
            .unwrap_or_default()
    );
    assert_eq!(disconnect(&closed), (4002, Reconnect::DoNotRetry));
    // Reconnecting with the same token is refused before the upgrade.
    assert!(server.connect_with_token(&token).await.is_err());
}
