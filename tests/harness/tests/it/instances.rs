//! Chorus servers in this process on one Redis (or a Redis Cluster), and a WebSocket client
//! speaking chorus-protocol to them: what the Redis tests are made of.

use std::net::SocketAddr;
use std::time::Duration;

use chorus_protocol::{
    AUTH_SUBPROTOCOL_PREFIX, Body, ClientMessage, Position, Recovery, SUBPROTOCOL, ServerMessage,
};
use chorus_server::auth::Auth;
use chorus_server::{Config, run};
use chorus_test_harness::redis::{Reply, command};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for an expected event before failing.
pub(crate) const WAIT: Duration = Duration::from_secs(15);
pub(crate) const SECRET: &str = "redis-broker-secret-0123456789";

/// A chorus-server running in this process.
pub(crate) struct Instance {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<chorus_server::Result<()>>>,
}

impl Instance {
    /// An instance on `redis_url`, with the test defaults adjusted by `adjust`.
    pub(crate) async fn start(redis_url: &str, adjust: impl FnOnce(&mut Config)) -> Instance {
        let mut config = Config {
            token_secret: SECRET.into(),
            redis_url: Some(redis_url.to_owned()),
            ..Config::default()
        };
        adjust(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(run(listener, config, async {
            let _ = rx.await;
        }));
        Instance {
            addr,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// `n` instances on the Redis at `redis_url`, each up (connected and subscribed) before
    /// returning.
    pub(crate) async fn many(redis_url: &str, n: usize) -> Vec<Instance> {
        let mut instances = Vec::new();
        for _ in 0..n {
            let instance = Instance::start(redis_url, |_| {}).await;
            instance.wait_health("ok").await;
            instances.push(instance);
        }
        instances
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Connect as `user` and read the welcome.
    pub(crate) async fn connect(&self, user: &str) -> Client {
        let token = Auth::new(SECRET)
            .issue(user, Duration::from_secs(3600), vec!["*".into()], false)
            .unwrap();
        let mut request = format!("ws://{}/ws", self.addr)
            .into_client_request()
            .unwrap();
        let protocols = format!("{SUBPROTOCOL}, {AUTH_SUBPROTOCOL_PREFIX}{token}");
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(&protocols).unwrap(),
        );
        let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let mut client = Client {
            ws,
            user: user.to_owned(),
        };
        match client.recv().await {
            ServerMessage::Welcome { .. } => client,
            other => panic!("expected a welcome, got {other:?}"),
        }
    }

    /// `POST /api/publish` with the secret: (HTTP status, JSON answer).
    pub(crate) async fn http_publish(&self, room: &str, id: u64, text: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(self.url("/api/publish"))
            .bearer_auth(SECRET)
            .json(&json!({ "room": room, "id": id, "text": text, "sender": "backend" }))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// `GET /healthz`: (HTTP status, JSON answer).
    pub(crate) async fn health(&self) -> (u16, Value) {
        let response = reqwest::get(self.url("/healthz")).await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Wait until `/healthz` says `status` (`ok` or `degraded`).
    pub(crate) async fn wait_health(&self, status: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let (code, body) = self.health().await;
            if body["status"] == status {
                assert_eq!(code, 200, "{body}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "health never became {status}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One sample of `GET /metrics`.
    pub(crate) async fn metric(&self, sample: &str) -> f64 {
        let text = reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no sample {sample} in /metrics:\n{text}"))
            .trim()
            .parse()
            .unwrap()
    }

    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(30), handle)
                .await
                .expect("shutdown timed out")
                .expect("server task panicked")
                .expect("server failed");
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A WebSocket client speaking chorus-protocol.
pub(crate) struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub(crate) user: String,
}

impl Client {
    pub(crate) async fn send(&mut self, message: ClientMessage) {
        let frame = message.encode(usize::MAX).unwrap();
        self.ws.send(Message::Binary(frame.into())).await.unwrap();
    }

    /// The next binary frame, raw.
    pub(crate) async fn recv_frame(&mut self) -> Vec<u8> {
        loop {
            let incoming = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("{}: timed out waiting for a message", self.user));
            match incoming {
                Some(Ok(Message::Binary(frame))) => return frame.to_vec(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("{}: connection ended: {other:?}", self.user),
            }
        }
    }

    pub(crate) async fn recv(&mut self) -> ServerMessage {
        let frame = self.recv_frame().await;
        ServerMessage::decode(&frame, usize::MAX).expect("undecodable frame")
    }

    pub(crate) async fn recv_until(
        &mut self,
        mut pred: impl FnMut(&ServerMessage) -> bool,
    ) -> ServerMessage {
        loop {
            let message = self.recv().await;
            if pred(&message) {
                return message;
            }
        }
    }

    /// Everything up to the message matching `pred`, which is last.
    pub(crate) async fn recv_through(
        &mut self,
        mut pred: impl FnMut(&ServerMessage) -> bool,
    ) -> Vec<ServerMessage> {
        let mut seen = Vec::new();
        loop {
            let message = self.recv().await;
            let done = pred(&message);
            seen.push(message);
            if done {
                return seen;
            }
        }
    }

    /// Join, returning the `Joined` (presence events before it skipped).
    pub(crate) async fn join(&mut self, room: &str, since: Option<Position>) -> ServerMessage {
        self.send(ClientMessage::Join {
            room: room.into(),
            since,
        })
        .await;
        self.recv_until(|m| {
            !matches!(
                m,
                ServerMessage::MemberJoined { .. }
                    | ServerMessage::MemberLeft { .. }
                    | ServerMessage::Typing { .. }
            )
        })
        .await
    }

    pub(crate) async fn publish(&mut self, room: &str, id: u64, text: &str) {
        self.send(ClientMessage::Publish {
            room: room.into(),
            id,
            body: Body::Text(text.into()),
        })
        .await;
    }

    /// The answer to publish `id`: its seq, or the error code.
    pub(crate) async fn outcome(&mut self, id: u64) -> Result<u64, u16> {
        match self
            .recv_until(|m| {
                matches!(m, ServerMessage::PublishAck { id: i, .. } if *i == id)
                    || matches!(m, ServerMessage::Error { id: Some(i), .. } if *i == id)
            })
            .await
        {
            ServerMessage::PublishAck { seq, .. } => Ok(seq),
            ServerMessage::Error { code, .. } => Err(code),
            _ => unreachable!(),
        }
    }

    pub(crate) async fn ack(&mut self, id: u64) -> u64 {
        self.outcome(id)
            .await
            .unwrap_or_else(|code| panic!("publish {id} refused with {code}"))
    }

    pub(crate) async fn history(
        &mut self,
        request: u64,
        room: &str,
        before: Option<Position>,
        limit: u32,
    ) -> ServerMessage {
        self.send(ClientMessage::History {
            request,
            room: room.into(),
            before,
            limit,
        })
        .await;
        self.recv_until(|m| match m {
            ServerMessage::History { request: r, .. } => *r == request,
            ServerMessage::Error { id, .. } => *id == Some(request),
            _ => false,
        })
        .await
    }

    /// A round trip: the connection is open and served.
    pub(crate) async fn ping(&mut self, nonce: u64) {
        self.send(ClientMessage::Ping { nonce }).await;
        self.recv_until(|m| matches!(m, ServerMessage::Pong { nonce: n } if *n == nonce))
            .await;
    }

    /// Close, and wait until the server has dropped the connection (after leaving its
    /// rooms).
    pub(crate) async fn close(mut self) {
        let _ = self.ws.close(None).await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, self.ws.next()).await {}
    }
}

/// The seqs of the `Message`s among `messages`.
pub(crate) fn seqs(messages: &[ServerMessage]) -> Vec<u64> {
    messages
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Message { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect()
}

pub(crate) fn is_message(m: &ServerMessage, wanted: u64) -> bool {
    matches!(m, ServerMessage::Message { id, .. } if *id == wanted)
}

pub(crate) fn position_of(joined: &ServerMessage) -> (Position, Recovery, Vec<String>) {
    match joined {
        ServerMessage::Joined {
            position,
            recovery,
            members,
            ..
        } => (*position, *recovery, members.clone()),
        other => panic!("expected Joined, got {other:?}"),
    }
}

/// One Redis command over its own connection, answered as text: an integer or bulk string as
/// itself, nil as "(nil)", an error as "ERR...".
pub(crate) async fn redis_command(port: u16, args: &[&str]) -> String {
    match command(port, args).await.expect("Redis answers") {
        Reply::Status(text) | Reply::Error(text) => text,
        Reply::Int(n) => n.to_string(),
        Reply::Bulk(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Reply::Nil => "(nil)".into(),
        Reply::Array(items) => panic!("unexpected array {items:?}"),
    }
}
