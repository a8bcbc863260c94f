//! The benchmark's chat messages: the payload of one binary WebSocket message, an opcode
//! byte first. Every server message is byte for byte the client message it answers, so the
//! server never re-encodes: it only puts a WebSocket header in front.
//!
//! | Opcode | Client → server | Server → client |
//! | --- | --- | --- |
//! | `0x01` join | `01 len room` | the same bytes to the joiner: joined |
//! | `0x02` publish | `02 len room body…` | the same bytes to every member of `room` |
//! | `0x03` echo | `03 body…` | the same bytes to the sender |
//!
//! `len` is one byte, the room name's length (1–255); `body` is the rest of the message.

/// Join a room.
const JOIN: u8 = 0x01;
/// Publish to a room.
const PUBLISH: u8 = 0x02;
/// Echo back to the sender.
const ECHO: u8 = 0x03;

/// One client message, borrowing the payload.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Message<'a> {
    /// Join `room`.
    Join {
        /// The room's name.
        room: &'a [u8],
    },
    /// Publish to `room`; the body is not needed, the whole payload is broadcast.
    Publish {
        /// The room's name.
        room: &'a [u8],
    },
    /// Echo the payload back.
    Echo,
}

impl<'a> Message<'a> {
    /// Decodes a payload, `None` when it is not one of the messages above.
    pub(crate) fn decode(payload: &'a [u8]) -> Option<Self> {
        let (&opcode, rest) = payload.split_first()?;
        // A room: its length byte (not 0), then that many bytes.
        let room = |rest: &'a [u8]| {
            let (&len, rest) = rest.split_first()?;
            let room = rest.get(..usize::from(len)).filter(|r| !r.is_empty())?;
            Some((room, &rest[room.len()..]))
        };
        match opcode {
            JOIN => match room(rest)? {
                (room, []) => Some(Self::Join { room }),
                _ => None,
            },
            PUBLISH => room(rest).map(|(room, _body)| Self::Publish { room }),
            ECHO => Some(Self::Echo),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_message_decodes_from_its_documented_bytes() {
        assert_eq!(
            Message::decode(b"\x01\x02r1"),
            Some(Message::Join { room: b"r1" })
        );
        assert_eq!(
            Message::decode(b"\x02\x02r1hello"),
            Some(Message::Publish { room: b"r1" })
        );
        assert_eq!(
            Message::decode(b"\x02\x02r1"),
            Some(Message::Publish { room: b"r1" })
        );
        assert_eq!(Message::decode(b"\x03"), Some(Message::Echo));
        assert_eq!(Message::decode(b"\x03anything"), Some(Message::Echo));
    }

    #[test]
    fn malformed_messages_decode_to_none() {
        for bad in [
            &b""[..],
            b"\x04",
            b"\x01",
            b"\x01\x00",
            b"\x01\x03r1",
            b"\x01\x02r1x",
            b"\x02\x00body",
            b"\x02\x05r1",
        ] {
            assert_eq!(Message::decode(bad), None, "{bad:?}");
        }
    }
}
