//! The Node `ws` peer: one JSON object per text frame.
//!
//! | Client → server | Server → client |
//! | --- | --- |
//! | `{"t":"join","room":R}` | `{"t":"joined","room":R}` to the joiner |
//! | `{"t":"pub","room":R,"body":B}` | `{"t":"msg","room":R,"body":B}` to every member |
//! | `{"t":"echo","body":B}` | the same object, to the sender |
//!
//! Received objects are scanned, not parsed: the type, then the body's leading stamp.

use super::{Incoming, Protocol, Stamp, json_string_after, push_json_string};
use crate::ws::{Opcode, Outbox};

/// The `ws` peer's JSON protocol.
#[derive(Debug, Default)]
pub struct Json;

impl Protocol for Json {
    fn name(&self) -> &'static str {
        "ws"
    }

    #[inline]
    fn receive(&self, payload: &[u8], text: bool, _out: &mut Outbox) -> Incoming {
        if !text {
            return Incoming::Other;
        }
        match json_string_after(payload, br#""t""#) {
            Some(t) if t.starts_with(b"msg\"") || t.starts_with(b"echo\"") => {
                json_string_after(payload, br#""body""#)
                    .and_then(Stamp::read_text)
                    .map_or(Incoming::Other, Incoming::Message)
            }
            Some(t) if t.starts_with(b"joined\"") => Incoming::Joined,
            Some(t) if t.starts_with(b"error\"") => {
                Incoming::Refused(String::from_utf8_lossy(payload).into_owned())
            }
            _ => Incoming::Other,
        }
    }

    fn join(&self, room: &str, out: &mut Outbox) {
        out.queue_with(Opcode::Text, |buf| {
            buf.extend_from_slice(br#"{"t":"join","room":"#);
            push_json_string(buf, room);
            buf.push(b'}');
        });
    }

    fn joins_acknowledged(&self) -> bool {
        true
    }

    #[inline]
    fn publish(&self, room: &str, _id: u64, stamp: Stamp, body: usize, out: &mut Outbox) {
        out.queue_with(Opcode::Text, |buf| {
            buf.extend_from_slice(br#"{"t":"pub","room":"#);
            push_json_string(buf, room);
            buf.extend_from_slice(br#","body":""#);
            stamp.write_text(buf, body);
            buf.extend_from_slice(b"\"}");
        });
    }

    fn echo(&self, _room: &str, _id: u64, stamp: Stamp, body: usize, out: &mut Outbox) {
        out.queue_with(Opcode::Text, |buf| {
            buf.extend_from_slice(br#"{"t":"echo","body":""#);
            stamp.write_text(buf, body);
            buf.extend_from_slice(b"\"}");
        });
    }

    fn acks_publishes(&self) -> bool {
        false
    }

    fn delivers_to_sender(&self) -> bool {
        true
    }

    fn broadcast_example(&self, room: &str, stamp: Stamp, body: usize) -> (bool, Vec<u8>) {
        let mut text = br#"{"t":"msg","room":"#.to_vec();
        push_json_string(&mut text, room);
        text.extend_from_slice(br#","body":""#);
        stamp.write_text(&mut text, body);
        text.extend_from_slice(b"\"}");
        (true, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::decode_client_frames;

    const STAMP: Stamp = Stamp {
        sent_ns: 99,
        sender: 3,
    };

    #[test]
    fn requests_are_json_and_answers_classify() {
        let mut out = Outbox::default();
        Json.join("bench:r", &mut out);
        Json.publish("bench:r", 0, STAMP, 32, &mut out);
        Json.echo("", 0, STAMP, 1024, &mut out);
        let frames = decode_client_frames(out.bytes());
        let values: Vec<serde_json::Value> = frames
            .iter()
            .map(|(first, payload)| {
                assert_eq!(*first, 0x81, "text frames");
                serde_json::from_slice(payload).unwrap()
            })
            .collect();
        assert_eq!(
            values[0],
            serde_json::json!({"t": "join", "room": "bench:r"})
        );
        assert_eq!(values[1]["t"], "pub");
        assert_eq!(values[1]["body"].as_str().unwrap().len(), 32);
        assert_eq!(values[2]["t"], "echo");
        assert_eq!(values[2]["body"].as_str().unwrap().len(), 1024);

        // What the peer sends back.
        let body = values[1]["body"].as_str().unwrap();
        let msg = format!(r#"{{"t":"msg","room":"bench:r","body":"{body}"}}"#);
        assert_eq!(
            Json.receive(msg.as_bytes(), true, &mut out),
            Incoming::Message(STAMP)
        );
        assert_eq!(
            Json.receive(&frames[2].1, true, &mut out),
            Incoming::Message(STAMP)
        );
        assert_eq!(
            Json.receive(br#"{"t":"joined","room":"bench:r"}"#, true, &mut out),
            Incoming::Joined
        );
        assert_eq!(
            Json.receive(br#"{"t":"msg","body":"hi"}"#, true, &mut out),
            Incoming::Other
        );
        assert_eq!(Json.receive(b"{}", false, &mut out), Incoming::Other);
    }
}
