//! A client's close frame, from the socket: a valid close code is echoed; a code RFC 6455
//! (section 7.4) forbids on the wire, a one-byte close payload or a reason that is not
//! UTF-8 is a protocol violation, answered with 1002 (1007 for the reason), never echoed.
//!
//! A tokio-tungstenite client makes the upgrade and reads the welcome; then the test writes
//! the close frame as raw bytes on its TCP stream and reads everything the server sends
//! until it ends the stream.

use crate::common::{Client, TestServer, WAIT};
use chorus_framing::{Opcode, parse_server_header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::MaybeTlsStream;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn tcp(client: &mut Client) -> &mut TcpStream {
    match client.ws.get_mut() {
        MaybeTlsStream::Plain(tcp) => tcp,
        _ => unreachable!("tests connect without TLS"),
    }
}

/// A masked client close frame carrying `payload` (at most 125 bytes).
fn close_frame(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() <= 125);
    chorus_framing::frame(true, Opcode::Close, payload, Some(MASK))
}

/// A server close frame with `code` and `reason`, as the server writes it.
fn server_close(code: u16, reason: &str) -> Vec<u8> {
    chorus_framing::close_frame(code, reason).to_vec()
}

/// Send a close frame with `payload` on a fresh connection and return every byte the
/// server sends after it, to the end of the stream (heartbeat pings left out).
async fn answer_to_close(server: &TestServer, user: &str, payload: &[u8]) -> Vec<u8> {
    let mut client = server.connect(user).await;
    let tcp = tcp(&mut client);
    tcp.write_all(&close_frame(payload)).await.unwrap();
    let mut bytes = Vec::new();
    timeout(WAIT, tcp.read_to_end(&mut bytes))
        .await
        .expect("the server did not end the stream after the close")
        .expect("read");
    let mut frames = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let header = parse_server_header(rest, usize::MAX)
            .expect("a server frame")
            .unwrap_or_else(|| panic!("a cut frame in {bytes:02x?}"));
        let (frame, tail) = rest.split_at(header.frame_len());
        if header.opcode != Opcode::Ping {
            frames.extend_from_slice(frame);
        }
        rest = tail;
    }
    frames
}

#[tokio::test]
async fn close_codes_that_must_not_be_sent_are_answered_with_1002() {
    let server = TestServer::start().await;
    let mut wrong = Vec::new();
    for code in [
        0u16, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        let answer = answer_to_close(&server, &format!("u{code}"), &code.to_be_bytes()).await;
        if answer != server_close(1002, "protocol_error: invalid_close_code") {
            wrong.push((code, format!("{answer:02x?}")));
        }
    }
    assert!(wrong.is_empty(), "not answered with 1002: {wrong:?}");
}

#[tokio::test]
async fn valid_close_codes_are_echoed() {
    let server = TestServer::start().await;
    for code in [1000u16, 1001, 1003, 1007, 1011, 1014, 3000, 4000, 4999] {
        let answer = answer_to_close(&server, &format!("u{code}"), &code.to_be_bytes()).await;
        assert_eq!(
            answer,
            [0x88, 0x02, (code >> 8) as u8, code as u8],
            "for {code}"
        );
    }
    let mut with_reason = 1000u16.to_be_bytes().to_vec();
    with_reason.extend_from_slice("bye ✓".as_bytes());
    let answer = answer_to_close(&server, "reason", &with_reason).await;
    assert_eq!(answer, [0x88, 0x02, 0x03, 0xe8]);
}

#[tokio::test]
async fn a_close_without_a_code_is_answered_without_one() {
    let server = TestServer::start().await;
    assert_eq!(answer_to_close(&server, "alice", &[]).await, [0x88, 0x00]);
}

#[tokio::test]
async fn a_one_byte_close_payload_is_answered_with_1002() {
    let server = TestServer::start().await;
    let answer = answer_to_close(&server, "alice", &[0x03]).await;
    assert_eq!(
        answer,
        server_close(1002, "protocol_error: close_one_byte_payload")
    );
}

#[tokio::test]
async fn a_close_reason_that_is_not_utf8_is_answered_with_1007() {
    let server = TestServer::start().await;
    let answer = answer_to_close(&server, "alice", &[0x03, 0xe8, b'o', 0xff, b'k']).await;
    assert_eq!(
        answer,
        server_close(1007, "invalid_data: invalid_utf8_close_reason")
    );
}
