//! The server's own WebSocket framing (RFC 6455), from the socket: frames split across
//! writes, fragmented messages with control frames between their parts, and the frames a
//! server must refuse, each answered with its close code.
//!
//! A tokio-tungstenite client makes the upgrade and reads the welcome; then the test writes
//! and reads raw bytes on its TCP stream.

use crate::common::{Client, TestServer, WAIT};
use chorus_framing::{Opcode, parse_close_payload, parse_server_header};
use chorus_protocol::{ClientMessage, ServerMessage};
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

/// A client frame: masked unless `masked` is false.
fn frame(fin: bool, opcode: Opcode, payload: &[u8], masked: bool) -> Vec<u8> {
    chorus_framing::frame(fin, opcode, payload, masked.then_some(MASK))
}

/// A final, masked client frame with the reserved opcode 0x3.
fn reserved_opcode_frame(payload: &[u8]) -> Vec<u8> {
    let mut wire = frame(true, Opcode::Binary, payload, true);
    wire[0] = 0x80 | 0x3;
    wire
}

fn join(room: &str) -> Vec<u8> {
    ClientMessage::Join {
        room: room.into(),
        since: None,
    }
    .encode(usize::MAX)
    .unwrap()
}

/// The next frame from the server: (opcode, payload). Server frames are never masked
/// (`parse_server_header` checks it, with the other rules).
async fn read_frame(tcp: &mut TcpStream) -> (Opcode, Vec<u8>) {
    timeout(WAIT, async {
        let mut head = Vec::new();
        let header = loop {
            if let Some(header) = parse_server_header(&head, usize::MAX).expect("a server frame") {
                break header;
            }
            head.push(tcp.read_u8().await.expect("a frame header"));
        };
        assert!(header.fin, "server frames are final");
        let mut payload = vec![0; header.payload_len];
        tcp.read_exact(&mut payload).await.unwrap();
        (header.opcode, payload)
    })
    .await
    .expect("no frame from the server in time")
}

/// The server's close frame (pings and a `Disconnect` notice skipped), its code, then the
/// end of the stream.
async fn close_code(tcp: &mut TcpStream) -> u16 {
    close(tcp).await.0
}

/// The server's close frame (pings and a `Disconnect` notice skipped), its code and
/// reason, then the end of the stream.
async fn close(tcp: &mut TcpStream) -> (u16, String) {
    loop {
        let (opcode, payload) = read_frame(tcp).await;
        if opcode == Opcode::Ping {
            continue;
        }
        if opcode == Opcode::Binary {
            let notice = ServerMessage::decode(&payload, usize::MAX).unwrap();
            assert!(
                matches!(notice, ServerMessage::Disconnect { .. }),
                "{notice:?}"
            );
            continue;
        }
        assert_eq!(
            opcode,
            Opcode::Close,
            "expected a close frame, got {opcode:?}"
        );
        let mut rest = Vec::new();
        timeout(WAIT, tcp.read_to_end(&mut rest))
            .await
            .expect("the server did not end the stream after its close frame")
            .expect("read");
        let (code, reason) = parse_close_payload(&payload)
            .expect("a close payload")
            .expect("a close code");
        let reason = String::from_utf8(reason.to_vec()).expect("a UTF-8 close reason");
        return (code, reason);
    }
}

/// The next protocol message, skipping pings.
async fn read_message(tcp: &mut TcpStream) -> ServerMessage {
    loop {
        let (opcode, payload) = read_frame(tcp).await;
        if opcode == Opcode::Binary {
            return ServerMessage::decode(&payload, usize::MAX).unwrap();
        }
        assert_eq!(opcode, Opcode::Ping, "unexpected opcode {opcode:?}");
    }
}

#[tokio::test]
async fn a_request_written_one_byte_at_a_time_is_answered() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let tcp = tcp(&mut alice);
    for byte in frame(true, Opcode::Binary, &join("lobby"), true) {
        tcp.write_all(&[byte]).await.unwrap();
        tcp.flush().await.unwrap();
    }
    let answer = read_message(tcp).await;
    assert!(
        matches!(&answer, ServerMessage::Joined { room, .. } if room == "lobby"),
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_fragmented_request_is_one_request_and_a_ping_between_its_parts_is_answered() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let tcp = tcp(&mut alice);
    let request = join("lobby");
    let (first, second) = request.split_at(request.len() / 2);
    let mut bytes = frame(false, Opcode::Binary, first, true);
    bytes.extend(frame(true, Opcode::Ping, b"between", true));
    bytes.extend(frame(true, Opcode::Continuation, second, true));
    tcp.write_all(&bytes).await.unwrap();

    let (opcode, payload) = read_frame(tcp).await;
    assert_eq!(
        (opcode, payload.as_slice()),
        (Opcode::Pong, &b"between"[..])
    );
    let answer = read_message(tcp).await;
    assert!(
        matches!(&answer, ServerMessage::Joined { room, .. } if room == "lobby"),
        "{answer:?}"
    );
}

#[tokio::test]
async fn an_unmasked_frame_is_closed_with_1002() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let tcp = tcp(&mut alice);
    tcp.write_all(&frame(true, Opcode::Binary, &join("lobby"), false))
        .await
        .unwrap();
    assert_eq!(close_code(tcp).await, 1002);
}

#[tokio::test]
async fn an_unknown_opcode_and_a_stray_continuation_are_closed_with_1002() {
    let server = TestServer::start().await;
    for bytes in [
        reserved_opcode_frame(b"reserved"),
        frame(true, Opcode::Continuation, b"no start", true),
        // A control frame may not be fragmented.
        frame(false, Opcode::Ping, b"split", true),
    ] {
        let mut alice = server.connect("alice").await;
        let tcp = tcp(&mut alice);
        tcp.write_all(&bytes).await.unwrap();
        assert_eq!(close_code(tcp).await, 1002, "for {bytes:02x?}");
    }
}

#[tokio::test]
async fn protocol_errors_are_disconnect_reasons_counted_and_named_in_the_close() {
    let server = TestServer::start().await;
    let cases = [
        (
            frame(true, Opcode::Binary, &join("lobby"), false),
            1002,
            "protocol_error: unmasked_frame",
        ),
        (
            reserved_opcode_frame(b"reserved"),
            1002,
            "protocol_error: unknown_opcode",
        ),
        (
            frame(false, Opcode::Ping, b"split", true),
            1002,
            "protocol_error: fragmented_control_frame",
        ),
        (
            frame(true, Opcode::Text, &[b'o', 0xff], true),
            1007,
            "invalid_data: invalid_utf8_text",
        ),
    ];
    for (bytes, code, reason) in cases {
        let mut alice = server.connect("alice").await;
        let tcp = tcp(&mut alice);
        tcp.write_all(&bytes).await.unwrap();
        assert_eq!(
            close(tcp).await,
            (code, reason.to_owned()),
            "for {bytes:02x?}"
        );
    }
    for (reason, count) in [("protocol_error", 3.0), ("invalid_data", 1.0)] {
        let sample = format!(r#"chorus_disconnects_total{{reason="{reason}"}}"#);
        assert_eq!(server.metric(&sample).await, count, "{sample}");
    }
}

#[tokio::test]
async fn a_frame_declaring_more_than_the_limit_is_closed_with_1009_before_its_payload() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let tcp = tcp(&mut alice);
    // Only the header: 2^40 bytes announced. The server must not wait for (or allocate)
    // the payload.
    let mut header = [0; chorus_framing::MAX_HEADER_LEN];
    let len = chorus_framing::write_header(&mut header, true, Opcode::Binary, 1 << 40, Some(MASK));
    let header = &header[..len];
    tcp.write_all(header).await.unwrap();
    assert_eq!(close_code(tcp).await, 1009);
}

#[tokio::test]
async fn a_text_frame_is_an_error_and_the_connection_stays_usable() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let tcp = tcp(&mut alice);
    tcp.write_all(&frame(true, Opcode::Text, b"hello", true))
        .await
        .unwrap();
    let answer = read_message(tcp).await;
    assert!(
        matches!(answer, ServerMessage::Error { .. }),
        "expected an error for a text frame, got {answer:?}"
    );
    tcp.write_all(&frame(true, Opcode::Binary, &join("lobby"), true))
        .await
        .unwrap();
    let answer = read_message(tcp).await;
    assert!(
        matches!(&answer, ServerMessage::Joined { room, .. } if room == "lobby"),
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_close_frame_is_answered_with_a_close_frame() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let tcp = tcp(&mut alice);
    tcp.write_all(&frame(true, Opcode::Close, &1000u16.to_be_bytes(), true))
        .await
        .unwrap();
    assert_eq!(close_code(tcp).await, 1000);
}
