//! WebSocket frame headers (RFC 6455 §5.2), as pure functions over byte slices.
//!
//! Server-to-client frames are unmasked, so reading one is: two bytes, an optional
//! extended length, the payload. Anything this client did not negotiate (RSV bits, that is
//! extensions; reserved opcodes; masked server frames) is an error, never skipped.

use crate::{Error, Result};

/// A frame's opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// The next fragment of a fragmented message.
    Continuation,
    /// A UTF-8 text message (not validated here: the load generator only scans it).
    Text,
    /// A binary message.
    Binary,
    /// The peer is closing.
    Close,
    /// A ping, to be answered with a pong carrying the same payload.
    Ping,
    /// A pong.
    Pong,
}

impl Opcode {
    /// The opcode's four bits.
    pub fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    fn from_bits(bits: u8) -> Result<Opcode> {
        Ok(match bits {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            other => return Err(Error::Framing(format!("reserved opcode {other:#x}"))),
        })
    }

    /// Whether this is a control frame (close, ping, pong).
    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Whether this is the final fragment of its message.
    pub fin: bool,
    /// The opcode.
    pub opcode: Opcode,
    /// Bytes of header (2, 4 or 10: server frames carry no mask).
    pub header_len: usize,
    /// Bytes of payload.
    pub payload_len: usize,
}

impl Header {
    /// Header and payload together.
    pub fn frame_len(&self) -> usize {
        self.header_len + self.payload_len
    }
}

/// Parse the header of a server frame at the start of `buf`. `Ok(None)`: not all of the
/// header is there yet. Frames with a payload over `max_payload` are an error.
pub fn parse_header(buf: &[u8], max_payload: usize) -> Result<Option<Header>> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(Error::Framing(format!(
            "RSV bits set ({b0:#04x}) but no extension was negotiated"
        )));
    }
    if b1 & 0x80 != 0 {
        return Err(Error::Framing("the server masked a frame".into()));
    }
    let fin = b0 & 0x80 != 0;
    let opcode = Opcode::from_bits(b0 & 0x0F)?;
    let (header_len, payload_len) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(len) => (4, u64::from(u16::from_be_bytes([len[0], len[1]]))),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(len) => (10, u64::from_be_bytes(len.try_into().expect("8 bytes"))),
            None => return Ok(None),
        },
        len => (2, u64::from(len)),
    };
    if opcode.is_control() && (!fin || payload_len > 125) {
        return Err(Error::Framing(format!(
            "control frame {opcode:?} fragmented or over 125 bytes"
        )));
    }
    let payload_len = usize::try_from(payload_len)
        .ok()
        .filter(|len| *len <= max_payload)
        .ok_or_else(|| {
            Error::Framing(format!(
                "frame of {payload_len} bytes over the limit of {max_payload}"
            ))
        })?;
    Ok(Some(Header {
        fin,
        opcode,
        header_len,
        payload_len,
    }))
}

/// Most bytes a client frame header takes (2 + 8 of length + 4 of mask).
pub const MAX_CLIENT_HEADER: usize = 14;

/// Write a final, masked client frame header for a payload of `len` bytes into the start of
/// `out` (at least [`MAX_CLIENT_HEADER`] bytes); returns the bytes written.
pub fn write_client_header(out: &mut [u8], opcode: Opcode, len: usize, mask: [u8; 4]) -> usize {
    out[0] = 0x80 | opcode.bits();
    let n = if len < 126 {
        out[1] = 0x80 | len as u8;
        2
    } else if let Ok(len) = u16::try_from(len) {
        out[1] = 0x80 | 126;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        4
    } else {
        out[1] = 0x80 | 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    out[n..n + 4].copy_from_slice(&mask);
    n + 4
}

/// XOR `payload` with `mask` (masking and unmasking are the same operation).
pub fn apply_mask(payload: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = payload.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let value = u32::from_ne_bytes(chunk.try_into().expect("4 bytes")) ^ word;
        chunk.copy_from_slice(&value.to_ne_bytes());
    }
    for (byte, key) in chunks.into_remainder().iter_mut().zip(mask) {
        *byte ^= key;
    }
}

/// Build an unmasked server frame (for tests and the `ceiling` blaster).
pub fn server_frame(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(if fin { 0x80 } else { 0 } | opcode.bits());
    if payload.len() < 126 {
        out.push(payload.len() as u8);
    } else if let Ok(len) = u16::try_from(payload.len()) {
        out.push(126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// Split client frames back into (first byte, unmasked payload) pairs, as a server would.
#[cfg(test)]
pub(crate) fn decode_client_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        assert_eq!(bytes[1] & 0x80, 0x80, "client frames are masked");
        let (at, len) = match bytes[1] & 0x7F {
            126 => (4, usize::from(u16::from_be_bytes([bytes[2], bytes[3]]))),
            127 => (
                10,
                u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
            ),
            n => (2, usize::from(n)),
        };
        let mask: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
        let mut payload = bytes[at + 4..at + 4 + len].to_vec();
        apply_mask(&mut payload, mask);
        frames.push((bytes[0], payload));
        bytes = &bytes[at + 4 + len..];
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_medium_and_long_lengths_parse() {
        for len in [0, 1, 125, 126, 127, 65535, 65536, 100_000] {
            let frame = server_frame(true, Opcode::Binary, &vec![7; len]);
            let header = parse_header(&frame, usize::MAX).unwrap().unwrap();
            assert_eq!(header.payload_len, len);
            assert_eq!(header.frame_len(), frame.len());
            assert!(header.fin);
            assert_eq!(header.opcode, Opcode::Binary);
        }
    }

    #[test]
    fn a_partial_header_asks_for_more() {
        let frame = server_frame(true, Opcode::Text, &[1; 70_000]);
        for cut in 0..10 {
            assert_eq!(
                parse_header(&frame[..cut], usize::MAX).unwrap(),
                None,
                "{cut}"
            );
        }
        assert!(parse_header(&frame[..10], usize::MAX).unwrap().is_some());
    }

    #[test]
    fn what_was_not_negotiated_is_an_error() {
        // RSV1 (permessage-deflate), a masked frame, a reserved opcode.
        assert!(parse_header(&[0xC1, 0x00], 100).is_err());
        assert!(parse_header(&[0x81, 0x80, 0, 0, 0, 0], 100).is_err());
        assert!(parse_header(&[0x83, 0x00], 100).is_err());
        // A fragmented ping, a long ping.
        assert!(parse_header(&[0x09, 0x00], 100).is_err());
        assert!(parse_header(&[0x89, 126, 0, 126], 1000).is_err());
        // Over the limit.
        assert!(parse_header(&server_frame(true, Opcode::Binary, &[0; 101]), 100).is_err());
    }

    #[test]
    fn client_headers_carry_length_and_mask() {
        for len in [0, 125, 126, 65535, 65536] {
            let mut out = [0u8; MAX_CLIENT_HEADER];
            let n = write_client_header(&mut out, Opcode::Binary, len, [1, 2, 3, 4]);
            assert_eq!(out[0], 0x82);
            assert_eq!(out[1] & 0x80, 0x80);
            assert_eq!(&out[n - 4..n], &[1, 2, 3, 4]);
            // The same header with the mask bit cleared and the key dropped is a server
            // header for the same length.
            let mut unmasked = out[..n - 4].to_vec();
            unmasked[1] &= 0x7F;
            let header = parse_header(&unmasked, usize::MAX).unwrap().unwrap();
            assert_eq!(header.payload_len, len);
        }
    }

    #[test]
    fn masking_twice_restores_the_payload() {
        let original: Vec<u8> = (0..=255).cycle().take(1001).collect();
        let mut data = original.clone();
        apply_mask(&mut data, [0xde, 0xad, 0xbe, 0xef]);
        for (i, (masked, plain)) in data.iter().zip(&original).enumerate() {
            assert_eq!(*masked, plain ^ [0xde, 0xad, 0xbe, 0xef][i % 4]);
        }
        apply_mask(&mut data, [0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(data, original);
    }
}
