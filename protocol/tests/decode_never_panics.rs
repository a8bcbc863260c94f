//! Decoding is total: arbitrary bytes, and valid frames with one byte changed or cut short,
//! decode to `Ok` or `Err` and never panic. Arbitrary valid messages round-trip.
//!
//! A server decodes whatever a peer sends, so a panic here would be a remote crash.

use chorus_protocol::{
    Body, ClientMessage, DEFAULT_MAX_FRAME, Limits, Position, Reconnect, Recovery, ServerMessage,
};
use proptest::prelude::*;

/// Enough cases to explore every variant and tag, few enough to finish in seconds.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 2000,
        ..ProptestConfig::default()
    }
}

/// Names are not validated by the codec, so any UTF-8 goes; keep them short.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z:]{0,12}",
        any::<String>().prop_map(|s| s.chars().take(24).collect()),
    ]
}

/// Numbers at the varint boundaries are the interesting ones.
fn number() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(127),
        Just(128),
        Just(u64::MAX),
        any::<u64>(),
        0..300u64,
    ]
}

fn position() -> impl Strategy<Value = Position> {
    (number(), number()).prop_map(|(epoch, seq)| Position { epoch, seq })
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        any::<String>().prop_map(Body::Text),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Body::Binary),
    ]
}

fn client_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        (name(), proptest::option::of(position()))
            .prop_map(|(room, since)| ClientMessage::Join { room, since }),
        name().prop_map(|room| ClientMessage::Leave { room }),
        (name(), number(), body()).prop_map(|(room, id, body)| ClientMessage::Publish {
            room,
            id,
            body
        }),
        name().prop_map(|room| ClientMessage::TypingStarted { room }),
        name().prop_map(|room| ClientMessage::TypingStopped { room }),
        number().prop_map(|nonce| ClientMessage::Ping { nonce }),
    ]
}

fn limits() -> impl Strategy<Value = Limits> {
    any::<[u32; 7]>().prop_map(|n| Limits {
        max_frame: n[0],
        max_body: n[1],
        max_rooms: n[2],
        publish_per_second: n[3],
        publish_burst: n[4],
        typing_throttle_ms: n[5],
        typing_ttl_ms: n[6],
    })
}

fn recovery() -> impl Strategy<Value = Recovery> {
    prop_oneof![
        Just(Recovery::NotRequested),
        Just(Recovery::Recovered),
        Just(Recovery::Missed),
    ]
}

fn reconnect() -> impl Strategy<Value = Reconnect> {
    prop_oneof![
        any::<u32>().prop_map(Reconnect::RetryAfter),
        Just(Reconnect::DoNotRetry),
    ]
}

fn server_message() -> impl Strategy<Value = ServerMessage> {
    prop_oneof![
        (
            name(),
            name(),
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            limits()
        )
            .prop_map(
                |(session, user, protocol, heartbeat_ms, heartbeat_timeout_ms, limits)| {
                    ServerMessage::Welcome {
                        session,
                        user,
                        protocol,
                        heartbeat_ms,
                        heartbeat_timeout_ms,
                        limits,
                    }
                }
            ),
        (
            name(),
            position(),
            proptest::collection::vec(name(), 0..5),
            recovery()
        )
            .prop_map(
                |(room, position, members, recovery)| ServerMessage::Joined {
                    room,
                    position,
                    members,
                    recovery,
                }
            ),
        name().prop_map(|room| ServerMessage::Left { room }),
        (name(), number(), number(), name(), number(), body()).prop_map(
            |(room, seq, id, sender, ts, body)| ServerMessage::Message {
                room,
                seq,
                id,
                sender,
                ts,
                body,
            }
        ),
        (name(), number(), number()).prop_map(|(room, id, seq)| ServerMessage::PublishAck {
            room,
            id,
            seq
        }),
        (name(), name()).prop_map(|(room, user)| ServerMessage::MemberJoined { room, user }),
        (name(), name()).prop_map(|(room, user)| ServerMessage::MemberLeft { room, user }),
        (name(), name(), any::<bool>()).prop_map(|(room, user, typing)| ServerMessage::Typing {
            room,
            user,
            typing
        }),
        number().prop_map(|nonce| ServerMessage::Pong { nonce }),
        (
            any::<u16>(),
            name(),
            proptest::option::of(number()),
            proptest::option::of(name())
        )
            .prop_map(|(code, message, id, room)| ServerMessage::Error {
                code,
                message,
                id,
                room,
            }),
        (any::<u16>(), name(), reconnect()).prop_map(|(code, reason, reconnect)| {
            ServerMessage::Disconnect {
                code,
                reason,
                reconnect,
            }
        }),
    ]
}

/// Decode `frame` both ways. Any panic fails the property; the results do not matter.
fn decode_both(frame: &[u8]) {
    let _ = ClientMessage::decode(frame, DEFAULT_MAX_FRAME);
    let _ = ServerMessage::decode(frame, DEFAULT_MAX_FRAME);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..2048)) {
        decode_both(&frame);
    }

    #[test]
    fn arbitrary_bytes_with_small_limits_never_panic(
        frame in proptest::collection::vec(any::<u8>(), 0..64),
        max_frame in 0usize..64,
    ) {
        let _ = ClientMessage::decode(&frame, max_frame);
        let _ = ServerMessage::decode(&frame, max_frame);
    }

    #[test]
    fn valid_client_messages_round_trip(msg in client_message()) {
        let frame = msg.encode(usize::MAX).unwrap();
        prop_assert_eq!(ClientMessage::decode(&frame, usize::MAX), Ok(msg));
    }

    #[test]
    fn valid_server_messages_round_trip(msg in server_message()) {
        let frame = msg.encode(usize::MAX).unwrap();
        prop_assert_eq!(ServerMessage::decode(&frame, usize::MAX), Ok(msg));
    }

    #[test]
    fn one_changed_byte_never_panics(
        msg in client_message(),
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut frame = msg.encode(usize::MAX).unwrap();
        let at = index.index(frame.len());
        frame[at] = byte;
        decode_both(&frame);
    }

    #[test]
    fn one_changed_byte_of_a_server_message_never_panics(
        msg in server_message(),
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut frame = msg.encode(usize::MAX).unwrap();
        let at = index.index(frame.len());
        frame[at] = byte;
        decode_both(&frame);
    }

    /// Postcard is a prefix code: a frame cut short is never mistaken for a whole message.
    #[test]
    fn truncated_frames_are_errors(msg in client_message(), index in any::<prop::sample::Index>()) {
        let frame = msg.encode(usize::MAX).unwrap();
        let cut = index.index(frame.len());
        prop_assert!(ClientMessage::decode(&frame[..cut], usize::MAX).is_err());
    }

    /// See [`truncated_frames_are_errors`].
    #[test]
    fn truncated_server_frames_are_errors(
        msg in server_message(),
        index in any::<prop::sample::Index>(),
    ) {
        let frame = msg.encode(usize::MAX).unwrap();
        let cut = index.index(frame.len());
        prop_assert!(ServerMessage::decode(&frame[..cut], usize::MAX).is_err());
    }
}
