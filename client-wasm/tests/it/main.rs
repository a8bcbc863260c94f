//! The native tests of the sans-IO core (`chorus_client::core`): a fake clock and
//! hand-built server frames, no socket. One module per behaviour, all in one binary. The
//! browser tests (`browser_*.rs`, wasm-bindgen-test) stay binaries of their own:
//! `scripts/test-browser.sh` selects them by name.

mod common;

mod auth_probe;
mod backoff;
mod dead_connection;
mod duplicate_seq;
mod epoch_reset;
mod error_codes;
mod extreme_options;
mod heartbeat;
mod history_requests;
mod join_since;
mod max_attempts;
mod no_action_after_close;
mod publish_acks;
mod publish_ids;
mod publish_pacing;
mod queue;
mod reconnect_now;
mod rejoin;
mod sequence_gap;
mod server_errors;
mod state_events;
mod token_refresh;
mod typing;
