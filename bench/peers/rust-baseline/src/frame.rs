//! RFC 6455 framing, server side: parse a client frame's header, unmask its payload, and
//! build complete server frames (header and payload in one [`Bytes`]).

use std::cell::RefCell;

use bytes::{BufMut, Bytes, BytesMut};

/// Continuation of a fragmented message.
pub(crate) const OP_CONTINUATION: u8 = 0x0;
/// A text message.
pub(crate) const OP_TEXT: u8 = 0x1;
/// A binary message.
pub(crate) const OP_BINARY: u8 = 0x2;
/// Close.
pub(crate) const OP_CLOSE: u8 = 0x8;
/// Ping.
pub(crate) const OP_PING: u8 = 0x9;
/// Pong.
pub(crate) const OP_PONG: u8 = 0xA;

/// Close code: protocol error.
pub(crate) const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code: a data type this endpoint does not accept (text, fragmented messages).
pub(crate) const CLOSE_UNSUPPORTED: u16 = 1003;
/// Close code: a message that breaks the benchmark protocol.
pub(crate) const CLOSE_POLICY: u16 = 1008;
/// Close code: a message larger than the limit.
pub(crate) const CLOSE_TOO_BIG: u16 = 1009;

/// The header of one client frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Whether this is the last frame of its message.
    pub(crate) fin: bool,
    /// The frame's opcode (`OP_*`).
    pub(crate) opcode: u8,
    /// The masking key every client frame carries.
    pub(crate) mask: [u8; 4],
    /// Bytes of header, mask included.
    pub(crate) len: usize,
    /// Bytes of payload after the header.
    pub(crate) payload_len: usize,
}

impl Header {
    /// Header and payload: the bytes the whole frame takes.
    pub(crate) fn frame_len(&self) -> usize {
        self.len + self.payload_len
    }
}

/// Parses the client frame header at the start of `buf`: `Ok(None)` until it is complete,
/// `Err(close code)` when it breaks RFC 6455 or is over `max_payload`.
pub(crate) fn parse_header(buf: &[u8], max_payload: usize) -> Result<Option<Header>, u16> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    // No extension is negotiated, so the RSV bits must be clear; clients must mask.
    if b0 & 0x70 != 0 || b1 & 0x80 == 0 {
        return Err(CLOSE_PROTOCOL_ERROR);
    }
    let (payload_len, at) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => (u64::from_be_bytes(b.try_into().expect("8 bytes")), 10),
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    match opcode {
        OP_CONTINUATION | OP_TEXT | OP_BINARY => {}
        // Control frames are never fragmented and carry at most 125 bytes.
        OP_CLOSE | OP_PING | OP_PONG if fin && payload_len <= 125 => {}
        _ => return Err(CLOSE_PROTOCOL_ERROR),
    }
    let payload_len = match usize::try_from(payload_len) {
        Ok(n) if n <= max_payload => n,
        _ => return Err(CLOSE_TOO_BIG),
    };
    let Some(mask) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask: mask.try_into().expect("4 bytes"),
        len: at + 4,
        payload_len,
    }))
}

/// Unmasks a client payload in place, eight bytes at a time.
pub(crate) fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let [a, b, c, d] = mask;
    let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes((&*chunk).try_into().expect("8 bytes")) ^ wide;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    // Chunks are a multiple of 4 long, so the remainder starts at mask byte 0.
    for (byte, m) in chunks.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= m;
    }
}

/// Bytes of server (unmasked) header for a payload of `len` bytes.
fn server_header_len(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    }
}

/// Size of the per-thread chunks server frames are carved from.
const ARENA_CHUNK: usize = 64 * 1024;

thread_local! {
    /// Where this thread builds server frames. Frames are split off it, so a frame costs no
    /// allocation of its own: a chunk is allocated once per 64 KiB of frames and freed when
    /// the last frame cut from it has been written (and dropped) by every recipient.
    static ARENA: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Builds a complete, final, unmasked server frame: the bytes to write to the socket.
pub(crate) fn server_frame(opcode: u8, payload: &[u8]) -> Bytes {
    let total = server_header_len(payload.len()) + payload.len();
    ARENA.with_borrow_mut(|arena| {
        if arena.capacity() < total {
            *arena = BytesMut::with_capacity(total.max(ARENA_CHUNK));
        }
        arena.put_u8(0x80 | opcode);
        match payload.len() {
            // The match arms bound the length, so the casts cannot truncate.
            len @ 0..=125 => arena.put_u8(len as u8),
            len @ 126..=0xFFFF => {
                arena.put_u8(126);
                arena.put_u16(len as u16);
            }
            len => {
                arena.put_u8(127);
                arena.put_u64(len as u64);
            }
        }
        arena.extend_from_slice(payload);
        arena.split().freeze()
    })
}

/// A close frame with `code` and no reason.
pub(crate) fn close_frame(code: u16) -> Bytes {
    server_frame(OP_CLOSE, &code.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame, as a client library would write it.
    fn client_frame(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = vec![0x80 | opcode];
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n @ 126..=0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        out
    }

    #[test]
    fn client_frames_of_every_length_form_parse_and_unmask_back_to_their_payload() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        for len in [0, 1, 7, 8, 9, 125, 126, 127, 1000, 0xFFFF, 0x10000, 70_001] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut wire = client_frame(OP_BINARY, &payload, mask);
            let header = parse_header(&wire, 1 << 20).unwrap().unwrap();
            assert_eq!(header.opcode, OP_BINARY);
            assert!(header.fin);
            assert_eq!(header.payload_len, len);
            assert_eq!(header.frame_len(), wire.len());
            let body = &mut wire[header.len..];
            unmask(body, header.mask);
            assert_eq!(body, &payload[..]);
        }
    }

    #[test]
    fn a_header_is_incomplete_until_its_mask_has_arrived() {
        let wire = client_frame(OP_BINARY, &[1; 300], [1, 2, 3, 4]);
        for cut in 0..8 {
            assert_eq!(
                parse_header(&wire[..cut], 1 << 20),
                Ok(None),
                "cut at {cut}"
            );
        }
        assert!(parse_header(&wire[..8], 1 << 20).unwrap().is_some());
    }

    #[test]
    fn unmasked_oversized_and_malformed_frames_are_refused_with_their_close_code() {
        assert_eq!(parse_header(&[0x82, 0x05], 100), Err(CLOSE_PROTOCOL_ERROR));
        assert_eq!(parse_header(&[0xC2, 0x80], 100), Err(CLOSE_PROTOCOL_ERROR));
        assert_eq!(parse_header(&[0x83, 0x80], 100), Err(CLOSE_PROTOCOL_ERROR));
        assert_eq!(parse_header(&[0x09, 0x80], 100), Err(CLOSE_PROTOCOL_ERROR));
        assert_eq!(
            parse_header(&[0x89, 0xFE, 0, 126], 100),
            Err(CLOSE_PROTOCOL_ERROR)
        );
        assert_eq!(parse_header(&[0x82, 0xFE, 0, 101], 100), Err(CLOSE_TOO_BIG));
        let huge = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(parse_header(&huge, 100), Err(CLOSE_TOO_BIG));
    }

    #[test]
    fn server_frames_carry_the_shortest_length_form_and_the_payload_unmasked() {
        for (len, header) in [(0, 2), (125, 2), (126, 4), (0xFFFF, 4), (0x10000, 10)] {
            let payload = vec![0xAB; len];
            let frame = server_frame(OP_BINARY, &payload);
            assert_eq!(frame.len(), header + len);
            assert_eq!(frame[0], 0x82);
            assert_eq!(&frame[header..], &payload[..]);
        }
        assert_eq!(
            &server_frame(OP_BINARY, &[1, 2, 3])[..],
            &[0x82, 3, 1, 2, 3]
        );
        assert_eq!(
            &server_frame(OP_BINARY, &[0; 200])[..4],
            &[0x82, 126, 0, 200]
        );
        assert_eq!(&close_frame(1009)[..], &[0x88, 2, 0x03, 0xF1]);
    }

    #[test]
    fn frames_cut_from_the_arena_stay_intact_when_it_moves_on_to_a_new_chunk() {
        let frames: Vec<Bytes> = (0..200u8)
            .map(|i| server_frame(OP_BINARY, &[i; 1000]))
            .collect();
        for (i, frame) in frames.iter().enumerate() {
            assert_eq!(&frame[..4], &[0x82, 126, 0x03, 0xE8]);
            assert!(frame[4..].iter().all(|&b| b == i as u8));
        }
    }
}
