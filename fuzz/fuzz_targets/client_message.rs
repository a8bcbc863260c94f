//! Request decoding: `ClientMessage::decode` on arbitrary bytes must never panic and never
//! accept a frame over its limit, and whatever it accepts must encode back into a frame
//! that decodes to the same message.
//!
//! Input: the frame, as the server hands it to the decoder.

#![no_main]

use chorus_protocol::{ClientMessage, DEFAULT_MAX_FRAME};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    let Ok(message) = ClientMessage::decode(frame, DEFAULT_MAX_FRAME) else {
        return;
    };
    assert!(frame.len() <= DEFAULT_MAX_FRAME);
    if let Some(under) = frame.len().checked_sub(1) {
        assert!(
            ClientMessage::decode(frame, under).is_err(),
            "accepted a frame over its limit"
        );
    }
    let again = message.encode(DEFAULT_MAX_FRAME).expect("re-encodes");
    assert_eq!(
        ClientMessage::decode(&again, DEFAULT_MAX_FRAME),
        Ok(message)
    );
});
