//! One representative value of every message kind, for the codec benchmarks.
//!
//! Only with the `bench-samples` feature. The native benchmark (`benches/codec.rs`) and the
//! one in headless Chromium (`bench/codec-wasm`) both measure these values, so their figures
//! can be set side by side. The values are sized like real traffic rather than like the
//! golden vectors: 64-byte bodies, a room of 20 members, a history page of 20 messages.
//!
//! A new variant does not compile here until it has a name in `client_kind` or
//! `server_kind`; give it a sample as well.

use alloc::vec;
use alloc::vec::Vec;

use crate::{
    Body, ClientMessage, DisconnectReason, ErrorCode, HistoryMessage, Limits, PROTOCOL_VERSION,
    Position, Reconnect, Recovery, ServerMessage,
};

/// A message to benchmark, with the name of its kind.
#[derive(Debug, Clone)]
pub struct Sample<T> {
    /// The kind, as `"ClientMessage::Publish"`: what the benchmarks report it as.
    pub name: &'static str,
    /// The value to encode and decode.
    pub message: T,
}

/// The room every sample is about.
const ROOM: &str = "team:platform";

/// A chat line of exactly 64 bytes: the body of a publish and of a message.
const BODY: &str = "Deploy is green on staging, promoting to production after lunch.";

/// A history epoch as the brokers draw them: random below 2^53.
const EPOCH: u64 = 6_182_319_544_817_121;

/// Publication time of the newest message, milliseconds since the Unix epoch.
const TS: u64 = 1_764_000_000_000;

/// The members of [`ROOM`].
const MEMBERS: [&str; 20] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "uma", "victor", "walter",
];

/// One sample of every [`ClientMessage`] variant, in variant order.
pub fn client_messages() -> Vec<Sample<ClientMessage>> {
    let messages = vec![
        ClientMessage::Join {
            room: ROOM.into(),
            since: Some(Position {
                epoch: EPOCH,
                seq: 1_480,
            }),
        },
        ClientMessage::Leave { room: ROOM.into() },
        ClientMessage::Publish {
            room: ROOM.into(),
            id: 9_301,
            body: Body::Text(BODY.into()),
        },
        ClientMessage::TypingStarted { room: ROOM.into() },
        ClientMessage::TypingStopped { room: ROOM.into() },
        ClientMessage::Ping { nonce: 73_015 },
        ClientMessage::History {
            request: 9_302,
            room: ROOM.into(),
            before: Some(Position {
                epoch: EPOCH,
                seq: 1_461,
            }),
            limit: 20,
        },
    ];
    messages
        .into_iter()
        .map(|message| Sample {
            name: client_kind(&message),
            message,
        })
        .collect()
}

/// One sample of every [`ServerMessage`] variant, in variant order.
pub fn server_messages() -> Vec<Sample<ServerMessage>> {
    let position = Position {
        epoch: EPOCH,
        seq: 1_500,
    };
    let messages = vec![
        ServerMessage::Welcome {
            session: "3f9c2a7be41d6058".into(),
            user: "alice".into(),
            protocol: PROTOCOL_VERSION,
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
        ServerMessage::Joined {
            room: ROOM.into(),
            position,
            members: MEMBERS.iter().map(|&m| m.into()).collect(),
            recovery: Recovery::Recovered,
        },
        ServerMessage::Left { room: ROOM.into() },
        ServerMessage::Message {
            room: ROOM.into(),
            seq: position.seq,
            id: 9_301,
            sender: "alice".into(),
            ts: TS,
            body: Body::Text(BODY.into()),
        },
        ServerMessage::PublishAck {
            room: ROOM.into(),
            id: 9_301,
            seq: position.seq,
        },
        ServerMessage::MemberJoined {
            room: ROOM.into(),
            user: "mallory".into(),
        },
        ServerMessage::MemberLeft {
            room: ROOM.into(),
            user: "mallory".into(),
        },
        ServerMessage::Typing {
            room: ROOM.into(),
            user: "bob".into(),
            typing: true,
        },
        ServerMessage::Pong { nonce: 73_015 },
        ServerMessage::Error {
            code: ErrorCode::RateLimited.as_u16(),
            message: "publish rate limit exceeded".into(),
            id: Some(9_301),
            room: Some(ROOM.into()),
        },
        ServerMessage::Disconnect {
            code: DisconnectReason::HeartbeatTimeout.close_code(),
            reason: DisconnectReason::HeartbeatTimeout.name().into(),
            reconnect: Reconnect::RetryAfter(1_000),
        },
        ServerMessage::History {
            request: 9_302,
            room: ROOM.into(),
            position,
            // The page the `ClientMessage::History` sample asks for.
            messages: history_page(1_460, 20),
            more: true,
        },
    ];
    messages
        .into_iter()
        .map(|message| Sample {
            name: server_kind(&message),
            message,
        })
        .collect()
}

/// `count` consecutive messages ending with sequence number `last`, a few seconds apart,
/// from the room's members in turn.
fn history_page(last: u64, count: u64) -> Vec<HistoryMessage> {
    (0..count)
        .map(|i| {
            let back = count - 1 - i;
            HistoryMessage {
                seq: last - back,
                id: 9_000 + i,
                sender: MEMBERS[i as usize % MEMBERS.len()].into(),
                ts: TS - back * 4_000,
                body: Body::Text(BODY.into()),
            }
        })
        .collect()
}

/// The name of a client message's kind. No wildcard arm, so a new variant must be named.
fn client_kind(message: &ClientMessage) -> &'static str {
    match message {
        ClientMessage::Join { .. } => "ClientMessage::Join",
        ClientMessage::Leave { .. } => "ClientMessage::Leave",
        ClientMessage::Publish { .. } => "ClientMessage::Publish",
        ClientMessage::TypingStarted { .. } => "ClientMessage::TypingStarted",
        ClientMessage::TypingStopped { .. } => "ClientMessage::TypingStopped",
        ClientMessage::Ping { .. } => "ClientMessage::Ping",
        ClientMessage::History { .. } => "ClientMessage::History",
    }
}

/// See [`client_kind`].
fn server_kind(message: &ServerMessage) -> &'static str {
    match message {
        ServerMessage::Welcome { .. } => "ServerMessage::Welcome",
        ServerMessage::Joined { .. } => "ServerMessage::Joined",
        ServerMessage::Left { .. } => "ServerMessage::Left",
        ServerMessage::Message { .. } => "ServerMessage::Message",
        ServerMessage::PublishAck { .. } => "ServerMessage::PublishAck",
        ServerMessage::MemberJoined { .. } => "ServerMessage::MemberJoined",
        ServerMessage::MemberLeft { .. } => "ServerMessage::MemberLeft",
        ServerMessage::Typing { .. } => "ServerMessage::Typing",
        ServerMessage::Pong { .. } => "ServerMessage::Pong",
        ServerMessage::Error { .. } => "ServerMessage::Error",
        ServerMessage::Disconnect { .. } => "ServerMessage::Disconnect",
        ServerMessage::History { .. } => "ServerMessage::History",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DEFAULT_MAX_FRAME;

    #[test]
    fn every_variant_has_one_sample() {
        let client: Vec<_> = client_messages().iter().map(|s| s.name).collect();
        let server: Vec<_> = server_messages().iter().map(|s| s.name).collect();
        // Variant counts as in tests/it/golden.rs; names are unique, so each appears once.
        for (names, variants) in [(client, 7), (server, 12)] {
            let mut unique = names.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(
                (names.len(), unique.len()),
                (variants, variants),
                "{names:?}"
            );
        }
    }

    #[test]
    fn samples_are_the_documented_size_and_round_trip() {
        assert_eq!(BODY.len(), 64);
        for sample in client_messages() {
            let frame = sample.message.encode(DEFAULT_MAX_FRAME).unwrap();
            let back = ClientMessage::decode(&frame, DEFAULT_MAX_FRAME).unwrap();
            assert_eq!(back, sample.message, "{}", sample.name);
        }
        for sample in server_messages() {
            let frame = sample.message.encode(DEFAULT_MAX_FRAME).unwrap();
            let back = ServerMessage::decode(&frame, DEFAULT_MAX_FRAME).unwrap();
            assert_eq!(back, sample.message, "{}", sample.name);
        }
    }
}
