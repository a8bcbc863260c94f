//! # chorus-bench-codec-wasm
//!
//! Codec microbenchmarks in headless Chromium: the wasm counterpart of chorus-protocol's
//! `benches/codec.rs`. It encodes and decodes the same values (`chorus_protocol::samples`,
//! feature `bench-samples`) with postcard and with JSON, timing each operation with
//! `performance.now()`.
//!
//! ## Layout
//! - `tests/codec.rs`: the benchmark, a wasm-bindgen test run in the browser. It prints one
//!   line per measurement to the console: `CODEC ` and a JSON object with `runtime`,
//!   `protocol`, `message`, `op`, `ns_per_op` and `bytes`.
//! - `webdriver.json`: Chromium's flags for the test runner.
//!
//! This library is empty. Run the benchmark through `bench/codec.sh`, which builds it in
//! release mode, runs it in Chromium and reports it beside the native figures, or by hand:
//!
//! ```text
//! CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
//!   cargo test -p chorus-bench-codec-wasm --target wasm32-unknown-unknown --release -- --nocapture
//! ```
//!
//! Built with `CHORUS_BENCH_QUICK=1` in the environment, each operation runs for a few
//! milliseconds instead of about 100 ms: a smoke run with rough figures.
