//! Codec microbenchmarks: encode and decode of every message kind, with postcard (the wire
//! format, through [`chorus_protocol::encode`] and [`chorus_protocol::decode`]) and with
//! JSON (`serde_json`) for comparison. The values are `chorus_protocol::samples`, the same
//! ones the benchmark in headless Chromium (`bench/codec-wasm`) measures.
//!
//! ```text
//! cargo bench -p chorus-protocol --bench codec [-- FILTER]
//! CHORUS_BENCH_QUICK=1 cargo bench -p chorus-protocol --bench codec   # smoke run
//! ```
//!
//! Each message kind is a criterion group (`ClientMessage::Publish`), each measurement a
//! benchmark `FORMAT/OP` in it (`postcard/encode`); the throughput is the encoded size.
//! `bench/codec.sh` turns criterion's estimates into JSON lines.

use std::hint::black_box;
use std::time::Duration;

use chorus_protocol::samples::{self, Sample};
use chorus_protocol::{DEFAULT_MAX_FRAME, decode, encode};
use criterion::{BenchmarkId, Criterion, Throughput};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn main() {
    let mut criterion = configured().configure_from_args();
    for sample in samples::client_messages() {
        bench_kind(&mut criterion, &sample);
    }
    for sample in samples::server_messages() {
        bench_kind(&mut criterion, &sample);
    }
    criterion.final_summary();
}

/// Short runs: these operations take nanoseconds to microseconds, so half a second is tens
/// of thousands of iterations even for the largest message. `CHORUS_BENCH_QUICK=1` shrinks
/// the runs further, for a CI smoke run whose figures are rough. Command-line flags win.
fn configured() -> Criterion {
    let quick = std::env::var_os("CHORUS_BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0");
    let criterion = Criterion::default();
    if quick {
        // Fewer bootstrap resamples narrow nothing but the confidence interval, which
        // nobody reads from a smoke run; the default 100 000 take longer than measuring.
        criterion
            .warm_up_time(Duration::from_millis(50))
            .measurement_time(Duration::from_millis(100))
            .sample_size(10)
            .nresamples(5_000)
    } else {
        criterion
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(500))
            .sample_size(20)
            .nresamples(20_000)
    }
}

/// Encode and decode one message kind, with postcard and with JSON.
fn bench_kind<T: Serialize + DeserializeOwned>(criterion: &mut Criterion, sample: &Sample<T>) {
    let message = &sample.message;
    let mut group = criterion.benchmark_group(sample.name);

    let frame = encode(message, DEFAULT_MAX_FRAME).expect("a sample encodes");
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function(BenchmarkId::new("postcard", "encode"), |b| {
        b.iter(|| encode(black_box(message), DEFAULT_MAX_FRAME).unwrap())
    });
    group.bench_function(BenchmarkId::new("postcard", "decode"), |b| {
        b.iter(|| decode::<T>(black_box(&frame), DEFAULT_MAX_FRAME).unwrap())
    });

    let json = serde_json::to_vec(message).expect("a sample encodes as JSON");
    group.throughput(Throughput::Bytes(json.len() as u64));
    group.bench_function(BenchmarkId::new("json", "encode"), |b| {
        b.iter(|| serde_json::to_vec(black_box(message)).unwrap())
    });
    group.bench_function(BenchmarkId::new("json", "decode"), |b| {
        b.iter(|| serde_json::from_slice::<T>(black_box(&json)).unwrap())
    });

    group.finish();
}
