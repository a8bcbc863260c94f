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
//!
//! The framing itself (headers, masking, building frames) is `chorus-framing`'s, shared with
//! the benchmark's baseline peer, the load generator and the tests. What is here is the
//! server's side of it: the upgrade, the reader (fragments, close codes, limits, and which
//! [`Violation`] a broken rule is) and the writers.

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
use bytes::{Buf, Bytes, BytesMut};
use chorus_framing::{self as framing, CLOSE_INVALID_DATA, CLOSE_PROTOCOL_ERROR, Header, Opcode};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::task::TaskTracker;

/// The upgraded connection's byte stream.
pub(crate) type Io = TokioIo<Upgraded>;

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
    /// `serve` is called with the socket once the upgrade is done. The task that waits for
    /// the upgrade and then serves the socket is spawned on `tasks`, so that shutdown, which
    /// waits for them, also waits for a handshake answered just before it began.
    pub(crate) fn accept<F, Fut>(
        self,
        tasks: &TaskTracker,
        protocol: Option<&'static str>,
        serve: F,
    ) -> Response
    where
        F: FnOnce(Io) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Upgrade { key, on_upgrade } = self;
        // Boxed: the task's future keeps what it captured for as long as the connection
        // lives, and the box is freed when `serve` is called.
        let serve: Box<dyn FnOnce(Io) -> Fut + Send> = Box::new(serve);
        tasks.spawn(async move {
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

/// A binary frame carrying `payload` (an encoded server message).
pub(crate) fn binary(payload: &[u8]) -> Bytes {
    framing::server_frame(Opcode::Binary, payload)
}

/// A ping with an empty payload.
pub(crate) fn ping() -> Bytes {
    framing::server_frame(Opcode::Ping, &[])
}

/// A pong answering a ping with `payload`.
pub(crate) fn pong(payload: &[u8]) -> Bytes {
    framing::server_frame(Opcode::Pong, payload)
}

/// The answer to a client's close frame: its code echoed, or no code if it gave none. Only
/// a valid code reaches here ([`framing::is_valid_close_code`]); a frame with another is a
/// [`Violation::InvalidCloseCode`].
pub(crate) fn close_reply(code: Option<u16>) -> Bytes {
    match code {
        Some(code) => framing::close_frame(code, ""),
        None => framing::server_frame(Opcode::Close, &[]),
    }
}

/// A close frame with `code` and `reason` (at most 123 bytes are sent).
pub(crate) fn close(code: u16, reason: &str) -> Bytes {
    framing::close_frame(code, reason)
}

/// The payload length of a complete server frame built here.
pub(crate) use framing::payload_len;

// ---------------------------------------------------------------------------------------
// Client frames.

/// A message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Why reading from the client failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// A frame or message over the size limit (close code 1009).
    TooLarge,
    /// The client broke a rule of RFC 6455: close with [`Violation::close_code`].
    Protocol(Violation),
    /// The connection ended or failed.
    Gone,
}

impl From<Violation> for ReadError {
    fn from(violation: Violation) -> Self {
        ReadError::Protocol(violation)
    }
}

impl From<framing::Error> for ReadError {
    fn from(error: framing::Error) -> Self {
        use framing::Error as E;
        ReadError::Protocol(match error {
            E::TooLarge { .. } => return ReadError::TooLarge,
            E::ReservedBits => Violation::ReservedBits,
            // `MaskedFrame` comes only from parsing server frames, never done here.
            E::UnmaskedFrame | E::MaskedFrame => Violation::UnmaskedFrame,
            E::UnknownOpcode(_) => Violation::UnknownOpcode,
            E::FragmentedControlFrame => Violation::FragmentedControlFrame,
            E::ControlFrameTooLong => Violation::ControlFrameTooLong,
            E::CloseOneBytePayload => Violation::CloseOneBytePayload,
        })
    }
}

/// A rule of RFC 6455 a client broke, one variant per rule (as tungstenite's
/// `ProtocolError` names them), so that the log says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Violation {
    /// A frame without the mask bit: a client masks every frame (section 5.1).
    UnmaskedFrame,
    /// A reserved bit (RSV1-3) set, with no extension negotiated to give it a meaning
    /// (section 5.2).
    ReservedBits,
    /// An opcode RFC 6455 reserves: 0x3-0x7 or 0xB-0xF (section 5.2).
    UnknownOpcode,
    /// A close, ping or pong frame without FIN: control frames are never fragmented
    /// (section 5.5).
    FragmentedControlFrame,
    /// A control frame longer than 125 bytes, or with its length in the 16- or 64-bit form
    /// (section 5.5).
    ControlFrameTooLong,
    /// A continuation frame with no fragmented message to continue (section 5.4).
    UnexpectedContinuation,
    /// A text or binary frame while a fragmented message is unfinished: only its
    /// continuation frames (and control frames) may come until it ends (section 5.4).
    ExpectedContinuation,
    /// A text message that is not UTF-8 (section 8.1).
    InvalidUtf8Text,
    /// A close frame with a one-byte payload: a code takes two (section 5.5.1).
    CloseOneBytePayload,
    /// A close code no endpoint may send (section 7.4; [`framing::is_valid_close_code`]).
    InvalidCloseCode,
    /// A close reason that is not UTF-8 (section 5.5.1).
    InvalidUtf8CloseReason,
}

impl Violation {
    /// Every violation, for tests.
    #[cfg(test)]
    const ALL: [Violation; 11] = [
        Violation::UnmaskedFrame,
        Violation::ReservedBits,
        Violation::UnknownOpcode,
        Violation::FragmentedControlFrame,
        Violation::ControlFrameTooLong,
        Violation::UnexpectedContinuation,
        Violation::ExpectedContinuation,
        Violation::InvalidUtf8Text,
        Violation::CloseOneBytePayload,
        Violation::InvalidCloseCode,
        Violation::InvalidUtf8CloseReason,
    ];

    /// The rule's name for logs and metrics: stable snake_case text.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Violation::UnmaskedFrame => "unmasked_frame",
            Violation::ReservedBits => "reserved_bits",
            Violation::UnknownOpcode => "unknown_opcode",
            Violation::FragmentedControlFrame => "fragmented_control_frame",
            Violation::ControlFrameTooLong => "control_frame_too_long",
            Violation::UnexpectedContinuation => "unexpected_continuation",
            Violation::ExpectedContinuation => "expected_continuation",
            Violation::InvalidUtf8Text => "invalid_utf8_text",
            Violation::CloseOneBytePayload => "close_one_byte_payload",
            Violation::InvalidCloseCode => "invalid_close_code",
            Violation::InvalidUtf8CloseReason => "invalid_utf8_close_reason",
        }
    }

    /// The close code to answer with (RFC 6455 section 7.4.1): 1007 for data not of its
    /// message's type (text or a close reason that is not UTF-8), 1002 for the rest.
    pub(crate) fn close_code(self) -> u16 {
        match self {
            Violation::InvalidUtf8Text | Violation::InvalidUtf8CloseReason => CLOSE_INVALID_DATA,
            _ => CLOSE_PROTOCOL_ERROR,
        }
    }
}

/// The code of a client's close frame payload (`None` for an empty one), checked against
/// RFC 6455 section 5.5.1 and 7.4.
fn close_code(payload: &[u8]) -> Result<Option<u16>, ReadError> {
    let Some((code, reason)) = framing::parse_close_payload(payload)? else {
        return Ok(None);
    };
    if !framing::is_valid_close_code(code) {
        return Err(Violation::InvalidCloseCode.into());
    }
    if std::str::from_utf8(reason).is_err() {
        return Err(Violation::InvalidUtf8CloseReason.into());
    }
    Ok(Some(code))
}

/// The read side of a connection: bytes received but not yet handled, and the message
/// being reassembled from fragments. Both are empty (and allocate nothing) between
/// messages.
///
/// Its core is sans-IO: [`Reader::push`] takes in received bytes and
/// [`Reader::next_message`] takes out messages, touching no socket, so tests and fuzzers
/// drive it with any bytes cut any way. [`Reader::poll_next`] and [`Reader::poll_fill`]
/// move bytes from a socket into it, through a per-thread scratch buffer: the only copy a
/// byte goes through is from there into `pending`, and whole frames are then split off
/// `pending` and unmasked in place.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    /// Received bytes not yet handled: whole frames, then the start of an incomplete one.
    pending: BytesMut,
    /// The opcode and payload so far of a fragmented message (boxed: rare, and every
    /// connection would carry the space).
    fragments: Option<Box<(Opcode, BytesMut)>>,
    /// Bytes received since the connection opened.
    received: u64,
}

impl Reader {
    /// How many bytes have come from the client since the connection opened, handled or
    /// not: a count that grows whenever [`Reader::poll_fill`] (or [`Reader::poll_next`],
    /// through it) reads something. Liveness is measured from it, since bytes can sit here
    /// unhandled while the connection is busy. Cheap: a field read.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// Takes in `bytes` received from the client, in order, to be read by
    /// [`Reader::next_message`]. They are copied (the caller's buffer is reused for the
    /// next read); counted in [`Reader::received`].
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.received += bytes.len() as u64;
        self.pending.extend_from_slice(bytes);
    }

    /// Whether a complete frame (or a broken one) is already buffered, so the next read
    /// will not wait.
    pub(crate) fn has_frame(&self) -> bool {
        match self.header(usize::MAX) {
            Ok(Some(header)) => header.frame_len() <= self.pending.len(),
            Ok(None) => false,
            Err(_) => true,
        }
    }

    /// The next message, reading from `io` when no complete one is buffered. Messages (and
    /// frames) over `max` bytes are [`ReadError::TooLarge`].
    pub(crate) fn poll_next<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut R,
        max: usize,
    ) -> Poll<Result<Incoming, ReadError>> {
        loop {
            if let Some(message) = self.next_message(max)? {
                return Poll::Ready(Ok(message));
            }
            ready!(self.poll_fill(cx, io))?;
        }
    }

    /// Reads once from `io`, through the per-thread scratch buffer, and keeps what came
    /// (up to 64 KiB a call), without handling it: `Ready(Ok(()))` when at least one byte
    /// came, `Pending` when none is there now (`cx` is woken when some arrives), and
    /// `Ready(Err(ReadError::Gone))` at the end of the stream or on an error. What was
    /// read counts in [`Reader::received`] and waits for [`Reader::next_message`] (or
    /// [`Reader::poll_next`]), which the caller must go on calling: the buffer grows with
    /// every call until then.
    pub(crate) fn poll_fill<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut R,
    ) -> Poll<Result<(), ReadError>> {
        SCRATCH_BUF.with_borrow_mut(|scratch| {
            let mut buf = ReadBuf::new(&mut scratch[..]);
            match ready!(Pin::new(&mut *io).poll_read(cx, &mut buf)) {
                Ok(()) if !buf.filled().is_empty() => {
                    self.push(buf.filled());
                    Poll::Ready(Ok(()))
                }
                _ => Poll::Ready(Err(ReadError::Gone)),
            }
        })
    }

    /// Takes the next complete message out of what was pushed, if there is one: the
    /// sans-IO core of the reader. Messages (and frames) over `max` bytes are
    /// [`ReadError::TooLarge`]. After an error the connection is to be closed; what
    /// further calls return is unspecified.
    pub(crate) fn next_message(&mut self, max: usize) -> Result<Option<Incoming>, ReadError> {
        loop {
            let Some(header) = self.header(max)? else {
                return Ok(None);
            };
            let frame_len = header.frame_len();
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
            header.unmask(&mut frame);
            if let Some(message) = self.frame(header, frame)? {
                return Ok(Some(message));
            }
        }
    }

    /// The header of the next frame, once it is complete, checked against the message
    /// being reassembled: a continuation needs one, a new data frame needs none, and the
    /// whole message must fit in `max` bytes.
    fn header(&self, max: usize) -> Result<Option<Header>, ReadError> {
        let Some(header) = framing::parse_client_header(&self.pending, max)? else {
            return Ok(None);
        };
        match (header.opcode, &self.fragments) {
            (Opcode::Continuation, None) => Err(Violation::UnexpectedContinuation.into()),
            (Opcode::Continuation, Some(fragments))
                if fragments.1.len().saturating_add(header.payload_len) > max =>
            {
                Err(ReadError::TooLarge)
            }
            (Opcode::Text | Opcode::Binary, Some(_)) => Err(Violation::ExpectedContinuation.into()),
            _ => Ok(Some(header)),
        }
    }

    /// Handles one unmasked frame, whose header [`Reader::header`] checked: a message, or
    /// `None` for a fragment of one.
    fn frame(&mut self, header: Header, payload: BytesMut) -> Result<Option<Incoming>, ReadError> {
        let (opcode, payload) = match header.opcode {
            Opcode::Ping => return Ok(Some(Incoming::Ping(payload.freeze()))),
            Opcode::Pong => return Ok(Some(Incoming::Pong)),
            Opcode::Close => return Ok(Some(Incoming::Close(close_code(&payload)?))),
            Opcode::Continuation => {
                let Some(fragments) = self.fragments.take() else {
                    return Err(Violation::UnexpectedContinuation.into());
                };
                let (opcode, mut message) = *fragments;
                message.extend_from_slice(&payload);
                if !header.fin {
                    self.fragments = Some(Box::new((opcode, message)));
                    return Ok(None);
                }
                (opcode, message)
            }
            // Text or binary, starting a message.
            opcode if header.fin => (opcode, payload),
            opcode => {
                self.fragments = Some(Box::new((opcode, payload)));
                return Ok(None);
            }
        };
        if opcode == Opcode::Text {
            if std::str::from_utf8(&payload).is_err() {
                return Err(Violation::InvalidUtf8Text.into());
            }
            return Ok(Some(Incoming::Text));
        }
        Ok(Some(Incoming::Binary(payload.freeze())))
    }
}

/// Every message a fresh reader takes out of `stream` cut into chunks of `sizes` bytes
/// (cycled; an empty `sizes` is one chunk), taking all it can after each chunk, up to and
/// including the first error: what the connection would see.
#[cfg(any(test, feature = "fuzzing"))]
fn read_chunked(stream: &[u8], sizes: &[usize], max: usize) -> Vec<Result<Incoming, ReadError>> {
    let mut reader = Reader::default();
    let mut out = Vec::new();
    let mut rest = stream;
    let mut sizes = sizes.iter().copied().cycle();
    loop {
        let size = match sizes.next() {
            // An empty chunk, then a byte, so that a cut into empty chunks ends.
            Some(0) => {
                reader.push(&[]);
                1
            }
            Some(size) => size,
            None => rest.len(),
        };
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        reader.push(chunk);
        rest = tail;
        loop {
            match reader.next_message(max) {
                Ok(Some(message)) => out.push(Ok(message)),
                Ok(None) => break,
                Err(err) => {
                    out.push(Err(err));
                    return out;
                }
            }
        }
        if rest.is_empty() {
            assert_eq!(reader.received(), stream.len() as u64);
            return out;
        }
    }
}

/// Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`): not an API.
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    /// Reads `stream` with a fresh reader, whole and cut into chunks of `sizes` bytes, and
    /// panics unless both read the same messages and error, every message within `max`
    /// bytes (control frames within 125).
    pub fn ws_reader(stream: &[u8], sizes: &[usize], max: usize) {
        let whole = super::read_chunked(stream, &[], max);
        let chunked = super::read_chunked(stream, sizes, max);
        assert_eq!(whole, chunked, "the chunking changed what was read");
        for message in whole.iter().flatten() {
            match message {
                super::Incoming::Binary(body) => assert!(body.len() <= max),
                super::Incoming::Ping(body) => assert!(body.len() <= 125.min(max)),
                _ => {}
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Writing.

/// Something holding a complete frame to write.
pub(crate) trait Frame {
    /// The frame's bytes not written yet.
    fn remaining(&self) -> &[u8];

    /// Mark `written` more bytes (fewer than [`Frame::remaining`] holds) as written.
    fn advance(&mut self, written: usize);
}

impl Frame for Bytes {
    fn remaining(&self) -> &[u8] {
        self
    }

    fn advance(&mut self, written: usize) {
        Buf::advance(self, written);
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
            .iter()
            .map(Frame::remaining)
            .chain(second.iter().map(Frame::remaining));
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
        let len = front.remaining().len();
        if written < len {
            front.advance(written);
            return 0;
        }
        written -= len;
        frames.pop_front();
    }
    0
}

/// Flush and shut down the write side, so the client sees the end of the stream.
pub(crate) fn poll_shutdown(cx: &mut Context<'_>, io: &mut Io) -> Poll<io::Result<()>> {
    Pin::new(io).poll_shutdown(cx)
}

#[cfg(test)]
mod reader_props;

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame, as a client library would write it.
    fn client_frame(fin: bool, opcode: Opcode, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        framing::frame(fin, opcode, payload, Some(mask))
    }

    /// A masked client frame with a reserved opcode (`bits`).
    fn reserved_frame(bits: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut wire = client_frame(true, Opcode::Binary, payload, mask);
        wire[0] = 0x80 | bits;
        wire
    }

    fn reader_with(bytes: &[u8]) -> Reader {
        let mut reader = Reader::default();
        reader.push(bytes);
        reader
    }

    /// The first thing a reader makes of `wire`: its first message, or its error.
    fn first(wire: &[u8], max: usize) -> Result<Option<Incoming>, ReadError> {
        reader_with(wire).next_message(max)
    }

    #[test]
    fn frames_of_every_length_form_parse_back_to_their_payload() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        for len in [0, 1, 7, 8, 9, 125, 126, 127, 1000, 0xFFFF, 0x10000, 70_001] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let wire = client_frame(true, Opcode::Binary, &payload, mask);
            let mut reader = reader_with(&wire[..wire.len() - 1]);
            assert!(!reader.has_frame());
            assert!(reader.next_message(1 << 20).unwrap().is_none());
            reader.push(&wire[wire.len() - 1..]);
            assert!(reader.has_frame());
            match reader.next_message(1 << 20).unwrap() {
                Some(Incoming::Binary(body)) => assert_eq!(body, payload),
                other => panic!("{other:?}"),
            }
            assert!(reader.pending.is_empty());
            assert_eq!(reader.received(), wire.len() as u64);
        }
    }

    #[test]
    fn fragments_are_reassembled_around_control_frames() {
        let mask = [1, 2, 3, 4];
        let mut wire = client_frame(false, Opcode::Binary, b"hel", mask);
        wire.extend(client_frame(true, Opcode::Ping, b"p", mask));
        wire.extend(client_frame(false, Opcode::Continuation, b"lo ", mask));
        wire.extend(client_frame(true, Opcode::Continuation, b"world", mask));
        let mut reader = reader_with(&wire);
        assert!(matches!(reader.next_message(100), Ok(Some(Incoming::Ping(p))) if p == "p"));
        assert!(
            matches!(reader.next_message(100), Ok(Some(Incoming::Binary(m))) if m == "hello world")
        );
        // Over the limit in all, though each fragment is under it: refused from the second
        // fragment's header, before its payload arrives.
        let mut wire = client_frame(false, Opcode::Binary, &[0; 60], mask);
        wire.extend(client_frame(true, Opcode::Continuation, &[0; 60], mask));
        assert_eq!(
            first(&wire[..wire.len() - 60], 100),
            Err(ReadError::TooLarge)
        );
    }

    #[test]
    fn each_broken_rule_is_named() {
        let mask = [9, 9, 9, 9];
        let frame = |fin, opcode, payload: &[u8]| client_frame(fin, opcode, payload, mask);
        let mut unmasked = frame(true, Opcode::Binary, b"x");
        unmasked[1] &= 0x7F;
        let mut reserved = frame(true, Opcode::Binary, b"x");
        reserved[0] |= 0x40;
        let mut started = frame(false, Opcode::Text, b"x");
        started.extend(frame(true, Opcode::Binary, b"y"));
        let mut split_text = frame(false, Opcode::Text, "é".as_bytes()[..1].as_ref());
        split_text.extend(frame(true, Opcode::Continuation, b"x"));
        let cases = [
            (unmasked, Violation::UnmaskedFrame),
            (reserved, Violation::ReservedBits),
            (reserved_frame(0x3, b"x", mask), Violation::UnknownOpcode),
            (reserved_frame(0xB, b"", mask), Violation::UnknownOpcode),
            (
                frame(false, Opcode::Ping, b"x"),
                Violation::FragmentedControlFrame,
            ),
            (
                frame(true, Opcode::Ping, &[0; 126]),
                Violation::ControlFrameTooLong,
            ),
            (
                frame(true, Opcode::Continuation, b"x"),
                Violation::UnexpectedContinuation,
            ),
            (started, Violation::ExpectedContinuation),
            (
                frame(true, Opcode::Text, &[0xFF]),
                Violation::InvalidUtf8Text,
            ),
            (split_text, Violation::InvalidUtf8Text),
            (
                frame(true, Opcode::Close, &[0x03]),
                Violation::CloseOneBytePayload,
            ),
            (
                frame(true, Opcode::Close, &[0x03, 0xed]),
                Violation::InvalidCloseCode,
            ),
            (
                frame(true, Opcode::Close, &[0x03, 0xe8, 0xff]),
                Violation::InvalidUtf8CloseReason,
            ),
        ];
        for (wire, violation) in &cases {
            assert_eq!(
                first(wire, 1000),
                Err(ReadError::Protocol(*violation)),
                "{wire:02x?}"
            );
        }
        for violation in Violation::ALL {
            assert!(
                cases.iter().any(|(_, v)| *v == violation),
                "{violation:?} untested"
            );
        }
        let big = frame(true, Opcode::Binary, &[0; 101]);
        assert_eq!(first(&big, 100), Err(ReadError::TooLarge));
    }

    #[test]
    fn a_broken_header_is_refused_before_the_payload_arrives() {
        let mask = [5, 6, 7, 8];
        let header_of =
            |wire: Vec<u8>, payload_len: usize| wire[..wire.len() - payload_len].to_vec();
        // A stray continuation announcing 60000 bytes: refused from its 8 header bytes.
        let stray = header_of(
            client_frame(true, Opcode::Continuation, &[0; 60_000], mask),
            60_000,
        );
        assert_eq!(
            first(&stray, 1 << 16),
            Err(ReadError::Protocol(Violation::UnexpectedContinuation))
        );
        // Opcode and control-frame rules need only the first two bytes.
        for (wire, violation) in [
            ([0x83, 0x80], Violation::UnknownOpcode),
            ([0x09, 0x80], Violation::FragmentedControlFrame),
            ([0x89, 0xFE], Violation::ControlFrameTooLong),
            ([0x89, 0xFF], Violation::ControlFrameTooLong),
        ] {
            assert_eq!(first(&wire, 1 << 16), Err(ReadError::Protocol(violation)));
        }
    }

    #[test]
    fn violations_have_distinct_snake_case_names_and_their_rfc_close_code() {
        let mut names: Vec<_> = Violation::ALL.iter().map(|v| v.name()).collect();
        for name in &names {
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Violation::ALL.len());
        for violation in Violation::ALL {
            let expected = match violation {
                // RFC 6455 section 7.4.1: "non-UTF-8 data within a text message".
                Violation::InvalidUtf8Text | Violation::InvalidUtf8CloseReason => 1007,
                _ => 1002,
            };
            assert_eq!(violation.close_code(), expected, "{violation:?}");
        }
    }

    #[test]
    fn close_frames_are_checked_against_rfc_6455_section_7_4() {
        let close = |payload: &[u8]| {
            let wire = client_frame(true, Opcode::Close, payload, [1, 2, 3, 4]);
            match first(&wire, 100) {
                Ok(Some(Incoming::Close(code))) => Ok(code),
                Err(ReadError::Protocol(violation)) => Err(violation.close_code()),
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
    fn an_idle_reader_holds_no_buffer() {
        let mut wire = client_frame(true, Opcode::Binary, &[1; 300], [1, 2, 3, 4]);
        wire.extend(client_frame(false, Opcode::Binary, b"ab", [1, 2, 3, 4]));
        wire.extend(client_frame(
            true,
            Opcode::Continuation,
            b"cd",
            [1, 2, 3, 4],
        ));
        let mut reader = reader_with(&wire);
        assert!(matches!(
            reader.next_message(1000),
            Ok(Some(Incoming::Binary(_)))
        ));
        assert!(matches!(reader.next_message(1000), Ok(Some(Incoming::Binary(m))) if m == "abcd"));
        assert_eq!(reader.next_message(1000), Ok(None));
        assert_eq!(reader.pending.capacity(), 0);
        assert!(reader.fragments.is_none());
    }

    /// The next message `poll_next` reads from `io`.
    async fn next(
        reader: &mut Reader,
        io: &mut tokio::io::DuplexStream,
    ) -> Result<Incoming, ReadError> {
        std::future::poll_fn(|cx| reader.poll_next(cx, io, 1 << 16)).await
    }

    #[tokio::test]
    async fn poll_next_reads_messages_from_a_stream_as_they_arrive() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let mut reader = Reader::default();
        let mut wire = client_frame(true, Opcode::Ping, b"hi", [1, 2, 3, 4]);
        wire.extend(client_frame(true, Opcode::Binary, &[7; 1000], [4, 3, 2, 1]));
        // Written in a task, through a 64-byte pipe: the reader waits for the rest of the
        // frame many times.
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            client.write_all(&wire).await.unwrap();
        });
        assert_eq!(
            next(&mut reader, &mut server).await,
            Ok(Incoming::Ping(Bytes::from_static(b"hi")))
        );
        assert_eq!(
            next(&mut reader, &mut server).await,
            Ok(Incoming::Binary(Bytes::from(vec![7; 1000])))
        );
        writer.await.unwrap();
        assert_eq!(next(&mut reader, &mut server).await, Err(ReadError::Gone));
    }

    #[tokio::test]
    async fn poll_fill_counts_what_arrived_without_handling_it() {
        use tokio::io::AsyncWriteExt;
        let (mut client, mut server) = tokio::io::duplex(1024);
        let mut reader = Reader::default();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(reader.poll_fill(&mut cx, &mut server).is_pending());
        let ping = client_frame(true, Opcode::Ping, b"x", [1, 2, 3, 4]);
        client.write_all(&ping[..3]).await.unwrap();
        assert_eq!(reader.poll_fill(&mut cx, &mut server), Poll::Ready(Ok(())));
        assert_eq!(reader.received(), 3);
        assert!(!reader.has_frame());
        assert!(reader.poll_fill(&mut cx, &mut server).is_pending());
        client.write_all(&ping[3..]).await.unwrap();
        assert_eq!(reader.poll_fill(&mut cx, &mut server), Poll::Ready(Ok(())));
        assert_eq!(reader.received(), ping.len() as u64);
        assert!(reader.has_frame());
        assert_eq!(
            reader.next_message(100),
            Ok(Some(Incoming::Ping(Bytes::from_static(b"x"))))
        );
        drop(client);
        assert_eq!(
            reader.poll_fill(&mut cx, &mut server),
            Poll::Ready(Err(ReadError::Gone))
        );
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
