//! The workloads. Each takes an [`Env`] (where to connect, how to report) and its own
//! arguments, and returns [`Report`]s.
//!
//! | Workload | What it measures |
//! | --- | --- |
//! | [`echo`] | closed-loop round trips over 1, 10, 100 connections, 32 B and 1 KiB bodies |
//! | [`ramp`] | room fan-out 1 → N at a rising open-loop rate: deliveries/s while p99 ≤ 50 ms |
//! | [`ramp`] (chat) | all-to-all rooms of 16 and 32 members, the same rising rate |
//! | [`fanout`] | closed-loop fan-out with a window of publishes in flight (Redis scale-out) |
//! | [`idle`] | joined idle connections; the server's resident memory per connection |
//! | [`storm`] | every connection dropped at once: time until all are back and rejoined |
//! | [`ceiling`] | the generator alone: frames it parses per CPU-second |

pub mod ceiling;
pub mod echo;
pub mod fanout;
pub mod idle;
pub mod ramp;
pub mod storm;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::{Conn, Target};
use crate::report::Report;
use crate::stats::{CpuSample, CpuUsage};
use crate::{Error, Result};

/// What every workload shares.
#[derive(Debug, Clone)]
pub struct Env {
    /// Where connections go.
    pub target: Arc<Target>,
    /// Worker threads of the runtime (sizes the latency shards).
    pub threads: usize,
    /// Whether `--quick` shrinks the run.
    pub quick: bool,
    /// The server's process id (one server), for its CPU time and memory.
    pub server_pid: Option<u32>,
}

impl Env {
    /// The generator's CPU time now, and the server's when its pid is known.
    pub fn cpu_sample(&self) -> CpuSample {
        CpuSample::with_server(self.server_pid)
    }

    /// A report on this environment.
    pub fn report(
        &self,
        workload: &'static str,
        params: Value,
        results: Value,
        generator: CpuUsage,
        text: String,
    ) -> Report {
        Report {
            workload,
            protocol: self.target.protocol().name(),
            servers: self.target.urls(),
            quick: self.quick,
            params,
            results,
            generator,
            threads: self.threads,
            text,
        }
    }
}

/// Connect `(index, room)` pairs and join each room, at most `concurrency` at a time (a
/// thousand SYNs at once overflow the server's accept backlog and cost a second-long
/// retransmit). Fails with the first error.
pub async fn connect_all(
    target: &Arc<Target>,
    joins: Vec<(u32, String)>,
    concurrency: usize,
) -> Result<Vec<Conn>> {
    let total = joins.len();
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for (slot, (index, room)) in joins.into_iter().enumerate() {
        let target = target.clone();
        let gate = gate.clone();
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("never closed");
            let conn = target.connect_joined(index, &room).await;
            (slot, conn.map_err(|e| (index, e)))
        });
    }
    let mut conns: Vec<Option<Conn>> = (0..total).map(|_| None).collect();
    while let Some(done) = tasks.join_next().await {
        let (slot, conn) = done.expect("connect tasks do not panic");
        match conn {
            Ok(conn) => conns[slot] = Some(conn),
            Err((index, e)) => {
                return Err(Error::Protocol(format!(
                    "connection {index} of {total} could not connect and join: {e}"
                )));
            }
        }
    }
    Ok(conns.into_iter().map(|c| c.expect("all joined")).collect())
}

/// Warm up, then measure for `duration`: `reset` drops what the warm-up recorded, and
/// `measuring` is true for the measured window only. Returns its length in seconds and the
/// generator's CPU use over it.
pub(crate) async fn measure_window(
    env: &Env,
    warmup: Duration,
    duration: Duration,
    measuring: &AtomicBool,
    reset: impl FnOnce() -> Result<()>,
) -> Result<(f64, CpuUsage)> {
    tokio::time::sleep(warmup).await;
    reset()?;
    let cpu = env.cpu_sample();
    let started = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(duration).await;
    measuring.store(false, Ordering::Relaxed);
    Ok((
        started.elapsed().as_secs_f64(),
        env.cpu_sample().since(&cpu),
    ))
}

/// Connects in flight at once during setup.
pub const CONNECT_CONCURRENCY: usize = 128;

/// A uniform random number in `[0, 1)` from a xorshift state.
pub(crate) fn unit(state: &mut u64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 11) as f64 / (1u64 << 53) as f64
}
