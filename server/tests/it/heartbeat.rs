//! Heartbeat: a silent client is closed with 4000; application pings keep a client alive.

use std::time::Duration;

use crate::common::{Client, TestServer, WAIT};
use chorus_framing::{Opcode, parse_close_payload, parse_server_header};
use chorus_protocol::{ClientMessage, Reconnect, ServerMessage};
use tokio::io::AsyncReadExt;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::MaybeTlsStream;

const INTERVAL: Duration = Duration::from_millis(100);
const TIMEOUT: Duration = Duration::from_millis(300);

async fn start() -> TestServer {
    TestServer::start_with(|c| {
        c.heartbeat_interval = INTERVAL;
        c.heartbeat_timeout = TIMEOUT;
    })
    .await
}

/// Everything the server sends until it closes the TCP connection, as (opcode, payload)
/// frames, read straight off the socket. tokio-tungstenite would answer each ping with a pong
/// while reading (and fail on writing it once the server has closed), so a client that
/// must stay silent reads around it. The welcome, read before, came alone (the first ping
/// follows an interval later), so tokio-tungstenite holds no unread bytes.
async fn raw_frames_until_eof(client: &mut Client) -> Vec<(Opcode, Vec<u8>)> {
    let MaybeTlsStream::Plain(tcp) = client.ws.get_mut() else {
        unreachable!("tests connect without TLS")
    };
    let mut bytes = Vec::new();
    timeout(WAIT, tcp.read_to_end(&mut bytes))
        .await
        .expect("the server did not close the connection")
        .expect("read failed");
    let mut frames = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        // Server frames are not masked: `parse_server_header` checks it.
        let header = parse_server_header(rest, usize::MAX)
            .expect("a server frame")
            .expect("a whole frame header");
        frames.push((header.opcode, rest[header.len..header.frame_len()].to_vec()));
        rest = &rest[header.frame_len()..];
    }
    frames
}

#[tokio::test]
async fn a_silent_client_is_pinged_then_closed_with_4000_after_the_heartbeat_timeout() {
    let server = start().await;
    // Taken before the server can start counting the silence.
    let connecting = Instant::now();
    let mut silent = server.connect("alice").await;

    let frames = raw_frames_until_eof(&mut silent).await;
    assert!(
        connecting.elapsed() >= TIMEOUT,
        "closed after {:?}, before the timeout of {TIMEOUT:?}",
        connecting.elapsed()
    );
    let opcodes: Vec<Opcode> = frames.iter().map(|(op, _)| *op).collect();
    let pings = opcodes.iter().take_while(|op| **op == Opcode::Ping).count();
    assert!(
        pings >= 2,
        "expected a ping per interval first, got {opcodes:?}"
    );
    assert_eq!(&opcodes[pings..], [Opcode::Binary, Opcode::Close]);

    let notice = ServerMessage::decode(&frames[pings].1, usize::MAX).unwrap();
    assert_eq!(
        notice,
        ServerMessage::Disconnect {
            code: 4000,
            reason: "heartbeat_timeout".into(),
            reconnect: Reconnect::RetryAfter(1000),
        }
    );
    let close = parse_close_payload(&frames[pings + 1].1).unwrap();
    assert_eq!(close, Some((4000, &b"heartbeat_timeout"[..])));
    assert_eq!(
        server
            .metric(r#"chorus_disconnects_total{reason="heartbeat_timeout"}"#)
            .await,
        1.0
    );
}

#[tokio::test]
async fn a_client_sending_application_pings_stays_connected_past_several_timeouts() {
    let server = start().await;
    let mut client = server.connect("alice").await;
    let connected = Instant::now();

    // The client only writes until the end: it never reads, so it never answers the
    // server's WebSocket pings, and only its application pings count as traffic.
    let pings = 12;
    let mut every = tokio::time::interval(INTERVAL);
    for nonce in 0..pings {
        every.tick().await;
        client.send(ClientMessage::Ping { nonce }).await;
    }
    assert!(connected.elapsed() >= 3 * TIMEOUT);

    // Every pong is there in order, with no disconnect notice or close before the last.
    for nonce in 0..pings {
        assert_eq!(client.recv().await, ServerMessage::Pong { nonce });
    }
    assert_eq!(
        server
            .metric(r#"chorus_disconnects_total{reason="heartbeat_timeout"}"#)
            .await,
        0.0
    );
}
