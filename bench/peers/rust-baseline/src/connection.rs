//! One WebSocket connection: a single task that upgrades the socket, then runs a reader and a
//! coalescing writer side by side (joined with `select!`) until it ends with an [`Ending`].

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::time::timeout;

use crate::Config;
use chorus_framing::{
    self as framing, CLOSE_POLICY_VIOLATION, CLOSE_UNSUPPORTED_DATA, Header, Opcode,
};

use crate::frame;
use crate::message::Message;
use crate::outbox::{Outbox, Taken};
use crate::rooms::Rooms;

/// Frames written per `writev`. Linux allows 1024 (`IOV_MAX`); 256 small frames already
/// fill a socket's send buffer.
const MAX_BATCH: usize = 256;

/// Rooms one connection may be in (Chorus's default).
const MAX_ROOMS: usize = 64;

/// Time allowed for the HTTP upgrade.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Time allowed to flush the queue and the close frame once the connection is closing.
const CLOSE_FLUSH: Duration = Duration::from_secs(1);

/// Frames one connection handles before it lets other tasks run (its writer, and the
/// writers its broadcasts woke): at most this, and at most an eighth of the outbox bound,
/// so that a burst of publishes in one read (64 KiB holds 1700 small ones) cannot overflow
/// the outboxes of members that keep up, the publisher's own included.
const MAX_FRAMES_PER_TURN: usize = 128;

/// Deliveries (frames queued to members) one connection makes before it lets other tasks
/// run: with thousands of members per room, a few publishes are a turn's work.
const DELIVERIES_PER_TURN: usize = 16 * 1024;

/// Size of the per-thread read buffer.
const SCRATCH: usize = 64 * 1024;

thread_local! {
    /// Reads land here, so one syscall takes in up to 64 KiB of frames and an idle
    /// connection holds no read buffer. Only the tail of an incomplete frame is copied into
    /// the connection's own `pending` buffer.
    static SCRATCH_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

/// What every connection shares.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The server's settings.
    config: Config,
    /// Every room.
    rooms: Rooms,
    /// Frames a connection handles per turn.
    frames_per_turn: usize,
    /// The next connection id.
    next_id: AtomicU64,
}

impl Shared {
    /// State for a server with `config`.
    pub(crate) fn new(config: Config) -> Self {
        Self {
            frames_per_turn: (config.queue_frames / 8).clamp(1, MAX_FRAMES_PER_TURN),
            config,
            rooms: Rooms::default(),
            next_id: AtomicU64::new(0),
        }
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The client sent a close frame; it was answered with the same code.
    ClientClosed,
    /// The client went away without a close frame (end of stream or an I/O error).
    Gone,
    /// The client broke RFC 6455 or the benchmark protocol, and was sent a close frame with
    /// this code.
    Violation(u16),
    /// Its queue was full when a frame was due: closed at once, with no close frame (the
    /// writer may be in the middle of a frame).
    SlowConsumer,
}

/// Serves one accepted socket until it ends.
pub(crate) async fn serve(mut stream: TcpStream, shared: Arc<Shared>) {
    // Small frames must leave at once; the writer already coalesces what is queued.
    let _ = stream.set_nodelay(true);
    let pending = match timeout(HANDSHAKE_TIMEOUT, crate::handshake::accept(&mut stream)).await {
        Ok(Ok(pending)) => pending,
        _ => return,
    };
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let outbox = Arc::new(Outbox::new(id, shared.config.queue_frames));
    let mut connection = Connection {
        outbox: Arc::clone(&outbox),
        rooms: Vec::new(),
        pending,
        backlog: false,
        shared,
    };

    let (mut reader, mut writer) = stream.split();
    let writing = write_loop(&mut writer, &outbox);
    tokio::pin!(writing);
    let ending = {
        let reading = connection.read_loop(&mut reader);
        tokio::pin!(reading);
        tokio::select! {
            ending = &mut reading => ending,
            // The outbox is not closed yet, so the writer only returns on an error.
            written = &mut writing => written.err().unwrap_or(Ending::Gone),
        }
    };
    connection.leave_all();
    // Nothing more can be queued now: the writer writes what is (the close frame, if
    // any), then returns.
    outbox.close();
    if matches!(ending, Ending::ClientClosed | Ending::Violation(_)) {
        let _ = timeout(CLOSE_FLUSH, writing).await;
    }
}

/// What handling one frame did.
enum Handled {
    /// It queued this many frames (broadcast to members, or a reply).
    Delivered(usize),
    /// It ended the connection.
    Ended(Ending),
}

/// How far [`Connection::handle_frames`] got.
struct Progress {
    /// Bytes of complete frames handled.
    used: usize,
    /// Bytes the incomplete frame after them needs in all (header and payload), as far as
    /// is known yet.
    need: usize,
    /// Set when a frame ended the connection.
    ending: Option<Ending>,
    /// Set when the turn's budget ran out before the complete frames did.
    spent: bool,
}

impl Progress {
    fn new(used: usize, need: usize, ending: Option<Ending>) -> Self {
        Self {
            used,
            need,
            ending,
            spent: false,
        }
    }
}

/// The reader's state.
struct Connection {
    /// How the rooms (and the reader, for replies) reach this connection's writer.
    outbox: Arc<Outbox>,
    /// The rooms joined.
    rooms: Vec<Box<[u8]>>,
    /// Received bytes not yet handled: the start of an incomplete frame, or frames left
    /// for the next turn.
    pending: BytesMut,
    /// Whether `pending` holds complete frames left for the next turn.
    backlog: bool,
    /// The server's shared state.
    shared: Arc<Shared>,
}

impl Connection {
    /// Reads and handles frames until the connection ends.
    async fn read_loop(&mut self, reader: &mut ReadHalf<'_>) -> Ending {
        loop {
            if let Some(ending) = poll_fn(|cx| self.poll_read_frames(cx, reader)).await {
                return ending;
            }
            if self.backlog {
                // The turn's budget is spent: let the writers run, then go on.
                tokio::task::yield_now().await;
            }
        }
    }

    /// Handles the frames left from the last turn, or reads once (into the per-thread
    /// scratch buffer) and handles every complete frame, within a turn's budget.
    /// `Ready(None)` when the connection goes on.
    fn poll_read_frames(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut ReadHalf<'_>,
    ) -> Poll<Option<Ending>> {
        if self.backlog {
            let pending = std::mem::take(&mut self.pending);
            return Poll::Ready(self.handle_pending(pending));
        }
        SCRATCH_BUF.with_borrow_mut(|scratch| {
            let mut buf = ReadBuf::new(&mut scratch[..]);
            // Through `poll_read` rather than `try_read`: tokio then knows a short read
            // drained the socket and skips the `EAGAIN` read before waiting.
            if ready!(Pin::new(&mut *reader).poll_read(cx, &mut buf)).is_err() {
                return Poll::Ready(Some(Ending::Gone));
            }
            let n = buf.filled().len();
            if n == 0 {
                return Poll::Ready(Some(Ending::Gone));
            }
            if !self.pending.is_empty() {
                let mut pending = std::mem::take(&mut self.pending);
                pending.extend_from_slice(&scratch[..n]);
                return Poll::Ready(self.handle_pending(pending));
            }
            // The common case: frames straight from the scratch buffer.
            let progress = self.handle_frames(&mut scratch[..n]);
            if progress.ending.is_none() && progress.used < n {
                self.pending.reserve(progress.need.max(n - progress.used));
                self.pending.extend_from_slice(&scratch[progress.used..n]);
            }
            self.backlog = progress.spent;
            Poll::Ready(progress.ending)
        })
    }

    /// Handles the frames in `pending` and keeps what is left of it.
    fn handle_pending(&mut self, mut pending: BytesMut) -> Option<Ending> {
        let progress = self.handle_frames(&mut pending);
        pending.advance(progress.used);
        // An emptied buffer is dropped, so an idle connection holds none.
        if !pending.is_empty() {
            pending.reserve(progress.need.saturating_sub(pending.len()));
            self.pending = pending;
        }
        self.backlog = progress.spent;
        progress.ending
    }

    /// Handles the complete frames at the start of `buf`, as many as a turn allows.
    fn handle_frames(&mut self, buf: &mut [u8]) -> Progress {
        let (mut used, mut frames, mut deliveries) = (0, 0, 0);
        loop {
            if frames == self.shared.frames_per_turn || deliveries >= DELIVERIES_PER_TURN {
                return Progress {
                    spent: used < buf.len(),
                    ..Progress::new(used, 0, None)
                };
            }
            let rest = &mut buf[used..];
            let header = match framing::parse_client_header(rest, self.shared.config.max_message) {
                Ok(Some(header)) => header,
                Ok(None) => return Progress::new(used, rest.len(), None),
                Err(error) => {
                    return Progress::new(used, 0, Some(self.violation(error.close_code())));
                }
            };
            if header.frame_len() > rest.len() {
                // Incomplete: make room for the whole frame at once, not by doubling.
                return Progress::new(used, header.frame_len(), None);
            }
            let payload = &mut rest[header.len..header.frame_len()];
            header.unmask(payload);
            used += header.frame_len();
            frames += 1;
            match self.handle_frame(&header, payload) {
                Handled::Delivered(n) => deliveries += n,
                Handled::Ended(ending) => return Progress::new(used, 0, Some(ending)),
            }
        }
    }

    /// Handles one unmasked frame.
    fn handle_frame(&mut self, header: &Header, payload: &[u8]) -> Handled {
        match header.opcode {
            Opcode::Binary if header.fin => self.handle_message(payload),
            Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                Handled::Ended(self.violation(CLOSE_UNSUPPORTED_DATA))
            }
            Opcode::Ping => self.reply(frame::server_frame(Opcode::Pong, payload)),
            Opcode::Close => {
                // Answer with the client's code (unchecked), as RFC 6455 asks; a 1-byte body
                // is invalid.
                let reply = match framing::parse_close_payload(payload) {
                    Ok(None) => frame::server_frame(Opcode::Close, &[]),
                    Ok(Some((code, _))) => frame::close_frame(code),
                    Err(error) => return Handled::Ended(self.violation(error.close_code())),
                };
                match self.reply(reply) {
                    Handled::Delivered(_) => Handled::Ended(Ending::ClientClosed),
                    ended => ended,
                }
            }
            Opcode::Pong => Handled::Delivered(0),
        }
    }

    /// Handles one benchmark message.
    fn handle_message(&mut self, payload: &[u8]) -> Handled {
        let rooms = &self.shared.rooms;
        match Message::decode(payload) {
            Some(Message::Publish { room }) => Handled::Delivered(
                rooms.publish(room, &frame::server_frame(Opcode::Binary, payload)),
            ),
            Some(Message::Echo) => self.reply(frame::server_frame(Opcode::Binary, payload)),
            Some(Message::Join { room }) => {
                if self.rooms.iter().any(|r| **r == *room) {
                    return self.reply(frame::server_frame(Opcode::Binary, payload));
                }
                if self.rooms.len() == MAX_ROOMS {
                    return Handled::Ended(self.violation(CLOSE_POLICY_VIOLATION));
                }
                // The answer is queued before the first broadcast can be, so "joined"
                // precedes the room's messages. It cannot be written before the join
                // takes effect: the writer runs in this task, after this returns.
                let handled = self.reply(frame::server_frame(Opcode::Binary, payload));
                rooms.join(room, Arc::clone(&self.outbox));
                self.rooms.push(room.into());
                handled
            }
            None => Handled::Ended(self.violation(CLOSE_POLICY_VIOLATION)),
        }
    }

    /// Queues a frame for this connection; a full queue ends it as a slow consumer.
    fn reply(&self, frame: Bytes) -> Handled {
        if self.outbox.push(frame) {
            Handled::Delivered(1)
        } else {
            Handled::Ended(Ending::SlowConsumer)
        }
    }

    /// Queues a close frame with `code` and ends the connection.
    fn violation(&self, code: u16) -> Ending {
        match self.reply(frame::close_frame(code)) {
            Handled::Delivered(_) => Ending::Violation(code),
            Handled::Ended(ending) => ending,
        }
    }

    /// Leaves every room joined.
    fn leave_all(&mut self) {
        for room in self.rooms.drain(..) {
            self.shared.rooms.leave(&room, self.outbox.id());
        }
    }
}

/// Writes queued frames, every frame queued so far in one `writev` (up to [`MAX_BATCH`]
/// per call), until the outbox is closed and drained (`Ok`) or the connection must end.
async fn write_loop(writer: &mut WriteHalf<'_>, outbox: &Outbox) -> Result<(), Ending> {
    let mut batch = VecDeque::new();
    loop {
        match poll_fn(|cx| outbox.poll_take(cx, &mut batch)).await {
            Taken::Frames => {}
            Taken::Closed => return Ok(()),
            Taken::Slow => return Err(Ending::SlowConsumer),
        }
        // The batch is written from `(first, offset)`: frame index and bytes already sent.
        let (mut first, mut offset) = (0, 0);
        while first < batch.len() {
            let mut written = poll_fn(|cx| {
                match poll_write_frames(cx, writer, &batch, first, offset) {
                    // Blocked on a client that does not read: end it once its outbox
                    // overflows, rather than when the socket unblocks.
                    Poll::Pending if outbox.poll_slow(cx) => Poll::Ready(Err(Ending::SlowConsumer)),
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(result) => Poll::Ready(result.map_err(|_| Ending::Gone)),
                }
            })
            .await?;
            while written > 0 {
                let left = batch[first].len() - offset;
                if written < left {
                    offset += written;
                    break;
                }
                written -= left;
                first += 1;
                offset = 0;
            }
        }
        // The batch goes back to the outbox at the next swap: trimmed, so that a burst does
        // not leave every connection holding a queue of a thousand slots.
        batch.clear();
        batch.shrink_to(MAX_BATCH);
    }
}

/// One `writev` of `frames` from frame `first`, byte `offset` on.
fn poll_write_frames(
    cx: &mut Context<'_>,
    writer: &mut WriteHalf<'_>,
    frames: &VecDeque<Bytes>,
    first: usize,
    offset: usize,
) -> Poll<io::Result<usize>> {
    // Built on each poll, so that the slices never live across an `.await`: a parked
    // writer's future stays small.
    let mut slices = [IoSlice::new(&[]); MAX_BATCH];
    let mut count = 0;
    for (slice, frame) in slices.iter_mut().zip(frames.range(first..)) {
        *slice = IoSlice::new(if count == 0 { &frame[offset..] } else { frame });
        count += 1;
    }
    match ready!(Pin::new(writer).poll_write_vectored(cx, &slices[..count])) {
        Ok(0) => Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
        result => Poll::Ready(result),
    }
}
