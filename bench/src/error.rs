//! The crate's one error type.

use std::io;

/// Why a connection, a workload or the command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket operation failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The HTTP upgrade was refused or malformed.
    #[error("handshake: {0}")]
    Handshake(String),
    /// The server broke the WebSocket framing rules, or used a feature this client does not
    /// implement (extensions, masked frames).
    #[error("websocket framing: {0}")]
    Framing(String),
    /// The server closed the WebSocket, or its application protocol said goodbye.
    #[error("closed by the server: {0}")]
    Closed(String),
    /// The TCP connection ended without a close frame.
    #[error("connection ended")]
    Eof,
    /// The application protocol was not followed, or the server answered with an error.
    #[error("protocol: {0}")]
    Protocol(String),
    /// Something did not happen in time.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The command line asks for something impossible.
    #[error("{0}")]
    Usage(String),
    /// A Chorus token could not be signed.
    #[error("token: {0}")]
    Token(#[from] jsonwebtoken::errors::Error),
    /// A histogram could not be merged.
    #[error("histogram: {0}")]
    Histogram(#[from] hdrhistogram::errors::AdditionError),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
