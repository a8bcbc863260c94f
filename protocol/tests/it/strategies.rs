//! Strategies for arbitrary messages, shared by the property tests.

use chorus_protocol::{
    Body, ClientMessage, HistoryMessage, Limits, Position, Reconnect, Recovery, ServerMessage,
};
use proptest::prelude::*;

/// Names are not validated by the codec, so any UTF-8 goes; keep them short.
pub(crate) fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z:]{0,12}",
        any::<String>().prop_map(|s| s.chars().take(24).collect()),
    ]
}

/// Numbers at the varint boundaries are the interesting ones.
pub(crate) fn number() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(127),
        Just(128),
        Just(u64::MAX),
        any::<u64>(),
        0..300u64,
    ]
}

pub(crate) fn position() -> impl Strategy<Value = Position> {
    (number(), number()).prop_map(|(epoch, seq)| Position { epoch, seq })
}

pub(crate) fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        any::<String>().prop_map(Body::Text),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Body::Binary),
    ]
}

pub(crate) fn client_message() -> impl Strategy<Value = ClientMessage> {
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
        (
            number(),
            name(),
            proptest::option::of(position()),
            any::<u32>()
        )
            .prop_map(|(request, room, before, limit)| ClientMessage::History {
                request,
                room,
                before,
                limit
            }),
    ]
}

pub(crate) fn history_message() -> impl Strategy<Value = HistoryMessage> {
    (number(), number(), name(), number(), body()).prop_map(|(seq, id, sender, ts, body)| {
        HistoryMessage {
            seq,
            id,
            sender,
            ts,
            body,
        }
    })
}

pub(crate) fn limits() -> impl Strategy<Value = Limits> {
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

pub(crate) fn recovery() -> impl Strategy<Value = Recovery> {
    prop_oneof![
        Just(Recovery::NotRequested),
        Just(Recovery::Recovered),
        Just(Recovery::Missed),
    ]
}

pub(crate) fn reconnect() -> impl Strategy<Value = Reconnect> {
    prop_oneof![
        any::<u32>().prop_map(Reconnect::RetryAfter),
        Just(Reconnect::DoNotRetry),
    ]
}

pub(crate) fn server_message() -> impl Strategy<Value = ServerMessage> {
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
        (
            number(),
            name(),
            position(),
            proptest::collection::vec(history_message(), 0..4),
            any::<bool>()
        )
            .prop_map(|(request, room, position, messages, more)| {
                ServerMessage::History {
                    request,
                    room,
                    position,
                    messages,
                    more,
                }
            }),
    ]
}
