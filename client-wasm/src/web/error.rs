//! The error the Rust API returns when it refuses an argument at once.
//!
//! Failures that happen later travel elsewhere: a publish's outcome in its future
//! ([`crate::PublishError`]), everything else as [`crate::Event::Error`].

use crate::core::InvalidArgument;
use std::prelude::rust_2024::*;

/// An argument the client refuses at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An argument breaks a rule: a room name (see `chorus_protocol::validate::room`), an
    /// empty token, a token with characters a WebSocket subprotocol cannot carry.
    #[error("{0}")]
    InvalidArgument(String),
    /// The server URL cannot be parsed, or its scheme is not `ws:`, `wss:`, `http:` or
    /// `https:`.
    #[error("invalid server URL: {0}")]
    InvalidUrl(String),
    /// The [`Config`](super::Config) has neither a `token` nor a `get_token`.
    #[error("no token: set Config::token or Config::get_token")]
    NoToken,
}

impl From<InvalidArgument> for Error {
    fn from(error: InvalidArgument) -> Error {
        Error::InvalidArgument(error.0)
    }
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
