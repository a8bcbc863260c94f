//! # chorus-bench-baseline
//!
//! The raw Rust peer of the benchmarks: the ceiling for any Rust design of Chorus's fan-out.
//! It does only what a room broadcast cannot avoid: a client joins a room, a message
//! published to the room goes to every member (the sender too, if it is one), and an echo
//! comes back to its sender. There is no authentication, sequencing, history or presence.
//! The wire protocol (binary WebSocket messages, one opcode byte) is specified in
//! `bench/peers/README.md`.
//!
//! What makes it fast:
//! - No WebSocket library: the framing is `chorus-framing`, the same framing as the server,
//!   so that a broadcast frame, header and payload, is built **once** into one
//!   [`bytes::Bytes`] and the same buffer is queued for every member. A library's
//!   `send(Message)` frames (copies) per recipient.
//! - Each connection has a bounded queue of frames (its outbox, cheaper than a tokio mpsc
//!   channel: see `outbox`). Its writer takes everything queued at once and writes up to
//!   256 frames per `writev` syscall.
//! - Reads go into a per-thread 64 KiB scratch buffer, so one syscall takes in many frames
//!   and an idle connection holds no read buffer.
//! - Rooms sit in a sharded map; a publish takes two short read locks, then pushes the
//!   frame to each member's outbox. Nothing is allocated per recipient, and per message
//!   only its frame, carved from a per-thread arena.
//! - The runtime is tokio's multi-thread one, with a worker per CPU the process may use
//!   (one, when the benchmark pins it to a core with `taskset`).
//!
//! ## Layout
//! - [`run`] (here): serve a bound listener until a shutdown future completes.
//! - [`Config`]: queue bound and message size limit.
//! - `connection`: one socket's task (handshake, reader, coalescing writer).
//! - `handshake`: the HTTP/1.1 upgrade.
//! - `frame`: server frames (built with `chorus-framing`) cut from a per-thread arena.
//! - `message`: the benchmark's binary chat messages.
//! - `outbox`: a connection's bounded queue of frames.
//! - `rooms`: sharded room membership and fan-out.
//!
//! ## Example
//! ```no_run
//! # async fn example() -> chorus_bench_baseline::Result<()> {
//! use chorus_bench_baseline::{Config, run};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! run(listener, Config::default(), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

mod connection;
mod frame;
mod handshake;
mod message;
mod outbox;
mod rooms;

/// Everything that can fail in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket operation failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The HTTP request was not a WebSocket upgrade this server accepts.
    #[error("bad handshake: {0}")]
    Handshake(&'static str),
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Settings of the baseline server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Frames one connection may have queued for writing; a broadcast that finds the queue
    /// full disconnects the connection as a slow consumer. Default: 1024 (Chorus's default).
    pub queue_frames: usize,
    /// Largest client message payload in bytes; a larger one is closed with 1009.
    /// Default: 1 MiB.
    pub max_message: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            queue_frames: 1024,
            max_message: 1 << 20,
        }
    }
}

/// Serves WebSocket clients on `listener` until `shutdown` completes.
///
/// Connections still open when it returns keep running on the runtime until it is dropped.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let shared = Arc::new(connection::Shared::new(config));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(connection::serve(stream, Arc::clone(&shared)));
                }
                // Out of file descriptors, or a connection reset before it was accepted:
                // the listener itself is fine. Back off a little so that an exhausted fd
                // table does not spin this loop (hyper and axum do the same).
                Err(error) => {
                    eprintln!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
}
