//! # chorus-bench
//!
//! The load generator of the benchmarks: Chorus against its peers (Node `ws`, Socket.IO,
//! a raw Rust baseline) with the same workloads, HDR histograms of latency, and its own CPU
//! time beside every result.
//!
//! ## Layout
//! - [`cli`]: the command line (`echo`, `ramp`, `chat`, `fanout`, `idle`, `storm`,
//!   `ceiling`, `suite`, `render`; `--protocol`, `--url`, `--json`, `--quick`, ...).
//! - [`ws`]: a minimal WebSocket client: one reusable buffer, many frames per read, no
//!   allocation per message.
//! - [`protocol`]: the [`protocol::Protocol`] trait (sans-IO: frames out, meaning in) and
//!   its four wire protocols; the send [`protocol::Stamp`] every body starts with.
//! - [`client`]: one connection: where from and to, greeting, join.
//! - [`workload`]: the workloads.
//! - [`stats`]: sharded latency histograms, CPU time, resident memory.
//! - [`report`]: results as text or JSON lines.
//! - [`render`]: a run's results into `docs/BENCHMARKS.md` and its SVG charts.
//!
//! ## Not the bottleneck
//! A subscriber's receive path is one `read` into its buffer, then for each frame in it:
//! the header, the protocol's scan for the stamp (Chorus: postcard read in place; JSON:
//! a byte search), one histogram record into a shard locked once per read. No allocation.
//! `chorus-bench ceiling` measures that path alone against a local blaster, and the same
//! with tokio-tungstenite. On the 2-core benchmark machine (frames of 80 to 110 bytes):
//!
//! | Frames per CPU-second of one core | this crate | tokio-tungstenite |
//! | --- | --- | --- |
//! | chorus, many frames per read | 14–18 M | 3.5–4.1 M |
//! | baseline, many frames per read | 21–28 M | 3.8–4.4 M |
//! | Socket.IO, many frames per read | 5–7 M | 2.5–2.9 M |
//! | `ws` JSON, many frames per read | 5.5 M | 2.6 M |
//! | 1000 connections, one frame per read | 0.36–0.39 M | 0.31–0.39 M |
//!
//! The last row is the kernel's TCP receive path (90 % of the time), whatever the client:
//! a large room at a low rate costs the generator about 3 µs per delivery. Every result
//! carries the generator's CPU time; open-loop steps that used 90 % of its threads or more
//! are flagged `generator_saturated`.
//!
//! ## Example
//! ```text
//! chorus-bench --protocol chorus --url ws://127.0.0.1:8080/ws --secret "$SECRET" echo
//! chorus-bench --protocol ws --url ws://127.0.0.1:9001 ramp --subscribers 1000 --json
//! chorus-bench --protocol socketio --url ws://127.0.0.1:9002 suite --quick
//! ```
//!
//! Chorus servers must allow the publish rate (`--publish-rate 1000000 --publish-burst
//! 1000000`); turning presence off for the `bench` namespace keeps the setup of thousands of
//! subscribers from broadcasting every join to every member.

pub mod cli;
pub mod client;
pub mod clock;
mod error;
pub mod protocol;
pub mod render;
pub mod report;
pub mod stats;
pub mod workload;
pub mod ws;

pub use error::{Error, Result};
