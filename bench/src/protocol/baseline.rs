//! The raw Rust baseline peer (`bench/peers/rust-baseline`): binary messages, one opcode
//! byte first, and every answer is byte for byte the message it answers.
//!
//! | Opcode | Client → server | Server → client |
//! | --- | --- | --- |
//! | `0x01` join | `01 len room` | the same bytes to the joiner |
//! | `0x02` publish | `02 len room body…` | the same bytes to every member, the sender too |
//! | `0x03` echo | `03 body…` | the same bytes to the sender |

use super::{Incoming, Protocol, Stamp};
use crate::ws::{Opcode, Outbox};

const JOIN: u8 = 0x01;
const PUBLISH: u8 = 0x02;
const ECHO: u8 = 0x03;

/// The baseline's binary protocol.
#[derive(Debug, Default)]
pub struct Baseline;

impl Protocol for Baseline {
    fn name(&self) -> &'static str {
        "baseline"
    }

    #[inline]
    fn receive(&self, payload: &[u8], text: bool, _out: &mut Outbox) -> Incoming {
        if text {
            return Incoming::Other;
        }
        match payload {
            [JOIN, ..] => Incoming::Joined,
            [PUBLISH, len, rest @ ..] => rest
                .get(usize::from(*len)..)
                .and_then(Stamp::read_binary)
                .map_or(Incoming::Other, Incoming::Message),
            [ECHO, body @ ..] => {
                Stamp::read_binary(body).map_or(Incoming::Other, Incoming::Message)
            }
            _ => Incoming::Other,
        }
    }

    fn join(&self, room: &str, out: &mut Outbox) {
        out.queue_with(Opcode::Binary, |buf| {
            buf.push(JOIN);
            push_room(buf, room);
        });
    }

    fn joins_acknowledged(&self) -> bool {
        true
    }

    #[inline]
    fn publish(&self, room: &str, _id: u64, stamp: Stamp, body: usize, out: &mut Outbox) {
        out.queue_with(Opcode::Binary, |buf| {
            buf.push(PUBLISH);
            push_room(buf, room);
            stamp.write_binary(buf, body);
        });
    }

    fn echo(&self, _room: &str, _id: u64, stamp: Stamp, body: usize, out: &mut Outbox) {
        out.queue_with(Opcode::Binary, |buf| {
            buf.push(ECHO);
            stamp.write_binary(buf, body);
        });
    }

    fn acks_publishes(&self) -> bool {
        false
    }

    fn delivers_to_sender(&self) -> bool {
        true
    }

    fn broadcast_example(&self, room: &str, stamp: Stamp, body: usize) -> (bool, Vec<u8>) {
        let mut bytes = vec![PUBLISH];
        push_room(&mut bytes, room);
        stamp.write_binary(&mut bytes, body);
        (false, bytes)
    }
}

fn push_room(buf: &mut Vec<u8>, room: &str) {
    // Room names are the generator's own, always 1..=255 bytes.
    let len = u8::try_from(room.len()).expect("room names under 256 bytes");
    buf.push(len);
    buf.extend_from_slice(room.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: Stamp = Stamp {
        sent_ns: 42,
        sender: 7,
    };

    fn unmasked(out: &Outbox) -> Vec<u8> {
        let mut frames = crate::ws::decode_client_frames(out.bytes());
        assert_eq!(frames.len(), 1);
        frames.pop().unwrap().1
    }

    #[test]
    fn messages_are_the_documented_bytes_and_their_answers_classify() {
        let mut out = Outbox::default();
        Baseline.join("r1", &mut out);
        let join = unmasked(&out);
        assert_eq!(join, b"\x01\x02r1");
        assert_eq!(Baseline.receive(&join, false, &mut out), Incoming::Joined);

        let mut out = Outbox::default();
        Baseline.publish("r1", 0, STAMP, 32, &mut out);
        let publish = unmasked(&out);
        assert_eq!(&publish[..4], b"\x02\x02r1");
        assert_eq!(publish.len(), 4 + 32);
        assert_eq!(
            Baseline.receive(&publish, false, &mut out),
            Incoming::Message(STAMP)
        );

        let mut out = Outbox::default();
        Baseline.echo("r1", 0, STAMP, 1024, &mut out);
        let echo = unmasked(&out);
        assert_eq!(echo[0], 0x03);
        assert_eq!(echo.len(), 1 + 1024);
        assert_eq!(
            Baseline.receive(&echo, false, &mut out),
            Incoming::Message(STAMP)
        );

        assert_eq!(
            Baseline.receive(b"\x02\x09r1", false, &mut out),
            Incoming::Other
        );
        assert_eq!(Baseline.receive(b"", false, &mut out), Incoming::Other);
    }
}
