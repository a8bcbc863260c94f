//! A hand-written postcard codec for the browser client's two directions: decoding
//! [`ServerMessage`] and encoding [`ClientMessage`] (feature `compact`).
//!
//! The serde-derived codec in [`crate::codec`] stays the definition of the wire format. This
//! one exists only for size: serde's visitors for twelve variants cost the npm package's
//! wasm several kilobytes, where these straight-line readers and writers cost a fraction.
//! It accepts and produces exactly the same bytes, and fails on the same inputs with the
//! same [`CodecError`] (even the same [`postcard::Error`] kind); `tests/it/compact_codec.rs`
//! holds it to that.
//!
//! The rules it follows are postcard 1.2's (`de/deserializer.rs`):
//! - integers are LEB128 varints of at most `ceil(bits / 7)` bytes, whose last byte may
//!   only carry the bits left over (`0..=3` for u16, `0..=15` for u32, `0..=1` for u64);
//!   overlong encodings within that length (`80 00` for 0) are accepted, as postcard does.
//! - lengths are `usize` varints: u32 rules on wasm32, u64 rules on 64-bit hosts.
//! - an enum's variant index is a u32 varint; an unknown index is serde's custom error.
//! - `Option` and `bool` are one byte, `0` or `1`; strings must be UTF-8.
//!
//! When the message enums change, change this file too: the tests then fail until it
//! matches again.

use alloc::string::String;
use alloc::vec::Vec;

use postcard::Error;

use crate::{
    Body, ClientMessage, CodecError, HistoryMessage, Limits, Position, Reconnect, Recovery,
    ServerMessage,
};

impl ServerMessage {
    /// Decode one frame of at most `max_frame` bytes, as [`ServerMessage::decode`] does, to
    /// the same value or the same error.
    pub fn decode_compact(frame: &[u8], max_frame: usize) -> Result<Self, CodecError> {
        if frame.len() > max_frame {
            return Err(CodecError::TooLarge {
                size: frame.len(),
                max: max_frame,
            });
        }
        let mut reader = Reader {
            rest: frame,
            error: None,
        };
        let message = reader.server_message();
        if let Some(error) = reader.error {
            return Err(CodecError::Malformed(error));
        }
        if !reader.rest.is_empty() {
            return Err(CodecError::TrailingBytes(reader.rest.len()));
        }
        Ok(message)
    }
}

impl ClientMessage {
    /// Encode into one frame of at most `max_frame` bytes, as [`ClientMessage::encode`] does:
    /// the same bytes, or the same error.
    pub fn encode_compact(&self, max_frame: usize) -> Result<Vec<u8>, CodecError> {
        let mut out = Writer(Vec::new());
        out.client_message(self);
        let bytes = out.0;
        if bytes.len() > max_frame {
            return Err(CodecError::TooLarge {
                size: bytes.len(),
                max: max_frame,
            });
        }
        Ok(bytes)
    }
}

/// Reads a frame front to back, keeping the first error.
///
/// Reads never fail: after an error they return empty values (and the bytes are dropped, so
/// every later read comes up empty too), and the caller checks `error` once at the end. A
/// `?` after every field would be the same logic in far more wasm: each one needs its own
/// path that drops the fields read before it.
struct Reader<'a> {
    /// The bytes not read yet.
    rest: &'a [u8],
    /// The first thing found wrong, which is what postcard reports.
    error: Option<Error>,
}

impl<'a> Reader<'a> {
    fn fail(&mut self, error: Error) {
        self.error.get_or_insert(error);
        self.rest = &[];
    }

    fn byte(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&first, rest)) => {
                self.rest = rest;
                first
            }
            None => {
                self.fail(Error::DeserializeUnexpectedEnd);
                0
            }
        }
    }

    fn take(&mut self, len: usize) -> &'a [u8] {
        match self.rest.split_at_checked(len) {
            Some((taken, rest)) => {
                self.rest = rest;
                taken
            }
            None => {
                self.fail(Error::DeserializeUnexpectedEnd);
                &[]
            }
        }
    }

    /// An unsigned varint of a `bits`-bit integer (16, 32 or 64), by postcard's rules: at
    /// most `ceil(bits / 7)` bytes, and a last byte no larger than the bits left over.
    fn varint(&mut self, bits: u32) -> u64 {
        let max_bytes = bits.div_ceil(7);
        let mut value = 0u64;
        for i in 0..max_bytes {
            let byte = self.byte();
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                if i == max_bytes - 1 && u64::from(byte) >> (bits % 7) != 0 {
                    break;
                }
                return value;
            }
        }
        self.fail(Error::DeserializeBadVarint);
        0
    }

    fn u16(&mut self) -> u16 {
        // The varint rules keep the value within 16 bits.
        self.varint(16) as u16
    }

    fn u32(&mut self) -> u32 {
        self.varint(32) as u32
    }

    fn u64(&mut self) -> u64 {
        self.varint(64)
    }

    /// A length: postcard reads a `usize`, so its varint rules follow the target's width.
    fn len(&mut self) -> usize {
        self.varint(usize::BITS) as usize
    }

    /// An enum's variant index, checked against the number of variants.
    fn variant(&mut self, count: u32) -> u32 {
        let index = self.u32();
        if index >= count {
            // What serde's derived visitor reports for an unknown variant.
            self.fail(Error::SerdeDeCustom);
        }
        index
    }

    /// A one-byte tag that must be `0` or `1` (`bool`, and `Option`'s None or Some).
    fn flag(&mut self, bad: Error) -> bool {
        match self.byte() {
            0 => false,
            1 => true,
            _ => {
                self.fail(bad);
                false
            }
        }
    }

    fn bool(&mut self) -> bool {
        self.flag(Error::DeserializeBadBool)
    }

    fn option<T>(&mut self, read: impl FnOnce(&mut Self) -> T) -> Option<T> {
        self.flag(Error::DeserializeBadOption).then(|| read(self))
    }

    fn bytes(&mut self) -> &'a [u8] {
        let len = self.len();
        self.take(len)
    }

    fn string(&mut self) -> String {
        let bytes = self.bytes();
        match core::str::from_utf8(bytes) {
            Ok(text) => text.into(),
            Err(_) => {
                self.fail(Error::DeserializeBadUtf8);
                String::new()
            }
        }
    }

    fn position(&mut self) -> Position {
        Position {
            epoch: self.u64(),
            seq: self.u64(),
        }
    }

    fn body(&mut self) -> Body {
        match self.variant(2) {
            0 => Body::Text(self.string()),
            _ => Body::Binary(self.bytes().into()),
        }
    }

    fn limits(&mut self) -> Limits {
        Limits {
            max_frame: self.u32(),
            max_body: self.u32(),
            max_rooms: self.u32(),
            publish_per_second: self.u32(),
            publish_burst: self.u32(),
            typing_throttle_ms: self.u32(),
            typing_ttl_ms: self.u32(),
        }
    }

    fn history_message(&mut self) -> HistoryMessage {
        HistoryMessage {
            seq: self.u64(),
            id: self.u64(),
            sender: self.string(),
            ts: self.u64(),
            body: self.body(),
        }
    }

    /// A sequence: a length, then that many items. The length is the peer's to choose, so
    /// nothing is reserved from it, and reading stops at the first error (every item takes
    /// at least one byte, so a length past the frame's end errs within the frame's length).
    fn seq<T>(&mut self, mut item: impl FnMut(&mut Self) -> T) -> Vec<T> {
        let len = self.len();
        let mut items = Vec::new();
        for _ in 0..len {
            if self.error.is_some() {
                break;
            }
            items.push(item(self));
        }
        items
    }

    /// The variant indexes are the enum's declaration order (see `message.rs`), and the
    /// fields are read in the order they are written here, which is theirs.
    fn server_message(&mut self) -> ServerMessage {
        match self.variant(12) {
            0 => ServerMessage::Welcome {
                session: self.string(),
                user: self.string(),
                protocol: self.u16(),
                heartbeat_ms: self.u32(),
                heartbeat_timeout_ms: self.u32(),
                limits: self.limits(),
            },
            1 => ServerMessage::Joined {
                room: self.string(),
                position: self.position(),
                members: self.seq(Self::string),
                recovery: match self.variant(3) {
                    0 => Recovery::NotRequested,
                    1 => Recovery::Recovered,
                    _ => Recovery::Missed,
                },
            },
            2 => ServerMessage::Left {
                room: self.string(),
            },
            3 => ServerMessage::Message {
                room: self.string(),
                seq: self.u64(),
                id: self.u64(),
                sender: self.string(),
                ts: self.u64(),
                body: self.body(),
            },
            4 => ServerMessage::PublishAck {
                room: self.string(),
                id: self.u64(),
                seq: self.u64(),
            },
            5 => ServerMessage::MemberJoined {
                room: self.string(),
                user: self.string(),
            },
            6 => ServerMessage::MemberLeft {
                room: self.string(),
                user: self.string(),
            },
            7 => ServerMessage::Typing {
                room: self.string(),
                user: self.string(),
                typing: self.bool(),
            },
            8 => ServerMessage::Pong { nonce: self.u64() },
            9 => ServerMessage::Error {
                code: self.u16(),
                message: self.string(),
                id: self.option(Self::u64),
                room: self.option(Self::string),
            },
            10 => ServerMessage::Disconnect {
                code: self.u16(),
                reason: self.string(),
                reconnect: match self.variant(2) {
                    0 => Reconnect::RetryAfter(self.u32()),
                    _ => Reconnect::DoNotRetry,
                },
            },
            _ => ServerMessage::History {
                request: self.u64(),
                room: self.string(),
                position: self.position(),
                messages: self.seq(Self::history_message),
                more: self.bool(),
            },
        }
    }
}

/// The frame being written.
struct Writer(Vec<u8>);

impl Writer {
    /// Every unsigned integer (and every length and variant index) is the same LEB128
    /// varint, whatever its width.
    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.0.push(value as u8 | 0x80);
            value >>= 7;
        }
        self.0.push(value as u8);
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.varint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    fn position(&mut self, position: Option<&Position>) {
        match position {
            None => self.0.push(0),
            Some(position) => {
                self.0.push(1);
                self.varint(position.epoch);
                self.varint(position.seq);
            }
        }
    }

    /// The variant indexes are the enum's declaration order (see `message.rs`); each fits
    /// in one varint byte.
    fn client_message(&mut self, message: &ClientMessage) {
        match message {
            ClientMessage::Join { room, since } => {
                self.0.push(0);
                self.bytes(room.as_bytes());
                self.position(since.as_ref());
            }
            ClientMessage::Leave { room } => {
                self.0.push(1);
                self.bytes(room.as_bytes());
            }
            ClientMessage::Publish { room, id, body } => {
                self.0.push(2);
                self.bytes(room.as_bytes());
                self.varint(*id);
                match body {
                    Body::Text(text) => {
                        self.0.push(0);
                        self.bytes(text.as_bytes());
                    }
                    Body::Binary(bytes) => {
                        self.0.push(1);
                        self.bytes(bytes);
                    }
                }
            }
            ClientMessage::TypingStarted { room } => {
                self.0.push(3);
                self.bytes(room.as_bytes());
            }
            ClientMessage::TypingStopped { room } => {
                self.0.push(4);
                self.bytes(room.as_bytes());
            }
            ClientMessage::Ping { nonce } => {
                self.0.push(5);
                self.varint(*nonce);
            }
            ClientMessage::History {
                request,
                room,
                before,
                limit,
            } => {
                self.0.push(6);
                self.varint(*request);
                self.bytes(room.as_bytes());
                self.position(before.as_ref());
                self.varint(u64::from(*limit));
            }
        }
    }
}
