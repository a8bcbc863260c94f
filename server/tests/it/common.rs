//! Shared test harness: a real chorus-server on 127.0.0.1:0 and a real WebSocket client
//! (tokio-tungstenite) that speaks chorus-protocol.

#![allow(unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use chorus_protocol::{
    AUTH_SUBPROTOCOL_PREFIX, Body, ClientMessage, DEFAULT_MAX_FRAME, Position, SUBPROTOCOL,
    ServerMessage,
};
use chorus_server::auth::Auth;
use chorus_server::{Config, run};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for an expected event before failing.
pub const WAIT: Duration = Duration::from_secs(10);

pub const SECRET: &str = "test-secret-0123456789";

/// The configuration tests start from: the defaults with a known secret.
pub fn test_config() -> Config {
    Config {
        token_secret: SECRET.into(),
        ..Config::default()
    }
}

/// A running server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub config: Config,
    pub auth: Auth,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<chorus_server::Result<()>>>,
}

impl TestServer {
    /// Start with the test defaults.
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// Start with the test defaults adjusted by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = test_config();
        adjust(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(run(listener, config.clone(), async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            auth: Auth::new(&config.token_secret),
            config,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// A token for `user` permitting every room.
    pub fn token(&self, user: &str) -> String {
        self.token_for(user, &["*"])
    }

    /// A token for `user` permitting the room patterns given.
    pub fn token_for(&self, user: &str, rooms: &[&str]) -> String {
        self.auth
            .issue(
                user,
                Duration::from_secs(3600),
                rooms.iter().map(|r| r.to_string()).collect(),
                false,
            )
            .unwrap()
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Connect as `user` (token in the subprotocol, as browsers do) and read the welcome.
    pub async fn connect(&self, user: &str) -> Client {
        let token = self.token(user);
        let mut client = self.connect_with_token(&token).await.expect("connect");
        client.welcome().await;
        client
    }

    /// Open a socket offering `chorus.v1` and `chorus.auth.<token>`; no message is read.
    pub async fn connect_with_token(&self, token: &str) -> Result<Client, tungstenite::Error> {
        let protocols = format!("{SUBPROTOCOL}, {AUTH_SUBPROTOCOL_PREFIX}{token}");
        self.connect_with_protocols(Some(&protocols), None).await
    }

    /// Open a socket with the given `Sec-WebSocket-Protocol` header (if any) and query.
    pub async fn connect_with_protocols(
        &self,
        protocols: Option<&str>,
        query: Option<&str>,
    ) -> Result<Client, tungstenite::Error> {
        let headers: Vec<(&str, &str)> = protocols
            .map(|p| ("sec-websocket-protocol", p))
            .into_iter()
            .collect();
        self.connect_request(self.ws_request(query, &headers)).await
    }

    /// A handshake request for `/ws` (plus `?query`) with the given extra headers.
    pub fn ws_request(
        &self,
        query: Option<&str>,
        headers: &[(&str, &str)],
    ) -> tungstenite::handshake::client::Request {
        let url = match query {
            Some(q) => format!("{}?{q}", self.ws_url()),
            None => self.ws_url(),
        };
        let mut request = url.into_client_request().unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(
                tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        request
    }

    /// Open a socket with a prepared handshake request (see [`TestServer::ws_request`]); no
    /// message is read.
    pub async fn connect_request(
        &self,
        request: tungstenite::handshake::client::Request,
    ) -> Result<Client, tungstenite::Error> {
        let (ws, response) = tokio_tungstenite::connect_async(request).await?;
        let protocol = response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap().to_owned());
        Ok(Client {
            ws,
            protocol,
            max_frame: DEFAULT_MAX_FRAME,
        })
    }

    /// Connect as `user` over a socket whose kernel receive buffer is about `bytes` (the
    /// kernel rounds it, and it no longer grows), so that when the client stops reading the
    /// server's writes block after little data. Reads the welcome.
    pub async fn connect_with_receive_buffer(&self, user: &str, bytes: u32) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(bytes).unwrap();
        let stream = socket.connect(self.addr).await.unwrap();
        let protocols = format!(
            "{SUBPROTOCOL}, {AUTH_SUBPROTOCOL_PREFIX}{}",
            self.token(user)
        );
        let request = self.ws_request(None, &[("sec-websocket-protocol", &protocols)]);
        let (ws, response) =
            tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
                .await
                .unwrap();
        let protocol = response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap().to_owned());
        let mut client = Client {
            ws,
            protocol,
            max_frame: DEFAULT_MAX_FRAME,
        };
        client.welcome().await;
        client
    }

    /// The value of one sample in `GET /metrics`, e.g. `chorus_auth_failures_total`.
    pub async fn metric(&self, sample: &str) -> f64 {
        let text = reqwest::get(self.http_url("/metrics"))
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

    /// Poll `GET /metrics` until `sample` satisfies `holds`, and return its value. Panics
    /// after [`WAIT`]. For effects the server records after the client can see them (a
    /// connection's slot is released when its task ends, after the close).
    pub async fn wait_for_metric(&self, sample: &str, holds: impl Fn(f64) -> bool) -> f64 {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let value = self.metric(sample).await;
            if holds(value) {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting on {sample}; last value {value}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Ask the server to shut down and wait for `run` to return.
    pub async fn shutdown(&mut self) -> chorus_server::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let handle = self.handle.take().expect("already shut down");
        tokio::time::timeout(Duration::from_secs(30), handle)
            .await
            .expect("shutdown timed out")
            .expect("server task panicked")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A WebSocket client speaking chorus-protocol.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The subprotocol the server selected.
    pub protocol: Option<String>,
    pub max_frame: usize,
}

/// How a connection ended, as the client saw it.
#[derive(Debug)]
pub struct Closed {
    /// The `Disconnect` notice, if one came first.
    pub notice: Option<ServerMessage>,
    /// The close frame, if any.
    pub frame: Option<CloseFrame>,
}

impl Closed {
    pub fn code(&self) -> Option<u16> {
        self.frame.as_ref().map(|f| u16::from(f.code))
    }
}

impl Client {
    /// Send a protocol message.
    pub async fn send(&mut self, message: ClientMessage) {
        let frame = message.encode(usize::MAX).unwrap();
        self.ws.send(Message::Binary(frame.into())).await.unwrap();
    }

    /// Send a raw WebSocket message.
    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.unwrap();
    }

    /// The next protocol message (pings and pongs skipped). Panics on close or timeout.
    pub async fn recv(&mut self) -> ServerMessage {
        match self.next().await {
            Ok(message) => message,
            Err(closed) => panic!("connection closed while waiting for a message: {closed:?}"),
        }
    }

    /// The next protocol message, or how the connection ended.
    pub async fn next(&mut self) -> Result<ServerMessage, Closed> {
        let mut notice = None;
        loop {
            let incoming = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a server message");
            match incoming {
                Some(Ok(Message::Binary(frame))) => {
                    let message = ServerMessage::decode(&frame, self.max_frame)
                        .expect("server sent an undecodable frame");
                    if matches!(message, ServerMessage::Disconnect { .. }) {
                        notice = Some(message);
                        continue;
                    }
                    if notice.is_some() {
                        panic!("message after a disconnect notice: {message:?}");
                    }
                    return Ok(message);
                }
                Some(Ok(Message::Close(frame))) => return Err(Closed { notice, frame }),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(other)) => panic!("unexpected frame {other:?}"),
                Some(Err(_)) | None => {
                    return Err(Closed {
                        notice,
                        frame: None,
                    });
                }
            }
        }
    }

    /// Read until the connection closes; fails on any protocol message but the notice.
    pub async fn closed(&mut self) -> Closed {
        match self.next().await {
            Ok(message) => panic!("expected the connection to close, got {message:?}"),
            Err(closed) => closed,
        }
    }

    /// Skip messages until one matches `pred`; return it.
    pub async fn recv_until(
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

    /// Read the welcome and adopt its frame limit.
    pub async fn welcome(&mut self) -> ServerMessage {
        let welcome = self.recv().await;
        match &welcome {
            ServerMessage::Welcome { limits, .. } => self.max_frame = limits.max_frame as usize,
            other => panic!("expected a welcome, got {other:?}"),
        }
        welcome
    }

    /// Join `room` and return the `Joined` answer (panics on anything else).
    pub async fn join(&mut self, room: &str) -> ServerMessage {
        self.join_since(room, None).await
    }

    pub async fn join_since(&mut self, room: &str, since: Option<Position>) -> ServerMessage {
        self.send(ClientMessage::Join {
            room: room.into(),
            since,
        })
        .await;
        let answer = self
            .recv_until(|m| {
                !matches!(
                    m,
                    ServerMessage::MemberJoined { .. }
                        | ServerMessage::MemberLeft { .. }
                        | ServerMessage::Typing { .. }
                )
            })
            .await;
        assert!(
            matches!(&answer, ServerMessage::Joined { room: r, .. } if r == room),
            "expected Joined for {room}, got {answer:?}"
        );
        answer
    }

    /// Publish text with `id`.
    pub async fn publish(&mut self, room: &str, id: u64, text: &str) {
        self.send(ClientMessage::Publish {
            room: room.into(),
            id,
            body: Body::Text(text.into()),
        })
        .await;
    }

    /// Wait for the ack of publish `id` and return its sequence (other messages skipped).
    pub async fn ack(&mut self, id: u64) -> u64 {
        match self
            .recv_until(|m| {
                matches!(m, ServerMessage::PublishAck { id: i, .. } if *i == id)
                    || matches!(m, ServerMessage::Error { id: Some(i), .. } if *i == id)
            })
            .await
        {
            ServerMessage::PublishAck { seq, .. } => seq,
            other => panic!("publish {id} failed: {other:?}"),
        }
    }

    /// Wait for an error reply and return (code, id, room).
    pub async fn error(&mut self) -> (u16, Option<u64>, Option<String>) {
        match self
            .recv_until(|m| matches!(m, ServerMessage::Error { .. }))
            .await
        {
            ServerMessage::Error { code, id, room, .. } => (code, id, room),
            _ => unreachable!(),
        }
    }

    /// Ask for a page of `room`'s history and return the answer to `request`: its `History`
    /// or its `Error` (other messages skipped).
    pub async fn history(
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

    /// Send a `Ping` and wait for its `Pong` (other messages skipped): proof that the
    /// connection is open and the server still serves it.
    pub async fn ping(&mut self, nonce: u64) {
        self.send(ClientMessage::Ping { nonce }).await;
        self.recv_until(|m| matches!(m, ServerMessage::Pong { nonce: n } if *n == nonce))
            .await;
    }

    /// Close cleanly and wait until the server has dropped its end of the TCP connection.
    /// The server drops the socket only after leaving every room, so whatever it does on
    /// close (presence updates) has happened when this returns.
    pub async fn close_and_wait(mut self) {
        let _ = self.ws.close(None).await;
        loop {
            let incoming = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for the server to drop the connection");
            match incoming {
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return,
            }
        }
    }
}

/// Assert that an upgrade was refused with HTTP `status`, so no WebSocket was opened, and
/// return the response.
pub fn assert_refused(
    result: Result<Client, tungstenite::Error>,
    status: u16,
) -> tungstenite::handshake::client::Response {
    let response = match result {
        Ok(_) => panic!("expected HTTP {status}, but the WebSocket was opened"),
        Err(tungstenite::Error::Http(response)) => *response,
        Err(other) => panic!("expected HTTP {status}, got {other:?}"),
    };
    assert_eq!(response.status().as_u16(), status, "{response:?}");
    assert!(
        response.headers().get("sec-websocket-accept").is_none()
            && response.headers().get("upgrade").is_none(),
        "a refused upgrade must not carry upgrade headers: {response:?}"
    );
    response
}
