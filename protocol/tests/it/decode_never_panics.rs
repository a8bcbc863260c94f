//! Decoding is total: arbitrary bytes, and valid frames with one byte changed or cut short,
//! decode to `Ok` or `Err` and never panic. Arbitrary valid messages round-trip.
//!
//! A server decodes whatever a peer sends, so a panic here would be a remote crash.

use crate::strategies::{client_message, server_message};
use chorus_protocol::{ClientMessage, DEFAULT_MAX_FRAME, ServerMessage};
use proptest::prelude::*;

/// Enough cases to explore every variant and tag, few enough to finish in seconds.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 2000,
        ..ProptestConfig::default()
    }
}

/// Decode `frame` both ways. Any panic fails the property; the results do not matter.
fn decode_both(frame: &[u8]) {
    let _ = ClientMessage::decode(frame, DEFAULT_MAX_FRAME);
    let _ = ServerMessage::decode(frame, DEFAULT_MAX_FRAME);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..2048)) {
        decode_both(&frame);
    }

    #[test]
    fn arbitrary_bytes_with_small_limits_never_panic(
        frame in proptest::collection::vec(any::<u8>(), 0..64),
        max_frame in 0usize..64,
    ) {
        let _ = ClientMessage::decode(&frame, max_frame);
        let _ = ServerMessage::decode(&frame, max_frame);
    }

    #[test]
    fn valid_client_messages_round_trip(msg in client_message()) {
        let frame = msg.encode(usize::MAX).unwrap();
        prop_assert_eq!(ClientMessage::decode(&frame, usize::MAX), Ok(msg));
    }

    #[test]
    fn valid_server_messages_round_trip(msg in server_message()) {
        let frame = msg.encode(usize::MAX).unwrap();
        prop_assert_eq!(ServerMessage::decode(&frame, usize::MAX), Ok(msg));
    }

    #[test]
    fn one_changed_byte_never_panics(
        msg in client_message(),
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut frame = msg.encode(usize::MAX).unwrap();
        let at = index.index(frame.len());
        frame[at] = byte;
        decode_both(&frame);
    }

    #[test]
    fn one_changed_byte_of_a_server_message_never_panics(
        msg in server_message(),
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut frame = msg.encode(usize::MAX).unwrap();
        let at = index.index(frame.len());
        frame[at] = byte;
        decode_both(&frame);
    }

    /// Postcard is a prefix code: a frame cut short is never mistaken for a whole message.
    #[test]
    fn truncated_frames_are_errors(msg in client_message(), index in any::<prop::sample::Index>()) {
        let frame = msg.encode(usize::MAX).unwrap();
        let cut = index.index(frame.len());
        prop_assert!(ClientMessage::decode(&frame[..cut], usize::MAX).is_err());
    }

    /// See [`truncated_frames_are_errors`].
    #[test]
    fn truncated_server_frames_are_errors(
        msg in server_message(),
        index in any::<prop::sample::Index>(),
    ) {
        let frame = msg.encode(usize::MAX).unwrap();
        let cut = index.index(frame.len());
        prop_assert!(ServerMessage::decode(&frame[..cut], usize::MAX).is_err());
    }
}
