//! # chorus-test-harness
//!
//! The controller the browser tests of `chorus-client` talk to. A test page in headless
//! Chromium cannot start processes, so this small HTTP service does it for them: it starts
//! real `chorus-server` processes on free ports and stops, kills, freezes, thaws and
//! restarts them on request, and mints tokens with each server's secret.
//!
//! `scripts/test-browser.sh` runs it, reads the first line of its stdout
//! (`CHORUS_TEST_CONTROL=http://127.0.0.1:PORT`) and compiles that URL into the tests.
//!
//! The same parts serve the native tests in `tests/`: `chaos.rs` (one server, faults on
//! every connection) and `it/scale_out.rs` (three server processes sharing a Redis, behind a
//! load balancer), both with clients driven by [`driver`].
//!
//! ## Layout
//! - [`run`] (here): serve the control API on a bound listener until a shutdown future
//!   completes, then kill every server.
//! - `api`: the routes (JSON, permissive CORS).
//! - [`process`]: one `chorus-server` child process.
//! - [`link`]: a TCP relay to a server that a test can cut and restore.
//! - [`balancer`]: a round-robin TCP relay over several servers that skips dead ones.
//! - [`redis`]: a `redis-server` of a test's own, on a free port (empty on a restart, or
//!   from its last `SAVE`, or a replica of another), and any command to any Redis.
//! - [`redis_cluster`]: a Redis Cluster of a test's own, and its failovers and slot
//!   migrations.
//! - [`token`]: tokens signed and checked with a server's secret, as the server does.
//! - [`driver`]: a native client (the browser client's sans-IO core over
//!   tokio-tungstenite) that records what it saw, and the exactly-once checks.
//! - [`Error`]: what can fail, and the HTTP status it answers with.
//! - `src/bin/chorus-test-server.rs`: the server program under another name, so that the
//!   integration tests start the current server (`CARGO_BIN_EXE_chorus-test-server`).
//!
//! ## API
//! | Method and path | What it does |
//! | --- | --- |
//! | `GET /healthz` | `{"status":"ok"}` |
//! | `POST /servers` | Optional body `{"args": ["--heartbeat-interval", "200ms", ...]}`: extra `serve` flags. Starts `chorus-server serve --dev --bind 127.0.0.1:PORT --allowed-origin * --token-secret <random>` on a free port, waits for `GET /healthz`, answers `{id, port, ws, http, state}`. |
//! | `GET /servers/{id}` | `{id, port, ws, http, state}`; `state` is `running`, `frozen` or `stopped`. |
//! | `POST /servers/{id}/stop` | SIGTERM (graceful shutdown), wait for the exit. |
//! | `POST /servers/{id}/kill` | SIGKILL, wait for the exit. |
//! | `POST /servers/{id}/freeze` / `thaw` | SIGSTOP / SIGCONT. |
//! | `POST /servers/{id}/start` | Start again on the same port, wait for `GET /healthz`. |
//! | `POST /servers/{id}/restart` | Stop, then start. |
//! | `DELETE /servers/{id}` | Kill and forget. |
//! | `GET /servers/{id}/token?user=NAME[&ttl_ms=N][&rooms=a,b][&admin=true]` | `{token}` signed with the server's secret. |
//! | `GET /servers/{id}/bad-token[?user=NAME]` | `{token}` signed with another secret. |
//! | `GET /servers/{id}/metrics` | The server's `/metrics` as `{"name{labels}": value}`. |
//! | `POST /servers/{id}/publish` | Forwards the JSON body to the server's `/api/publish` with its secret. |
//! | `POST /servers/{id}/links` | A TCP relay to the server on a port of its own: `{id, server, port, ws, http, cut, dropped}`. A client connected through it can lose the server while others keep it. |
//! | `GET /links/{id}` | `{id, server, port, ws, http, cut, dropped}`; `dropped` counts the room messages dropped by `drop-message`. |
//! | `POST /links/{id}/cut` / `restore` | Sever every connection through the link and close new ones at once / relay again. |
//! | `POST /links/{id}/close` / `reset` / `stall` / `deafen` | End the connections through the link now with a TCP close, a TCP reset, silence (both sockets held open, nothing relayed), or deafness (the client's bytes still reach the server, the server's are lost); new connections are relayed. |
//! | `POST /links/{id}/drop-message` | Drop the next room message (`ServerMessage::Message`) the server sends on each connection through the link; everything else is relayed. |
//! | `DELETE /links/{id}` | Stop the relay. |
//!
//! ## Example
//! ```no_run
//! # async fn example() -> chorus_test_harness::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! println!("CHORUS_TEST_CONTROL=http://{}", listener.local_addr()?);
//! chorus_test_harness::run(listener, "target/debug/chorus-server".into(), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```

mod api;
pub mod balancer;
pub mod driver;
mod error;
pub mod link;
pub mod process;
pub mod redis;
pub mod redis_cluster;
pub mod token;

use std::future::Future;
use std::path::PathBuf;

use tokio::net::TcpListener;

pub use error::{Error, Result};

/// Serve the control API on `listener` until `shutdown` completes, starting servers from
/// `server_binary`; then kill every server still running.
pub async fn run(
    listener: TcpListener,
    server_binary: PathBuf,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let controller = api::Controller::new(server_binary);
    let served = axum::serve(listener, api::router(controller.clone()))
        .with_graceful_shutdown(shutdown)
        .await;
    controller.kill_all().await;
    Ok(served?)
}
