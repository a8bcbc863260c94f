//! Encode and decode every message kind in headless Chromium, with postcard and with JSON,
//! and print one `CODEC {json}` console line per measurement (see the crate docs).
//!
//! Run it with `--nocapture`: the test runner shows a passing test's console only then.
#![cfg(target_arch = "wasm32")]

use std::hint::black_box;

use chorus_protocol::samples;
use chorus_protocol::{DEFAULT_MAX_FRAME, decode, encode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use web_sys::Performance;

wasm_bindgen_test_configure!(run_in_browser);

/// Batches per measurement; the figure is their total time over their total iterations.
const BATCHES: u32 = 10;

/// How long to time each operation, in milliseconds: about 100 ms, or 10 ms in a quick
/// build (`CHORUS_BENCH_QUICK` set at compile time). Chromium rounds `performance.now()` to
/// 0.1 ms on a page that is not cross-origin isolated, so a 10 ms run is still within a few
/// percent.
fn budget_ms() -> f64 {
    let quick = option_env!("CHORUS_BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0");
    if quick { 10.0 } else { 100.0 }
}

#[wasm_bindgen_test]
fn encode_and_decode_every_message_kind() {
    let clock = web_sys::window()
        .expect("runs in a browser window")
        .performance()
        .expect("the window has performance.now()");
    // A pass whose figures are thrown away. V8 first runs wasm from a quick baseline
    // compile and swaps in optimized code for hot functions, compiled in the background:
    // without it, the first kinds measured would time some baseline code.
    measure_all(&clock, budget_ms() / 10.0);
    for (message, m) in measure_all(&clock, budget_ms()) {
        report(message, &m);
    }
}

/// One operation's figures.
struct Measurement {
    protocol: &'static str,
    op: &'static str,
    ns_per_op: f64,
    bytes: usize,
}

/// Every message kind's measurements, with the kind's name.
fn measure_all(clock: &Performance, budget_ms: f64) -> Vec<(&'static str, Measurement)> {
    let mut all = Vec::new();
    for sample in samples::client_messages() {
        let kind = measure_kind(clock, &sample.message, budget_ms);
        all.extend(kind.map(|m| (sample.name, m)));
    }
    for sample in samples::server_messages() {
        let kind = measure_kind(clock, &sample.message, budget_ms);
        all.extend(kind.map(|m| (sample.name, m)));
    }
    all
}

/// Encode and decode one message, with postcard and with JSON, each for `budget_ms`.
fn measure_kind<T: Serialize + DeserializeOwned>(
    clock: &Performance,
    message: &T,
    budget_ms: f64,
) -> [Measurement; 4] {
    let frame = encode(message, DEFAULT_MAX_FRAME).expect("a sample encodes");
    let json = serde_json::to_vec(message).expect("a sample encodes as JSON");
    let measurement = |protocol, op, bytes: &[u8], ns_per_op| Measurement {
        protocol,
        op,
        ns_per_op,
        bytes: bytes.len(),
    };
    [
        measurement(
            "postcard",
            "encode",
            &frame,
            time_op(clock, budget_ms, || {
                encode(black_box(message), DEFAULT_MAX_FRAME).unwrap()
            }),
        ),
        measurement(
            "postcard",
            "decode",
            &frame,
            time_op(clock, budget_ms, || {
                decode::<T>(black_box(&frame), DEFAULT_MAX_FRAME).unwrap()
            }),
        ),
        measurement(
            "json",
            "encode",
            &json,
            time_op(clock, budget_ms, || {
                serde_json::to_vec(black_box(message)).unwrap()
            }),
        ),
        measurement(
            "json",
            "decode",
            &json,
            time_op(clock, budget_ms, || {
                serde_json::from_slice::<T>(black_box(&json)).unwrap()
            }),
        ),
    ]
}

/// Mean time of one call of `op`, in nanoseconds, timed for about `budget_ms`.
///
/// Warms up for 30% of the budget (V8 first runs wasm from a quick baseline compile and
/// swaps in optimized code once a function is hot), doubling the batch until one lasts a
/// tenth of the budget. Then it sizes the batch from the last warm one and times
/// [`BATCHES`] batches.
fn time_op<R>(clock: &Performance, budget_ms: f64, mut op: impl FnMut() -> R) -> f64 {
    let mut batch = |iterations: u64| {
        let start = clock.now();
        for _ in 0..iterations {
            black_box(op());
        }
        clock.now() - start
    };
    let batch_ms = budget_ms / f64::from(BATCHES);
    let warm_up_ms = budget_ms * 0.3;

    let started = clock.now();
    let mut iterations: u64 = 1;
    let last_ms = loop {
        let took = batch(iterations);
        if took < batch_ms {
            iterations *= 2;
        } else if clock.now() - started >= warm_up_ms {
            break took;
        }
    };
    let iterations = ((iterations as f64 * batch_ms / last_ms).ceil() as u64).max(1);

    let total_ms: f64 = (0..BATCHES).map(|_| batch(iterations)).sum();
    total_ms * 1e6 / (f64::from(BATCHES) * iterations as f64)
}

/// Print one measurement for bench/codec.sh.
fn report(message: &str, m: &Measurement) {
    let line = serde_json::json!({
        "runtime": "wasm-chromium",
        "protocol": m.protocol,
        "message": message,
        "op": m.op,
        "ns_per_op": m.ns_per_op,
        "bytes": m.bytes,
    });
    web_sys::console::log_1(&format!("CODEC {line}").into());
}
