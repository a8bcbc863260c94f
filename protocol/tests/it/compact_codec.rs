//! The compact codec (feature `compact`, `src/compact.rs`) is the serde codec, byte for byte:
//! `ClientMessage::encode_compact` writes what `ClientMessage::encode` writes, and
//! `ServerMessage::decode_compact` returns what `ServerMessage::decode` returns for any
//! input: the same message, or the same error (down to the `postcard::Error` kind).
//!
//! Valid messages come from the shared strategies; invalid frames from arbitrary bytes,
//! from frames built of the bytes that matter to postcard (`00`, `01`, `7f`, `80`, ...),
//! from valid frames with a few bytes changed, cut or added, and from varints of every
//! length in every kind of integer the server message holds. The golden vectors go through
//! the compact codec in `golden.rs`.

use crate::strategies::{client_message, server_message};
use chorus_protocol::{DEFAULT_MAX_FRAME, ServerMessage};
use proptest::prelude::*;
use proptest::sample::Index;

/// Enough cases to reach every variant, tag and varint length, few enough to finish in
/// seconds.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 2000,
        ..ProptestConfig::default()
    }
}

/// Both decoders, side by side: the property every test below checks.
fn decoders_agree(frame: &[u8], max_frame: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        ServerMessage::decode_compact(frame, max_frame),
        ServerMessage::decode(frame, max_frame),
        "frame {:02x?}, max_frame {}",
        frame,
        max_frame
    );
    Ok(())
}

/// Bytes that mean something to postcard: the two tags, the largest last byte of a u64,
/// u16 and u32 varint, the continuation bit, and small lengths.
fn telling_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => prop::sample::select(vec![0x00, 0x01, 0x02, 0x03, 0x04, 0x0f, 0x10, 0x7f, 0x80, 0x81, 0xff]),
        1 => any::<u8>(),
    ]
}

/// A frame that starts with a variant index (the valid ones and the first two past them)
/// and goes on with telling bytes, so that many of them decode some way into a message.
fn telling_frame() -> impl Strategy<Value = Vec<u8>> {
    (0u8..14, prop::collection::vec(telling_byte(), 0..48)).prop_map(|(index, rest)| {
        let mut frame = vec![index];
        frame.extend(rest);
        frame
    })
}

/// A varint-shaped run of bytes: up to 11 bytes with the continuation bit, then one
/// without it (or, sometimes, with it): every length postcard accepts and the first it
/// refuses, for each width.
fn varint_bytes() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec(0x80u8..=0xff, 0..=11), any::<u8>()).prop_map(|(mut bytes, last)| {
        bytes.push(last);
        bytes
    })
}

/// A frame with `varint` in place of one integer of a server message, one per width and
/// kind: the variant index (u32), a u64, a u16, a u32 inside a nested enum, a string length
/// (usize) and a list length (usize).
fn frame_around(context: u8, varint: &[u8], tail: &[u8]) -> Vec<u8> {
    let (before, after): (&[u8], &[u8]) = match context {
        // The variant index itself.
        0 => (&[], &[]),
        // Pong { nonce: u64 }.
        1 => (&[0x08], &[]),
        // Error { code: u16, message: "", id: None, room: None }.
        2 => (&[0x09], &[0x00, 0x00, 0x00]),
        // Disconnect { code: 0, reason: "", reconnect: RetryAfter(u32) }.
        3 => (&[0x0a, 0x00, 0x00, 0x00], &[]),
        // Left { room }: the string's length.
        4 => (&[0x02], &[]),
        // Joined { room: "", position: 0/0, members }: the list's length.
        _ => (&[0x01, 0x00, 0x00, 0x00], &[]),
    };
    [before, varint, after, tail].concat()
}

/// One change to a valid frame.
#[derive(Debug, Clone)]
enum Mutation {
    /// Replace a byte.
    Set(Index, u8),
    /// Flip one bit of a byte.
    Flip(Index, u8),
    /// Cut the frame short.
    Truncate(Index),
    /// Insert a byte.
    Insert(Index, u8),
    /// Remove a byte.
    Remove(Index),
    /// Append bytes.
    Extend(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), telling_byte()).prop_map(|(at, byte)| Mutation::Set(at, byte)),
        (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), telling_byte()).prop_map(|(at, byte)| Mutation::Insert(at, byte)),
        any::<Index>().prop_map(Mutation::Remove),
        prop::collection::vec(telling_byte(), 1..4).prop_map(Mutation::Extend),
    ]
}

fn mutate(frame: &mut Vec<u8>, mutation: &Mutation) {
    // Every valid frame has at least its variant index, so indexing by `len` is defined.
    let len = frame.len();
    match mutation {
        Mutation::Set(at, byte) => frame[at.index(len)] = *byte,
        Mutation::Flip(at, bit) => frame[at.index(len)] ^= 1 << bit,
        Mutation::Truncate(at) => frame.truncate(at.index(len)),
        Mutation::Insert(at, byte) => frame.insert(at.index(len + 1), *byte),
        Mutation::Remove(at) => {
            frame.remove(at.index(len));
        }
        Mutation::Extend(bytes) => frame.extend(bytes),
    }
}

#[test]
fn every_frame_of_up_to_two_bytes_decodes_alike() {
    let mut frames = vec![vec![]];
    frames.extend((0..=255u8).map(|a| vec![a]));
    frames.extend((0..=0xffffu16).map(|ab| ab.to_be_bytes().to_vec()));
    for frame in frames {
        decoders_agree(&frame, DEFAULT_MAX_FRAME).unwrap();
    }
}

#[test]
fn varints_at_the_limits_of_their_width_decode_alike() {
    // The longest valid encodings, their largest last bytes and one past them, and one byte
    // too many, in each context of `frame_around`.
    let mut varints: Vec<Vec<u8>> = Vec::new();
    for continuation in 0..=10 {
        for last in [0x00, 0x01, 0x02, 0x03, 0x04, 0x0f, 0x10, 0x7f, 0x80] {
            let mut varint = vec![0xff; continuation];
            varint.push(last);
            varints.push(varint.clone());
            varint[0] = 0x80;
            varints.push(varint);
        }
    }
    for context in 0..6 {
        for varint in &varints {
            let frame = frame_around(context, varint, &[0x00, 0x00]);
            decoders_agree(&frame, DEFAULT_MAX_FRAME).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn serde_encoded_server_messages_decode_compact_to_the_same_value(msg in server_message()) {
        let frame = msg.encode(usize::MAX).unwrap();
        prop_assert_eq!(ServerMessage::decode_compact(&frame, usize::MAX), Ok(msg));
        decoders_agree(&frame, frame.len())?;
    }

    #[test]
    fn client_messages_encode_compact_to_the_serde_bytes(msg in client_message()) {
        prop_assert_eq!(msg.encode_compact(usize::MAX), msg.encode(usize::MAX));
        prop_assert_eq!(msg.encode_compact(DEFAULT_MAX_FRAME), msg.encode(DEFAULT_MAX_FRAME));
    }

    #[test]
    fn client_messages_near_the_frame_limit_fail_alike(
        msg in client_message(),
        below in 0usize..3,
        above in 0usize..3,
    ) {
        let len = msg.encode(usize::MAX).unwrap().len();
        for max_frame in [len.saturating_sub(below), len + above] {
            prop_assert_eq!(msg.encode_compact(max_frame), msg.encode(max_frame));
        }
    }

    #[test]
    fn server_frames_near_the_frame_limit_decode_alike(
        msg in server_message(),
        below in 0usize..3,
        extra in prop::collection::vec(telling_byte(), 0..3),
    ) {
        let mut frame = msg.encode(usize::MAX).unwrap();
        frame.extend(extra);
        decoders_agree(&frame, frame.len().saturating_sub(below))?;
        decoders_agree(&frame, frame.len())?;
    }

    #[test]
    fn arbitrary_bytes_decode_alike(frame in prop::collection::vec(any::<u8>(), 0..256)) {
        decoders_agree(&frame, DEFAULT_MAX_FRAME)?;
    }

    #[test]
    fn frames_of_telling_bytes_decode_alike(frame in telling_frame()) {
        decoders_agree(&frame, DEFAULT_MAX_FRAME)?;
    }

    #[test]
    fn changed_valid_frames_decode_alike(
        msg in server_message(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut frame = msg.encode(usize::MAX).unwrap();
        for mutation in &mutations {
            if frame.is_empty() {
                break;
            }
            mutate(&mut frame, mutation);
        }
        decoders_agree(&frame, DEFAULT_MAX_FRAME)?;
    }

    #[test]
    fn varints_of_every_length_decode_alike(
        context in 0u8..6,
        varint in varint_bytes(),
        tail in prop::collection::vec(telling_byte(), 0..8),
    ) {
        decoders_agree(&frame_around(context, &varint, &tail), DEFAULT_MAX_FRAME)?;
    }
}
