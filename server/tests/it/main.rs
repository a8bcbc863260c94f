//! The server's integration tests: a real server on 127.0.0.1:0 (or the real binary) and
//! real WebSocket and HTTP clients. One module per behaviour, all in one binary, so the
//! server and its dependencies are linked once rather than once per file.
//!
//! `replay_bounded` is the exception, a binary of its own (`tests/replay_bounded.rs`): it
//! measures the resident memory of the process the server runs in, which other tests
//! running beside it would disturb.

mod common;

mod auth;
mod bad_input;
mod cli;
mod close_codes;
mod dev_token;
mod framing;
mod handshake_timeout;
mod heartbeat;
mod heartbeat_paused_server;
mod history;
mod http_publish;
mod idempotent_publish;
mod invalid_room_names;
mod limits;
mod membership_rate_limit;
mod metrics;
mod presence;
mod rate_limit;
mod rooms;
mod same_origin;
mod shutdown;
mod shutdown_deadline;
mod slow_consumer;
mod static_files;
mod subprotocol;
mod token_keys;
mod typing;
