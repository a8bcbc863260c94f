//! Every message encodes and decodes back to an equal value, and the codec enforces the
//! frame limit and rejects bytes after the message.

use chorus_protocol::{
    Body, ClientMessage, CodecError, DEFAULT_MAX_FRAME, HistoryMessage, Limits, Position,
    Reconnect, Recovery, ServerMessage,
};

fn bodies() -> Vec<Body> {
    vec![
        Body::Text(String::new()),
        Body::Text("hello, Zoë 李雷 👋".into()),
        Body::Binary(Vec::new()),
        Body::Binary((0..=255).collect()),
    ]
}

fn positions() -> Vec<Position> {
    vec![
        Position::default(),
        Position { epoch: 1, seq: 1 },
        Position {
            epoch: u64::MAX,
            seq: u64::MAX,
        },
    ]
}

fn limits() -> Limits {
    Limits {
        max_frame: 65_536,
        max_body: 64_512,
        max_rooms: 100,
        publish_per_second: 20,
        publish_burst: 40,
        typing_throttle_ms: 2_000,
        typing_ttl_ms: 6_000,
    }
}

/// One value per variant and per interesting field value (each `Body` kind, `Some`/`None`).
fn client_messages() -> Vec<ClientMessage> {
    let mut all = vec![ClientMessage::Join {
        room: "lobby".into(),
        since: None,
    }];
    for since in positions() {
        all.push(ClientMessage::Join {
            room: "news:tech".into(),
            since: Some(since),
        });
    }
    all.push(ClientMessage::Leave {
        room: "lobby".into(),
    });
    for (id, body) in [0, 1, u64::MAX, 300].into_iter().zip(bodies()) {
        all.push(ClientMessage::Publish {
            room: "lobby".into(),
            id,
            body,
        });
    }
    all.push(ClientMessage::TypingStarted {
        room: "lobby".into(),
    });
    all.push(ClientMessage::TypingStopped {
        room: "lobby".into(),
    });
    for nonce in [0, 127, 128, u64::MAX] {
        all.push(ClientMessage::Ping { nonce });
    }
    all.push(ClientMessage::History {
        request: 1,
        room: "lobby".into(),
        before: None,
        limit: 0,
    });
    for before in positions() {
        all.push(ClientMessage::History {
            request: u64::MAX,
            room: "news:tech".into(),
            before: Some(before),
            limit: u32::MAX,
        });
    }
    all
}

/// One value per variant and per interesting field value (each `Body` kind, each
/// `Recovery` and `Reconnect` variant, `Some`/`None`).
fn server_messages() -> Vec<ServerMessage> {
    let mut all = vec![ServerMessage::Welcome {
        session: "s-0001".into(),
        user: "alice".into(),
        protocol: chorus_protocol::PROTOCOL_VERSION,
        heartbeat_ms: 25_000,
        heartbeat_timeout_ms: 60_000,
        limits: limits(),
    }];
    for (recovery, members) in [
        (Recovery::NotRequested, vec![]),
        (Recovery::Recovered, vec!["alice".to_string()]),
        (
            Recovery::Missed,
            vec!["alice".to_string(), "Zoë".to_string()],
        ),
    ] {
        for position in positions() {
            all.push(ServerMessage::Joined {
                room: "lobby".into(),
                position,
                members: members.clone(),
                recovery,
            });
        }
    }
    all.push(ServerMessage::Left {
        room: "lobby".into(),
    });
    for body in bodies() {
        all.push(ServerMessage::Message {
            room: "lobby".into(),
            seq: 42,
            id: 7,
            sender: "bob".into(),
            ts: 1_700_000_000_000,
            body,
        });
    }
    all.push(ServerMessage::PublishAck {
        room: "lobby".into(),
        id: 7,
        seq: 42,
    });
    all.push(ServerMessage::MemberJoined {
        room: "lobby".into(),
        user: "bob".into(),
    });
    all.push(ServerMessage::MemberLeft {
        room: "lobby".into(),
        user: "bob".into(),
    });
    for typing in [true, false] {
        all.push(ServerMessage::Typing {
            room: "lobby".into(),
            user: "bob".into(),
            typing,
        });
    }
    all.push(ServerMessage::Pong { nonce: u64::MAX });
    for (id, room) in [
        (None, None),
        (Some(7), None),
        (None, Some("lobby".to_string())),
        (Some(u64::MAX), Some("news:tech".to_string())),
    ] {
        all.push(ServerMessage::Error {
            code: 105,
            message: "not joined".into(),
            id,
            room,
        });
    }
    for reconnect in [
        Reconnect::RetryAfter(0),
        Reconnect::RetryAfter(u32::MAX),
        Reconnect::DoNotRetry,
    ] {
        all.push(ServerMessage::Disconnect {
            code: 1001,
            reason: "server shutdown".into(),
            reconnect,
        });
    }
    for (messages, more) in [
        (vec![], false),
        (
            bodies()
                .into_iter()
                .zip(40..)
                .map(|(body, seq)| HistoryMessage {
                    seq,
                    id: seq + 1000,
                    sender: "bob".into(),
                    ts: 1_700_000_000_000,
                    body,
                })
                .collect(),
            true,
        ),
    ] {
        all.push(ServerMessage::History {
            request: 3,
            room: "lobby".into(),
            position: Position { epoch: 2, seq: 50 },
            messages,
            more,
        });
    }
    all
}

#[test]
fn every_client_message_round_trips() {
    for msg in client_messages() {
        let frame = msg.encode(DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(ClientMessage::decode(&frame, DEFAULT_MAX_FRAME), Ok(msg));
    }
}

#[test]
fn every_server_message_round_trips() {
    for msg in server_messages() {
        let frame = msg.encode(DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(ServerMessage::decode(&frame, DEFAULT_MAX_FRAME), Ok(msg));
    }
}

#[test]
fn free_functions_match_the_methods() {
    for msg in client_messages() {
        let frame = chorus_protocol::encode(&msg, DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(frame, msg.encode(DEFAULT_MAX_FRAME).unwrap());
        let back: ClientMessage = chorus_protocol::decode(&frame, DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(back, msg);
    }
}

#[test]
fn decode_rejects_trailing_bytes() {
    let mut frame = ClientMessage::Ping { nonce: 1 }
        .encode(DEFAULT_MAX_FRAME)
        .unwrap();
    frame.extend_from_slice(&[0, 0, 0]);
    assert_eq!(
        ClientMessage::decode(&frame, DEFAULT_MAX_FRAME),
        Err(CodecError::TrailingBytes(3))
    );

    let mut frame = ServerMessage::Pong { nonce: 1 }
        .encode(DEFAULT_MAX_FRAME)
        .unwrap();
    frame.push(0);
    assert_eq!(
        ServerMessage::decode(&frame, DEFAULT_MAX_FRAME),
        Err(CodecError::TrailingBytes(1))
    );
}

#[test]
fn decode_rejects_frames_over_max_frame() {
    let frame = ClientMessage::Publish {
        room: "lobby".into(),
        id: 1,
        body: Body::Binary(vec![0; 100]),
    }
    .encode(DEFAULT_MAX_FRAME)
    .unwrap();
    let len = frame.len();
    // Exactly at the limit is fine; one byte under the frame's size is not.
    assert!(ClientMessage::decode(&frame, len).is_ok());
    assert_eq!(
        ClientMessage::decode(&frame, len - 1),
        Err(CodecError::TooLarge {
            size: len,
            max: len - 1
        })
    );
    // The size check comes first: an oversized frame is TooLarge even if it is garbage.
    let garbage = vec![0xff; DEFAULT_MAX_FRAME + 1];
    assert_eq!(
        ServerMessage::decode(&garbage, DEFAULT_MAX_FRAME),
        Err(CodecError::TooLarge {
            size: DEFAULT_MAX_FRAME + 1,
            max: DEFAULT_MAX_FRAME
        })
    );
}

#[test]
fn encode_rejects_values_over_max_frame() {
    let msg = ServerMessage::Message {
        room: "lobby".into(),
        seq: 1,
        id: 1,
        sender: "bob".into(),
        ts: 0,
        body: Body::Text("x".repeat(DEFAULT_MAX_FRAME)),
    };
    match msg.encode(DEFAULT_MAX_FRAME) {
        Err(CodecError::TooLarge { size, max }) => {
            assert!(size > DEFAULT_MAX_FRAME);
            assert_eq!(max, DEFAULT_MAX_FRAME);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }

    let frame = msg.encode(usize::MAX).unwrap();
    assert_eq!(
        msg.encode(frame.len() - 1),
        Err(CodecError::TooLarge {
            size: frame.len(),
            max: frame.len() - 1
        })
    );
    assert_eq!(msg.encode(frame.len()), Ok(frame));
}

#[test]
fn largest_allowed_body_fits_in_max_frame() {
    // FRAME_OVERHEAD promises that a body of max_body bytes always fits, even with long
    // room and user names and the largest numbers.
    let max_body = chorus_protocol::validate::max_body(DEFAULT_MAX_FRAME);
    assert_eq!(max_body, DEFAULT_MAX_FRAME - 1024);
    let msg = ServerMessage::Message {
        room: "r".repeat(chorus_protocol::validate::MAX_ROOM_LEN),
        seq: u64::MAX,
        id: u64::MAX,
        sender: "u".repeat(chorus_protocol::validate::MAX_USER_LEN),
        ts: u64::MAX,
        body: Body::Binary(vec![0xab; max_body]),
    };
    let frame = msg.encode(DEFAULT_MAX_FRAME).unwrap();
    assert_eq!(ServerMessage::decode(&frame, DEFAULT_MAX_FRAME), Ok(msg));
}
