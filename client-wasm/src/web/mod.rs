//! The web shell (wasm32 only, feature `web`): moves browser events into the
//! [`core`](crate::core), carries out its actions, and offers the client to Rust
//! ([`Client`]). JavaScript apps use the npm package instead (`engine.rs` and `ts/`).
//!
//! ## Layout
//! - `client.rs`: the Rust API: [`Client`], [`Config`], [`EventStream`], [`Subscription`],
//!   the futures of publishes and history requests.
//! - `shell.rs`: the driver: the core, the socket, one timer for the core's next deadline,
//!   the `online` and `visibilitychange` listeners; how re-entrant calls from app code are
//!   handled.
//! - `socket.rs`: a web-sys `WebSocket` with its listeners, owned together.
//! - `listener.rs`: one DOM event listener, removed when dropped.
//! - `env.rs`: the clock, randomness, `fetch` for the auth probe, the server URL.
//! - `error.rs`: [`Error`], for arguments refused at once.

use std::prelude::rust_2024::*;
mod client;
mod env;
mod error;
mod listener;
mod shell;
mod socket;

pub use client::{
    Client, Config, EventStream, HistoryFuture, HistoryQuery, PublishFuture, Subscription,
};
pub use error::{Error, Result};
pub use shell::TokenFn;
