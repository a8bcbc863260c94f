//! What travels on a room's channel, and the encoded `Message` built by the publish script.
//!
//! An envelope is a tag byte, then:
//!
//! | Tag | What | Then |
//! | --- | --- | --- |
//! | 1 | a stored message | varint epoch, varint seq, the encoded `Message` |
//! | 2 | an event (presence, typing) | varint length of the user to skip (0: none), that user, the encoded message |
//! | 3 | a new history began | varint epoch |
//!
//! Varints are postcard's (unsigned LEB128). Tags 1 and 3 are written by the Lua scripts,
//! tag 2 here.

use bytes::Bytes;
use chorus_protocol::ServerMessage;

use super::super::{BrokerError, Ephemeral, Publication};

const MESSAGE: u8 = 1;
const EVENT: u8 = 2;
const RESET: u8 = 3;

/// A decoded envelope; messages are slices of the received payload.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Envelope {
    /// Message `seq` of history `epoch`.
    Message {
        epoch: u64,
        seq: u64,
        message: Bytes,
    },
    /// A presence or typing message, not for `except_user`'s connections.
    Event {
        except_user: Option<String>,
        message: Bytes,
    },
    /// The room's history was created anew, in `epoch`.
    Reset { epoch: u64 },
}

/// Append the varint of `n`.
pub(super) fn put_varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Read a varint off the front of `bytes`.
fn take_varint(bytes: &mut Bytes) -> Option<u64> {
    let mut n: u64 = 0;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        n |= u64::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            let _ = bytes.split_to(i + 1);
            return Some(n);
        }
    }
    None
}

/// The envelope of an event.
pub(super) fn event(event: &Ephemeral) -> Vec<u8> {
    let except = event.except_user.as_deref().unwrap_or("");
    let mut out = Vec::with_capacity(event.message.len() + except.len() + 4);
    out.push(EVENT);
    put_varint(except.len() as u64, &mut out);
    out.extend_from_slice(except.as_bytes());
    out.extend_from_slice(&event.message);
    out
}

/// Decode an envelope; `None` for anything that is not one.
pub(super) fn decode(mut payload: Bytes) -> Option<Envelope> {
    if payload.is_empty() {
        return None;
    }
    let tag = payload.split_to(1)[0];
    match tag {
        MESSAGE => {
            let epoch = take_varint(&mut payload)?;
            let seq = take_varint(&mut payload)?;
            Some(Envelope::Message {
                epoch,
                seq,
                message: payload,
            })
        }
        EVENT => {
            let len = usize::try_from(take_varint(&mut payload)?).ok()?;
            if len > payload.len() {
                return None;
            }
            let user = payload.split_to(len);
            let except_user = match len {
                0 => None,
                _ => Some(String::from_utf8(user.to_vec()).ok()?),
            };
            Some(Envelope::Event {
                except_user,
                message: payload,
            })
        }
        RESET => {
            let epoch = take_varint(&mut payload)?;
            payload.is_empty().then_some(Envelope::Reset { epoch })
        }
        _ => None,
    }
}

/// The encoded `ServerMessage::Message` of `publication` in `room`, split around its
/// sequence number, which the publish script assigns: `prefix ++ varint(seq) ++ suffix` is
/// the encoded message. Postcard writes the variant, then the fields in order (room, seq, id, sender,
/// ts, body), each on its own, so the parts are the encoding of a message with seq 0 (one
/// byte) cut around that byte.
pub(super) fn message_parts(
    room: &str,
    publication: &Publication,
) -> Result<(Vec<u8>, Vec<u8>), BrokerError> {
    let unexpected = |e: chorus_protocol::CodecError| BrokerError::Unexpected(e.to_string());
    let whole = chorus_protocol::encode(
        &ServerMessage::Message {
            room: room.to_owned(),
            seq: 0,
            id: publication.id,
            sender: publication.sender.clone(),
            ts: publication.ts,
            body: publication.body.clone(),
        },
        usize::MAX,
    )
    .map_err(unexpected)?;
    let suffix = chorus_protocol::encode(
        &(
            publication.id,
            &publication.sender,
            publication.ts,
            &publication.body,
        ),
        usize::MAX,
    )
    .map_err(unexpected)?;
    let cut = whole.len().checked_sub(suffix.len() + 1);
    match cut {
        Some(cut) if whole[cut] == 0 && whole[cut + 1..] == suffix[..] => {
            Ok((whole[..cut].to_vec(), suffix))
        }
        _ => Err(BrokerError::Unexpected(
            "an encoded message does not split around its sequence number".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_protocol::Body;

    fn publication(body: Body) -> Publication {
        Publication {
            id: 300,
            sender: "zoë".into(),
            ts: 1_700_000_000_123,
            body,
        }
    }

    /// What the publish script builds, built the same way here.
    fn scripted(prefix: &[u8], seq: u64, suffix: &[u8]) -> Vec<u8> {
        let mut encoded = prefix.to_vec();
        put_varint(seq, &mut encoded);
        encoded.extend_from_slice(suffix);
        encoded
    }

    #[test]
    fn prefix_varint_suffix_is_the_message_encoding_byte_for_byte() {
        let bodies = [
            Body::Text(String::new()),
            Body::Text("hello".into()),
            Body::Binary(vec![0, 255, 3]),
            Body::Binary(vec![7; 300]),
        ];
        let seqs = [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            (1 << 53) - 1,
        ];
        for body in bodies {
            let p = publication(body);
            let (prefix, suffix) = message_parts("news:tech", &p).unwrap();
            for seq in seqs {
                let expected = ServerMessage::Message {
                    room: "news:tech".into(),
                    seq,
                    id: p.id,
                    sender: p.sender.clone(),
                    ts: p.ts,
                    body: p.body.clone(),
                }
                .encode(usize::MAX)
                .unwrap();
                assert_eq!(scripted(&prefix, seq, &suffix), expected, "seq {seq}");
            }
        }
    }

    #[test]
    fn varints_are_leb128() {
        let cases: [(u64, &[u8]); 5] = [
            (0, &[0x00]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (65_536, &[0x80, 0x80, 0x04]),
        ];
        for (n, bytes) in cases {
            let mut out = Vec::new();
            put_varint(n, &mut out);
            assert_eq!(out, bytes);
            let mut read = Bytes::copy_from_slice(bytes);
            assert_eq!(take_varint(&mut read), Some(n));
            assert!(read.is_empty());
        }
        let mut max = Vec::new();
        put_varint(u64::MAX, &mut max);
        assert_eq!(take_varint(&mut Bytes::from(max)), Some(u64::MAX));
    }

    #[test]
    fn envelopes_round_trip_and_garbage_is_refused() {
        let encoded = Bytes::from_static(b"\x05frame");
        for except_user in [None, Some("alice".to_owned())] {
            let bytes = event(&Ephemeral {
                message: encoded.clone(),
                except_user: except_user.clone(),
            });
            assert_eq!(
                decode(Bytes::from(bytes)),
                Some(Envelope::Event {
                    except_user,
                    message: encoded.clone()
                })
            );
        }
        let mut message = vec![MESSAGE];
        put_varint(1 << 52, &mut message);
        put_varint(130, &mut message);
        message.extend_from_slice(&encoded);
        assert_eq!(
            decode(Bytes::from(message)),
            Some(Envelope::Message {
                epoch: 1 << 52,
                seq: 130,
                message: encoded.clone()
            })
        );
        assert_eq!(
            decode(Bytes::from_static(&[RESET, 0x80, 0x01])),
            Some(Envelope::Reset { epoch: 128 })
        );
        for garbage in [&[][..], &[9], &[MESSAGE, 0x80], &[EVENT, 5, b'a'], &[RESET]] {
            assert_eq!(decode(Bytes::copy_from_slice(garbage)), None, "{garbage:?}");
        }
    }
}
