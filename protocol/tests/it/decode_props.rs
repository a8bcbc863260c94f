//! Decoding against its limit and its encoder, for what a server reads from the network:
//!
//! - No frame longer than its limit is ever accepted, whatever its bytes and the limit:
//!   it is `TooLarge`, before any byte of it is looked at.
//! - A valid frame decodes with a limit of exactly its length and is `TooLarge` one byte
//!   under it; encoding fails just the same.
//! - Whatever decodes (arbitrary bytes, or a valid frame with bytes changed) encodes back,
//!   no longer than it was, into a frame that decodes to the same message.
//!
//! That decoding never panics and that every message round-trips is in
//! `decode_never_panics.rs`; that the compact codec answers as serde's does on arbitrary
//! bytes is in `compact_codec.rs`.

use crate::strategies::{client_message, server_message};
use chorus_protocol::{ClientMessage, CodecError, DEFAULT_MAX_FRAME, ServerMessage};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

/// Enough cases to reach every variant, few enough to finish in a second or two.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1000,
        ..ProptestConfig::default()
    }
}

/// A limit at, just under or just over `len`, or anywhere below it.
fn limit_around(len: usize, pick: u8, index: Index) -> usize {
    match pick % 4 {
        0 => len,
        1 => len.saturating_sub(1),
        2 => len + 1,
        _ => index.index(len + 1),
    }
}

/// The limit property for one frame, both ways.
fn limit_holds(frame: &[u8], max: usize) -> Result<(), TestCaseError> {
    if frame.len() > max {
        let too_large = CodecError::TooLarge {
            size: frame.len(),
            max,
        };
        prop_assert_eq!(ClientMessage::decode(frame, max), Err(too_large.clone()));
        prop_assert_eq!(ServerMessage::decode(frame, max), Err(too_large));
    }
    Ok(())
}

/// If `frame` decodes as a client message, its message encodes back into a frame no
/// longer (postcard's varints have one shortest form, which the encoder writes) that
/// decodes to the same message. The same for a server message.
fn accepted_frames_encode_back(frame: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(message) = ClientMessage::decode(frame, DEFAULT_MAX_FRAME) {
        let again = message.encode(DEFAULT_MAX_FRAME).unwrap();
        prop_assert!(again.len() <= frame.len());
        prop_assert_eq!(
            ClientMessage::decode(&again, DEFAULT_MAX_FRAME),
            Ok(message)
        );
    }
    if let Ok(message) = ServerMessage::decode(frame, DEFAULT_MAX_FRAME) {
        let again = message.encode(DEFAULT_MAX_FRAME).unwrap();
        prop_assert!(again.len() <= frame.len());
        prop_assert_eq!(
            ServerMessage::decode(&again, DEFAULT_MAX_FRAME),
            Ok(message)
        );
    }
    Ok(())
}

/// A valid frame with a few bytes set to arbitrary values: many still decode, to some
/// other message.
fn changed(mut frame: Vec<u8>, changes: &[(Index, u8)]) -> Vec<u8> {
    for (at, byte) in changes {
        let at = at.index(frame.len());
        frame[at] = *byte;
    }
    frame
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn no_frame_over_its_limit_is_accepted(
        frame in vec(any::<u8>(), 0..512),
        pick in any::<u8>(),
        index in any::<Index>(),
    ) {
        limit_holds(&frame, limit_around(frame.len(), pick, index))?;
    }

    #[test]
    fn a_valid_client_frame_fits_a_limit_of_its_length_and_no_less(msg in client_message()) {
        let frame = msg.encode(usize::MAX).unwrap();
        let len = frame.len();
        prop_assert_eq!(ClientMessage::decode(&frame, len), Ok(msg.clone()));
        prop_assert_eq!(msg.encode(len), Ok(frame.clone()));
        let too_large = CodecError::TooLarge { size: len, max: len - 1 };
        prop_assert_eq!(ClientMessage::decode(&frame, len - 1), Err(too_large.clone()));
        prop_assert_eq!(msg.encode(len - 1), Err(too_large));
    }

    #[test]
    fn a_valid_server_frame_fits_a_limit_of_its_length_and_no_less(msg in server_message()) {
        let frame = msg.encode(usize::MAX).unwrap();
        let len = frame.len();
        prop_assert_eq!(ServerMessage::decode(&frame, len), Ok(msg.clone()));
        let too_large = CodecError::TooLarge { size: len, max: len - 1 };
        prop_assert_eq!(ServerMessage::decode(&frame, len - 1), Err(too_large.clone()));
        prop_assert_eq!(msg.encode(len - 1), Err(too_large));
    }

    #[test]
    fn arbitrary_bytes_that_decode_encode_back(frame in vec(any::<u8>(), 0..64)) {
        accepted_frames_encode_back(&frame)?;
    }

    #[test]
    fn changed_client_frames_that_decode_encode_back(
        msg in client_message(),
        changes in vec((any::<Index>(), any::<u8>()), 1..3),
    ) {
        accepted_frames_encode_back(&changed(msg.encode(usize::MAX).unwrap(), &changes))?;
    }

    #[test]
    fn changed_server_frames_that_decode_encode_back(
        msg in server_message(),
        changes in vec((any::<Index>(), any::<u8>()), 1..3),
    ) {
        accepted_frames_encode_back(&changed(msg.encode(usize::MAX).unwrap(), &changes))?;
    }
}
