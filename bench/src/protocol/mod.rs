//! The wire protocols the load generator speaks, behind one sans-IO trait.
//!
//! A [`Protocol`] turns intentions (join, publish, echo) into frames queued in an
//! [`Outbox`], and tells what a received message is ([`Incoming`]), queueing whatever the
//! protocol itself answers (Engine.IO pongs, the Socket.IO connect). The connection code in
//! [`crate::client`] does the I/O, so every workload runs unchanged over every protocol.
//!
//! | Name | Server | Frames |
//! | --- | --- | --- |
//! | `chorus` | chorus-server | binary, postcard ([`chorus`]) |
//! | `ws` | the Node `ws` peer | JSON text ([`json`]) |
//! | `socketio` | the Socket.IO peer | Engine.IO v4 packets over WebSocket ([`socketio`]) |
//! | `baseline` | the raw Rust peer | binary, one opcode byte ([`baseline`]) |
//!
//! Every body starts with a [`Stamp`] (send time, sender), so a receiver finds a message's
//! latency without allocating.

pub mod baseline;
pub mod chorus;
pub mod json;
pub mod socketio;
pub mod stamp;

use std::fmt::Debug;

pub use stamp::Stamp;

use crate::Result;
use crate::ws::{Frame, Opcode, Outbox, Upgrade};

/// What a received message means to a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// The session is open (the greeting the protocol waits for has arrived).
    Ready,
    /// A join took effect.
    Joined,
    /// A room message or an echo, with the stamp its body starts with.
    Message(Stamp),
    /// A publish was acknowledged (Chorus).
    Ack,
    /// The server refused a request; the connection stays open.
    Refused(String),
    /// The server said goodbye at the application level (before closing).
    Closing(String),
    /// Anything else (presence, pongs, messages without a stamp).
    Other,
}

/// One wire protocol. Implementations are cheap to share between connections.
pub trait Protocol: Debug + Send + Sync {
    /// The name on the command line and in results.
    fn name(&self) -> &'static str;

    /// The upgrade request of connection `user`, given the URL's path and query (empty if
    /// the URL had none). By default the URL's path (`/` if none), no extra headers.
    fn upgrade(&self, url_path: &str, user: &str) -> Result<Upgrade> {
        let _ = user;
        Ok(Upgrade {
            path: if url_path.is_empty() { "/" } else { url_path }.to_owned(),
            headers: Vec::new(),
        })
    }

    /// Whether the server speaks first: the connection may only be used once
    /// [`Incoming::Ready`] has been received. By default it does not.
    fn greets(&self) -> bool {
        false
    }

    /// What a received message (text or binary payload) is. Answers the protocol requires
    /// (pongs, handshake steps) are queued in `out`.
    fn receive(&self, payload: &[u8], text: bool, out: &mut Outbox) -> Incoming;

    /// Queue a join of `room`.
    fn join(&self, room: &str, out: &mut Outbox);

    /// Whether joins are answered ([`Incoming::Joined`]); otherwise a join takes effect
    /// when the server reads it, and publishes after it on the same connection are safe.
    fn joins_acknowledged(&self) -> bool;

    /// Queue a publish of a `body`-byte body starting with `stamp` to `room`; `id` numbers
    /// the connection's publishes.
    fn publish(&self, room: &str, id: u64, stamp: Stamp, body: usize, out: &mut Outbox);

    /// Queue an echo request: a `body`-byte body starting with `stamp`, to come back to
    /// this connection only. `room` is the connection's own room, joined beforehand, for
    /// protocols that echo through a room of one (Chorus).
    fn echo(&self, room: &str, id: u64, stamp: Stamp, body: usize, out: &mut Outbox);

    /// Whether each publish is acknowledged ([`Incoming::Ack`]).
    fn acks_publishes(&self) -> bool;

    /// Whether a room message reaches its own sender.
    fn delivers_to_sender(&self) -> bool;

    /// A room message as the server sends it (text or binary payload), for the `ceiling`
    /// measurement and tests.
    fn broadcast_example(&self, room: &str, stamp: Stamp, body: usize) -> (bool, Vec<u8>);
}

/// Handle one frame from a [`crate::ws::Reader`]: control frames are answered here,
/// messages go to `protocol`. A close frame is answered and becomes
/// [`crate::Error::Closed`].
#[inline]
pub fn handle(protocol: &dyn Protocol, frame: Frame<'_>, out: &mut Outbox) -> Result<Incoming> {
    Ok(match frame {
        Frame::Binary(payload) => protocol.receive(payload, false, out),
        Frame::Text(payload) => protocol.receive(payload, true, out),
        Frame::Ping(payload) => {
            out.queue(Opcode::Pong, payload);
            Incoming::Other
        }
        Frame::Pong => Incoming::Other,
        Frame::Close { code, reason } => {
            out.queue_close(code);
            return Err(crate::Error::Closed(format!(
                "close {} {}",
                code.map_or_else(|| "without code".to_owned(), |c| c.to_string()),
                String::from_utf8_lossy(reason)
            )));
        }
    })
}

/// Find `"key":"` in a JSON text and return what follows it (the value, unquoted, up to
/// the end of the text). A scan, not a parse: good for the fixed shapes the peers send,
/// whose bodies never contain quotes.
pub(crate) fn json_string_after<'a>(text: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let at = find(text, key)?;
    let rest = &text[at + key.len()..];
    // Allow spaces around the colon, then the opening quote.
    let rest = trim_start(rest).strip_prefix(b":")?;
    let rest = trim_start(rest).strip_prefix(b"\"")?;
    Some(rest)
}

fn trim_start(text: &[u8]) -> &[u8] {
    let spaces = text.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &text[spaces..]
}

/// Index of `needle` (not empty) in `haystack`: memchr to each occurrence of its first
/// byte (in JSON, a quote: a few per message), then a comparison. Four times faster than a
/// naive window scan on the peers' messages.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, _) = needle.split_first()?;
    memchr::memchr_iter(first, haystack).find(|&i| haystack[i..].starts_with(needle))
}

/// Append `text` as a JSON string (quoted; escapes what must be escaped).
pub(crate) fn push_json_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut utf8 = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_are_found_after_their_keys() {
        let text = br#"{"t":"msg","room":"r1","body" : "0123"}"#;
        assert_eq!(json_string_after(text, br#""body""#), Some(&b"0123\"}"[..]));
        assert_eq!(json_string_after(text, br#""nope""#), None);
        assert_eq!(json_string_after(br#"{"body":1}"#, br#""body""#), None);
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = Vec::new();
        push_json_string(&mut out, "a\"b\\c\nd");
        assert_eq!(out, br#""a\"b\\c\u000ad""#);
    }
}
