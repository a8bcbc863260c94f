//! The two message enums and the types they carry.
//!
//! Postcard is not self-describing: these definitions *are* the wire format. Variants and
//! fields are only ever appended; nothing is reordered or removed. `tests/it/golden.rs` pins the
//! exact bytes of every message.

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

/// A room's place in its history: which history (`epoch`) and how far along it (`seq`).
///
/// `seq` counts the messages published to the room, starting at 1; `seq == 0` means "before
/// the first message". The epoch changes whenever the server loses the room's history (for
/// example, when an in-memory store restarts), so a position from another epoch can never be
/// mistaken for one in this history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Position {
    /// Identity of the room's history.
    pub epoch: u64,
    /// Sequence number of the last message, within `epoch`.
    pub seq: u64,
}

/// The body of a published message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// UTF-8 text.
    Text(String),
    /// Opaque bytes (an image, a serialized object, ...).
    Binary(#[serde(with = "serde_bytes")] Vec<u8>),
}

impl Body {
    /// Size of the payload in bytes, as counted against the body limit.
    pub fn len(&self) -> usize {
        match self {
            Body::Text(text) => text.len(),
            Body::Binary(bytes) => bytes.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<String> for Body {
    fn from(text: String) -> Body {
        Body::Text(text)
    }
}

impl From<&str> for Body {
    fn from(text: &str) -> Body {
        Body::Text(text.into())
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Body {
        Body::Binary(bytes)
    }
}

impl From<&[u8]> for Body {
    fn from(bytes: &[u8]) -> Body {
        Body::Binary(bytes.into())
    }
}

/// What the client sends to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// Join a room. Answered by [`ServerMessage::Joined`] or [`ServerMessage::Error`].
    ///
    /// With `since`, the client asks to resume from a position it saw earlier: the server
    /// replays what it missed (see [`Recovery`]).
    Join {
        /// Room name; see [`crate::validate::room`].
        room: String,
        /// The last position the client saw in this room, if any.
        since: Option<Position>,
    },
    /// Leave a room. Answered by [`ServerMessage::Left`].
    Leave {
        /// Room name.
        room: String,
    },
    /// Publish a message to every member of a room, the sender included.
    Publish {
        /// Room name; the connection must have joined it.
        room: String,
        /// Client-chosen id, unique per user: the key for acks and deduplication.
        id: u64,
        /// The payload.
        body: Body,
    },
    /// The user started (or is still) typing in a room.
    TypingStarted {
        /// Room name.
        room: String,
    },
    /// The user stopped typing in a room.
    TypingStopped {
        /// Room name.
        room: String,
    },
    /// Application-level ping (browsers cannot send WebSocket pings). Answered at once by
    /// [`ServerMessage::Pong`] with the same nonce.
    Ping {
        /// Echoed back in the pong.
        nonce: u64,
    },
    /// Ask for a page of a room's retained history, for example to show recent messages
    /// after a page reload. Answered by [`ServerMessage::History`] or by an
    /// [`ServerMessage::Error`] whose `id` is `request`. The token must permit the room;
    /// the connection need not have joined it.
    History {
        /// Client-chosen id, echoed in the answer. A client that also publishes draws both
        /// from one sequence, so an error's `id` names one request.
        request: u64,
        /// Room name.
        room: String,
        /// Only messages before this position (sequence numbers below `before.seq`); `None`
        /// asks for the newest. A position from another epoch is answered with
        /// [`crate::ErrorCode::EpochChanged`]: that history is gone.
        before: Option<Position>,
        /// Most messages wanted. The server answers with fewer when its page limit or the
        /// frame size is reached (see `more`).
        limit: u32,
    },
}

/// Limits the server enforces on this connection, announced in the welcome so a client can
/// check them before sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest encoded frame the server accepts, in bytes. A larger one closes the
    /// connection with [`crate::DisconnectReason::FrameTooLarge`].
    pub max_frame: u32,
    /// Largest publish body, in bytes. A larger one is answered with
    /// [`crate::ErrorCode::BodyTooLarge`].
    pub max_body: u32,
    /// Most rooms one connection may be in at once.
    pub max_rooms: u32,
    /// Publishes per second allowed on one connection (sustained).
    pub publish_per_second: u32,
    /// Publishes allowed in a burst.
    pub publish_burst: u32,
    /// The server relays at most one "typing started" per user and room in this window.
    pub typing_throttle_ms: u32,
    /// A typing state not refreshed within this time expires.
    pub typing_ttl_ms: u32,
}

/// What became of a [`ClientMessage::Join`] that asked to resume with `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recovery {
    /// The join did not ask to resume.
    NotRequested,
    /// Every message after `since` follows, in order, before any live message.
    Recovered,
    /// The server could not replay everything after `since` (the position is older than the
    /// retained history, or the epoch changed). Messages from the current history follow
    /// where possible; the client should reload what it shows.
    Missed,
}

/// Why the server will send nothing more, and whether to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reconnect {
    /// Reconnect after (at least) this many milliseconds.
    RetryAfter(u32),
    /// Do not reconnect automatically; something must change first (for example, the token).
    DoNotRetry,
}

/// A message as kept in a room's history: [`ServerMessage::Message`] without the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryMessage {
    /// Per-room sequence number.
    pub seq: u64,
    /// The publisher's message id.
    pub id: u64,
    /// The publisher's user name.
    pub sender: String,
    /// Server time of publication, milliseconds since the Unix epoch.
    pub ts: u64,
    /// The payload.
    pub body: Body,
}

/// What the server sends to the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerMessage {
    /// The first message on every connection.
    Welcome {
        /// Unique id of this connection, for logs and support.
        session: String,
        /// The authenticated user name (the token's subject).
        user: String,
        /// [`crate::PROTOCOL_VERSION`] of the server.
        protocol: u16,
        /// The client should send a [`ClientMessage::Ping`] at this interval, in milliseconds.
        heartbeat_ms: u32,
        /// The server closes a connection silent for this long, in milliseconds.
        heartbeat_timeout_ms: u32,
        /// Limits for this connection.
        limits: Limits,
    },
    /// Answer to a join: the connection now receives the room's messages.
    Joined {
        /// Room name.
        room: String,
        /// The room's position when the join took effect. Replayed messages (if any) run up
        /// to and including `position.seq`; live ones follow.
        position: Position,
        /// Users present (each once, however many connections they have). Empty when the
        /// room's namespace has presence off.
        members: Vec<String>,
        /// Outcome of the resume request.
        recovery: Recovery,
    },
    /// Answer to a leave.
    Left {
        /// Room name.
        room: String,
    },
    /// A message published to a room.
    Message {
        /// Room name.
        room: String,
        /// Per-room sequence number, increasing by one per message within an epoch.
        seq: u64,
        /// The publisher's message id.
        id: u64,
        /// The publisher's user name.
        sender: String,
        /// Server time of publication, milliseconds since the Unix epoch.
        ts: u64,
        /// The payload.
        body: Body,
    },
    /// The server accepted a publish and gave it this sequence number.
    PublishAck {
        /// Room name.
        room: String,
        /// The id the client gave the publish.
        id: u64,
        /// The sequence number the message got.
        seq: u64,
    },
    /// A user joined a room (sent once per user, not once per connection).
    MemberJoined {
        /// Room name.
        room: String,
        /// User name.
        user: String,
    },
    /// A user's last connection left a room.
    MemberLeft {
        /// Room name.
        room: String,
        /// User name.
        user: String,
    },
    /// A member started or stopped typing (or their typing state expired).
    Typing {
        /// Room name.
        room: String,
        /// User name.
        user: String,
        /// Whether they are typing now.
        typing: bool,
    },
    /// Answer to [`ClientMessage::Ping`].
    Pong {
        /// The nonce from the ping.
        nonce: u64,
    },
    /// A request failed. The connection stays open.
    Error {
        /// A stable [`crate::ErrorCode`] number.
        code: u16,
        /// Human-readable text; not stable, do not match on it.
        message: String,
        /// The message id of the publish this answers, if it answers one.
        id: Option<u64>,
        /// The room of the request this answers, if it names one.
        room: Option<String>,
    },
    /// The server is about to close the connection.
    Disconnect {
        /// The WebSocket close code that follows; see [`crate::DisconnectReason`].
        code: u16,
        /// Human-readable text.
        reason: String,
        /// Whether and when to reconnect.
        reconnect: Reconnect,
    },
    /// Answer to [`ClientMessage::History`]: a page of the room's retained history.
    History {
        /// The request's id.
        request: u64,
        /// Room name.
        room: String,
        /// The room's position when the page was read. Page further back with
        /// `before: Some(Position { epoch: position.epoch, seq: messages[0].seq })`.
        position: Position,
        /// Messages before the requested position, oldest first, consecutive sequence
        /// numbers, the newest ones first to be included.
        messages: Vec<HistoryMessage>,
        /// Whether older messages are still retained before the first one in `messages`.
        more: bool,
    },
}
