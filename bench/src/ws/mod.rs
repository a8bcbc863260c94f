//! A minimal WebSocket client (RFC 6455) for load generation: no TLS, no extensions.
//!
//! Why not tokio-tungstenite: it allocates a `Vec` per received message and wakes the task
//! once per message. [`Reader`] instead reads as much as the socket holds into one reusable
//! buffer ([`Reader::fill`], one `read` syscall) and hands out every complete frame in it as
//! a borrowed slice ([`Reader::next`]); nothing is allocated per message. The `ceiling`
//! subcommand measures both (figures in the crate docs): 2 to 6 times as many frames per
//! CPU-second when frames arrive together, the same when each `read` brings one.
//!
//! What a server may send and this client handles: text, binary, fragmented messages
//! (reassembled into a second reusable buffer), ping (the caller queues the pong, see
//! [`Frame::Ping`]), pong, and close (answered, then the connection is over). Anything
//! else (RSV bits, masked or oversized frames, reserved opcodes, a continuation out of
//! place) is an [`Error::Framing`], never silently skipped.
//!
//! [`Writer`] masks each frame (as clients must) into one output buffer; [`Writer::flush`]
//! writes everything queued with one `write` where the socket allows.
//!
//! The framing itself (headers both ways, masking) is `chorus-framing`'s, the server's own.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::{Error, Result};
pub use chorus_framing::Opcode;
use chorus_framing::{Header, MAX_HEADER_LEN, apply_mask, write_header};

/// Parses the header of a server frame at the start of `buf`
/// ([`chorus_framing::parse_server_header`]); a broken rule is an [`Error::Framing`].
fn parse_header(buf: &[u8], max_payload: usize) -> Result<Option<Header>> {
    chorus_framing::parse_server_header(buf, max_payload)
        .map_err(|error| Error::Framing(error.to_string()))
}

/// A `ws://host:port/path?query` address (no TLS: this is a loopback benchmark).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Host name or address, as written (sent in the `Host` header).
    pub host: String,
    /// Port. Default: 80.
    pub port: u16,
    /// Path and query; empty when the URL has none (the protocol then picks its own).
    pub path: String,
}

impl FromStr for Url {
    type Err = Error;

    fn from_str(url: &str) -> Result<Url> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| Error::Usage(format!("{url}: only ws:// URLs are supported")))?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => (
                host,
                port.parse()
                    .map_err(|_| Error::Usage(format!("{url}: bad port")))?,
            ),
            _ => (authority, 80),
        };
        if host.is_empty() {
            return Err(Error::Usage(format!("{url}: no host")));
        }
        Ok(Url {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }
}

/// The HTTP side of an upgrade: the request target and extra headers.
#[derive(Debug, Clone, Default)]
pub struct Upgrade {
    /// Path and query of the request.
    pub path: String,
    /// Extra request headers (for example `Sec-WebSocket-Protocol`).
    pub headers: Vec<(&'static str, String)>,
}

/// Buffer sizes of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Initial read buffer, in bytes; it grows (and stays grown) for larger frames.
    pub read_buffer: usize,
    /// Largest message accepted, in bytes.
    pub max_message: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            read_buffer: 16 * 1024,
            max_message: 16 * 1024 * 1024,
        }
    }
}

/// Open a TCP connection to `addr` (from `source` when given: spreading connections over
/// 127.0.0.x source addresses avoids running out of ephemeral ports) and upgrade it.
pub async fn connect(
    addr: SocketAddr,
    host: &str,
    source: Option<IpAddr>,
    upgrade: &Upgrade,
    options: Options,
) -> Result<(Reader<OwnedReadHalf>, Writer<OwnedWriteHalf>)> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(addr).await?;
    // Small frames, latency measured: never wait for Nagle. Writes are coalesced by the
    // `Writer` instead.
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let mut reader = Reader::new(read, options);
    let mut writer = Writer::new(write);

    let key = tungstenite::handshake::client::generate_key();
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
        path = if upgrade.path.is_empty() {
            "/"
        } else {
            &upgrade.path
        },
        port = addr.port(),
    );
    for (name, value) in &upgrade.headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    writer.io.write_all(request.as_bytes()).await?;
    reader.read_handshake(&key).await?;
    Ok((reader, writer))
}

/// One received frame, borrowed from the reader's buffer until the next call.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete text message.
    Text(&'a [u8]),
    /// A complete binary message.
    Binary(&'a [u8]),
    /// A ping: answer with [`Outbox::queue`]`(Opcode::Pong, payload)`.
    Ping(&'a [u8]),
    /// A pong (unsolicited ones are allowed).
    Pong,
    /// The server is closing: answer with [`Outbox::queue_close`], then stop.
    Close {
        /// The close code, if the frame had one.
        code: Option<u16>,
        /// The reason (UTF-8 by the RFC; not checked).
        reason: &'a [u8],
    },
}

/// The reading half of a connection: one reusable buffer, many frames per `read`.
#[derive(Debug)]
pub struct Reader<R> {
    io: R,
    buf: Vec<u8>,
    /// Unparsed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Bytes the frame at `start` needs in all (when it is incomplete), so `fill` can make
    /// room for it.
    need: usize,
    max_message: usize,
    /// A fragmented message being reassembled, and its opcode.
    fragments: Vec<u8>,
    fragmented: Option<Opcode>,
    closed: bool,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// Read frames from `io`.
    pub fn new(io: R, options: Options) -> Reader<R> {
        Reader {
            io,
            buf: vec![0; options.read_buffer.max(256)],
            start: 0,
            end: 0,
            need: 0,
            max_message: options.max_message,
            fragments: Vec::new(),
            fragmented: None,
            closed: false,
        }
    }

    /// Read once from the socket: as many bytes as it holds and the buffer takes. Returns
    /// at once, reading nothing, while a complete frame is still buffered (one left there
    /// by a caller that stopped taking frames early), so it is never kept waiting.
    pub async fn fill(&mut self) -> Result<usize> {
        if let Ok(Some(header)) = parse_header(&self.buf[self.start..self.end], self.max_message)
            && self.end - self.start >= header.frame_len()
        {
            return Ok(0);
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        // The frame at `start` (or at least a header) must fit after compaction.
        let needed = self.need.max(1);
        if self.buf.len() < needed {
            self.buf.resize(needed.next_power_of_two(), 0);
        }
        if self.start > 0 && (self.end == self.buf.len() || self.buf.len() - self.start < needed) {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = self.io.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(Error::Eof);
        }
        self.end += n;
        Ok(n)
    }

    /// The next complete frame in the buffer, or `None` when [`Reader::fill`] must read
    /// more. Fragments are reassembled: only whole messages come out.
    #[allow(clippy::should_implement_trait)] // Borrows from self: not an Iterator.
    pub fn next(&mut self) -> Result<Option<Frame<'_>>> {
        loop {
            if self.closed {
                return Err(Error::Framing("frame after close".into()));
            }
            let available = &self.buf[self.start..self.end];
            let Some(header) = parse_header(available, self.max_message)? else {
                self.need = MAX_HEADER_LEN;
                return Ok(None);
            };
            if available.len() < header.frame_len() {
                self.need = header.frame_len();
                return Ok(None);
            }
            self.need = 0;
            let payload = self.start + header.len..self.start + header.frame_len();
            self.start += header.frame_len();
            match header.opcode {
                Opcode::Text | Opcode::Binary => {
                    if self.fragmented.is_some() {
                        return Err(Error::Framing(
                            "a new message began inside a fragmented one".into(),
                        ));
                    }
                    if header.fin {
                        let data = &self.buf[payload];
                        return Ok(Some(if header.opcode == Opcode::Text {
                            Frame::Text(data)
                        } else {
                            Frame::Binary(data)
                        }));
                    }
                    self.fragmented = Some(header.opcode);
                    self.fragments.clear();
                    self.fragments.extend_from_slice(&self.buf[payload]);
                }
                Opcode::Continuation => {
                    let Some(opcode) = self.fragmented else {
                        return Err(Error::Framing("continuation without a message".into()));
                    };
                    if self.fragments.len() + payload.len() > self.max_message {
                        return Err(Error::Framing(format!(
                            "fragmented message over the limit of {} bytes",
                            self.max_message
                        )));
                    }
                    self.fragments.extend_from_slice(&self.buf[payload]);
                    if header.fin {
                        self.fragmented = None;
                        let data = &self.fragments[..];
                        return Ok(Some(if opcode == Opcode::Text {
                            Frame::Text(data)
                        } else {
                            Frame::Binary(data)
                        }));
                    }
                }
                Opcode::Ping => return Ok(Some(Frame::Ping(&self.buf[payload]))),
                Opcode::Pong => return Ok(Some(Frame::Pong)),
                Opcode::Close => {
                    self.closed = true;
                    let data = &self.buf[payload];
                    return match data {
                        [] => Ok(Some(Frame::Close {
                            code: None,
                            reason: &[],
                        })),
                        [_] => Err(Error::Framing("close frame of one byte".into())),
                        [hi, lo, reason @ ..] => Ok(Some(Frame::Close {
                            code: Some(u16::from_be_bytes([*hi, *lo])),
                            reason,
                        })),
                    };
                }
            }
        }
    }

    /// Capacity of the read buffer (it only grows).
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Read the HTTP answer to an upgrade request sent with `key`; bytes after it stay
    /// buffered (a server may send its first frame in the same segment).
    async fn read_handshake(&mut self, key: &str) -> Result<()> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            let parsed = response
                .parse(&self.buf[..self.end])
                .map_err(|e| Error::Handshake(format!("malformed HTTP answer: {e}")))?;
            let httparse::Status::Complete(len) = parsed else {
                if self.end == self.buf.len() {
                    if self.buf.len() >= 64 * 1024 {
                        return Err(Error::Handshake("HTTP answer too long".into()));
                    }
                    self.buf.resize(self.buf.len() * 2, 0);
                }
                let n = self.io.read(&mut self.buf[self.end..]).await?;
                if n == 0 {
                    return Err(Error::Handshake(
                        "connection closed during the upgrade".into(),
                    ));
                }
                self.end += n;
                continue;
            };
            let status = response.code.unwrap_or(0);
            if status != 101 {
                let reason = response.reason.unwrap_or("").to_owned();
                return Err(Error::Handshake(format!("HTTP {status} {reason}")));
            }
            let header = |name: &str| {
                response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned())
            };
            let expected = tungstenite::handshake::derive_accept_key(key.as_bytes());
            if header("sec-websocket-accept").as_deref() != Some(expected.as_str()) {
                return Err(Error::Handshake("wrong Sec-WebSocket-Accept".into()));
            }
            if let Some(extensions) = header("sec-websocket-extensions") {
                return Err(Error::Handshake(format!(
                    "the server enabled extensions this client never offered: {extensions}"
                )));
            }
            self.start = len;
            return Ok(());
        }
    }
}

/// Frames queued for sending, masked, back to back in one buffer.
#[derive(Debug)]
pub struct Outbox {
    out: Vec<u8>,
    rng: u64,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            out: Vec::with_capacity(1024),
            rng: seed(),
        }
    }
}

impl Outbox {
    /// Queue a frame with this payload.
    pub fn queue(&mut self, opcode: Opcode, payload: &[u8]) {
        self.queue_with(opcode, |out| out.extend_from_slice(payload));
    }

    /// Queue a frame whose payload `build` appends to the buffer it is given (so a message
    /// is encoded in place, without a buffer of its own).
    pub fn queue_with(&mut self, opcode: Opcode, build: impl FnOnce(&mut Vec<u8>)) {
        let at = self.out.len();
        self.out.resize(at + MAX_HEADER_LEN, 0);
        build(&mut self.out);
        let len = self.out.len() - at - MAX_HEADER_LEN;
        let mask = self.mask();
        let mut header = [0u8; MAX_HEADER_LEN];
        let header_len = write_header(&mut header, true, opcode, len, Some(mask));
        // Close the gap between the real header and the payload.
        self.out.copy_within(at + MAX_HEADER_LEN.., at + header_len);
        self.out.truncate(at + header_len + len);
        self.out[at..at + header_len].copy_from_slice(&header[..header_len]);
        apply_mask(&mut self.out[at + header_len..], mask);
    }

    /// Queue the answer to a close frame (its code echoed, as RFC 6455 §5.5.1 asks).
    pub fn queue_close(&mut self, code: Option<u16>) {
        match code {
            Some(code) => self.queue(Opcode::Close, &code.to_be_bytes()),
            None => self.queue(Opcode::Close, &[]),
        }
    }

    /// Whether frames wait to be written.
    pub fn pending(&self) -> bool {
        !self.out.is_empty()
    }

    /// Bytes waiting to be written.
    pub fn pending_bytes(&self) -> usize {
        self.out.len()
    }

    /// The queued bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.out
    }

    /// Forget everything queued.
    pub fn clear(&mut self) {
        self.out.clear();
    }

    fn mask(&mut self) -> [u8; 4] {
        // xorshift64: masks must vary, but need not be cryptographic against a benchmark
        // peer.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng as u32).to_ne_bytes()
    }
}

/// The writing half of a connection: an [`Outbox`] (which it dereferences to) and the
/// socket that [`Writer::flush`] writes it to, with one `write` where the socket allows.
#[derive(Debug)]
pub struct Writer<W> {
    io: W,
    outbox: Outbox,
}

impl<W> std::ops::Deref for Writer<W> {
    type Target = Outbox;

    fn deref(&self) -> &Outbox {
        &self.outbox
    }
}

impl<W> std::ops::DerefMut for Writer<W> {
    fn deref_mut(&mut self) -> &mut Outbox {
        &mut self.outbox
    }
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    /// Write frames to `io`.
    pub fn new(io: W) -> Writer<W> {
        Writer {
            io,
            outbox: Outbox::default(),
        }
    }

    /// Write everything queued.
    pub async fn flush(&mut self) -> Result<()> {
        if self.outbox.pending() {
            self.io.write_all(&self.outbox.out).await?;
            self.outbox.clear();
        }
        Ok(())
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &W {
        &self.io
    }

    /// The underlying stream, dropping anything still queued.
    pub fn into_inner(self) -> W {
        self.io
    }
}

/// A distinct nonzero seed per call (splitmix64 over a counter and the clock).
pub(crate) fn seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let mut z =
        COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ crate::clock::now_ns();
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) | 1
}

/// Splits client frames back into (first byte, unmasked payload) pairs, as a server would.
#[cfg(test)]
pub(crate) fn decode_client_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let header = chorus_framing::parse_client_header(bytes, usize::MAX)
            .expect("a client frame")
            .expect("a whole frame");
        let mut payload = bytes[header.len..header.frame_len()].to_vec();
        header.unmask(&mut payload);
        frames.push((bytes[0], payload));
        bytes = &bytes[header.frame_len()..];
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server frame (unmasked), final or not.
    fn server_frame(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
        chorus_framing::frame(fin, opcode, payload, None)
    }

    fn reader(bytes: Vec<u8>, read_buffer: usize) -> Reader<std::io::Cursor<Vec<u8>>> {
        Reader::new(
            std::io::Cursor::new(bytes),
            Options {
                read_buffer,
                max_message: 1 << 20,
            },
        )
    }

    /// Everything in the stream, with binary payloads and pings tagged.
    async fn collect(mut r: Reader<std::io::Cursor<Vec<u8>>>) -> (Vec<String>, Result<()>) {
        let mut seen = Vec::new();
        let end = loop {
            loop {
                match r.next() {
                    Ok(Some(Frame::Text(t))) => seen.push(format!("text {}", t.len())),
                    Ok(Some(Frame::Binary(b))) => seen.push(format!("binary {}", b.len())),
                    Ok(Some(Frame::Ping(p))) => seen.push(format!("ping {}", p.len())),
                    Ok(Some(Frame::Pong)) => seen.push("pong".into()),
                    Ok(Some(Frame::Close { code, .. })) => seen.push(format!("close {code:?}")),
                    Ok(None) => break,
                    Err(e) => return (seen, Err(e)),
                }
            }
            if let Err(e) = r.fill().await {
                break Err(e);
            }
        };
        (seen, end)
    }

    #[tokio::test]
    async fn many_frames_in_one_buffer_come_out_in_order() {
        let mut bytes = Vec::new();
        for len in [0usize, 5, 125, 126, 300, 70_000] {
            bytes.extend(server_frame(true, Opcode::Binary, &vec![1; len]));
        }
        bytes.extend(server_frame(true, Opcode::Text, b"hello"));
        // A small initial buffer has to grow for the 70 000 byte frame.
        let (seen, end) = collect(reader(bytes, 256)).await;
        assert!(matches!(end, Err(Error::Eof)));
        assert_eq!(
            seen,
            [
                "binary 0",
                "binary 5",
                "binary 125",
                "binary 126",
                "binary 300",
                "binary 70000",
                "text 5"
            ]
        );
    }

    #[tokio::test]
    async fn fill_returns_at_once_while_a_frame_is_buffered() {
        let mut bytes = server_frame(true, Opcode::Text, b"one");
        bytes.extend(server_frame(true, Opcode::Text, b"two"));
        // A stream that would never answer again after its first read.
        let (mut near, far) = tokio::io::duplex(1024);
        tokio::io::AsyncWriteExt::write_all(&mut near, &bytes)
            .await
            .unwrap();
        let mut r = Reader::new(far, Options::default());
        r.fill().await.unwrap();
        assert_eq!(r.next().unwrap(), Some(Frame::Text(b"one")));
        // "two" is still buffered: no read, no wait.
        assert_eq!(r.fill().await.unwrap(), 0);
        assert_eq!(r.next().unwrap(), Some(Frame::Text(b"two")));
        assert_eq!(r.next().unwrap(), None);
        drop(near);
    }

    #[tokio::test]
    async fn fragments_are_reassembled_around_control_frames() {
        let mut bytes = Vec::new();
        bytes.extend(server_frame(false, Opcode::Text, b"abc"));
        bytes.extend(server_frame(true, Opcode::Ping, b"p"));
        bytes.extend(server_frame(false, Opcode::Continuation, b"def"));
        bytes.extend(server_frame(true, Opcode::Continuation, b"gh"));
        bytes.extend(server_frame(true, Opcode::Binary, b"x"));
        bytes.extend(server_frame(true, Opcode::Close, &[0x03, 0xE9, b'b', b'y']));
        let mut r = reader(bytes, 1024);
        r.fill().await.unwrap();
        assert_eq!(r.next().unwrap(), Some(Frame::Ping(b"p")));
        assert_eq!(r.next().unwrap(), Some(Frame::Text(b"abcdefgh")));
        assert_eq!(r.next().unwrap(), Some(Frame::Binary(b"x")));
        assert_eq!(
            r.next().unwrap(),
            Some(Frame::Close {
                code: Some(1001),
                reason: b"by"
            })
        );
        assert!(r.next().is_err(), "nothing may follow a close");
    }

    #[tokio::test]
    async fn misplaced_fragments_fail_loudly() {
        let mut orphan = server_frame(true, Opcode::Continuation, b"x");
        orphan.extend(server_frame(true, Opcode::Text, b"y"));
        let (seen, end) = collect(reader(orphan, 1024)).await;
        assert!(seen.is_empty());
        assert!(matches!(end, Err(Error::Framing(_))));

        let mut interleaved = server_frame(false, Opcode::Text, b"x");
        interleaved.extend(server_frame(true, Opcode::Binary, b"y"));
        let (_, end) = collect(reader(interleaved, 1024)).await;
        assert!(matches!(end, Err(Error::Framing(_))));
    }

    #[tokio::test]
    async fn frames_split_at_every_byte_still_parse() {
        // A reader fed one byte per read sees every possible split of header and payload.
        struct Trickle(Vec<u8>, usize);
        impl AsyncRead for Trickle {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                if self.1 < self.0.len() {
                    let byte = self.0[self.1];
                    buf.put_slice(&[byte]);
                    self.1 += 1;
                }
                std::task::Poll::Ready(Ok(()))
            }
        }
        let mut bytes = Vec::new();
        for len in [3usize, 200, 70_000] {
            bytes.extend(server_frame(true, Opcode::Binary, &vec![9; len]));
        }
        let mut r = Reader::new(Trickle(bytes, 0), Options::default());
        let mut lengths = Vec::new();
        while lengths.len() < 3 {
            r.fill().await.unwrap();
            while let Some(frame) = r.next().unwrap() {
                let Frame::Binary(b) = frame else {
                    panic!("{frame:?}")
                };
                assert!(b.iter().all(|x| *x == 9));
                lengths.push(b.len());
            }
        }
        assert_eq!(lengths, [3, 200, 70_000]);
    }

    #[tokio::test]
    async fn queued_frames_unmask_to_their_payloads() {
        let mut w = Writer::new(Vec::new());
        w.queue(Opcode::Text, b"hello");
        w.queue_with(Opcode::Binary, |out| {
            out.extend(std::iter::repeat_n(7u8, 300))
        });
        w.queue_close(Some(1000));
        w.flush().await.unwrap();
        let payloads = decode_client_frames(&w.io);
        assert_eq!(payloads[0], (0x81, b"hello".to_vec()));
        assert_eq!(payloads[1], (0x82, vec![7; 300]));
        assert_eq!(payloads[2], (0x88, vec![0x03, 0xE8]));
    }

    #[test]
    fn urls_parse() {
        let url: Url = "ws://127.0.0.1:8080/ws?x=1".parse().unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.path.as_str()),
            ("127.0.0.1", 8080, "/ws?x=1")
        );
        let url: Url = "ws://localhost".parse().unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.path.as_str()),
            ("localhost", 80, "")
        );
        assert!("http://x".parse::<Url>().is_err());
        assert!("ws://:80/".parse::<Url>().is_err());
    }
}
