//! The sans-IO core: every decision of the client, with no socket, timer or browser in
//! sight. The web shell feeds it inputs (user actions, socket events, the time) and carries
//! out the [`Action`]s it returns. Time is an input (`now`, in milliseconds of a monotonic
//! clock), so every behaviour is tested natively and deterministically.
//!
//! The shell's loop:
//! 1. call an input method (`publish`, `socket_frame`, `tick`, ...) with the current time;
//! 2. drain [`Core::poll_action`] and perform each action;
//! 3. arm one timer for [`Core::next_deadline`] and call [`Core::tick`] when it fires.
//!
//! ## Layout
//! - `connection.rs`: the connection's life: connect, the token probe, welcome, loss,
//!   backoff, token refresh, reconnect on request, close; the state events.
//! - `incoming.rs`: what each server frame does.
//! - `backoff.rs`: reconnect delays (exponential, full jitter, the server's hint).
//! - `heartbeat.rs`: pings and the dead-connection deadline.
//! - `names.rs`: the small sorted map behind rooms and typists.
//! - `rooms.rs`: wanted rooms, positions to resume from, the duplicate guard.
//! - `outbox.rs`: publishes awaiting their ack.
//! - `pacing.rs`: the server's publish rate, kept by the outbox.
//! - `history.rs`: history requests awaiting their answer.
//! - `typing.rs`: local throttle and idle stop, remote expiry.
//! - `rng.rs`: the seeded PRNG behind jitter, ids and nonces.
//! - `text.rs`: messages built without `format!`, which would grow the wasm.

use crate::prelude::*;
mod backoff;
mod connection;
mod heartbeat;
mod history;
mod incoming;
mod names;
mod outbox;
mod pacing;
mod rng;
mod rooms;
pub(crate) mod text;
mod typing;

use ::core::time::Duration;

use chorus_protocol::{
    Body, ClientMessage, ErrorCode, HistoryMessage, Position, Recovery, validate,
};

use self::backoff::Backoff;
use self::connection::{Next, Phase, RECONNECT_REQUESTED, ServerLimits};
use self::history::{Request, Requests};
use self::outbox::{Outbox, Pending};
use self::rng::Rng;
use self::rooms::Rooms;
use self::typing::{LocalTyping, RemoteTyping};

/// Milliseconds on a monotonic clock (`performance.now()` in the browser).
pub type Millis = u64;

/// Tuning of the client. Every field has a default (see [`Options::default`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// First reconnect delay bound. Default: 500 ms.
    pub initial_backoff: Duration,
    /// Largest reconnect delay bound. Default: 30 s.
    pub max_backoff: Duration,
    /// A connection open this long resets the backoff. Default: 10 s.
    pub stable_after: Duration,
    /// The socket must open and the welcome arrive within this. Default: 10 s.
    pub connect_timeout: Duration,
    /// The longest silence tolerated past a heartbeat interval: the connection is dead when
    /// nothing arrives within the interval plus this, and after [`Core::wake`] pings to
    /// check, when no answer comes within this. An upper bound: when the server's heartbeat
    /// timeout (announced in its welcome) leaves less after the interval, that shorter time
    /// applies, since the server gives up on a connection that silent anyway. With the
    /// server's defaults (25 s interval, 60 s timeout) this bound applies. Default: 10 s.
    pub pong_timeout: Duration,
    /// A publish not acknowledged within this is rejected with
    /// [`PublishError::TimedOut`]. Default: 15 s.
    pub publish_timeout: Duration,
    /// A history request not answered within this is rejected with
    /// [`HistoryError::TimedOut`]. Default: 15 s.
    pub request_timeout: Duration,
    /// Most publishes waiting (queued offline or awaiting their ack). Default: 256.
    pub queue_max_messages: usize,
    /// Most body bytes waiting. Default: 1 MiB.
    pub queue_max_bytes: usize,
    /// "Typing stopped" is sent after this long without a keystroke. Default: 3 s.
    pub typing_idle: Duration,
    /// Consecutive failed connection attempts after which the client gives up: it closes
    /// for good with an [`Event::Error`] of code [`ClientErrorCode::AttemptsExhausted`]
    /// and a final [`Event::Close`]. An attempt fails when it never gets a welcome: the
    /// socket fails or times out, the server is unreachable, `getToken` fails. A welcome
    /// starts the count again; `Some(0)` counts as `Some(1)`. Default: unlimited (`None`).
    pub max_attempts: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            stable_after: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            pong_timeout: Duration::from_secs(10),
            publish_timeout: Duration::from_secs(15),
            request_timeout: Duration::from_secs(15),
            queue_max_messages: 256,
            queue_max_bytes: 1024 * 1024,
            typing_idle: Duration::from_secs(3),
            max_attempts: None,
        }
    }
}

/// Where the connection is. Each change is told as [`Event::State`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// An attempt is under way: a socket is opening (first connect, or an attempt after a
    /// delay), or a token is being fetched or checked.
    Connecting,
    /// The server welcomed this connection.
    Open,
    /// Waiting before the next attempt.
    Reconnecting,
    /// Closed for good: by `close()`, or a failure that retrying cannot fix.
    Closed,
}

/// A publish acknowledged by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Room name.
    pub room: String,
    /// The publish's message id.
    pub id: u64,
    /// The sequence number the message got in the room.
    pub seq: u64,
}

/// Why a publish failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// The offline queue is full (by count or by bytes).
    QueueFull,
    /// No ack within `publish_timeout`; the server may or may not have it.
    TimedOut,
    /// The body is larger than the server's `max_body`.
    TooLarge {
        /// Body size in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The server refused it (not joined, forbidden, publish disabled, rate limited...).
    Rejected {
        /// The [`chorus_protocol::ErrorCode`] number.
        code: u16,
        /// The server's text.
        message: String,
    },
    /// The client was closed before the publish was acknowledged.
    Closed,
}

impl PublishError {
    /// The error's number: the server's [`chorus_protocol::ErrorCode`] for
    /// [`PublishError::Rejected`] (or one the client applies itself, such as
    /// [`ClientErrorCode::InvalidArgument`]) and for [`PublishError::TooLarge`] (103,
    /// `BodyTooLarge`), a [`ClientErrorCode`] otherwise.
    pub fn code(&self) -> u16 {
        match self {
            PublishError::QueueFull => ClientErrorCode::QueueFull as u16,
            PublishError::TimedOut => ClientErrorCode::TimedOut as u16,
            PublishError::TooLarge { .. } => ErrorCode::BodyTooLarge.as_u16(),
            PublishError::Rejected { code, .. } => *code,
            PublishError::Closed => ClientErrorCode::Closed as u16,
        }
    }
}

/// A page of a room's history: the answer to [`Core::history`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// Room name.
    pub room: String,
    /// The room's position when the page was read.
    pub position: Position,
    /// Messages before the requested position, oldest first, with consecutive sequence
    /// numbers: the newest ones the server retains there, up to the limit asked for.
    pub messages: Vec<HistoryMessage>,
    /// Whether older messages are retained before the first one in `messages`.
    pub more: bool,
}

impl HistoryPage {
    /// The `before` that asks for the page of older messages that precedes this one, or
    /// `None` when there is none (`more` is false).
    pub fn older(&self) -> Option<Position> {
        let first = self.messages.first().filter(|_| self.more)?;
        Some(Position {
            epoch: self.position.epoch,
            seq: first.seq,
        })
    }
}

/// Why a history request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryError {
    /// [`MAX_HISTORY_REQUESTS`] requests are pending already.
    TooManyPending,
    /// No answer within `request_timeout`.
    TimedOut,
    /// The request was refused: by the server (forbidden, rate limited, an epoch that is
    /// gone...) or at once by the client, with the code the server would answer (an invalid
    /// room name, a limit of 0).
    Rejected {
        /// The [`chorus_protocol::ErrorCode`] number.
        code: u16,
        /// Human-readable text.
        message: String,
    },
    /// The client was closed before the answer came.
    Closed,
}

impl HistoryError {
    /// The error's number: a server [`chorus_protocol::ErrorCode`] for
    /// [`HistoryError::Rejected`], a [`ClientErrorCode`] otherwise.
    pub fn code(&self) -> u16 {
        match self {
            HistoryError::TooManyPending => ClientErrorCode::TooManyPending as u16,
            HistoryError::TimedOut => ClientErrorCode::TimedOut as u16,
            HistoryError::Rejected { code, .. } => *code,
            HistoryError::Closed => ClientErrorCode::Closed as u16,
        }
    }
}

/// Most history requests pending at once (queued offline or awaiting their answer); one
/// more is rejected with [`HistoryError::TooManyPending`].
pub const MAX_HISTORY_REQUESTS: usize = 32;

/// Client-side error codes: 600-699, apart from the server's error codes (100-599) and
/// from close codes (1000-4999), so that a number alone says what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ClientErrorCode {
    /// The server refused the token and no `getToken` can supply another.
    Unauthorized = 600,
    /// `getToken` failed.
    TokenUnavailable = 601,
    /// An argument is invalid (a room name, a message id over 2^53 - 1, ...).
    InvalidArgument = 602,
    /// The server closed the connection and asked not to reconnect.
    DoNotRetry = 603,
    /// A request got no answer in time.
    TimedOut = 604,
    /// The client was closed before a request was answered.
    Closed = 605,
    /// Too many requests are pending.
    TooManyPending = 606,
    /// The offline queue is full (by count or by bytes).
    QueueFull = 607,
    /// `max_attempts` connection attempts failed in a row; the client gave up.
    AttemptsExhausted = 608,
    /// The runtime has no WebSocket (the JavaScript shell reports it; the core never does).
    NoWebSocket = 609,
    /// A payload could not be decoded by the app's codec (the JavaScript shell reports it;
    /// the core never does).
    DecodeFailed = 610,
}

/// What the app hears about.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The server welcomed a connection (first or after a reconnect).
    Open {
        /// The server's session id.
        session: String,
        /// The authenticated user.
        user: String,
    },
    /// The client is closed for good.
    Close {
        /// WebSocket close code of the last socket (1000 after `close()`).
        code: u16,
        /// Why.
        reason: String,
    },
    /// The connection was lost, or an attempt failed; the next attempt comes after
    /// `delay_ms` (0 when it goes at once: a token refresh, [`Core::reconnect`]).
    Reconnecting {
        /// 1 for the first attempt after a loss, then 2, 3...
        attempt: u32,
        /// Delay before the attempt.
        delay_ms: u64,
        /// Why, as in [`Event::State`]: the close code (1006 when the socket failed or the
        /// server was unreachable, 4000 after a heartbeat or connect timeout), the code of
        /// the server's `Disconnect`, or [`ClientErrorCode::TokenUnavailable`].
        code: u16,
        /// Why, in words: the server's `Disconnect` reason, or the client's.
        reason: String,
    },
    /// [`Core::state`] changed; sent on every change, before the event that goes with it
    /// (`Open`, `Reconnecting`, `Close`).
    State {
        /// The new state.
        state: State,
        /// Why. To `Open`: 1000. To `Reconnecting` (or straight to `Connecting` when the
        /// next attempt goes at once): what ended the socket or failed the attempt, as in
        /// [`Event::Reconnecting`]. From `Reconnecting` to `Connecting`: the same cause as
        /// the wait that ends. Asked for by [`Core::reconnect`]: 1000. To `Closed`: the
        /// code and reason of the final [`Event::Close`].
        code: u16,
        /// Why, in words: "" for `Open`, "reconnect requested" after [`Core::reconnect`],
        /// "server unreachable" when the token probe got no answer, the server's
        /// `Disconnect` reason, the name of the server's close code (`heartbeat_timeout`,
        /// ...), "connection lost", "connection failed", "heartbeat timeout", "connect
        /// timeout", the message of a failed `getToken`...
        reason: String,
    },
    /// A room was joined (or rejoined after a reconnect).
    Joined {
        /// Room name.
        room: String,
        /// Users present.
        members: Vec<String>,
        /// The room's position.
        position: Position,
        /// What became of the resume request.
        recovery: Recovery,
    },
    /// A room was left.
    Left {
        /// Room name.
        room: String,
    },
    /// A message (each sequence at most once per room and epoch).
    Message {
        /// Room name.
        room: String,
        /// Per-room sequence.
        seq: u64,
        /// Publisher's message id.
        id: u64,
        /// Publisher.
        sender: String,
        /// Server timestamp, ms since the Unix epoch.
        ts: u64,
        /// Payload.
        body: Body,
    },
    /// A user joined a room.
    MemberJoined {
        /// Room name.
        room: String,
        /// User.
        user: String,
    },
    /// A user left a room.
    MemberLeft {
        /// Room name.
        room: String,
        /// User.
        user: String,
    },
    /// Who is typing in a room changed. `users` is de-duplicated, excludes expired states,
    /// and is sorted.
    Typing {
        /// Room name.
        room: String,
        /// Users typing now.
        users: Vec<String>,
    },
    /// Something failed that no Promise reports: a join refused, the token refused, a
    /// server error not tied to a publish.
    Error {
        /// A server [`chorus_protocol::ErrorCode`] number, or a [`ClientErrorCode`].
        code: u16,
        /// Human-readable text.
        message: String,
        /// The room concerned, if any.
        room: Option<String>,
    },
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Open a socket to the server with this token (replacing any current socket).
    Open {
        /// The token to offer as `chorus.auth.<token>`.
        token: String,
    },
    /// Send one binary frame on the current socket.
    Send(Vec<u8>),
    /// Close the current socket and stop listening to it; its later events are dropped.
    Close {
        /// Close code (1000, or 4000-4999).
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// Call the app's `getToken`, then [`Core::token_fetched`].
    FetchToken,
    /// Ask the server over plain HTTP whether it is reachable and accepts this token
    /// (`GET /ws?token=<token>&probe=1`, answered 200 with `{"token":"accepted"}` or
    /// `{"token":"refused",...}`), then call [`Core::auth_probed`]. An attempt starts with
    /// this, instead of a socket, after a socket failed before opening: a browser cannot
    /// tell a refused token from a server that is down, and each failed request shows in
    /// its console, so while the server is down each attempt costs this one request.
    ProbeAuth {
        /// The token to check.
        token: String,
    },
    /// Tell the app.
    Emit(Event),
    /// Settle the publish with this id: resolve its Promise or future with the ack, or
    /// reject it.
    Settle {
        /// The message id [`Core::publish`] returned.
        id: u64,
        /// The outcome.
        result: Result<Ack, PublishError>,
    },
    /// Settle the history request with this id: resolve its Promise or future with the
    /// page, or reject it.
    HistoryDone {
        /// The request id [`Core::history`] returned.
        request: u64,
        /// The outcome.
        result: Result<HistoryPage, HistoryError>,
    },
}

/// What the token probe ([`Action::ProbeAuth`]) found, for [`Core::auth_probed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The server answered and accepts the token: open the socket.
    Accepted,
    /// The server answered and refuses the token.
    Refused,
    /// No answer: a network error (or a CORS refusal).
    Unreachable,
}

/// An argument the client refuses at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidArgument(pub String);

/// Message and request ids stay below 2^53 so JavaScript holds them exactly
/// (`Number.MAX_SAFE_INTEGER`).
const ID_MASK: u64 = (1 << 53) - 1;

/// Timing options in milliseconds, the unit of the clock.
#[derive(Debug)]
struct Timings {
    initial_backoff: Millis,
    max_backoff: Millis,
    stable_after: Millis,
    connect_timeout: Millis,
    pong_timeout: Millis,
    publish_timeout: Millis,
    request_timeout: Millis,
    typing_idle: Millis,
}

/// `d` in whole milliseconds, saturating. Not `as_millis` nor `saturating_mul`: their
/// 128-bit arithmetic costs the wasm a call to a runtime routine per option.
#[inline(never)]
fn millis(d: Duration) -> Millis {
    let secs = d.as_secs();
    if secs > Millis::MAX / 1000 {
        return Millis::MAX;
    }
    (secs * 1000).saturating_add(Millis::from(d.subsec_millis()))
}

/// The earlier of two deadlines, either of which may be absent.
pub(crate) fn earlier(a: Option<Millis>, b: Option<Millis>) -> Option<Millis> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (Some(at), None) | (None, Some(at)) => Some(at),
        (None, None) => None,
    }
}

/// Encode a request. Postcard cannot fail on these types, and the server enforces the
/// frame limit itself.
fn encode(message: &ClientMessage) -> Vec<u8> {
    // The npm package encodes without serde: the same bytes in less wasm.
    #[cfg(feature = "js")]
    let frame = message.encode_compact(usize::MAX);
    #[cfg(not(feature = "js"))]
    let frame = message.encode(usize::MAX);
    frame.unwrap_or_default()
}

/// The client's state machine. See the module docs for how a shell drives it.
#[derive(Debug)]
pub struct Core {
    timings: Timings,
    rng: Rng,
    phase: Phase,
    token: Option<String>,
    can_fetch_token: bool,
    backoff: Backoff,
    /// Token refreshes since the last stable connection: the first goes at once, later ones
    /// wait their backoff, so a token the server keeps refusing cannot cause a storm.
    token_refreshes: u32,
    /// The server's `Disconnect` on the current socket, if it sent one.
    notice: Option<connection::Notice>,
    /// Close code of the last socket, for the final `Close` event.
    last_close_code: u16,
    /// Why the state changes next: the code and reason of [`Event::State`] and
    /// [`Event::Reconnecting`].
    cause: (u16, String),
    /// The next attempt starts with [`Action::ProbeAuth`]: the last socket failed before
    /// opening, or the last probe got no answer.
    probe_first: bool,
    /// Attempts failed in a row since the last welcome.
    failed_attempts: u32,
    max_attempts: Option<u32>,
    limits: ServerLimits,
    /// The user the server welcomed, to recognise the echo of our own publishes.
    user: Option<String>,
    /// The next publish or history request id: one sequence for both, so that a server
    /// error's `id` names one request.
    next_id: u64,
    next_nonce: u64,
    rooms: Rooms,
    outbox: Outbox,
    requests: Requests,
    local_typing: LocalTyping,
    remote_typing: RemoteTyping,
    /// Actions decided, oldest first; the first `polled` of them were taken by
    /// [`Core::poll_action`]. A `Vec` and an index rather than a `VecDeque`: one collection
    /// type fewer in the wasm.
    actions: Vec<Action>,
    polled: usize,
}

impl Core {
    /// A core that will connect with `token`, or fetch one first when `token` is `None`
    /// (then `can_fetch_token` must be true). `seed` seeds the jitter and message ids;
    /// pass a random one.
    pub fn new(options: Options, token: Option<String>, can_fetch_token: bool, seed: u64) -> Core {
        let mut rng = Rng::new(seed);
        let next_id = rng.next_u64() & ID_MASK;
        let next_nonce = rng.next_u64();
        let timings = Timings {
            initial_backoff: millis(options.initial_backoff),
            max_backoff: millis(options.max_backoff),
            stable_after: millis(options.stable_after),
            connect_timeout: millis(options.connect_timeout),
            pong_timeout: millis(options.pong_timeout),
            publish_timeout: millis(options.publish_timeout),
            request_timeout: millis(options.request_timeout),
            typing_idle: millis(options.typing_idle),
        };
        Core {
            backoff: Backoff::new(
                timings.initial_backoff,
                timings.max_backoff,
                timings.stable_after,
            ),
            timings,
            rng,
            phase: Phase::Idle,
            token,
            can_fetch_token,
            token_refreshes: 0,
            notice: None,
            last_close_code: 1000,
            cause: (1000, String::new()),
            probe_first: false,
            failed_attempts: 0,
            max_attempts: options.max_attempts,
            limits: ServerLimits::default(),
            user: None,
            next_id,
            next_nonce,
            rooms: Rooms::default(),
            outbox: Outbox::new(options.queue_max_messages, options.queue_max_bytes),
            requests: Requests::new(MAX_HISTORY_REQUESTS),
            local_typing: LocalTyping::default(),
            remote_typing: RemoteTyping::default(),
            actions: Vec::new(),
            polled: 0,
        }
    }

    /// Where the connection is. Before [`Core::connect`], and while a token is fetched or
    /// checked, that is [`State::Connecting`].
    pub fn state(&self) -> State {
        match self.phase {
            Phase::Idle
            | Phase::FetchingToken
            | Phase::Opening { .. }
            | Phase::Handshake { .. }
            | Phase::Probing { .. } => State::Connecting,
            Phase::Open(_) => State::Open,
            Phase::Waiting { .. } => State::Reconnecting,
            Phase::Closed => State::Closed,
        }
    }

    /// Start connecting (once, after `new`).
    pub fn connect(&mut self, now: Millis) {
        if matches!(self.phase, Phase::Idle) {
            self.start(now);
        }
    }

    /// Join `room` now, or as soon as connected; rejoined after every reconnect, resuming
    /// after the last message delivered.
    ///
    /// `since` is a position the app kept (across a page reload, say): the join resumes
    /// from it, so the server replays what came after it, and no message at or before it
    /// is delivered. When `room` is already wanted, the join stands as it is and `since` is
    /// ignored. While closed, the room is kept for [`Core::reconnect`].
    pub fn join(
        &mut self,
        room: &str,
        since: Option<Position>,
        now: Millis,
    ) -> Result<(), InvalidArgument> {
        let _ = now;
        validate::room(room).map_err(|e| InvalidArgument(text::invalid_room(e)))?;
        if !self.rooms.want(room) {
            return Ok(());
        }
        if let Some(since) = since {
            self.rooms.resume_from(room, since);
        }
        if self.is_open() {
            let since = self.rooms.join_sent(room);
            self.send(&ClientMessage::Join {
                room: room.to_owned(),
                since,
            });
        }
        Ok(())
    }

    /// Whether `room` is wanted: joined, or to be joined. A join the server refused for
    /// good, or a `leave`, ends that.
    pub fn wants(&self, room: &str) -> bool {
        self.rooms.is_wanted(room)
    }

    /// Leave `room`. Publishes to it that have not gone out are rejected.
    pub fn leave(&mut self, room: &str, now: Millis) {
        let _ = now;
        if !self.rooms.forget(room) {
            return;
        }
        self.local_typing.stop(room);
        self.remote_typing.forget(room);
        self.drop_unsent(
            room,
            ErrorCode::NotJoined.as_u16(),
            "the room was left before the message was sent",
        );
        if self.is_open() {
            self.send(&ClientMessage::Leave {
                room: room.to_owned(),
            });
        }
    }

    /// Publish; returns the message id, settled later by [`Action::Settle`] (possibly at
    /// once, e.g. when the queue is full).
    ///
    /// `id` is the app's idempotency key, at most 2^53 - 1 (else the publish is refused at
    /// once with code [`ClientErrorCode::InvalidArgument`]): the server delivers a user's
    /// message once per id, so the same id published again (after a page reload, say)
    /// reaches the room once. `None`: the core picks a new id.
    pub fn publish(&mut self, room: &str, body: Body, id: Option<u64>, now: Millis) -> u64 {
        let id = id.unwrap_or_else(|| self.take_id());
        if let Err(error) = self.admit(room, &body, id) {
            self.settle(id, Err(error));
            return id;
        }
        let size = body.len();
        let frame = encode(&ClientMessage::Publish {
            room: room.to_owned(),
            id,
            body,
        });
        self.outbox.push(Pending {
            id,
            room: room.to_owned(),
            size,
            frame,
            deadline: now.saturating_add(self.timings.publish_timeout),
            in_flight: false,
            maybe_delivered: false,
        });
        // Sending ends typing; say so first, so no "typing" outlives the message.
        if self.local_typing.stop(room) {
            self.send(&ClientMessage::TypingStopped {
                room: room.to_owned(),
            });
        }
        self.flush(now);
        id
    }

    /// Publishes waiting: queued offline, or sent and awaiting their ack.
    pub fn pending(&self) -> usize {
        self.outbox.len()
    }

    /// Why a publish cannot even be queued, if it cannot.
    fn admit(&self, room: &str, body: &Body, id: u64) -> Result<(), PublishError> {
        if self.is_closed() {
            return Err(PublishError::Closed);
        }
        if id > ID_MASK {
            return Err(PublishError::Rejected {
                code: ClientErrorCode::InvalidArgument as u16,
                message: "the message id must be an integer from 0 to 2^53 - 1".to_owned(),
            });
        }
        if let Err(e) = validate::room(room) {
            return Err(PublishError::Rejected {
                code: ErrorCode::InvalidRoom.as_u16(),
                message: text::invalid_room(e),
            });
        }
        // The server only accepts publishes in joined rooms; fail now rather than after a
        // round trip (or, offline, after the reconnect).
        if !self.rooms.is_wanted(room) {
            return Err(PublishError::Rejected {
                code: ErrorCode::NotJoined.as_u16(),
                message: "not joined to this room; join it before publishing".to_owned(),
            });
        }
        let size = body.len();
        if size > self.limits.max_body {
            return Err(PublishError::TooLarge {
                size,
                max: self.limits.max_body,
            });
        }
        if !self.outbox.has_room_for(size) {
            return Err(PublishError::QueueFull);
        }
        Ok(())
    }

    /// Ask for a page of `room`'s history: up to `limit` messages before `before`, or the
    /// newest when `before` is `None`. Returns the request id, settled later by
    /// [`Action::HistoryDone`] (at once when the request is refused here). The room need not
    /// be joined. While not connected the request waits, and it is sent (again) on the next
    /// connection; it times out `request_timeout` after this call.
    pub fn history(
        &mut self,
        room: &str,
        before: Option<Position>,
        limit: u32,
        now: Millis,
    ) -> u64 {
        let id = self.take_id();
        if let Err(error) = self.admit_history(room, limit) {
            self.history_done(id, Err(error));
            return id;
        }
        let frame = encode(&ClientMessage::History {
            request: id,
            room: room.to_owned(),
            before,
            limit,
        });
        self.requests.push(Request {
            id,
            frame,
            deadline: now.saturating_add(self.timings.request_timeout),
            sent: false,
        });
        self.flush_requests();
        id
    }

    /// Why a history request cannot even be queued, if it cannot.
    fn admit_history(&self, room: &str, limit: u32) -> Result<(), HistoryError> {
        if self.is_closed() {
            return Err(HistoryError::Closed);
        }
        if let Err(e) = validate::room(room) {
            return Err(HistoryError::Rejected {
                code: ErrorCode::InvalidRoom.as_u16(),
                message: text::invalid_room(e),
            });
        }
        if limit == 0 {
            return Err(HistoryError::Rejected {
                code: ErrorCode::InvalidRequest.as_u16(),
                message: "the limit must be 1 or more".to_owned(),
            });
        }
        if self.requests.is_full() {
            return Err(HistoryError::TooManyPending);
        }
        Ok(())
    }

    /// The user typed in `room` (call on every keystroke).
    pub fn typing(&mut self, room: &str, now: Millis) {
        if !self.is_open() || !self.rooms.typing_allowed(room) {
            return;
        }
        if self
            .local_typing
            .keystroke(room, now, self.limits.typing_throttle)
        {
            self.send(&ClientMessage::TypingStarted {
                room: room.to_owned(),
            });
        }
    }

    /// Close for good: pending publishes reject with [`PublishError::Closed`] and pending
    /// history requests with [`HistoryError::Closed`]; no timer or event follows but the
    /// final `Close` event.
    pub fn close(&mut self, now: Millis) {
        let _ = now;
        if self.is_closed() {
            return;
        }
        self.push(Action::Close {
            code: 1000,
            reason: "client closed".to_owned(),
        });
        self.shut(1000, "client closed", None);
    }

    /// The result of [`Action::FetchToken`]. A fresh token goes straight to a socket.
    pub fn token_fetched(&mut self, result: Result<String, String>, now: Millis) {
        if !matches!(self.phase, Phase::FetchingToken) {
            return;
        }
        match result {
            Ok(token) => {
                self.token = Some(token);
                self.open_socket(now);
            }
            Err(message) => {
                let code = ClientErrorCode::TokenUnavailable as u16;
                self.set_cause(code, &message);
                self.emit(Event::Error {
                    code,
                    message,
                    room: None,
                });
                self.attempt_failed(now, Next::FetchToken);
            }
        }
    }

    /// The result of [`Action::ProbeAuth`]. Accepted: the socket opens. Refused: a new
    /// token is fetched at once (the attempt waited its backoff before the probe), or,
    /// without `getToken`, the client closes for good with
    /// [`ClientErrorCode::Unauthorized`]. Unreachable: the attempt failed; after the
    /// backoff delay the next one starts with the probe again. An answer that comes after
    /// the probe timed out (`connect_timeout`, counted as unreachable) is ignored, or, if a
    /// newer probe is under way by then, taken as its answer.
    pub fn auth_probed(&mut self, outcome: Probe, now: Millis) {
        if !matches!(self.phase, Phase::Probing { .. }) {
            return;
        }
        match outcome {
            Probe::Accepted => {
                self.probe_first = false;
                self.open_socket(now);
            }
            Probe::Refused if self.can_fetch_token => {
                self.probe_first = false;
                self.token_refreshes = self.token_refreshes.saturating_add(1);
                self.fetch_token();
            }
            // Retrying cannot help: the same token would be refused again.
            Probe::Refused => self.shut(
                self.last_close_code,
                "unauthorized",
                Some((
                    ClientErrorCode::Unauthorized,
                    "the server refused the token".to_owned(),
                )),
            ),
            Probe::Unreachable => {
                self.last_close_code = 1006;
                self.set_cause(1006, "server unreachable");
                self.attempt_failed(now, Next::Open);
            }
        }
    }

    /// Connect now (a "retry now" button, a network change the browser did not report).
    ///
    /// - Open: the socket is closed with code 1000 and reason "reconnect requested" (a
    ///   normal closure: the client chose it, nothing failed), and a new one opens at once,
    ///   rejoining and resuming every room as after any loss. `State` (to `Connecting`)
    ///   and `Reconnecting` (with a 0 ms delay) carry that code and reason.
    /// - Waiting for the next attempt: it goes at once, as with [`Core::wake`]. A wait the
    ///   server asked for (its `RetryAfter`) is kept: it is how a server sheds load.
    /// - Connecting (a socket opening, a token being fetched or checked): nothing.
    /// - Closed: start again as a new client would (a fresh backoff and attempt count, the
    ///   first socket opened at once), rejoining the rooms still wanted and resuming them
    ///   where they were. Publishes and history requests were settled by the close.
    /// - Before [`Core::connect`]: connects.
    pub fn reconnect(&mut self, now: Millis) {
        let (code, reason) = RECONNECT_REQUESTED;
        match &self.phase {
            Phase::Idle => self.start(now),
            Phase::Open(open) => {
                let since = open.since;
                self.push(Action::Close {
                    code,
                    reason: reason.to_owned(),
                });
                self.last_close_code = code;
                self.set_cause(code, reason);
                self.lose_connection(now, Some(since));
                self.go_at_once(now, Next::Open);
            }
            Phase::Waiting {
                next, firm: false, ..
            } => {
                let next = *next;
                self.set_cause(code, reason);
                self.proceed(next, now);
            }
            Phase::Closed => {
                self.rooms.connection_lost();
                self.outbox.connection_lost();
                self.requests.connection_lost();
                self.backoff = self.fresh_backoff();
                self.token_refreshes = 0;
                self.failed_attempts = 0;
                self.probe_first = false;
                self.notice = None;
                self.last_close_code = 1000;
                self.set_cause(code, reason);
                self.start(now);
            }
            _ => {}
        }
    }

    /// The browser went online, or the page became visible: retry at once if waiting.
    /// When open, check the connection with a ping: it is dead if nothing answers within
    /// `pong_timeout` (or the shorter time the server's heartbeat timeout leaves, see
    /// [`Options::pong_timeout`]). A delay the server asked for (`RetryAfter`) is kept.
    pub fn wake(&mut self, now: Millis) {
        match &self.phase {
            Phase::Waiting {
                next, firm: false, ..
            } => {
                let next = *next;
                self.proceed(next, now);
            }
            Phase::Open(_) => {
                self.ping();
                if let Phase::Open(open) = &mut self.phase {
                    open.heartbeat.probe(now);
                }
            }
            _ => {}
        }
    }

    /// The socket opened.
    pub fn socket_opened(&mut self, now: Millis) {
        let _ = now;
        if let Phase::Opening { deadline } = self.phase {
            // The server is there and took the token.
            self.probe_first = false;
            self.enter(Phase::Handshake { deadline });
        }
    }

    /// A binary frame arrived.
    pub fn socket_frame(&mut self, frame: &[u8], now: Millis) {
        match &mut self.phase {
            Phase::Handshake { .. } => {}
            Phase::Open(open) => open.heartbeat.frame(now),
            _ => return,
        }
        self.on_frame(frame, now);
    }

    /// The socket closed (or failed) with this close code (1006 for an abnormal close).
    pub fn socket_closed(&mut self, code: u16, now: Millis) {
        match &self.phase {
            // Failed before opening: the server is down, or refused the token with an HTTP
            // 401 that the browser does not show. The next attempt asks first.
            Phase::Opening { .. } => {
                self.probe_first = true;
                let reason = connection::close_reason(code, false);
                self.connection_ended(now, code, reason, None);
            }
            Phase::Handshake { .. } => {
                let reason = connection::close_reason(code, true);
                self.connection_ended(now, code, reason, None);
            }
            Phase::Open(open) => {
                let since = open.since;
                let reason = connection::close_reason(code, true);
                self.connection_ended(now, code, reason, Some(since));
            }
            _ => {}
        }
    }

    /// Time passed; call when the timer for [`Core::next_deadline`] fires.
    pub fn tick(&mut self, now: Millis) {
        match &mut self.phase {
            Phase::Closed => return,
            Phase::Opening { deadline } if now >= *deadline => {
                // The socket never opened: as for one that failed, the next attempt asks
                // first.
                self.probe_first = true;
                self.connect_timed_out(now);
            }
            Phase::Handshake { deadline } if now >= *deadline => self.connect_timed_out(now),
            Phase::Probing { deadline } if now >= *deadline => {
                self.auth_probed(Probe::Unreachable, now);
            }
            Phase::Waiting { until, next, .. } if now >= *until => {
                let next = *next;
                self.proceed(next, now);
            }
            Phase::Open(open) => {
                if open.heartbeat.is_dead(now) {
                    let since = open.since;
                    // The shell drops the old socket's events after this Close, so its
                    // socket_closed never comes: reconnect now.
                    self.push(Action::Close {
                        code: 4000,
                        reason: "heartbeat timeout".to_owned(),
                    });
                    self.connection_ended(now, 4000, "heartbeat timeout", Some(since));
                } else if open.heartbeat.ping_due(now) {
                    self.ping();
                }
            }
            _ => {}
        }
        if self.is_closed() {
            return;
        }
        for p in &self.outbox.take_expired(now) {
            self.settle(p.id, Err(PublishError::TimedOut));
        }
        for r in &self.requests.take_expired(now) {
            self.history_done(r.id, Err(HistoryError::TimedOut));
        }
        if self.is_open() {
            // The lists below are walked by reference: a by-value loop over a `Vec<String>`
            // costs the wasm its own iterator type.
            for room in &self.local_typing.take_idle(now, self.timings.typing_idle) {
                self.send(&ClientMessage::TypingStopped { room: room.clone() });
            }
            let due = self.rooms.retries_due(now);
            if !due.is_empty() {
                for room in &due {
                    let since = self.rooms.join_sent(room);
                    self.send(&ClientMessage::Join {
                        room: room.clone(),
                        since,
                    });
                }
                self.after_joins(now);
            }
            // Publishes waiting for the server's rate (see `pacing.rs`).
            self.flush(now);
        }
        for room in &self.remote_typing.expire(now) {
            self.emit_typing(room.clone());
        }
    }

    /// When [`Core::tick`] must be called next, if ever.
    pub fn next_deadline(&self) -> Option<Millis> {
        let phase = match &self.phase {
            Phase::Closed => return None,
            Phase::Opening { deadline }
            | Phase::Handshake { deadline }
            | Phase::Probing { deadline } => Some(*deadline),
            Phase::Waiting { until, .. } => Some(*until),
            Phase::Open(open) => Some(open.heartbeat.deadline()),
            Phase::Idle | Phase::FetchingToken => None,
        };
        let (typing_idle, join_retry) = if self.is_open() {
            (
                self.local_typing.deadline(self.timings.typing_idle),
                self.rooms.retry_deadline(),
            )
        } else {
            (None, None)
        };
        // A fold rather than `flatten().min()`: the same answer in a fraction of the wasm.
        [
            self.send_deadline(),
            self.outbox.deadline(),
            self.requests.deadline(),
            self.remote_typing.deadline(),
            typing_idle,
            join_retry,
        ]
        .into_iter()
        .fold(phase, earlier)
    }

    /// The next action to perform.
    pub fn poll_action(&mut self) -> Option<Action> {
        match self.actions.get_mut(self.polled) {
            Some(slot) => {
                self.polled += 1;
                // A variant without data holds its place until the last one is taken.
                Some(::core::mem::replace(slot, Action::FetchToken))
            }
            None => {
                self.actions.clear();
                self.polled = 0;
                None
            }
        }
    }

    /// No welcome within `connect_timeout`: give the socket up.
    fn connect_timed_out(&mut self, now: Millis) {
        let reason = "connect timeout";
        self.push(Action::Close {
            code: 4000,
            reason: reason.to_owned(),
        });
        self.connection_ended(now, 4000, reason, None);
    }

    fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open(_))
    }

    fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    fn push(&mut self, action: Action) {
        self.actions.push(action);
    }

    fn emit(&mut self, event: Event) {
        self.push(Action::Emit(event));
    }

    fn send(&mut self, message: &ClientMessage) {
        self.push(Action::Send(encode(message)));
    }

    fn settle(&mut self, id: u64, result: Result<Ack, PublishError>) {
        self.push(Action::Settle { id, result });
    }

    fn history_done(&mut self, request: u64, result: Result<HistoryPage, HistoryError>) {
        self.push(Action::HistoryDone { request, result });
    }

    /// A new publish or request id.
    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = (self.next_id + 1) & ID_MASK;
        id
    }

    /// Send the history requests not yet sent on this connection, once it is open. They
    /// need no join ahead of them, and no wait for replays: a read changes nothing.
    fn flush_requests(&mut self) {
        if !self.is_open() {
            return;
        }
        let actions = &mut self.actions;
        self.requests
            .flush(|frame| actions.push(Action::Send(frame)));
    }

    fn emit_typing(&mut self, room: String) {
        let users = self.remote_typing.users(&room);
        self.emit(Event::Typing { room, users });
    }

    /// Send a ping; returns its nonce.
    fn ping(&mut self) -> u64 {
        let nonce = self.next_nonce;
        self.next_nonce = self.next_nonce.wrapping_add(1);
        self.send(&ClientMessage::Ping { nonce });
        nonce
    }

    /// Send what the outbox holds for rooms whose join is on the wire, as far as the
    /// server's publish rate allows, unless the connection is still finding out what the
    /// server already has.
    fn flush(&mut self, now: Millis) {
        let Phase::Open(open) = &self.phase else {
            return;
        };
        if open.sync.is_some() {
            return;
        }
        let rooms = &self.rooms;
        let actions = &mut self.actions;
        self.outbox.flush(
            now,
            |room| rooms.is_ready(room),
            |frame| actions.push(Action::Send(frame)),
        );
    }

    /// When `flush` may send the next publish that waits for the server's rate, if one
    /// does.
    fn send_deadline(&self) -> Option<Millis> {
        let Phase::Open(open) = &self.phase else {
            return None;
        };
        if open.sync.is_some() {
            return None;
        }
        self.outbox.next_send(|room| self.rooms.is_ready(room))
    }

    /// Joins just went out. Publishes sent on an earlier connection and never acknowledged
    /// may have reached the server: before sending them again, let the joins' replays show
    /// which did (their echo settles them, see `incoming.rs`). A ping after the joins marks
    /// the end of the replays, since the server answers requests in order.
    fn after_joins(&mut self, now: Millis) {
        if self.outbox.any_maybe_delivered() {
            let nonce = self.ping();
            if let Phase::Open(open) = &mut self.phase {
                open.sync = Some(nonce);
            }
        }
        self.flush(now);
    }

    /// Settle the publishes of `room` that are not on the wire and now never will be:
    /// rejected with `code` if never sent, timed out (outcome unknown) if sent on an
    /// earlier connection.
    fn drop_unsent(&mut self, room: &str, code: u16, message: &str) {
        for p in &self.outbox.take_room(room, |p| !p.in_flight) {
            let error = if p.maybe_delivered {
                PublishError::TimedOut
            } else {
                PublishError::Rejected {
                    code,
                    message: message.to_owned(),
                }
            };
            self.settle(p.id, Err(error));
        }
    }
}
