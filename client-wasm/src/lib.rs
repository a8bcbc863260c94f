//! # chorus-client
//!
//! The Chorus client, for Rust front ends (Yew and others) and, through the npm package
//! `chorus-client`, for JavaScript and TypeScript. It speaks [`chorus_protocol`] over a
//! WebSocket.
//!
//! ## Layout
//! - [`core`]: the sans-IO state machine, where every decision is made: connection state,
//!   reconnect backoff with jitter, heartbeat deadlines, typing (local throttle and idle,
//!   remote expiry), rooms to rejoin and resume, the offline publish queue and its pacing,
//!   history requests, the codec. Plain Rust, tested natively.
//! - `web` (wasm32, feature `web`, on by default): the shell for Rust apps: a web-sys
//!   `WebSocket`, one gloo timer, `online` and `visibilitychange` listeners, and the Rust API
//!   ([`web::Client`]).
//! - `engine` (feature `js`): the core for the npm package, through numbers and bytes only.
//!   The JavaScript API around it (room handles, events, Promises, codecs, the socket and
//!   timers, in browsers, workers, Node, Deno and Bun) is TypeScript, in `client-wasm/ts/`.
//!
//! ## Size
//! Every page that uses the npm package downloads its wasm, and `scripts/build-client.sh`
//! fails when the package grows over its budget. So the code compiled into the wasm avoids
//! what costs kilobytes there: `format!`, `Display` and `Debug` (messages are built by hand,
//! see `core/text.rs`; a `char`'s `Debug` alone brings Unicode tables), `BTreeMap` and
//! `HashMap` (`core/names.rs` is a sorted vector), and any JavaScript object built from Rust
//! (the engine hands out bytes; `ts/` builds the objects). Generic code is paid once per type
//! it is used with, so the core also keeps to few of those: vectors walked by reference (a
//! by-value loop brings a `vec::IntoIter` of its own), `push` in a loop rather than
//! `collect`, `Vec` rather than `VecDeque`, and no `u128` arithmetic (`Duration::as_millis`). Frames still go through
//! `chorus_protocol`'s serde + postcard codec: the wire format has one definition. `twiggy
//! top` on the `wasm-release` build shows what a change added.
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

// No std: the npm package's wasm (feature `js` alone) leaves it out, and with it the panic
// machinery and `core::fmt`, which together weighed about 5 KB there. Rust apps (feature
// `web`) and native builds link std as usual.
#![cfg_attr(not(test), no_std)]

extern crate alloc;
#[cfg(any(feature = "web", not(target_arch = "wasm32")))]
extern crate std;

pub mod core;

/// What the std prelude would bring, from `alloc`, for the modules shared by every build.
mod prelude {
    pub(crate) use alloc::borrow::ToOwned;
    pub(crate) use alloc::boxed::Box;
    pub(crate) use alloc::string::String;
    pub(crate) use alloc::vec::Vec;
}

/// Without std, a panic stops the module (the same as `panic = "abort"` would, without the
/// formatting of a message nobody reads).
#[cfg(all(target_arch = "wasm32", not(feature = "web")))]
#[panic_handler]
fn panic(_: &::core::panic::PanicInfo<'_>) -> ! {
    ::core::arch::wasm32::unreachable()
}

// The npm package's wasm is downloaded by every page that uses it: a free-list allocator
// in about 1 KB instead of the default dlmalloc's 8 KB. Its allocations and frees walk the
// free list, which stays short here: the client holds a few small buffers per message,
// freed in the same turn. Rust apps (feature `web`) keep the default.
#[cfg(all(target_arch = "wasm32", feature = "js", not(feature = "web")))]
#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());

#[cfg(feature = "js")]
pub mod engine;
#[cfg(all(target_arch = "wasm32", feature = "web"))]
pub mod web;

pub use crate::core::{Ack, Event, HistoryError, HistoryPage, Options, PublishError, State};
#[cfg(all(target_arch = "wasm32", feature = "web"))]
pub use crate::web::{
    Client, Config, Error, EventStream, HistoryFuture, HistoryQuery, PublishFuture, Subscription,
};
pub use chorus_protocol::{Body, HistoryMessage, Position};
