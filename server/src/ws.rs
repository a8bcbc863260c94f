//! The WebSocket protocol (RFC 6455), server side, as much of it as Chorus needs: the
//! upgrade, reading client frames, and building complete server frames.
//!
//! Chorus speaks it itself rather than through a WebSocket library for two reasons, both
//! about the many connections one server holds:
//! - Memory. An idle connection holds no read or write buffer. Reads land in a per-thread
//!   scratch buffer; only the bytes of an incomplete frame are kept by the connection, and
//!   only until the frame is complete.
//! - Fan-out. A room frame is built once per publish, WebSocket header included, and the
//!   same [`Bytes`] is written to every member, many frames per vectored write. A library
//!   that copies each message into its own frame buffer costs a copy per recipient.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The upgraded connection's byte stream.
pub(crate) type Io = TokioIo<Upgraded>;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Close code: the endpoint broke the protocol.
pub(crate) const CLOSE_PROTOCOL_ERROR: u16 = 1002;

/// Close code: a message's data is not of its type (a close reason that is not UTF-8).
pub(crate) const CLOSE_INVALID_DATA: u16 = 1007;

/// Size of the per-thread read buffer: one read takes in up to this many bytes of frames.
const SCRATCH: usize = 64 * 1024;

/// Most buffers given to one vectored write. Linux allows 1024 (`IOV_MAX`); 256 small
/// frames already fill a socket's send buffer.
const MAX_IOV: usize = 256;

thread_local! {
    /// Reads land here, so an idle connection holds no read buffer: only the bytes of an
    /// incomplete frame are copied into the connection's own.
    static SCRATCH_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

// ---------------------------------------------------------------------------------------
// The upgrade.

/// A WebSocket upgrade request, checked (RFC 6455 section 4.2.1); answer it with
/// [`Upgrade::accept`].
pub(crate) struct Upgrade {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
}

/// Why a request is not a WebSocket upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotUpgrade {
    /// Not a GET.
    Method,
    /// No `Connection: upgrade` and `Upgrade: websocket` headers.
    Headers,
    /// A `Sec-WebSocket-Version` other than 13.
    Version,
    /// No `Sec-WebSocket-Key`.
    Key,
    /// The HTTP connection cannot be upgraded (HTTP/2, or a test without a real one).
    NotUpgradable,
}

impl IntoResponse for NotUpgrade {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            NotUpgrade::Method => (
                StatusCode::METHOD_NOT_ALLOWED,
                "a WebSocket upgrade is a GET",
            ),
            NotUpgrade::Headers => (
                StatusCode::BAD_REQUEST,
                "not a WebSocket upgrade: Connection: upgrade and Upgrade: websocket expected",
            ),
            NotUpgrade::Version => (StatusCode::BAD_REQUEST, "Sec-WebSocket-Version must be 13"),
            NotUpgrade::Key => (StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing"),
            NotUpgrade::NotUpgradable => (
                StatusCode::UPGRADE_REQUIRED,
                "this connection cannot be upgraded",
            ),
        };
        (status, text).into_response()
    }
}

/// Whether the comma-separated header `name` lists `token` (case-insensitive).
fn header_lists(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = NotUpgrade;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, NotUpgrade> {
        if parts.method != Method::GET {
            return Err(NotUpgrade::Method);
        }
        let headers = &parts.headers;
        if !header_lists(headers, header::CONNECTION, "upgrade")
            || !header_lists(headers, header::UPGRADE, "websocket")
        {
            return Err(NotUpgrade::Headers);
        }
        if headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
        {
            return Err(NotUpgrade::Version);
        }
        let key = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .cloned()
            .ok_or(NotUpgrade::Key)?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(NotUpgrade::NotUpgradable)?;
        Ok(Upgrade { key, on_upgrade })
    }
}

impl Upgrade {
    /// The `101 Switching Protocols` answer, naming `protocol` if the client offered one;
    /// `serve` is spawned with the socket once the upgrade is done.
    pub(crate) fn accept<F, Fut>(self, protocol: Option<&'static str>, serve: F) -> Response
    where
        F: FnOnce(Io) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Upgrade { key, on_upgrade } = self;
        // Boxed: the task's future keeps what it captured for as long as the connection
        // lives, and the box is freed when `serve` is called.
        let serve: Box<dyn FnOnce(Io) -> Fut + Send> = Box::new(serve);
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => serve(TokioIo::new(upgraded)).await,
                Err(e) => tracing::debug!(error = %e, "upgrade failed"),
            }
        });
        let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept_key(key.as_bytes()));
        if let Some(protocol) = protocol {
            headers.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(protocol),
            );
        }
        response
    }
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
fn accept_key(key: &[u8]) -> HeaderValue {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let encoded = base64::engine::general_purpose::STANDARD.encode(sha1.finalize());
    HeaderValue::from_str(&encoded).expect("base64 is a valid header value")
}

// ---------------------------------------------------------------------------------------
// Server frames.

/// Bytes of header for an unmasked frame with `len` bytes of payload.
fn header_len(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    }
}

/// A complete, final, unmasked frame: the bytes to write to the socket.
fn server_frame(opcode: u8, payload: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(header_len(payload.len()) + payload.len());
    frame.put_u8(0x80 | opcode);
    match payload.len() {
        // The arms bound the length, so the casts cannot truncate.
        len @ 0..=125 => frame.put_u8(len as u8),
        len @ 126..=0xFFFF => {
            frame.put_u8(126);
            frame.put_u16(len as u16);
        }
        len => {
            frame.put_u8(127);
            frame.put_u64(len as u64);
        }
    }
    frame.extend_from_slice(payload);
    frame.freeze()
}

/// A binary frame carrying `payload` (an encoded server message).
pub(crate) fn binary(payload: &[u8]) -> Bytes {
    server_frame(OP_BINARY, payload)
}

/// A ping with an empty payload.
pub(crate) fn ping() -> Bytes {
    server_frame(OP_PING, &[])
}

/// A pong answering a ping with `payload`.
pub(crate) fn pong(payload: &[u8]) -> Bytes {
    server_frame(OP_PONG, payload)
}

/// The answer to a client's close frame: its code echoed, or no code if it gave none. Only
/// a valid code reaches here ([`valid_close_code`]); a frame with another is a
/// [`ReadError::BadClose`].
pub(crate) fn close_reply(code: Option<u16>) -> Bytes {
    match code {
        Some(code) => server_frame(OP_CLOSE, &code.to_be_bytes()),
        None => server_frame(OP_CLOSE, &[]),
    }
}

/// A close frame with `code` and `reason` (at most 123 bytes are sent).
pub(crate) fn close(code: u16, reason: &str) -> Bytes {
    let reason = &reason.as_bytes()[..reason.len().min(123)];
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason);
    server_frame(OP_CLOSE, &payload)
}

/// The payload length of a complete server frame built here.
pub(crate) fn payload_len(frame: &[u8]) -> usize {
    match frame.get(1).map(|b| b & 0x7F) {
        Some(126) => frame.len() - 4,
        Some(127) => frame.len() - 10,
        Some(_) => frame.len() - 2,
        None => 0,
    }
}

// ---------------------------------------------------------------------------------------
// Client frames.

/// A message from the client.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A binary message.
    Binary(Bytes),
    /// A text message (valid UTF-8).
    Text,
    /// A ping, to be answered with a pong carrying the payload.
    Ping(Bytes),
    /// A pong.
    Pong,
    /// A close frame, with the client's code if it gave one.
    Close(Option<u16>),
}

/// Whether a client may send `code` in a close frame (RFC 6455 section 7.4): the defined
/// codes an endpoint may send (1004 is reserved; 1005, 1006 and 1015 are never sent), the
/// registered ones up to 1014, and the 3000-4999 range of libraries and applications.
fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Why reading from the client failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// A frame or message over the size limit.
    TooLarge,
    /// The client broke RFC 6455; closed with 1002.
    Protocol,
    /// The client sent a close frame that breaks RFC 6455, answered with `code` (1002, or
    /// 1007 for a reason that is not UTF-8); `rule` says what was wrong, for the log.
    BadClose { code: u16, rule: &'static str },
    /// The connection ended or failed.
    Gone,
}

/// The header of one client frame.
#[derive(Debug, Clone, Copy)]
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    /// Bytes of header, mask included.
    len: usize,
    payload_len: usize,
}

/// Parses the client frame header at the start of `buf`: `Ok(None)` until it is complete.
fn parse_header(buf: &[u8], max_payload: usize) -> Result<Option<Header>, ReadError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    // No extension is negotiated, so the RSV bits must be clear; clients must mask.
    if b0 & 0x70 != 0 || b1 & 0x80 == 0 {
        return Err(ReadError::Protocol);
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
        _ => return Err(ReadError::Protocol),
    }
    let payload_len = match usize::try_from(payload_len) {
        Ok(n) if n <= max_payload => n,
        _ => return Err(ReadError::TooLarge),
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
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
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

/// The read side of a connection: bytes received but not yet handled, and the message
/// being reassembled from fragments. Both are empty (and allocate nothing) between
/// messages.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    /// Received bytes not yet handled: whole frames, then the start of an incomplete one.
    pending: BytesMut,
    /// The opcode and payload so far of a fragmented message (boxed: rare, and every
    /// connection would carry the space).
    fragments: Option<Box<(u8, BytesMut)>>,
}

impl Reader {
    /// Whether a complete frame is already buffered, so the next read will not wait.
    pub(crate) fn has_frame(&self) -> bool {
        match parse_header(&self.pending, usize::MAX) {
            Ok(Some(header)) => header.len + header.payload_len <= self.pending.len(),
            Ok(None) => false,
            Err(_) => true,
        }
    }

    /// The next message, reading from `io` when no complete one is buffered. Messages (and
    /// frames) over `max` bytes are [`ReadError::TooLarge`].
    pub(crate) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut Io,
        max: usize,
    ) -> Poll<Result<Incoming, ReadError>> {
        loop {
            if let Some(message) = self.parse(max)? {
                return Poll::Ready(Ok(message));
            }
            ready!(self.poll_fill(cx, io))?;
        }
    }

    /// Read once into the scratch buffer and keep what came.
    fn poll_fill(&mut self, cx: &mut Context<'_>, io: &mut Io) -> Poll<Result<(), ReadError>> {
        SCRATCH_BUF.with_borrow_mut(|scratch| {
            let mut buf = ReadBuf::new(&mut scratch[..]);
            match ready!(Pin::new(&mut *io).poll_read(cx, &mut buf)) {
                Ok(()) if !buf.filled().is_empty() => {
                    self.pending.extend_from_slice(buf.filled());
                    Poll::Ready(Ok(()))
                }
                _ => Poll::Ready(Err(ReadError::Gone)),
            }
        })
    }

    /// Take the next complete message out of the buffer, if there is one.
    fn parse(&mut self, max: usize) -> Result<Option<Incoming>, ReadError> {
        loop {
            let Some(header) = parse_header(&self.pending, max)? else {
                return Ok(None);
            };
            let frame_len = header.len + header.payload_len;
            if self.pending.len() < frame_len {
                // Make room for the whole frame at once rather than by doubling.
                self.pending.reserve(frame_len - self.pending.len());
                return Ok(None);
            }
            let mut frame = self.pending.split_to(frame_len);
            if self.pending.is_empty() {
                // Let go of the buffer, which the frames split off it still share.
                self.pending = BytesMut::new();
            }
            frame.advance(header.len);
            unmask(&mut frame, header.mask);
            if let Some(message) = self.frame(header, frame, max)? {
                return Ok(Some(message));
            }
        }
    }

    /// Handle one unmasked frame: a message, or `None` for a fragment of one.
    fn frame(
        &mut self,
        header: Header,
        payload: BytesMut,
        max: usize,
    ) -> Result<Option<Incoming>, ReadError> {
        let (opcode, payload) = match (header.opcode, self.fragments.take()) {
            (OP_PING, fragments) => {
                self.fragments = fragments;
                return Ok(Some(Incoming::Ping(payload.freeze())));
            }
            (OP_PONG, fragments) => {
                self.fragments = fragments;
                return Ok(Some(Incoming::Pong));
            }
            (OP_CLOSE, _) => {
                let bad = |code, rule| Err(ReadError::BadClose { code, rule });
                let code = match payload[..] {
                    [] => None,
                    [_] => return bad(CLOSE_PROTOCOL_ERROR, "a close payload of one byte"),
                    [a, b, ref reason @ ..] => {
                        let code = u16::from_be_bytes([a, b]);
                        if !valid_close_code(code) {
                            return bad(CLOSE_PROTOCOL_ERROR, "a close code not to be sent");
                        }
                        if std::str::from_utf8(reason).is_err() {
                            return bad(CLOSE_INVALID_DATA, "a close reason not UTF-8");
                        }
                        Some(code)
                    }
                };
                return Ok(Some(Incoming::Close(code)));
            }
            (OP_TEXT | OP_BINARY, None) if header.fin => (header.opcode, payload),
            (OP_TEXT | OP_BINARY, None) => {
                self.fragments = Some(Box::new((header.opcode, payload)));
                return Ok(None);
            }
            (OP_CONTINUATION, Some(fragments)) => {
                let (opcode, mut message) = *fragments;
                if message.len() + payload.len() > max {
                    return Err(ReadError::TooLarge);
                }
                message.extend_from_slice(&payload);
                if !header.fin {
                    self.fragments = Some(Box::new((opcode, message)));
                    return Ok(None);
                }
                (opcode, message)
            }
            // A continuation of nothing, or a new message inside a fragmented one.
            _ => return Err(ReadError::Protocol),
        };
        if opcode == OP_TEXT {
            if std::str::from_utf8(&payload).is_err() {
                return Err(ReadError::Protocol);
            }
            return Ok(Some(Incoming::Text));
        }
        Ok(Some(Incoming::Binary(payload.freeze())))
    }
}

// ---------------------------------------------------------------------------------------
// Writing.

/// Something holding a complete frame to write.
pub(crate) trait Frame {
    /// The frame's bytes not written yet.
    fn bytes(&mut self) -> &mut Bytes;
}

impl Frame for Bytes {
    fn bytes(&mut self) -> &mut Bytes {
        self
    }
}

/// Write every frame in `frames` (popping each once written), as few syscalls as it takes.
pub(crate) fn poll_write_frames<F: Frame>(
    cx: &mut Context<'_>,
    io: &mut Io,
    frames: &mut VecDeque<F>,
) -> Poll<io::Result<()>> {
    poll_write_both(cx, io, frames, &mut VecDeque::<Bytes>::new())
}

/// Write every frame in `first`, then every frame in `second` (popping each once
/// written), sharing vectored writes: a reply and the room frames after it leave in one
/// syscall.
pub(crate) fn poll_write_both<F: Frame, G: Frame>(
    cx: &mut Context<'_>,
    io: &mut Io,
    first: &mut VecDeque<F>,
    second: &mut VecDeque<G>,
) -> Poll<io::Result<()>> {
    while !first.is_empty() || !second.is_empty() {
        let mut slices = [IoSlice::new(&[]); MAX_IOV];
        let mut count = 0;
        let frames = first
            .iter_mut()
            .map(|f| &*f.bytes())
            .chain(second.iter_mut().map(|f| &*f.bytes()));
        for (slice, frame) in slices.iter_mut().zip(frames) {
            *slice = IoSlice::new(frame);
            count += 1;
        }
        let mut written = ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..count]))?;
        if written == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        written = consume(first, written);
        if written > 0 {
            let rest = consume(second, written);
            debug_assert_eq!(rest, 0, "written bytes came from a frame");
        }
    }
    Poll::Ready(Ok(()))
}

/// Pop the frames `written` bytes covered from the front of `frames`, advancing into a
/// frame written in part; returns the bytes left over for what comes after `frames`.
fn consume<F: Frame>(frames: &mut VecDeque<F>, mut written: usize) -> usize {
    while written > 0 {
        let Some(front) = frames.front_mut() else {
            return written;
        };
        let front = front.bytes();
        if written < front.len() {
            front.advance(written);
            return 0;
        }
        written -= front.len();
        frames.pop_front();
    }
    0
}

/// Flush and shut down the write side, so the client sees the end of the stream.
pub(crate) fn poll_shutdown(cx: &mut Context<'_>, io: &mut Io) -> Poll<io::Result<()>> {
    Pin::new(io).poll_shutdown(cx)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame, as a client library would write it.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
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

    fn reader_with(bytes: &[u8]) -> Reader {
        Reader {
            pending: BytesMut::from(bytes),
            fragments: None,
        }
    }

    #[test]
    fn frames_of_every_length_form_parse_back_to_their_payload() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        for len in [0, 1, 7, 8, 9, 125, 126, 127, 1000, 0xFFFF, 0x10000, 70_001] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let wire = client_frame(true, OP_BINARY, &payload, mask);
            let mut reader = reader_with(&wire[..wire.len() - 1]);
            assert!(!reader.has_frame());
            assert!(reader.parse(1 << 20).unwrap().is_none());
            reader.pending.extend_from_slice(&wire[wire.len() - 1..]);
            assert!(reader.has_frame());
            match reader.parse(1 << 20).unwrap() {
                Some(Incoming::Binary(body)) => assert_eq!(body, payload),
                other => panic!("{other:?}"),
            }
            assert!(reader.pending.is_empty());
        }
    }

    #[test]
    fn fragments_are_reassembled_around_control_frames() {
        let mask = [1, 2, 3, 4];
        let mut wire = client_frame(false, OP_BINARY, b"hel", mask);
        wire.extend(client_frame(true, OP_PING, b"p", mask));
        wire.extend(client_frame(false, OP_CONTINUATION, b"lo ", mask));
        wire.extend(client_frame(true, OP_CONTINUATION, b"world", mask));
        let mut reader = reader_with(&wire);
        assert!(matches!(reader.parse(100), Ok(Some(Incoming::Ping(p))) if p == "p"));
        assert!(matches!(reader.parse(100), Ok(Some(Incoming::Binary(m))) if m == "hello world"));
        // Over the limit in all, though each fragment is under it.
        let mut wire = client_frame(false, OP_BINARY, &[0; 60], mask);
        wire.extend(client_frame(true, OP_CONTINUATION, &[0; 60], mask));
        assert_eq!(
            reader_with(&wire).parse(100).err(),
            Some(ReadError::TooLarge)
        );
    }

    #[test]
    fn broken_frames_are_refused() {
        let mask = [9, 9, 9, 9];
        let mut unmasked = client_frame(true, OP_BINARY, b"x", mask);
        unmasked[1] &= 0x7F;
        let long_ping = client_frame(true, OP_PING, &[0; 126], mask);
        let stray = client_frame(true, OP_CONTINUATION, b"x", mask);
        let bad_text = client_frame(true, OP_TEXT, &[0xFF], mask);
        for wire in [unmasked, long_ping, stray, bad_text] {
            assert_eq!(
                reader_with(&wire).parse(100).err(),
                Some(ReadError::Protocol)
            );
        }
        let big = client_frame(true, OP_BINARY, &[0; 101], mask);
        assert_eq!(
            reader_with(&big).parse(100).err(),
            Some(ReadError::TooLarge)
        );
    }

    #[test]
    fn close_frames_are_checked_against_rfc_6455_section_7_4() {
        let close = |payload: &[u8]| {
            let wire = client_frame(true, OP_CLOSE, payload, [1, 2, 3, 4]);
            match reader_with(&wire).parse(100) {
                Ok(Some(Incoming::Close(code))) => Ok(code),
                Err(ReadError::BadClose { code, .. }) => Err(code),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(close(&[]), Ok(None));
        for code in [1000u16, 1003, 1007, 1014, 3000, 4999] {
            assert_eq!(close(&code.to_be_bytes()), Ok(Some(code)));
        }
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert_eq!(close(&code.to_be_bytes()), Err(CLOSE_PROTOCOL_ERROR));
        }
        assert_eq!(close(&[0x03]), Err(CLOSE_PROTOCOL_ERROR));
        assert_eq!(close(&[0x03, 0xe8, 0xff]), Err(CLOSE_INVALID_DATA));
    }

    #[test]
    fn a_partial_write_pops_what_it_covered_and_leaves_the_rest_for_the_next_queue() {
        let mut first: VecDeque<Bytes> =
            [Bytes::from_static(b"abc"), Bytes::from_static(b"de")].into();
        let mut second: VecDeque<Bytes> = [Bytes::from_static(b"fgh")].into();
        // 4 bytes: "abc" whole, one byte of "de".
        assert_eq!(consume(&mut first, 4), 0);
        assert_eq!(first, [Bytes::from_static(b"e")]);
        // 3 bytes: the rest of "de", then two of the second queue's "fgh".
        let left = consume(&mut first, 3);
        assert!(first.is_empty());
        assert_eq!(consume(&mut second, left), 0);
        assert_eq!(second, [Bytes::from_static(b"h")]);
    }

    #[test]
    fn server_frames_carry_their_length_and_payload() {
        for len in [0, 125, 126, 0xFFFF, 0x10000] {
            let payload = vec![5u8; len];
            let frame = binary(&payload);
            assert_eq!(frame[0], 0x82);
            assert_eq!(payload_len(&frame), len);
            assert_eq!(&frame[frame.len() - len..], &payload[..]);
        }
        assert_eq!(&close(1000, "bye")[..], b"\x88\x05\x03\xe8bye");
    }

    #[test]
    fn the_accept_key_is_the_rfc_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
