//! The controller's one error type, and how each error answers over HTTP.

use std::process::ExitStatus;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Everything that can go wrong in the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No server (or link, as named) has this id.
    #[error("no {0} with id {1}")]
    NotFound(&'static str, u64),
    /// The request does not make sense in the server's current state.
    #[error("{0}")]
    Conflict(String),
    /// The request itself is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The server process exited while it was expected to run.
    #[error("chorus-server exited with {0} (see the controller's stderr for its output)")]
    Exited(ExitStatus),
    /// The server did not answer `GET /healthz` in time.
    #[error("chorus-server did not become healthy within {0:?}")]
    Unhealthy(std::time::Duration),
    /// Starting, signalling or waiting for a process failed.
    #[error("process: {0}")]
    Io(#[from] std::io::Error),
    /// An HTTP request to a server failed.
    #[error("request to chorus-server failed: {0}")]
    Http(#[from] reqwest::Error),
    /// A test client did not get where a test waited for it to be in time; the text says
    /// where it (and the others) were.
    #[error("{0}")]
    Stalled(String),
    /// A Redis answered with an error or not as expected, or did not get where a test (or
    /// the harness) waited for it to be in time; the text says what it was doing.
    #[error("redis: {0}")]
    Redis(String),
    /// Signing a token failed.
    #[error("token: {0}")]
    Token(#[from] jsonwebtoken::errors::Error),
}

/// `Result` with the controller's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match &self {
            Error::NotFound(..) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Http(_) => StatusCode::BAD_GATEWAY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, axum::Json(json!({ "error": self.to_string() }))).into_response()
    }
}
