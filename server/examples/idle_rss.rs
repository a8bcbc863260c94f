//! Measure the server's resident memory per idle, joined connection.
//!
//! Starts the `chorus-server` binary (built in the same profile, next to this example) as a
//! child process, opens N WebSocket connections that each join one of 100 rooms, then
//! reads the child's RSS from /proc before and after.
//!
//! ```text
//! cargo build --release -p chorus-server --bin chorus-server --example idle_rss
//! target/release/examples/idle_rss 10000
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use chorus_protocol::{AUTH_SUBPROTOCOL_PREFIX, ClientMessage, SUBPROTOCOL, ServerMessage};
use chorus_server::auth::Auth;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const SECRET: &str = "idle-rss-secret-0123456789";

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("connection count"))
        .unwrap_or(5000);
    let exe = std::env::current_exe().unwrap();
    let server_bin = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("chorus-server");
    let mut child = Command::new(&server_bin)
        .args(["serve", "--bind", "127.0.0.1:0", "--token-secret", SECRET])
        .args(["--max-connections-per-user", &n.to_string()])
        .args(["--log-format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chorus-server (build it first)");
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("server exited").unwrap();
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.split('/').next().unwrap().to_owned();
        }
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid);

    let token = Auth::new(SECRET)
        .issue("idle", Duration::from_secs(3600), vec!["*".into()], false)
        .unwrap();
    let protocols = format!("{SUBPROTOCOL}, {AUTH_SUBPROTOCOL_PREFIX}{token}");
    let mut sockets = Vec::with_capacity(n);
    for i in 0..n {
        let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(&protocols).unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("connect");
        let join = ClientMessage::Join {
            room: format!("room-{}", i % 100),
            since: None,
        };
        ws.send(Message::Binary(join.encode(usize::MAX).unwrap().into()))
            .await
            .unwrap();
        // Welcome, then Joined (presence events for other rooms may come between).
        loop {
            let Some(Ok(Message::Binary(frame))) = ws.next().await else {
                panic!("connection {i} closed");
            };
            if let Ok(ServerMessage::Joined { .. }) = ServerMessage::decode(&frame, usize::MAX) {
                break;
            }
        }
        sockets.push(ws);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(pid);
    let per = (after.saturating_sub(before)) as f64 * 1024.0 / n as f64;
    println!(
        "connections: {n}\nserver RSS before: {before} KiB\nserver RSS after: {after} KiB\nper idle joined connection: {per:.0} bytes ({:.2} KiB)",
        per / 1024.0
    );
    drop(sockets);
    let _ = child.kill();
    let _ = child.wait();
}
