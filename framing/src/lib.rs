//! WebSocket framing (RFC 6455 section 5), sans-IO: bytes in, headers and frames out, no
//! socket, no handshake and no message reassembly.
//!
//! Every Rust part of Chorus that reads or writes WebSocket frames by hand uses this crate,
//! so the rules are written once:
//! - `chorus-server` (`server/src/ws.rs`) parses and unmasks client frames and builds its
//!   server frames here; its integration tests build client frames and read server frames
//!   with it.
//! - `chorus-bench-baseline`, the benchmark's raw Rust peer, does the same framing as the
//!   server (in its own per-thread arena, so a frame costs no allocation).
//! - `chorus-bench`, the load generator, writes masked client frames and parses server
//!   frames.
//! - `chorus-test-harness` splits the server's frames in its relay.
//!
//! # Layout
//! - [`Opcode`]: the six opcodes RFC 6455 defines.
//! - [`parse_client_header`] and [`parse_server_header`]: a frame header at the start of a
//!   buffer, `Ok(None)` until complete, checked as soon as the bytes each rule needs are in
//!   (a client must mask every frame, a server none). Broken rules are an [`Error`].
//! - [`header_len`], [`put_header`] and [`write_header`]: headers of either direction, with
//!   or without a mask; [`apply_mask`] masks and unmasks, eight bytes at a time.
//! - [`server_frame`] and [`close_frame`]: a complete server frame in one [`Bytes`] (one
//!   allocation); [`frame`], a complete frame of either direction in a `Vec` (tests, tools).
//! - [`parse_close_payload`], [`is_valid_close_code`] and the `CLOSE_*` codes.
//! - [`payload_len`] of a complete frame, and [`frame_len`], the length a header declares.
//!
//! # Example
//! ```
//! use chorus_framing::{Opcode, frame, parse_client_header};
//!
//! // A client writes a masked frame...
//! let mut wire = frame(true, Opcode::Binary, b"hello", Some([1, 2, 3, 4]));
//! // ...and the server parses its header and unmasks the payload in place.
//! let header = parse_client_header(&wire, 1024).unwrap().expect("a complete header");
//! assert_eq!((header.opcode, header.frame_len()), (Opcode::Binary, wire.len()));
//! let payload = &mut wire[header.len..];
//! header.unmask(payload);
//! assert_eq!(payload, b"hello");
//! ```

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

/// A frame's opcode (RFC 6455 section 5.2); the reserved ones are an
/// [`Error::UnknownOpcode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// The next fragment of a fragmented message.
    Continuation,
    /// A text message (UTF-8; not checked here).
    Text,
    /// A binary message.
    Binary,
    /// Close, with an optional code and reason ([`parse_close_payload`]).
    Close,
    /// Ping, answered with a pong carrying the same payload.
    Ping,
    /// Pong.
    Pong,
}

impl Opcode {
    /// The opcode's four bits.
    #[inline]
    pub const fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// The opcode with these four bits, `None` for a reserved one (0x3-0x7, 0xB-0xF).
    #[inline]
    pub const fn from_bits(bits: u8) -> Option<Opcode> {
        Some(match bits {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    /// Whether this is a control frame (close, ping, pong): never fragmented, at most
    /// [`MAX_CONTROL_PAYLOAD`] bytes.
    #[inline]
    pub const fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// A rule of RFC 6455 a frame header broke, or a frame over the caller's limit. One variant
/// per rule, so that a peer can name it (the server's close reasons do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// A reserved bit (RSV1-3) set, with no extension negotiated to give it a meaning
    /// (section 5.2).
    ReservedBits,
    /// A client frame without the mask bit: a client masks every frame (section 5.1).
    UnmaskedFrame,
    /// A server frame with the mask bit: a server masks none (section 5.1).
    MaskedFrame,
    /// An opcode RFC 6455 reserves (0x3-0x7 or 0xB-0xF; section 5.2): the four bits.
    UnknownOpcode(u8),
    /// A close, ping or pong frame without FIN: control frames are never fragmented
    /// (section 5.5).
    FragmentedControlFrame,
    /// A control frame longer than 125 bytes, or with its length in the 16- or 64-bit form
    /// (section 5.5).
    ControlFrameTooLong,
    /// A frame whose payload is over the caller's limit (or over `usize`).
    TooLarge {
        /// The payload length the header declares.
        len: u64,
        /// The caller's limit.
        max: usize,
    },
    /// A close frame with a one-byte payload: a code takes two (section 5.5.1).
    CloseOneBytePayload,
}

impl Error {
    /// The close code to answer with (section 7.4.1): [`CLOSE_MESSAGE_TOO_BIG`] for
    /// [`Error::TooLarge`], [`CLOSE_PROTOCOL_ERROR`] for a broken rule.
    pub fn close_code(self) -> u16 {
        match self {
            Error::TooLarge { .. } => CLOSE_MESSAGE_TOO_BIG,
            _ => CLOSE_PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ReservedBits => f.write_str("RSV bits set but no extension was negotiated"),
            Error::UnmaskedFrame => f.write_str("a client frame without a mask"),
            Error::MaskedFrame => f.write_str("a masked server frame"),
            Error::UnknownOpcode(bits) => write!(f, "reserved opcode {bits:#x}"),
            Error::FragmentedControlFrame => f.write_str("a fragmented control frame"),
            Error::ControlFrameTooLong => f.write_str("a control frame over 125 bytes"),
            Error::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes over the limit of {max}")
            }
            Error::CloseOneBytePayload => f.write_str("a close frame of one byte"),
        }
    }
}

impl std::error::Error for Error {}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Most bytes a frame header takes: 2, 8 of extended length and 4 of mask.
pub const MAX_HEADER_LEN: usize = 14;

/// Most bytes of payload a control frame carries (section 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Most bytes of reason a close frame carries: a control frame's payload less the code.
pub const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

/// Close code: the endpoint broke the protocol.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code: a type of data the endpoint does not accept (say, text where only binary is).
pub const CLOSE_UNSUPPORTED_DATA: u16 = 1003;
/// Close code: a message's data is not of its type (section 7.4.1: "non-UTF-8 data within
/// a text message").
pub const CLOSE_INVALID_DATA: u16 = 1007;
/// Close code: a message that breaks the endpoint's policy.
pub const CLOSE_POLICY_VIOLATION: u16 = 1008;
/// Close code: a message too big to process.
pub const CLOSE_MESSAGE_TOO_BIG: u16 = 1009;

/// The header of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Whether this is the last frame of its message.
    pub fin: bool,
    /// The frame's opcode.
    pub opcode: Opcode,
    /// The masking key: always there in a client frame, never in a server frame.
    pub mask: Option<[u8; 4]>,
    /// Bytes of header, mask included: 2, 4 or 10, and 4 more with a mask.
    pub len: usize,
    /// Bytes of payload after the header.
    pub payload_len: usize,
}

impl Header {
    /// Header and payload: the bytes the whole frame takes.
    #[inline]
    pub fn frame_len(&self) -> usize {
        self.len + self.payload_len
    }

    /// Unmasks this frame's `payload` in place ([`apply_mask`]); a server frame's is left
    /// as it is.
    #[inline]
    pub fn unmask(&self, payload: &mut [u8]) {
        if let Some(mask) = self.mask {
            apply_mask(payload, mask);
        }
    }
}

/// Parses the header of a client frame at the start of `buf`, as a server does: `Ok(None)`
/// until it is complete. The frame must be masked, and its payload at most `max_payload`
/// bytes. Each rule is checked as soon as the bytes it needs are in (the opcode and control
/// frame rules from the first two bytes), so a broken frame is refused without waiting for
/// the rest of it.
#[inline]
pub fn parse_client_header(buf: &[u8], max_payload: usize) -> Result<Option<Header>> {
    parse_header(buf, true, max_payload)
}

/// Parses the header of a server frame at the start of `buf`, as a client does: `Ok(None)`
/// until it is complete. The frame must not be masked, and its payload must be at most
/// `max_payload` bytes. Rules are checked as in [`parse_client_header`].
#[inline]
pub fn parse_server_header(buf: &[u8], max_payload: usize) -> Result<Option<Header>> {
    parse_header(buf, false, max_payload)
}

#[inline]
fn parse_header(buf: &[u8], masked: bool, max_payload: usize) -> Result<Option<Header>> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    let len7 = b1 & 0x7F;
    // No extension is ever negotiated, so the RSV bits must be clear.
    if b0 & 0x70 != 0 {
        return Err(Error::ReservedBits);
    }
    match (b1 & 0x80 != 0, masked) {
        (false, true) => return Err(Error::UnmaskedFrame),
        (true, false) => return Err(Error::MaskedFrame),
        _ => {}
    }
    let Some(opcode) = Opcode::from_bits(b0 & 0x0F) else {
        return Err(Error::UnknownOpcode(b0 & 0x0F));
    };
    if opcode.is_control() {
        if !fin {
            return Err(Error::FragmentedControlFrame);
        }
        // At most 125 bytes, so always in the 7-bit form.
        if usize::from(len7) > MAX_CONTROL_PAYLOAD {
            return Err(Error::ControlFrameTooLong);
        }
    }
    let (payload_len, at) = match len7 {
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
    let payload_len = match usize::try_from(payload_len) {
        Ok(n) if n <= max_payload => n,
        _ => {
            return Err(Error::TooLarge {
                len: payload_len,
                max: max_payload,
            });
        }
    };
    let (mask, len) = if masked {
        let Some(mask) = buf.get(at..at + 4) else {
            return Ok(None);
        };
        (Some(mask.try_into().expect("4 bytes")), at + 4)
    } else {
        (None, at)
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask,
        len,
        payload_len,
    }))
}

/// Bytes of header for a frame with `payload_len` bytes of payload, in the shortest length
/// form (as RFC 6455 asks), and with a masking key if `masked`.
#[inline]
pub fn header_len(payload_len: usize, masked: bool) -> usize {
    let len = match payload_len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    };
    if masked { len + 4 } else { len }
}

/// Appends a frame header to `out`: `fin`, `opcode`, `payload_len` in the shortest form,
/// and the mask bit and key if there is a `mask` (a client frame). The payload (masked, for
/// a client frame: [`apply_mask`]) goes after it.
#[inline]
pub fn put_header<B: BufMut>(
    out: &mut B,
    fin: bool,
    opcode: Opcode,
    payload_len: usize,
    mask: Option<[u8; 4]>,
) {
    out.put_u8(if fin { 0x80 } else { 0 } | opcode.bits());
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload_len {
        // The arms bound the length, so the casts cannot truncate.
        len @ 0..=125 => out.put_u8(mask_bit | len as u8),
        len @ 126..=0xFFFF => {
            out.put_u8(mask_bit | 126);
            out.put_u16(len as u16);
        }
        len => {
            out.put_u8(mask_bit | 127);
            out.put_u64(len as u64);
        }
    }
    if let Some(mask) = mask {
        out.put_slice(&mask);
    }
}

/// Writes a frame header as [`put_header`] does into the start of `out`, which must hold
/// [`header_len`] bytes ([`MAX_HEADER_LEN`] always do); returns the bytes written.
///
/// # Panics
/// If `out` is too short.
#[inline]
pub fn write_header(
    out: &mut [u8],
    fin: bool,
    opcode: Opcode,
    payload_len: usize,
    mask: Option<[u8; 4]>,
) -> usize {
    let total = out.len();
    let mut rest = out;
    put_header(&mut rest, fin, opcode, payload_len, mask);
    total - rest.len()
}

/// XORs `payload` with `mask`, in place: masking and unmasking are the same operation.
/// Eight bytes at a time; `payload` must start at the first byte of a frame's payload.
#[inline]
pub fn apply_mask(payload: &mut [u8], mask: [u8; 4]) {
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

/// A complete, final, unmasked server frame carrying `payload`: the bytes to write to the
/// socket, header and payload in one allocation.
#[inline]
pub fn server_frame(opcode: Opcode, payload: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(header_len(payload.len(), false) + payload.len());
    put_header(&mut frame, true, opcode, payload.len(), None);
    frame.extend_from_slice(payload);
    frame.freeze()
}

/// A server close frame with `code` and `reason`, of which at most [`MAX_CLOSE_REASON`]
/// bytes are sent (cut at that byte, even inside a character), in one allocation.
pub fn close_frame(code: u16, reason: &str) -> Bytes {
    let reason = &reason.as_bytes()[..reason.len().min(MAX_CLOSE_REASON)];
    let len = 2 + reason.len();
    let mut frame = BytesMut::with_capacity(header_len(len, false) + len);
    put_header(&mut frame, true, Opcode::Close, len, None);
    frame.put_u16(code);
    frame.extend_from_slice(reason);
    frame.freeze()
}

/// A complete frame of either direction in a new `Vec`, its payload masked with `mask` if
/// there is one (a client frame): for tests and tools, which also change its bytes to break
/// rules on purpose.
pub fn frame(fin: bool, opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let header = header_len(payload.len(), mask.is_some());
    let mut out = Vec::with_capacity(header + payload.len());
    put_header(&mut out, fin, opcode, payload.len(), mask);
    out.extend_from_slice(payload);
    if let Some(mask) = mask {
        apply_mask(&mut out[header..], mask);
    }
    out
}

/// The code and reason of a close frame's (unmasked) payload: `None` for an empty one. The
/// code is not checked ([`is_valid_close_code`]), nor is the reason's UTF-8.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<(u16, &[u8])>> {
    match *payload {
        [] => Ok(None),
        [_] => Err(Error::CloseOneBytePayload),
        [a, b, ref reason @ ..] => Ok(Some((u16::from_be_bytes([a, b]), reason))),
    }
}

/// Whether an endpoint may send `code` in a close frame (section 7.4): the defined codes
/// (1004 is reserved; 1005, 1006 and 1015 are never sent), the registered ones up to 1014,
/// and the 3000-4999 range of libraries and applications.
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// The payload length of the complete frame `frame` (either direction): its length less
/// its header's. 0 for fewer than two bytes.
#[inline]
pub fn payload_len(frame: &[u8]) -> usize {
    let Some(&b1) = frame.get(1) else {
        return 0;
    };
    let header = match b1 & 0x7F {
        126 => 4,
        127 => 10,
        _ => 2,
    } + if b1 & 0x80 != 0 { 4 } else { 0 };
    frame.len().saturating_sub(header)
}

/// The length, header and payload, that the frame at the start of `buf` (either direction)
/// declares, once its header's length fields are in (the payload need not be); no rule is
/// checked. For relays that pass frames on as they are. `None` also for a length over
/// `usize`.
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    let [_, b1, ref rest @ ..] = *buf else {
        return None;
    };
    let (extended, payload) = match b1 & 0x7F {
        126 => (
            2,
            u64::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
        ),
        127 => (8, u64::from_be_bytes(rest.get(..8)?.try_into().ok()?)),
        len => (0, u64::from(len)),
    };
    let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
    usize::try_from(payload)
        .ok()?
        .checked_add(2 + extended + mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

    /// Payload lengths at and around each length form's bounds.
    const LENGTHS: [usize; 12] = [0, 1, 7, 8, 9, 125, 126, 127, 1000, 0xFFFF, 0x10000, 70_001];

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7) as u8).collect()
    }

    #[test]
    fn each_length_form_has_its_exact_bytes() {
        // 7-bit.
        assert_eq!(
            frame(true, Opcode::Binary, &[1, 2, 3], None),
            [0x82, 3, 1, 2, 3]
        );
        assert_eq!(&server_frame(Opcode::Binary, &[9; 125])[..2], [0x82, 125]);
        // 16-bit.
        assert_eq!(
            &server_frame(Opcode::Binary, &[0; 126])[..4],
            [0x82, 126, 0, 126]
        );
        assert_eq!(
            &server_frame(Opcode::Binary, &[0; 0xFFFF])[..4],
            [0x82, 126, 0xFF, 0xFF]
        );
        // 64-bit.
        assert_eq!(
            &server_frame(Opcode::Binary, &[0; 0x10000])[..10],
            [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]
        );
        // Masked: the mask bit, then the key after the length.
        assert_eq!(
            frame(false, Opcode::Text, &[0; 200], Some(MASK))[..8],
            [0x01, 0x80 | 126, 0, 200, 0x12, 0x34, 0x56, 0x78]
        );
        for (len, header) in [(0, 2), (125, 2), (126, 4), (0xFFFF, 4), (0x10000, 10)] {
            assert_eq!(header_len(len, false), header);
            assert_eq!(header_len(len, true), header + 4);
            let frame = server_frame(Opcode::Binary, &payload(len));
            assert_eq!(frame.len(), header + len);
            assert_eq!(&frame[header..], &payload(len)[..]);
        }
    }

    #[test]
    fn client_frames_of_every_length_form_round_trip() {
        for len in LENGTHS {
            let payload = payload(len);
            let mut wire = frame(true, Opcode::Binary, &payload, Some(MASK));
            let header = parse_client_header(&wire, 1 << 20).unwrap().unwrap();
            assert_eq!(header.opcode, Opcode::Binary);
            assert!(header.fin);
            assert_eq!(header.mask, Some(MASK));
            assert_eq!(header.len, header_len(len, true));
            assert_eq!(header.payload_len, len);
            assert_eq!(header.frame_len(), wire.len());
            assert_eq!(payload_len(&wire), len);
            assert_eq!(frame_len(&wire), Some(wire.len()));
            let body = &mut wire[header.len..];
            assert!(len < 8 || body != &payload[..], "{len}: masked on the wire");
            header.unmask(body);
            assert_eq!(body, &payload[..], "{len}");
        }
    }

    #[test]
    fn server_frames_of_every_length_form_round_trip() {
        for len in LENGTHS {
            let payload = payload(len);
            let wire = server_frame(Opcode::Text, &payload);
            let header = parse_server_header(&wire, 1 << 20).unwrap().unwrap();
            assert_eq!((header.fin, header.opcode), (true, Opcode::Text));
            assert_eq!(header.mask, None);
            assert_eq!(header.frame_len(), wire.len());
            assert_eq!(&wire[header.len..], &payload[..]);
            assert_eq!(payload_len(&wire), len);
            assert_eq!(frame_len(&wire), Some(wire.len()));
            assert_eq!(wire, frame(true, Opcode::Text, &payload, None));
        }
    }

    #[test]
    fn written_headers_match_put_headers_and_parse_back() {
        for len in LENGTHS {
            for mask in [None, Some(MASK)] {
                let mut out = [0u8; MAX_HEADER_LEN];
                let n = write_header(&mut out, false, Opcode::Continuation, len, mask);
                assert_eq!(n, header_len(len, mask.is_some()));
                let mut put = Vec::new();
                put_header(&mut put, false, Opcode::Continuation, len, mask);
                assert_eq!(&out[..n], &put[..]);
                let header = match mask {
                    Some(_) => parse_client_header(&out[..n], usize::MAX),
                    None => parse_server_header(&out[..n], usize::MAX),
                };
                let header = header.unwrap().unwrap();
                assert_eq!((header.fin, header.opcode), (false, Opcode::Continuation));
                assert_eq!(
                    (header.len, header.payload_len, header.mask),
                    (n, len, mask)
                );
            }
        }
    }

    #[test]
    fn a_header_is_incomplete_until_its_length_and_mask_are_in() {
        for len in [5, 300, 70_000] {
            let client = frame(true, Opcode::Binary, &payload(len), Some(MASK));
            let server = frame(true, Opcode::Binary, &payload(len), None);
            let (client_header, server_header) = (header_len(len, true), header_len(len, false));
            for cut in 0..client_header {
                assert_eq!(parse_client_header(&client[..cut], usize::MAX), Ok(None));
            }
            for cut in 0..server_header {
                assert_eq!(parse_server_header(&server[..cut], usize::MAX), Ok(None));
                assert_eq!(frame_len(&server[..cut]), None);
            }
            assert!(matches!(
                parse_client_header(&client[..client_header], usize::MAX),
                Ok(Some(_))
            ));
            assert!(matches!(
                parse_server_header(&server[..server_header], usize::MAX),
                Ok(Some(_))
            ));
            // The length is known before the mask is in.
            assert_eq!(frame_len(&client[..server_header]), Some(client.len()));
        }
    }

    #[test]
    fn clients_must_mask_and_servers_must_not() {
        let masked = frame(true, Opcode::Binary, b"x", Some(MASK));
        let unmasked = frame(true, Opcode::Binary, b"x", None);
        assert_eq!(
            parse_client_header(&unmasked, 100),
            Err(Error::UnmaskedFrame)
        );
        assert_eq!(parse_server_header(&masked, 100), Err(Error::MaskedFrame));
        // Refused from the first two bytes.
        assert_eq!(
            parse_client_header(&[0x82, 0x7F], 100),
            Err(Error::UnmaskedFrame)
        );
        assert_eq!(
            parse_server_header(&[0x82, 0xFF], 100),
            Err(Error::MaskedFrame)
        );
    }

    #[test]
    fn broken_rules_are_named_from_the_first_two_bytes() {
        for (wire, error) in [
            ([0xC2, 0x80], Error::ReservedBits),
            ([0x83, 0x80], Error::UnknownOpcode(0x3)),
            ([0x8B, 0x80], Error::UnknownOpcode(0xB)),
            ([0x09, 0x80], Error::FragmentedControlFrame),
            ([0x89, 0xFE], Error::ControlFrameTooLong),
            ([0x88, 0xFF], Error::ControlFrameTooLong),
        ] {
            assert_eq!(
                parse_client_header(&wire, 1 << 16),
                Err(error),
                "{wire:02x?}"
            );
            let unmasked = [wire[0], wire[1] & 0x7F];
            assert_eq!(parse_server_header(&unmasked, 1 << 16), Err(error));
            assert_eq!(error.close_code(), CLOSE_PROTOCOL_ERROR);
        }
        // A control frame of 125 bytes is fine.
        let ping = frame(true, Opcode::Ping, &[0; 125], Some(MASK));
        assert!(parse_client_header(&ping, 1 << 16).unwrap().is_some());
    }

    #[test]
    fn a_payload_over_the_limit_is_refused_from_its_length() {
        let at_limit = frame(true, Opcode::Binary, &[0; 100], Some(MASK));
        assert!(parse_client_header(&at_limit, 100).unwrap().is_some());
        let over = frame(true, Opcode::Binary, &[0; 101], Some(MASK));
        let too_large = Error::TooLarge { len: 101, max: 100 };
        assert_eq!(parse_client_header(&over[..2], 100), Err(too_large));
        assert_eq!(too_large.close_code(), CLOSE_MESSAGE_TOO_BIG);
        let huge = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            parse_server_header(&huge, 1 << 20),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn masking_twice_restores_the_payload_whatever_its_length() {
        for len in [0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 1001] {
            let original = payload(len);
            let mut data = original.clone();
            apply_mask(&mut data, [0xde, 0xad, 0xbe, 0xef]);
            for (i, (masked, plain)) in data.iter().zip(&original).enumerate() {
                assert_eq!(*masked, plain ^ [0xde, 0xad, 0xbe, 0xef][i % 4]);
            }
            apply_mask(&mut data, [0xde, 0xad, 0xbe, 0xef]);
            assert_eq!(data, original);
        }
    }

    #[test]
    fn close_frames_carry_a_code_and_a_reason_of_at_most_123_bytes() {
        assert_eq!(&close_frame(1000, "bye")[..], b"\x88\x05\x03\xe8bye");
        assert_eq!(&close_frame(1009, "")[..], [0x88, 2, 0x03, 0xF1]);
        let long = close_frame(4000, &"x".repeat(200));
        assert_eq!(long.len(), 2 + MAX_CONTROL_PAYLOAD);
        let header = parse_server_header(&long, 1 << 16).unwrap().unwrap();
        assert_eq!(header.opcode, Opcode::Close);
        let (code, reason) = parse_close_payload(&long[header.len..]).unwrap().unwrap();
        assert_eq!((code, reason.len()), (4000, MAX_CLOSE_REASON));
        assert_eq!(parse_close_payload(&[]), Ok(None));
        assert_eq!(parse_close_payload(&[3]), Err(Error::CloseOneBytePayload));
        assert_eq!(
            parse_close_payload(&[0x03, 0xe8, b'o', b'k']),
            Ok(Some((1000, &b"ok"[..])))
        );
    }

    #[test]
    fn close_codes_follow_rfc_6455_section_7_4() {
        for code in [1000u16, 1003, 1007, 1014, 3000, 4999] {
            assert!(is_valid_close_code(code), "{code}");
        }
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert!(!is_valid_close_code(code), "{code}");
        }
    }

    #[test]
    fn opcodes_round_trip_through_their_bits() {
        for bits in 0..16u8 {
            match Opcode::from_bits(bits) {
                Some(opcode) => {
                    assert_eq!(opcode.bits(), bits);
                    assert_eq!(opcode.is_control(), bits >= 8);
                }
                None => assert!(matches!(bits, 0x3..=0x7 | 0xB..=0xF), "{bits}"),
            }
        }
    }
}
