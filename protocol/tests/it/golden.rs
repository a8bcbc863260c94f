//! Golden vectors: the exact bytes of one fixed sample of every message.
//!
//! Postcard is not self-describing, so the enum definitions in `src/message.rs` *are* the
//! wire format. Variants and fields are only ever appended, never reordered or removed.
//! **If this test fails, you changed the wire format**: an older peer would misread these
//! bytes. Undo the change, or append instead; only bump `PROTOCOL_VERSION` for a change an
//! older peer cannot decode, and then add new vectors rather than editing these.
//!
//! Reading the hex (spaces separate fields and are ignored): the first byte is the variant
//! index (a varint; the first variant is `00`); integers are varints (7 bits per byte, low
//! group first, high bit set on all but the last byte: 300 is `ac 02`); strings, byte
//! strings and lists are a varint length followed by the contents; `Option` is `00` for
//! `None` or `01` followed by the value; `bool` is `00` or `01`; structs are their fields
//! in order, with no header.
//!
//! The compact codec (feature `compact`) must match every vector too: it writes client
//! messages and reads server messages without serde, for the browser client.

use chorus_protocol::{
    Body, ClientMessage, DEFAULT_MAX_FRAME, HistoryMessage, Limits, Position, Reconnect, Recovery,
    ServerMessage,
};

/// Parse hex digits, ignoring white space.
fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(
        digits.len().is_multiple_of(2),
        "odd number of hex digits in {text:?}"
    );
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

fn client_vectors() -> Vec<(ClientMessage, &'static str)> {
    vec![
        (
            ClientMessage::Join {
                room: "lobby".into(),
                since: None,
            },
            // Join | "lobby" | None
            "00 05 6c6f626279 00",
        ),
        (
            ClientMessage::Join {
                room: "news:tech".into(),
                since: Some(Position {
                    epoch: 1_700_000_000,
                    seq: 300,
                }),
            },
            // Join | "news:tech" | Some | epoch 1_700_000_000 | seq 300
            "00 09 6e6577733a74656368 01 80e2cfaa06 ac02",
        ),
        (
            ClientMessage::Leave {
                room: "lobby".into(),
            },
            "01 05 6c6f626279",
        ),
        (
            ClientMessage::Publish {
                room: "lobby".into(),
                id: 7,
                body: Body::Text("hi".into()),
            },
            // Publish | "lobby" | id 7 | Text | "hi"
            "02 05 6c6f626279 07 00 02 6869",
        ),
        (
            ClientMessage::Publish {
                room: "lobby".into(),
                id: 128,
                body: Body::Binary(vec![0xde, 0xad, 0xbe, 0xef]),
            },
            // Publish | "lobby" | id 128 | Binary | 4 bytes
            "02 05 6c6f626279 8001 01 04 deadbeef",
        ),
        (
            ClientMessage::TypingStarted {
                room: "lobby".into(),
            },
            "03 05 6c6f626279",
        ),
        (
            ClientMessage::TypingStopped {
                room: "lobby".into(),
            },
            "04 05 6c6f626279",
        ),
        (ClientMessage::Ping { nonce: 1 }, "05 01"),
        (
            ClientMessage::History {
                request: 9,
                room: "lobby".into(),
                before: None,
                limit: 100,
            },
            // History | request 9 | "lobby" | None | limit 100
            "06 09 05 6c6f626279 00 64",
        ),
        (
            ClientMessage::History {
                request: 10,
                room: "lobby".into(),
                before: Some(Position { epoch: 2, seq: 40 }),
                limit: 50,
            },
            // History | request 10 | "lobby" | Some | epoch 2 | seq 40 | limit 50
            "06 0a 05 6c6f626279 01 02 28 32",
        ),
    ]
}

fn server_vectors() -> Vec<(ServerMessage, &'static str)> {
    vec![
        (
            ServerMessage::Welcome {
                session: "s1".into(),
                user: "alice".into(),
                protocol: 1,
                heartbeat_ms: 25_000,
                heartbeat_timeout_ms: 60_000,
                limits: Limits {
                    max_frame: 65_536,
                    max_body: 64_512,
                    max_rooms: 100,
                    publish_per_second: 20,
                    publish_burst: 40,
                    typing_throttle_ms: 2_000,
                    typing_ttl_ms: 6_000,
                },
            },
            // Welcome | "s1" | "alice" | protocol 1 | heartbeat 25_000 | timeout 60_000
            // | limits: 65_536 64_512 100 20 40 2_000 6_000
            "00 02 7331 05 616c696365 01 a8c301 e0d403 \
             808004 80f803 64 14 28 d00f f02e",
        ),
        (
            ServerMessage::Joined {
                room: "lobby".into(),
                position: Position { epoch: 1, seq: 0 },
                members: vec![],
                recovery: Recovery::NotRequested,
            },
            // Joined | "lobby" | epoch 1 | seq 0 | no members | NotRequested
            "01 05 6c6f626279 01 00 00 00",
        ),
        (
            ServerMessage::Joined {
                room: "lobby".into(),
                position: Position { epoch: 2, seq: 5 },
                members: vec!["alice".into(), "bob".into()],
                recovery: Recovery::Recovered,
            },
            // Joined | "lobby" | epoch 2 | seq 5 | 2 members "alice" "bob" | Recovered
            "01 05 6c6f626279 02 05 02 05616c696365 03626f62 01",
        ),
        (
            ServerMessage::Joined {
                room: "lobby".into(),
                position: Position { epoch: 3, seq: 9 },
                members: vec!["bob".into()],
                recovery: Recovery::Missed,
            },
            // Joined | "lobby" | epoch 3 | seq 9 | 1 member "bob" | Missed
            "01 05 6c6f626279 03 09 01 03626f62 02",
        ),
        (
            ServerMessage::Left {
                room: "lobby".into(),
            },
            "02 05 6c6f626279",
        ),
        (
            ServerMessage::Message {
                room: "lobby".into(),
                seq: 5,
                id: 7,
                sender: "bob".into(),
                ts: 1_700_000_000_000,
                body: Body::Text("hi".into()),
            },
            // Message | "lobby" | seq 5 | id 7 | "bob" | ts 1_700_000_000_000 | Text "hi"
            "03 05 6c6f626279 05 07 03 626f62 80d095ffbc31 00 02 6869",
        ),
        (
            ServerMessage::Message {
                room: "lobby".into(),
                seq: 6,
                id: 8,
                sender: "bob".into(),
                ts: 1_700_000_000_001,
                body: Body::Binary(vec![1, 2, 3]),
            },
            // Message | "lobby" | seq 6 | id 8 | "bob" | ts 1_700_000_000_001 | Binary 3 bytes
            "03 05 6c6f626279 06 08 03 626f62 81d095ffbc31 01 03 010203",
        ),
        (
            ServerMessage::PublishAck {
                room: "lobby".into(),
                id: 7,
                seq: 5,
            },
            "04 05 6c6f626279 07 05",
        ),
        (
            ServerMessage::MemberJoined {
                room: "lobby".into(),
                user: "bob".into(),
            },
            "05 05 6c6f626279 03 626f62",
        ),
        (
            ServerMessage::MemberLeft {
                room: "lobby".into(),
                user: "bob".into(),
            },
            "06 05 6c6f626279 03 626f62",
        ),
        (
            ServerMessage::Typing {
                room: "lobby".into(),
                user: "bob".into(),
                typing: true,
            },
            "07 05 6c6f626279 03 626f62 01",
        ),
        (
            ServerMessage::Typing {
                room: "lobby".into(),
                user: "bob".into(),
                typing: false,
            },
            "07 05 6c6f626279 03 626f62 00",
        ),
        (ServerMessage::Pong { nonce: 1 }, "08 01"),
        (
            ServerMessage::Error {
                code: 105,
                message: "not joined".into(),
                id: Some(7),
                room: Some("lobby".into()),
            },
            // Error | code 105 | "not joined" | Some 7 | Some "lobby"
            "09 69 0a 6e6f74206a6f696e6564 01 07 01 05 6c6f626279",
        ),
        (
            ServerMessage::Error {
                code: 100,
                message: "bad".into(),
                id: None,
                room: None,
            },
            // Error | code 100 | "bad" | None | None
            "09 64 03 626164 00 00",
        ),
        (
            ServerMessage::Disconnect {
                code: 4000,
                reason: "idle".into(),
                reconnect: Reconnect::RetryAfter(1000),
            },
            // Disconnect | code 4000 | "idle" | RetryAfter 1000
            "0a a01f 04 69646c65 00 e807",
        ),
        (
            ServerMessage::Disconnect {
                code: 4002,
                reason: "expired".into(),
                reconnect: Reconnect::DoNotRetry,
            },
            // Disconnect | code 4002 | "expired" | DoNotRetry
            "0a a21f 07 65787069726564 01",
        ),
        (
            ServerMessage::History {
                request: 9,
                room: "lobby".into(),
                position: Position { epoch: 2, seq: 41 },
                messages: vec![HistoryMessage {
                    seq: 40,
                    id: 7,
                    sender: "bob".into(),
                    ts: 1_700_000_000_000,
                    body: Body::Text("hi".into()),
                }],
                more: true,
            },
            // History | request 9 | "lobby" | epoch 2 | seq 41 | 1 message: seq 40 | id 7
            // | "bob" | ts 1_700_000_000_000 | Text "hi" | more
            "0b 09 05 6c6f626279 02 29 01 28 07 03 626f62 80d095ffbc31 00 02 6869 01",
        ),
    ]
}

#[test]
fn client_messages_match_golden_bytes() {
    for (sample, expected) in client_vectors() {
        let bytes = hex(expected);
        assert_eq!(
            sample.encode(DEFAULT_MAX_FRAME).unwrap(),
            bytes,
            "encoding of {sample:?} changed: the wire format changed"
        );
        assert_eq!(
            ClientMessage::decode(&bytes, DEFAULT_MAX_FRAME).unwrap(),
            sample,
            "decoding {expected:?} changed: the wire format changed"
        );
        assert_eq!(
            sample.encode_compact(DEFAULT_MAX_FRAME).unwrap(),
            bytes,
            "the compact encoding of {sample:?} differs (src/compact.rs)"
        );
    }
}

#[test]
fn server_messages_match_golden_bytes() {
    for (sample, expected) in server_vectors() {
        let bytes = hex(expected);
        assert_eq!(
            sample.encode(DEFAULT_MAX_FRAME).unwrap(),
            bytes,
            "encoding of {sample:?} changed: the wire format changed"
        );
        assert_eq!(
            ServerMessage::decode(&bytes, DEFAULT_MAX_FRAME).unwrap(),
            sample,
            "decoding {expected:?} changed: the wire format changed"
        );
        assert_eq!(
            ServerMessage::decode_compact(&bytes, DEFAULT_MAX_FRAME).unwrap(),
            sample,
            "the compact decoding of {expected:?} differs (src/compact.rs)"
        );
    }
}

/// Number of `ClientMessage` variants, and of `ServerMessage` variants.
const CLIENT_VARIANTS: u8 = 7;
const SERVER_VARIANTS: u8 = 12;

/// The variant index each message must have. The matches have no wildcard arm, so a new
/// variant does not compile until it is given the next index here; then raise the count
/// above and add a golden vector for it, or the test below fails.
fn client_index(msg: &ClientMessage) -> u8 {
    match msg {
        ClientMessage::Join { .. } => 0,
        ClientMessage::Leave { .. } => 1,
        ClientMessage::Publish { .. } => 2,
        ClientMessage::TypingStarted { .. } => 3,
        ClientMessage::TypingStopped { .. } => 4,
        ClientMessage::Ping { .. } => 5,
        ClientMessage::History { .. } => 6,
    }
}

/// See [`client_index`].
fn server_index(msg: &ServerMessage) -> u8 {
    match msg {
        ServerMessage::Welcome { .. } => 0,
        ServerMessage::Joined { .. } => 1,
        ServerMessage::Left { .. } => 2,
        ServerMessage::Message { .. } => 3,
        ServerMessage::PublishAck { .. } => 4,
        ServerMessage::MemberJoined { .. } => 5,
        ServerMessage::MemberLeft { .. } => 6,
        ServerMessage::Typing { .. } => 7,
        ServerMessage::Pong { .. } => 8,
        ServerMessage::Error { .. } => 9,
        ServerMessage::Disconnect { .. } => 10,
        ServerMessage::History { .. } => 11,
    }
}

#[test]
fn every_variant_has_a_golden_vector_starting_with_its_index() {
    let mut seen = Vec::new();
    for (sample, expected) in client_vectors() {
        assert_eq!(hex(expected)[0], client_index(&sample), "{sample:?}");
        seen.push(client_index(&sample));
    }
    seen.dedup();
    assert_eq!(
        seen,
        (0..CLIENT_VARIANTS).collect::<Vec<u8>>(),
        "a client variant has no vector"
    );

    let mut seen = Vec::new();
    for (sample, expected) in server_vectors() {
        assert_eq!(hex(expected)[0], server_index(&sample), "{sample:?}");
        seen.push(server_index(&sample));
    }
    seen.dedup();
    assert_eq!(
        seen,
        (0..SERVER_VARIANTS).collect::<Vec<u8>>(),
        "a server variant has no vector"
    );
}
