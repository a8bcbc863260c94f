//! # chorus-protocol
//!
//! The wire protocol of Chorus, shared by the server (`chorus-server`) and the browser client
//! (`chorus-client`). It knows nothing of sockets.
//!
//! Every WebSocket **binary** message holds exactly one postcard-encoded value: a
//! [`ClientMessage`] from client to server, a [`ServerMessage`] from server to client.
//!
//! ## Layout
//! - [`message`]: the two enums and the types they carry ([`Position`], [`Body`], ...).
//! - [`codes`]: stable [`ErrorCode`] numbers and [`DisconnectReason`] close codes.
//! - [`codec`]: [`encode`] and [`decode`] with a maximum frame size; decoding never panics.
//! - [`validate`]: room and user naming rules and the body limit, used by both sides.
//! - `compact` (feature `compact`): a hand-written codec for the browser client's two
//!   directions, [`ServerMessage::decode`] and [`ClientMessage::encode`] without serde
//!   (`decode_compact`, `encode_compact`): the same bytes and errors in far less wasm.
//! - `samples` (feature `bench-samples`): one representative value of every message, for
//!   the codec benchmarks (`benches/codec.rs`, `bench/codec-wasm`).
//!
//! ## Compatibility
//! [`PROTOCOL_VERSION`] travels in [`ServerMessage::Welcome`]. Variants and fields are only
//! ever appended. Golden byte vectors in `tests/it/golden.rs` fail on any accidental change.
//!
//! ## Example
//! ```
//! use chorus_protocol::{Body, ClientMessage, DEFAULT_MAX_FRAME};
//!
//! let publish = ClientMessage::Publish {
//!     room: "lobby".into(),
//!     id: 7,
//!     body: Body::Text("hello".into()),
//! };
//! let frame = publish.encode(DEFAULT_MAX_FRAME).unwrap();
//! assert_eq!(ClientMessage::decode(&frame, DEFAULT_MAX_FRAME).unwrap(), publish);
//! // Garbage is an error, never a panic.
//! assert!(ClientMessage::decode(&[0xff, 0xff], DEFAULT_MAX_FRAME).is_err());
//! ```

#![no_std]

// No std: the browser client's wasm builds without it (see chorus-client's lib.rs).
extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod codec;
pub mod codes;
#[cfg(feature = "compact")]
mod compact;
pub mod message;
#[cfg(feature = "bench-samples")]
pub mod samples;
pub mod validate;

pub use codec::{CodecError, DEFAULT_MAX_FRAME, FRAME_OVERHEAD, decode, encode};
pub use codes::{DisconnectReason, ErrorCode};
pub use message::{
    Body, ClientMessage, HistoryMessage, Limits, Position, Reconnect, Recovery, ServerMessage,
};

/// Version of this protocol, sent in [`ServerMessage::Welcome`]. Bumped only for a change an
/// older peer cannot decode.
pub const PROTOCOL_VERSION: u16 = 1;

/// The WebSocket subprotocol a client offers and the server selects.
pub const SUBPROTOCOL: &str = "chorus.v1";

/// Prefix of the second subprotocol a browser offers to carry its token
/// (`chorus.auth.<token>`), since browsers cannot set headers on a WebSocket. The server
/// never echoes it.
pub const AUTH_SUBPROTOCOL_PREFIX: &str = "chorus.auth.";
