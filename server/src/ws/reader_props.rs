//! Property tests of the WebSocket reader: its sans-IO core ([`Reader::push`] and
//! [`Reader::next_message`]) and, over an in-memory stream cut into arbitrary reads,
//! [`Reader::poll_next`].
//!
//! - Arbitrary bytes, and valid streams with a few bytes changed, never panic, and read the
//!   same messages and error however they are cut into chunks.
//! - Arbitrary valid client streams (text and binary messages, fragmented or not, every
//!   length form, any mask, pings, pongs and close frames between the fragments) read back
//!   as a model of RFC 6455 says, whatever the chunking; with a small limit, the model says
//!   where [`ReadError::TooLarge`] comes, and it comes there.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use tokio::io::{AsyncRead, ReadBuf};

use super::*;

/// Enough cases to mix every kind of frame, few enough that the file runs in seconds.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

/// How a frame writes its payload length: the shortest form (as RFC 6455 asks) or a wider
/// one, which the reader accepts for data frames.
#[derive(Debug, Clone, Copy)]
enum LenForm {
    Shortest,
    Wide16,
    Wide64,
}

/// One frame as a client writes it.
#[derive(Debug, Clone)]
struct Frame {
    fin: bool,
    opcode: Opcode,
    payload: Vec<u8>,
    mask: [u8; 4],
    form: LenForm,
}

impl Frame {
    fn write(&self, out: &mut Vec<u8>) {
        out.push(if self.fin { 0x80 } else { 0 } | self.opcode.bits());
        let len = self.payload.len();
        match (self.form, len) {
            (LenForm::Shortest, 0..=125) => out.push(0x80 | len as u8),
            (LenForm::Shortest | LenForm::Wide16, 0..=0xFFFF) => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&self.mask);
        let masked = self.payload.iter().zip(self.mask.iter().cycle());
        out.extend(masked.map(|(b, m)| b ^ m));
    }
}

fn wire(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    for frame in frames {
        frame.write(&mut out);
    }
    out
}

/// What RFC 6455 says a server reads from valid `frames` with a limit of `max` bytes per
/// frame and per message: written apart from the reader, as a plain walk over the frames.
fn model(frames: &[Frame], max: usize) -> Vec<Result<Incoming, ReadError>> {
    let mut out = Vec::new();
    let mut message: Option<(Opcode, Vec<u8>)> = None;
    for frame in frames {
        let total = message.as_ref().map_or(0, |(_, m)| m.len()) + frame.payload.len();
        if frame.payload.len() > max || (frame.opcode == Opcode::Continuation && total > max) {
            out.push(Err(ReadError::TooLarge));
            return out;
        }
        let done = match frame.opcode {
            Opcode::Ping => Some(Incoming::Ping(Bytes::from(frame.payload.clone()))),
            Opcode::Pong => Some(Incoming::Pong),
            Opcode::Close => Some(Incoming::Close(match frame.payload[..] {
                [a, b, ..] => Some(u16::from_be_bytes([a, b])),
                _ => None,
            })),
            opcode => {
                let (opcode, mut payload) = message.take().unwrap_or((opcode, Vec::new()));
                payload.extend_from_slice(&frame.payload);
                if frame.fin {
                    Some(match opcode {
                        Opcode::Text => Incoming::Text,
                        _ => Incoming::Binary(Bytes::from(payload)),
                    })
                } else {
                    message = Some((opcode, payload));
                    None
                }
            }
        };
        out.extend(done.map(Ok));
    }
    out
}

/// `len` bytes that look random, cheaper to make than `len` draws of a strategy.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 56) as u8
        })
        .collect()
}

fn len_form() -> impl Strategy<Value = LenForm> {
    prop_oneof![
        3 => Just(LenForm::Shortest),
        1 => Just(LenForm::Wide16),
        1 => Just(LenForm::Wide64),
    ]
}

fn close_payload() -> BoxedStrategy<Vec<u8>> {
    let code = prop_oneof![1000u16..=1003, 1007u16..=1014, 3000u16..=4999];
    prop_oneof![
        Just(Vec::new()),
        (code, "\\PC{0,40}").prop_map(|(code, reason)| {
            let mut cut = reason.len().min(123);
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            let mut payload = code.to_be_bytes().to_vec();
            payload.extend_from_slice(&reason.as_bytes()[..cut]);
            payload
        }),
    ]
    .boxed()
}

/// A ping, pong or close frame (always final, at most 125 bytes, shortest length form).
fn control() -> impl Strategy<Value = Frame> {
    let opcode_and_payload = prop_oneof![
        (Just(Opcode::Ping), vec(any::<u8>(), 0..=125)),
        (Just(Opcode::Pong), vec(any::<u8>(), 0..=125)),
        (Just(Opcode::Close), close_payload()),
    ];
    (opcode_and_payload, any::<[u8; 4]>()).prop_map(|((opcode, payload), mask)| Frame {
        fin: true,
        opcode,
        payload,
        mask,
        form: LenForm::Shortest,
    })
}

fn binary_payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        12 => vec(any::<u8>(), 0..300),
        // Past 64 KiB, for the 64-bit length in its shortest form.
        1 => (0x10000usize..0x10400, any::<u64>()).prop_map(|(len, seed)| noise(len, seed)),
    ]
}

/// A text or binary message: its frames, cut at arbitrary bytes (a text message may be
/// cut inside a character), with control frames between the fragments.
fn data_message() -> impl Strategy<Value = Vec<Frame>> {
    let message = prop_oneof![
        (Just(Opcode::Binary), binary_payload()),
        (
            Just(Opcode::Text),
            any::<String>().prop_map(String::into_bytes)
        ),
    ];
    let between = vec(vec(control(), 0..2), 4);
    let frames = vec((any::<[u8; 4]>(), len_form()), 5);
    (message, vec(any::<Index>(), 0..4), between, frames).prop_map(
        |((opcode, payload), cuts, between, frames)| {
            let mut bounds: Vec<usize> = cuts.iter().map(|i| i.index(payload.len() + 1)).collect();
            bounds.push(0);
            bounds.push(payload.len());
            bounds.sort_unstable();
            let count = bounds.len() - 1;
            let mut out = Vec::new();
            for (i, range) in bounds.windows(2).enumerate() {
                let (mask, form) = frames[i];
                out.push(Frame {
                    fin: i == count - 1,
                    opcode: if i == 0 { opcode } else { Opcode::Continuation },
                    payload: payload[range[0]..range[1]].to_vec(),
                    mask,
                    form,
                });
                if i < count - 1 {
                    out.extend(between[i].iter().cloned());
                }
            }
            out
        },
    )
}

/// The frames of a few messages and control frames, as a client sends them.
fn valid_stream() -> impl Strategy<Value = Vec<Frame>> {
    let item = prop_oneof![
        3 => data_message(),
        1 => control().prop_map(|frame| vec![frame]),
    ];
    vec(item, 0..8).prop_map(|items| items.concat())
}

/// Sizes to cut a stream into: single bytes, small reads, and large ones.
fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    let size = prop_oneof![0usize..4, 1usize..200, 1usize..0x12000];
    vec(size, 1..8)
}

/// Limits around the sizes the streams hold.
fn limit() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..8, 0usize..400, 0x10000usize..0x10400]
}

/// A stream whose bytes arrive in reads of `sizes` bytes (cycled), with a `Pending` (and a
/// wake) before every other read, as a socket would.
struct Chunked {
    data: Vec<u8>,
    at: usize,
    sizes: Vec<usize>,
    reads: usize,
    stalled: bool,
}

impl AsyncRead for Chunked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        this.stalled = !this.stalled;
        if this.stalled {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        // Zero bytes would be the end of the stream: a read takes at least one.
        let size = this.sizes[this.reads % this.sizes.len()].max(1);
        this.reads += 1;
        let end = (this.at + size)
            .min(this.data.len())
            .min(this.at + buf.remaining());
        buf.put_slice(&this.data[this.at..end]);
        this.at = end;
        Poll::Ready(Ok(()))
    }
}

/// Everything `poll_next` reads from `io`, to its first error (`Gone` at the end).
fn poll_all(io: &mut Chunked, max: usize) -> Vec<Result<Incoming, ReadError>> {
    let mut reader = Reader::default();
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    loop {
        match reader.poll_next(&mut cx, io, max) {
            Poll::Pending => {}
            Poll::Ready(result) => {
                let end = result.is_err();
                out.push(result);
                if end {
                    return out;
                }
            }
        }
    }
}

/// A change to one byte of a stream.
fn byte_change() -> impl Strategy<Value = (Index, u8)> {
    (any::<Index>(), any::<u8>())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_read_alike_however_they_are_cut(
        bytes in vec(any::<u8>(), 0..600),
        sizes in chunk_sizes(),
        max in limit(),
    ) {
        prop_assert_eq!(read_chunked(&bytes, &sizes, max), read_chunked(&bytes, &[], max));
    }

    #[test]
    fn changed_valid_streams_read_alike_however_they_are_cut(
        frames in valid_stream(),
        changes in vec(byte_change(), 1..4),
        sizes in chunk_sizes(),
        max in limit(),
    ) {
        let mut bytes = wire(&frames);
        if !bytes.is_empty() {
            for (at, byte) in changes {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
        }
        prop_assert_eq!(read_chunked(&bytes, &sizes, max), read_chunked(&bytes, &[], max));
    }

    #[test]
    fn valid_streams_read_back_their_messages_however_they_are_cut(
        frames in valid_stream(),
        sizes in chunk_sizes(),
    ) {
        let max = 1 << 20;
        prop_assert_eq!(read_chunked(&wire(&frames), &sizes, max), model(&frames, max));
    }

    #[test]
    fn frames_and_messages_over_the_limit_are_too_large(
        frames in valid_stream(),
        sizes in chunk_sizes(),
        max in limit(),
    ) {
        prop_assert_eq!(read_chunked(&wire(&frames), &sizes, max), model(&frames, max));
    }

    #[test]
    fn poll_next_reads_a_stream_in_arbitrary_reads_as_the_core_does(
        frames in valid_stream(),
        sizes in chunk_sizes(),
        max in limit(),
    ) {
        let mut io = Chunked { data: wire(&frames), at: 0, sizes, reads: 0, stalled: false };
        let mut expected = model(&frames, max);
        if expected.last().is_none_or(Result::is_ok) {
            expected.push(Err(ReadError::Gone));
        }
        prop_assert_eq!(poll_all(&mut io, max), expected);
    }
}
