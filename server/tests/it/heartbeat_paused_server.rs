//! The heartbeat deadline counts bytes received, not frames handled: a server paused
//! (SIGSTOP) for longer than `--heartbeat-timeout`, while its clients kept pinging, does not
//! close them with 4000 when it resumes. Their pings sat in its sockets, unread, all along.

#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::{SECRET, WAIT};
use chorus_protocol::{ClientMessage, ServerMessage};
use chorus_server::auth::Auth;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const BIN: &str = env!("CARGO_BIN_EXE_chorus-server");

/// Clients paused with the server: before the fix, each was closed with even odds (the
/// connection saw its expired timer or its waiting bytes first), so one of these many
/// would be.
const CLIENTS: usize = 8;

/// A server process, killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill {signal}");
    }
}

/// Start the binary with a short heartbeat; returns it and its address.
fn start() -> (Server, String) {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--token-secret",
            SECRET,
            "--heartbeat-interval",
            "100ms",
            "--heartbeat-timeout",
            "500ms",
        ])
        .env_clear()
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let addr = loop {
        let line = rx.recv_timeout(WAIT).expect("no address logged");
        if let Some((_, rest)) = line.split_once("listening on http://") {
            break rest.split('/').next().unwrap().to_owned();
        }
    };
    (server, addr)
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn send_ping(ws: &mut Socket, nonce: u64) {
    let frame = ClientMessage::Ping { nonce }.encode(usize::MAX).unwrap();
    ws.send(Message::Binary(frame.into())).await.unwrap();
}

/// Read until the server's `Pong` for `nonce`; fails on a close (the 4000 of the bug).
async fn until_pong(ws: &mut Socket, nonce: u64) {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no pong in time")
            .expect("the connection ended")
            .expect("the connection failed");
        match frame {
            Message::Binary(bytes) => {
                if let ServerMessage::Pong { nonce: n } =
                    ServerMessage::decode(&bytes, usize::MAX).unwrap()
                    && n == nonce
                {
                    return;
                }
                if let ServerMessage::Disconnect { code, reason, .. } =
                    ServerMessage::decode(&bytes, usize::MAX).unwrap()
                {
                    panic!("disconnected with {code} {reason}");
                }
            }
            Message::Close(close) => panic!("closed: {close:?}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn clients_that_kept_pinging_a_paused_server_stay_connected() {
    let (server, addr) = start();
    let token = Auth::new(SECRET)
        .issue("alice", Duration::from_secs(600), vec!["*".into()], false)
        .unwrap();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token={token}"))
            .await
            .unwrap();
        send_ping(&mut ws, 0).await;
        until_pong(&mut ws, 0).await;
        clients.push(ws);
    }

    // Paused for twice the heartbeat timeout, while every client pings as it should.
    server.signal("-STOP");
    for round in 1..=10 {
        for ws in &mut clients {
            send_ping(ws, round).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.signal("-CONT");

    for ws in &mut clients {
        send_ping(ws, 1000).await;
        until_pong(ws, 1000).await;
    }
}
