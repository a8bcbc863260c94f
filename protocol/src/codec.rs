//! Encoding and decoding with postcard, one value per WebSocket binary message.

use alloc::vec::Vec;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{ClientMessage, ServerMessage};

/// Default largest frame, in bytes (64 KiB).
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// Room for everything in a [`ServerMessage::Message`] frame but the body (room, sender,
/// numbers): a body of `max_frame - FRAME_OVERHEAD` bytes always fits in one frame.
pub const FRAME_OVERHEAD: usize = 1024;

/// Why a frame could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The frame is larger than the maximum allowed.
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size of the frame.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a valid message.
    #[error("malformed frame: {0}")]
    Malformed(postcard::Error),
    /// A valid message was followed by extra bytes.
    #[error("{0} unexpected bytes after the message")]
    TrailingBytes(usize),
}

/// The first allocation of an encoding, in bytes.
const ENCODE_CAPACITY: usize = 128;

/// Encode `value` into one frame, failing if it would exceed `max_frame` bytes.
pub fn encode<T: Serialize>(value: &T, max_frame: usize) -> Result<Vec<u8>, CodecError> {
    // Sized for a typical message, which then takes one allocation rather than a doubling
    // from eight bytes up.
    let bytes = postcard::to_extend(value, Vec::with_capacity(ENCODE_CAPACITY))
        .map_err(CodecError::Malformed)?;
    if bytes.len() > max_frame {
        return Err(CodecError::TooLarge {
            size: bytes.len(),
            max: max_frame,
        });
    }
    Ok(bytes)
}

/// Decode one frame. Never panics: any input that is not exactly one valid value, or is
/// longer than `max_frame`, is an error.
pub fn decode<T: DeserializeOwned>(frame: &[u8], max_frame: usize) -> Result<T, CodecError> {
    if frame.len() > max_frame {
        return Err(CodecError::TooLarge {
            size: frame.len(),
            max: max_frame,
        });
    }
    let (value, rest) = postcard::take_from_bytes(frame).map_err(CodecError::Malformed)?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

impl ClientMessage {
    /// Encode into one frame of at most `max_frame` bytes.
    pub fn encode(&self, max_frame: usize) -> Result<Vec<u8>, CodecError> {
        encode(self, max_frame)
    }

    /// Decode one frame of at most `max_frame` bytes.
    pub fn decode(frame: &[u8], max_frame: usize) -> Result<Self, CodecError> {
        decode(frame, max_frame)
    }
}

impl ServerMessage {
    /// Encode into one frame of at most `max_frame` bytes.
    pub fn encode(&self, max_frame: usize) -> Result<Vec<u8>, CodecError> {
        encode(self, max_frame)
    }

    /// Decode one frame of at most `max_frame` bytes.
    pub fn decode(frame: &[u8], max_frame: usize) -> Result<Self, CodecError> {
        decode(frame, max_frame)
    }
}
