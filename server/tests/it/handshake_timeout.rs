//! Slow and silent HTTP clients are given up: a request's headers must be in within the
//! handshake timeout of the accept (one byte at a time is no way around it) and its body
//! within the same time of its headers, an idle keep-alive connection is closed after the
//! idle timeout, and at most `max_handshakes` connections wait for a request at once:
//! beyond that the server stops accepting, and serves the next connection as soon as a slot
//! frees. An upgraded WebSocket is subject to none of this.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::{TestServer, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How much later than its deadline a connection may be closed.
const MARGIN: Duration = Duration::from_secs(1);

/// A complete keep-alive request.
const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: chorus\r\n\r\n";

/// Read until the server closes the connection (end of file or reset) and return the
/// bytes it sent before. Fails if it stays open for [`WAIT`].
async fn closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("the server kept the connection open");
    received
}

/// Read one response to a request for `/healthz` (head and `Content-Length` body) and return
/// its status line.
async fn response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if received.len() >= end + 4 + length {
                    return head.lines().next().unwrap().to_owned();
                }
            }
            let n = stream.read(&mut buf).await.expect("read a response");
            assert!(n > 0, "closed before a response: {received:?}");
            received.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("no response to the request")
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

fn assert_closed_between(elapsed: Duration, deadline: Duration) {
    assert!(
        elapsed >= deadline.mul_f64(0.9),
        "closed after {elapsed:?}, before the {deadline:?} deadline"
    );
    assert!(
        elapsed <= deadline + MARGIN,
        "closed after {elapsed:?}, long after the {deadline:?} deadline"
    );
}

#[tokio::test]
async fn a_request_sent_one_byte_at_a_time_is_cut_at_the_handshake_timeout() {
    let handshake = Duration::from_millis(300);
    let server = TestServer::start_with(|c| c.handshake_timeout = handshake).await;
    let started = Instant::now();
    let stream = connect(server.addr).await;
    let (mut read, mut write) = stream.into_split();
    // A byte every 50 ms keeps the connection busy (no gap near the timeout), but the whole
    // request takes two seconds.
    let writer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        for byte in HEALTHZ {
            tick.tick().await;
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
        }
    });

    let mut received = Vec::new();
    let eof = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 1024];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    writer.abort();
    eof.expect("the slow request's connection stayed open");
    let text = String::from_utf8_lossy(&received);
    assert!(
        received.is_empty() || text.starts_with("HTTP/1.1 408"),
        "the slow request was served: {text}"
    );
    assert_closed_between(started.elapsed(), handshake);
}

#[tokio::test]
async fn a_request_body_sent_one_byte_at_a_time_is_cut_at_the_handshake_timeout() {
    let handshake = Duration::from_millis(300);
    let server = TestServer::start_with(|c| c.handshake_timeout = handshake).await;
    let started = Instant::now();
    let stream = connect(server.addr).await;
    let (mut read, mut write) = stream.into_split();
    let body = format!("{{\"room\":\"lobby\",\"text\":\"{}\"}}", "x".repeat(40));
    let head = format!(
        "POST /api/publish HTTP/1.1\r\nHost: chorus\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    write.write_all(head.as_bytes()).await.unwrap();
    // The headers are in at once; the body takes three seconds.
    let writer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        for byte in body.bytes() {
            tick.tick().await;
            if write.write_all(&[byte]).await.is_err() {
                return;
            }
        }
    });

    let mut received = Vec::new();
    let eof = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 1024];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    writer.abort();
    eof.expect("the slow body's connection stayed open");
    assert!(
        received.is_empty(),
        "the slow request was answered: {}",
        String::from_utf8_lossy(&received)
    );
    assert_closed_between(started.elapsed(), handshake);
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_at_the_handshake_timeout() {
    let handshake = Duration::from_millis(300);
    let server = TestServer::start_with(|c| c.handshake_timeout = handshake).await;
    let started = Instant::now();
    let mut stream = connect(server.addr).await;
    let received = closed(&mut stream).await;
    assert!(received.is_empty(), "{received:?}");
    assert_closed_between(started.elapsed(), handshake);
    let cut = r#"chorus_http_connections_cut_total{reason="handshake_timeout"}"#;
    server.wait_for_metric(cut, |n| n == 1.0).await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout_not_the_handshake_one() {
    let idle = Duration::from_millis(600);
    let server = TestServer::start_with(|c| {
        c.handshake_timeout = Duration::from_millis(200);
        c.idle_timeout = idle;
    })
    .await;
    let mut stream = connect(server.addr).await;
    // Two requests: the connection is kept alive after each. It is idle from the second
    // one's response on, which is after it was sent.
    stream.write_all(HEALTHZ).await.unwrap();
    assert_eq!(response(&mut stream).await, "http/1.1 200 ok");
    let sent = Instant::now();
    stream.write_all(HEALTHZ).await.unwrap();
    assert_eq!(response(&mut stream).await, "http/1.1 200 ok");
    let received = closed(&mut stream).await;
    assert!(received.is_empty(), "{received:?}");
    assert_closed_between(sent.elapsed(), idle);
    let cut = r#"chorus_http_connections_cut_total{reason="idle_timeout"}"#;
    server.wait_for_metric(cut, |n| n == 1.0).await;
}

#[tokio::test]
async fn connections_over_max_handshakes_wait_and_are_served_when_a_slot_frees() {
    let handshake = Duration::from_millis(500);
    let server = TestServer::start_with(|c| {
        c.handshake_timeout = handshake;
        c.max_handshakes = 2;
    })
    .await;
    let started = Instant::now();
    // Two silent connections take both slots...
    let mut holders = [connect(server.addr).await, connect(server.addr).await];
    // ...so a third, complete request is not accepted until one of them is given up.
    let mut client = connect(server.addr).await;
    client.write_all(HEALTHZ).await.unwrap();
    assert_eq!(response(&mut client).await, "http/1.1 200 ok");
    let served_after = started.elapsed();
    assert!(
        served_after >= handshake.mul_f64(0.9),
        "served after {served_after:?}, while both slots were held"
    );
    for holder in &mut holders {
        assert!(closed(holder).await.is_empty());
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_gives_its_slot_to_a_new_connection() {
    let server = TestServer::start_with(|c| {
        c.max_handshakes = 1;
        // Longer than the test waits: only the new connection's need can close it.
        c.idle_timeout = WAIT * 6;
    })
    .await;
    let mut kept_alive = connect(server.addr).await;
    kept_alive.write_all(HEALTHZ).await.unwrap();
    assert_eq!(response(&mut kept_alive).await, "http/1.1 200 ok");

    let mut client = connect(server.addr).await;
    client.write_all(HEALTHZ).await.unwrap();
    assert_eq!(response(&mut client).await, "http/1.1 200 ok");
    assert!(closed(&mut kept_alive).await.is_empty());
}

#[tokio::test]
async fn an_upgraded_websocket_is_not_subject_to_the_http_timeouts_or_slots() {
    let server = TestServer::start_with(|c| {
        c.handshake_timeout = Duration::from_millis(200);
        c.idle_timeout = Duration::from_millis(200);
        c.max_handshakes = 1;
    })
    .await;
    let mut ws = server.connect("alice").await;
    // This connection is accepted only if the WebSocket gave its slot back, and closed at
    // its own handshake deadline, later than the WebSocket's would have been.
    let mut silent = connect(server.addr).await;
    assert!(closed(&mut silent).await.is_empty());
    ws.ping(1).await;
    // And the slot is free again for a plain request.
    let mut client = connect(server.addr).await;
    client.write_all(HEALTHZ).await.unwrap();
    assert_eq!(response(&mut client).await, "http/1.1 200 ok");
    ws.ping(2).await;
}
