//! The Chorus protocol (`chorus-protocol`): one postcard value per binary frame.
//!
//! The hot messages are encoded and read by hand, byte for byte what postcard does (pinned
//! by the tests against `chorus-protocol`'s own codec): a publish is written straight into
//! the outbox, and a [`ServerMessage::Message`] is read in place down to its body's stamp.
//! Decoding with the crate would allocate three times per message (room, sender, body).
//! Rare messages (join, errors, goodbyes) go through the crate.
//!
//! Echo: Chorus has no echo message, and its `Ping` carries no body. The comparable
//! round trip is a publish in a room of one (the connection's own), timed until the
//! connection receives its own message back. It does what a peer's echo does and more:
//! a sequence number, the history log, and an ack frame besides the message.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chorus_protocol::{
    AUTH_SUBPROTOCOL_PREFIX, ClientMessage, DEFAULT_MAX_FRAME, SUBPROTOCOL, ServerMessage,
};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

use super::{Incoming, Protocol, Stamp};
use crate::Result;
use crate::ws::{Opcode, Outbox, Upgrade};

/// `ClientMessage` variant indices (the enum's declaration order).
const CLIENT_JOIN: u8 = 0;
const CLIENT_PUBLISH: u8 = 2;
/// `ServerMessage` variant indices.
const WELCOME: u8 = 0;
const JOINED: u8 = 1;
const MESSAGE: u8 = 3;
const PUBLISH_ACK: u8 = 4;
const ERROR: u8 = 9;
const DISCONNECT: u8 = 10;
/// `Body` variant indices.
const BODY_TEXT: u32 = 0;
const BODY_BINARY: u32 = 1;

/// Chorus, with tokens signed by the servers' secret.
#[derive(Debug)]
pub struct Chorus {
    key: EncodingKey,
}

impl Chorus {
    /// Sign tokens with `secret` (the servers' `--token-secret`).
    pub fn new(secret: &str) -> Chorus {
        Chorus {
            key: EncodingKey::from_secret(secret.as_bytes()),
        }
    }

    /// A token for `user` to every room (`*`) for `ttl`: the claims of the server's
    /// `auth::Claims`, signed HS256 as `chorus-server token` signs them. Signed here with
    /// `jsonwebtoken` rather than by the server's `Auth`, so the load generator does not
    /// link the server.
    fn token(&self, user: &str, ttl: Duration) -> Result<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let claims = json!({
            "sub": user,
            "exp": now + ttl.as_secs(),
            "iat": now,
            "rooms": ["*"],
        });
        Ok(jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &self.key,
        )?)
    }
}

impl Protocol for Chorus {
    fn name(&self) -> &'static str {
        "chorus"
    }

    fn upgrade(&self, url_path: &str, user: &str) -> Result<Upgrade> {
        // Every room, for a day: storms and long runs must not meet an expiry.
        let token = self.token(user, Duration::from_secs(24 * 3600))?;
        Ok(Upgrade {
            path: if url_path.is_empty() { "/ws" } else { url_path }.to_owned(),
            headers: vec![(
                "Sec-WebSocket-Protocol",
                format!("{SUBPROTOCOL}, {AUTH_SUBPROTOCOL_PREFIX}{token}"),
            )],
        })
    }

    fn greets(&self) -> bool {
        true
    }

    #[inline]
    fn receive(&self, payload: &[u8], text: bool, _out: &mut Outbox) -> Incoming {
        if text {
            return Incoming::Other;
        }
        match payload.first() {
            Some(&WELCOME) => Incoming::Ready,
            Some(&JOINED) => Incoming::Joined,
            Some(&MESSAGE) => {
                read_message_stamp(payload).map_or(Incoming::Other, Incoming::Message)
            }
            Some(&PUBLISH_ACK) => Incoming::Ack,
            Some(&ERROR) => match ServerMessage::decode(payload, usize::MAX) {
                Ok(ServerMessage::Error { code, message, .. }) => {
                    Incoming::Refused(format!("{code} {message}"))
                }
                _ => Incoming::Refused("undecodable error".into()),
            },
            Some(&DISCONNECT) => match ServerMessage::decode(payload, usize::MAX) {
                Ok(ServerMessage::Disconnect { code, reason, .. }) => {
                    Incoming::Closing(format!("{code} {reason}"))
                }
                _ => Incoming::Closing("undecodable disconnect".into()),
            },
            _ => Incoming::Other,
        }
    }

    fn join(&self, room: &str, out: &mut Outbox) {
        out.queue_with(Opcode::Binary, |buf| {
            // `Join { room, since: None }`.
            buf.push(CLIENT_JOIN);
            push_str(buf, room);
            buf.push(0);
        });
    }

    fn joins_acknowledged(&self) -> bool {
        true
    }

    #[inline]
    fn publish(&self, room: &str, id: u64, stamp: Stamp, body: usize, out: &mut Outbox) {
        out.queue_with(Opcode::Binary, |buf| {
            write_publish(buf, room, id, stamp, body)
        });
    }

    fn echo(&self, room: &str, id: u64, stamp: Stamp, body: usize, out: &mut Outbox) {
        self.publish(room, id, stamp, body, out);
    }

    fn acks_publishes(&self) -> bool {
        true
    }

    fn delivers_to_sender(&self) -> bool {
        true
    }

    fn broadcast_example(&self, room: &str, stamp: Stamp, body: usize) -> (bool, Vec<u8>) {
        let mut bytes = Vec::new();
        stamp.write_binary(&mut bytes, body);
        let message = ServerMessage::Message {
            room: room.into(),
            seq: 1 << 20,
            id: 1 << 14,
            sender: format!("bench-{}", stamp.sender),
            ts: 1_800_000_000_000,
            body: chorus_protocol::Body::Binary(bytes),
        };
        (false, message.encode(usize::MAX).expect("encodable"))
    }
}

/// Append `Publish { room, id, body: Body::Binary(stamp + padding) }` as postcard does.
fn write_publish(buf: &mut Vec<u8>, room: &str, id: u64, stamp: Stamp, body: usize) {
    let body = body.max(Stamp::BINARY_LEN);
    buf.push(CLIENT_PUBLISH);
    push_str(buf, room);
    push_varint(buf, id);
    push_varint(buf, u64::from(BODY_BINARY));
    push_varint(buf, body as u64);
    stamp.write_binary(buf, body);
}

/// The stamp in a `ServerMessage::Message` frame's body, read in place.
fn read_message_stamp(frame: &[u8]) -> Option<Stamp> {
    let mut r = Cursor(frame);
    if r.varint()? != u64::from(MESSAGE) {
        return None;
    }
    r.bytes()?; // room
    r.varint()?; // seq
    r.varint()?; // id
    r.bytes()?; // sender
    r.varint()?; // ts
    let variant = r.varint()?;
    let body = r.bytes()?;
    match u32::try_from(variant).ok()? {
        BODY_BINARY => Stamp::read_binary(body),
        BODY_TEXT => Stamp::read_text(body),
        _ => None,
    }
}

fn push_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push(value as u8 | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

fn push_str(buf: &mut Vec<u8>, text: &str) {
    push_varint(buf, text.len() as u64);
    buf.extend_from_slice(text.as_bytes());
}

/// Reads postcard's varints and length-prefixed byte strings.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for (i, byte) in self.0.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7F) << (7 * i);
            if byte & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return Some(value);
            }
        }
        None
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        let bytes = self.0.get(..len)?;
        self.0 = &self.0[len..];
        Some(bytes)
    }
}

/// Encode a client message with the crate's codec (for tests and rare messages).
pub fn encode(message: &ClientMessage) -> Vec<u8> {
    message
        .encode(DEFAULT_MAX_FRAME)
        .expect("benchmark messages fit a frame")
}

#[cfg(test)]
mod tests {
    use chorus_protocol::{Body, Limits, Position, Recovery};

    use super::*;

    const STAMP: Stamp = Stamp {
        sent_ns: 123_456_789_012,
        sender: 77,
    };

    #[test]
    fn publishes_are_byte_for_byte_what_the_codec_writes() {
        for (room, id, len) in [
            ("r", 0, 12),
            ("bench:fanout", 300, 32),
            ("x".repeat(200).as_str(), u64::MAX, 1024),
        ] {
            let mut ours = Vec::new();
            write_publish(&mut ours, room, id, STAMP, len);
            let mut body = Vec::new();
            STAMP.write_binary(&mut body, len);
            let theirs = encode(&ClientMessage::Publish {
                room: room.into(),
                id,
                body: Body::Binary(body),
            });
            assert_eq!(ours, theirs, "{room} {id} {len}");
        }
    }

    #[test]
    fn tokens_carry_the_servers_claims_signed_with_the_secret() {
        let token = Chorus::new("0123456789abcdef")
            .token("bench-7", Duration::from_secs(3600))
            .unwrap();
        let key = jsonwebtoken::DecodingKey::from_secret(b"0123456789abcdef");
        let validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        let claims = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation)
            .unwrap()
            .claims;
        assert_eq!(claims["sub"], "bench-7");
        assert_eq!(claims["rooms"], serde_json::json!(["*"]));
        let (exp, iat) = (
            claims["exp"].as_u64().unwrap(),
            claims["iat"].as_u64().unwrap(),
        );
        assert_eq!(exp - iat, 3600);
        let wrong = jsonwebtoken::DecodingKey::from_secret(b"another secret");
        assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &wrong, &validation).is_err());
    }

    #[test]
    fn joins_are_what_the_codec_writes() {
        let mut out = Outbox::default();
        Chorus::new("0123456789abcdef").join("bench:r", &mut out);
        let expected = encode(&ClientMessage::Join {
            room: "bench:r".into(),
            since: None,
        });
        let (_, payload) = crate::ws::decode_client_frames(out.bytes()).remove(0);
        assert_eq!(payload, expected);
    }

    #[test]
    fn server_messages_are_classified() {
        let chorus = Chorus::new("0123456789abcdef");
        let mut out = Outbox::default();
        let mut classify = |message: ServerMessage| {
            chorus.receive(&message.encode(usize::MAX).unwrap(), false, &mut out)
        };
        let mut body = Vec::new();
        STAMP.write_binary(&mut body, 1024);
        assert_eq!(
            classify(ServerMessage::Message {
                room: "bench:r".into(),
                seq: 1 << 40,
                id: 5,
                sender: "bench-1".into(),
                ts: 1_700_000_000_000,
                body: Body::Binary(body),
            }),
            Incoming::Message(STAMP)
        );
        let mut text = Vec::new();
        STAMP.write_text(&mut text, 32);
        assert_eq!(
            classify(ServerMessage::Message {
                room: "r".into(),
                seq: 1,
                id: 1,
                sender: "s".into(),
                ts: 1,
                body: Body::Text(String::from_utf8(text).unwrap()),
            }),
            Incoming::Message(STAMP)
        );
        assert_eq!(
            classify(ServerMessage::Message {
                room: "r".into(),
                seq: 1,
                id: 1,
                sender: "s".into(),
                ts: 1,
                body: Body::Text("hi".into()),
            }),
            Incoming::Other
        );
        assert_eq!(
            classify(ServerMessage::PublishAck {
                room: "r".into(),
                id: 1,
                seq: 1
            }),
            Incoming::Ack
        );
        assert_eq!(
            classify(ServerMessage::Joined {
                room: "r".into(),
                position: Position::default(),
                members: vec![],
                recovery: Recovery::NotRequested,
            }),
            Incoming::Joined
        );
        assert_eq!(
            classify(ServerMessage::Welcome {
                session: "s".into(),
                user: "u".into(),
                protocol: 1,
                heartbeat_ms: 1,
                heartbeat_timeout_ms: 1,
                limits: Limits {
                    max_frame: 1,
                    max_body: 1,
                    max_rooms: 1,
                    publish_per_second: 1,
                    publish_burst: 1,
                    typing_throttle_ms: 1,
                    typing_ttl_ms: 1,
                },
            }),
            Incoming::Ready
        );
        assert_eq!(
            classify(ServerMessage::Error {
                code: 106,
                message: "rate limited".into(),
                id: Some(1),
                room: None,
            }),
            Incoming::Refused("106 rate limited".into())
        );
        assert_eq!(classify(ServerMessage::Pong { nonce: 1 }), Incoming::Other);
        // Truncated messages are not messages.
        assert_eq!(
            chorus.receive(&[MESSAGE, 5, b'a'], false, &mut out),
            Incoming::Other
        );
    }
}
