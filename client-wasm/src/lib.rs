//! # chorus-client
//!
//! The Chorus browser client, for Rust front ends (Yew and others) and, through the npm
//! package `chorus-client`, for JavaScript and TypeScript. It wraps the browser's native
//! WebSocket and speaks [`chorus_protocol`].
//!
//! ## Layout
//! - [`core`]: the sans-IO state machine: connection state, reconnect backoff with jitter,
//!   heartbeat deadlines, typing (local throttle and idle, remote expiry), rooms to rejoin,
//!   the offline publish queue, history requests. Plain Rust, tested natively.
//! - `web` (wasm32 only): the shell that moves browser events into the core and its actions
//!   out: a web-sys `WebSocket`, one gloo timer, `online` and `visibilitychange` listeners,
//!   the Rust API ([`web::Client`]) and the JavaScript bindings (`web::js`).
//!
//! ## Size
//! Every page that uses the client downloads its wasm, and `scripts/build-client.sh` fails
//! when the package grows over its budget. So the code compiled into the wasm avoids what
//! costs kilobytes there: `format!`, `Display` and `Debug` (messages are built by hand, see
//! `core/text.rs`; a `char`'s `Debug` alone brings Unicode tables), `BTreeMap` and `HashMap`
//! (`core/names.rs` is a sorted vector), serde-wasm-bindgen (events become plain objects
//! in `web/js.rs`) and web-sys accessors where `Reflect` does the same (`web/env.rs`).
//! Frames still go through `chorus_protocol`'s serde + postcard codec: the wire format has
//! one definition. `twiggy top` on the
//! `wasm-release` build of this crate shows what a change added.
//!
//! ## Example (Rust, in the browser)
//! ```no_run
//! # #[cfg(target_arch = "wasm32")] {
//! use chorus_client::{Client, Config, Event};
//!
//! let client = Client::connect(Config::new("wss://chat.example/ws").token("eyJhbGciOi..."))
//!     .expect("a valid URL and token");
//! client.join("lobby").unwrap();
//! let _subscription = client.on_event(|event| {
//!     if let Event::Message { sender, body, .. } = event {
//!         // show it
//!     }
//! });
//! let _ack = client.publish("lobby", "hello");
//! # }
//! ```

pub mod core;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use crate::core::{Ack, Event, HistoryError, HistoryPage, Options, PublishError, State};
#[cfg(target_arch = "wasm32")]
pub use crate::web::{
    Client, Config, Error, EventStream, HistoryFuture, HistoryQuery, PublishFuture, Subscription,
};
pub use chorus_protocol::{Body, HistoryMessage, Position};
