//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in the server outside a single connection's bad input
/// (which is answered on the wire with an [`chorus_protocol::ErrorCode`] instead).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The configuration file could not be read.
    #[error("cannot read config file {path}: {source}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// Listening or serving failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A token could not be signed.
    #[error("cannot sign token: {0}")]
    Token(#[from] jsonwebtoken::errors::Error),
    /// The Redis URL is not one the client can use.
    #[error("invalid Redis URL: {0}")]
    RedisUrl(#[from] redis::RedisError),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
