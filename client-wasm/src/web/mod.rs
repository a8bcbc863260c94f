//! The web shell (wasm32 only): moves browser events into the [`core`](crate::core) and
//! carries out its actions, and offers the client to Rust ([`Client`]) and JavaScript
//! ([`js::ChorusClient`]).
//!
//! ## Layout
//! - `client.rs`: the Rust API: [`Client`], [`Config`], [`EventStream`], [`Subscription`],
//!   the futures of publishes and history requests.
//! - [`js`]: the JavaScript API (`ChorusClient`) and its TypeScript types.
//! - `shell.rs`: the driver: the core, the socket, one timer for the core's next deadline,
//!   the `online` and `visibilitychange` listeners; how re-entrant calls from app code are
//!   handled.
//! - `socket.rs`: a web-sys `WebSocket` with its listeners, owned together.
//! - `listener.rs`: one DOM event listener, removed when dropped.
//! - `env.rs`: the clock, randomness, `fetch` for the auth probe, the server URL.
//! - `error.rs`: [`Error`], for arguments refused at once.

mod client;
mod env;
mod error;
pub mod js;
mod listener;
mod shell;
mod socket;

pub use client::{
    Client, Config, EventStream, HistoryFuture, HistoryQuery, PublishFuture, Subscription,
};
pub use error::{Error, Result};
pub use shell::TokenFn;
