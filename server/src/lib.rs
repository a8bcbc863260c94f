//! # chorus-server
//!
//! The Chorus real-time server: WebSocket connections authenticated before the upgrade,
//! rooms with per-room sequence numbers and history (replayed on resume, paged on request,
//! forgotten when idle), presence, typing indicators,
//! heartbeats, backpressure, rate limits, an HTTP publish API and Prometheus metrics.
//! It speaks [`chorus_protocol`].
//!
//! ## Layout
//! - [`run`] (here): serve a bound listener until a shutdown future completes.
//! - [`config`]: [`Config`] and [`config::Settings`] (flags, `CHORUS_*` variables, TOML).
//! - [`cli`]: the `chorus-server` command line (`serve`, `token`).
//! - [`auth`]: JWTs (HMAC secrets, public keys, a JWKS) and room patterns.
//! - `listen`: the accept loop and each HTTP connection until it upgrades: handshake and
//!   idle timeouts, the bound on connections waiting for a request, the shutdown deadline.
//! - `http`: routes; the WebSocket handshake checks origin and token before upgrading.
//! - `connection`: one socket's task, a thin shell that moves bytes, timers and room
//!   operations for its sans-IO `ConnectionCore` (`connection/core.rs`), which decides
//!   dispatch, limits, the duplicate filter, the heartbeat and the token's expiry.
//! - `node`: room operations shared by connections and the HTTP API.
//! - `hub`: local membership, fan-out and the bounded per-connection outbox.
//! - `broker`: what instances share (sequences, history, presence, delivery), in memory
//!   by default, or in Redis (`--redis-url`) for any number of instances acting as one.
//! - [`history`]: a room's bounded log, its resume replay and history pages.
//! - `rate_limit`: the token buckets of a connection's rate limits.
//! - `static_files`: `--static-dir` and `--pkg-dir`, served without leaving the directory.
//! - `typing`: typing throttle and expiry.
//! - `ws`: the WebSocket protocol, server side: the upgrade, the reader of client messages
//!   (fragments, close codes, limits, protocol violations) and the writers. The frames
//!   themselves (headers, masking, building server frames) come from `chorus-framing`.
//! - [`metrics`]: the Prometheus registry.
//!
//! ## Example
//! ```no_run
//! # async fn example() -> chorus_server::Result<()> {
//! use chorus_server::{Config, run};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let config = Config {
//!     token_secret: "a secret of at least 16 bytes".into(),
//!     ..Config::default()
//! };
//! run(listener, config, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```

pub mod auth;
mod broker;
pub mod cli;
pub mod config;
mod connection;
mod error;
pub mod history;
mod http;
mod hub;
mod listen;
pub mod metrics;
mod node;
mod rate_limit;
mod static_files;
mod typing;
mod ws;

/// Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`); not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use ws::fuzzing;

use std::future::Future;

use tokio::net::TcpListener;
use tokio::time::Instant;

pub use config::Config;
pub use error::{Error, Result};

/// Serve on `listener` until `shutdown` completes, then shut down gracefully: stop
/// accepting, send every client a disconnect notice with a reconnect hint, drain the queues
/// (within `config.shutdown_timeout`), close with 1001, and return. Plain HTTP requests
/// still in flight at the shutdown timeout are cut, so `run` returns within
/// `shutdown_timeout` (plus `write_timeout` for a WebSocket's last write) whatever clients
/// do.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    config.validate()?;
    let node = node::Node::new(config)?;
    // Keys from an identity provider are fetched before the first client is served.
    node.auth.ready().await?;
    let app = http::router(node.clone());
    tokio::spawn(node.clone().expire_typing());
    tokio::spawn(node.clone().sweep_history());

    let token = node.shutdown.clone();
    let signal = async move {
        tokio::select! {
            () = shutdown => tracing::info!("shutting down"),
            () = token.cancelled() => {}
        }
        token.cancel();
        Instant::now()
    };
    // Returns when every HTTP connection has ended, by the shutdown timeout at the latest.
    let http = listen::serve(
        listener,
        app,
        &node.config,
        node.shutdown.clone(),
        node.metrics.http_cuts(),
    );
    let (shutdown_began, ()) = tokio::join!(signal, http);

    // Upgraded sockets are not tracked by the HTTP front; wait for their tasks, which
    // drain and close on the cancelled token.
    node.tasks.close();
    let deadline = shutdown_began + node.config.shutdown_timeout + node.config.write_timeout;
    if tokio::time::timeout_at(deadline, node.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            remaining = node.tasks.len(),
            "connections still open after the shutdown deadline"
        );
    }
    Ok(())
}
