//! Reconnect storm: N clients connected and joined lose their connections at once, then all
//! reconnect and rejoin, each after a random delay in `[0, jitter)` and, after a failed
//! attempt, with exponential backoff (100 ms doubling to 5 s, jittered by half). Measured:
//! the time from the drop until the last client is back and rejoined, each client's own
//! time back, failed attempts by cause, and clients that gave up (not back within the
//! deadline).
//!
//! Triggers:
//! - `client` (default): the generator resets every socket itself (TCP RST, no close
//!   frame), like a network cut seen from the server.
//! - `server`: the generator waits for the server to drop them, for example while the
//!   orchestrator restarts it; it says `storm: ready` on stderr (and touches
//!   `--ready-file`) once all are connected. Attempts refused while the server is down
//!   count as failed attempts, not as failures: a failure is a client that gave up.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{Semaphore, watch};

use super::{CONNECT_CONCURRENCY, Env, connect_all, unit};
use crate::client::{Conn, Target};
use crate::clock::now_ns;
use crate::report::Report;
use crate::stats::{Summary, histogram, round3};
use crate::ws;
use crate::{Error, Result};

/// What drops the connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Trigger {
    /// The generator resets them.
    Client,
    /// The server closes them (restarted by the orchestrator).
    Server,
}

/// Storm arguments.
#[derive(Debug, Clone)]
pub struct Storm {
    /// Clients.
    pub clients: usize,
    /// Clients per room.
    pub room_size: usize,
    /// Upper bound of each client's first reconnect delay.
    pub jitter: Duration,
    /// A client not back this long after its drop gives up.
    pub deadline: Duration,
    /// What drops the connections.
    pub trigger: Trigger,
    /// With the server trigger: how long to wait for the drop.
    pub wait: Duration,
    /// With the server trigger: a file touched once all clients are connected.
    pub ready_file: Option<std::path::PathBuf>,
}

#[derive(Default)]
struct Shared {
    dropped: AtomicUsize,
    back: AtomicUsize,
    gave_up: AtomicUsize,
    refused: AtomicU64,
    timed_out: AtomicU64,
    rejected: AtomicU64,
    other: AtomicU64,
    /// (dropped at, back at) per client that came back, in `now_ns` units.
    times: std::sync::Mutex<Vec<(u64, u64)>>,
    first_drop: AtomicU64,
    last_error: std::sync::Mutex<Option<String>>,
}

impl Shared {
    fn failed_attempt(&self, e: &Error) {
        let counter = match e {
            Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => &self.refused,
            Error::Timeout(_) => &self.timed_out,
            Error::Handshake(_) => &self.rejected,
            _ => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
    }

    fn attempts_failed(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
            + self.timed_out.load(Ordering::Relaxed)
            + self.rejected.load(Ordering::Relaxed)
            + self.other.load(Ordering::Relaxed)
    }
}

/// Connect, drop, reconnect; one report.
pub async fn run(env: &Env, args: &Storm) -> Result<Report> {
    crate::stats::raise_fd_limit();
    let mut target = Target::clone(&env.target);
    target.options = ws::Options {
        read_buffer: 1024,
        ..env.target.options
    };
    // A connect that the server's backlog delays is slow, not failed.
    target.timeout = target.timeout.max(Duration::from_secs(10));
    let target = Arc::new(target);
    let room = |i: usize| format!("bench:storm-{}", i / args.room_size.max(1));
    let joins = (0..args.clients).map(|i| (i as u32, room(i))).collect();
    let conns = connect_all(&target, joins, CONNECT_CONCURRENCY).await?;

    let shared = Arc::new(Shared {
        first_drop: AtomicU64::new(u64::MAX),
        ..Shared::default()
    });
    let (drop_now, drop_rx) = watch::channel(false);
    // Reconnects are not throttled by the generator beyond their jitter: the storm is the
    // point. The gate only bounds the sockets in the middle of connecting.
    let gate = Arc::new(Semaphore::new(4096));
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|conn| {
            let room = room(conn.index as usize);
            tokio::spawn(client(
                target.clone(),
                conn,
                room,
                drop_rx.clone(),
                shared.clone(),
                args.clone(),
                gate.clone(),
            ))
        })
        .collect();

    let cpu = env.cpu_sample();
    match args.trigger {
        Trigger::Client => {
            tokio::time::sleep(Duration::from_millis(if env.quick { 100 } else { 1000 })).await;
            drop_now.send_replace(true);
        }
        Trigger::Server => {
            eprintln!(
                "storm: ready: {} clients connected and joined; waiting up to {:?} for the server to drop them",
                args.clients, args.wait
            );
            if let Some(path) = &args.ready_file {
                std::fs::write(path, b"ready\n")?;
            }
            let deadline = tokio::time::Instant::now() + args.wait;
            while shared.dropped.load(Ordering::Relaxed) == 0 {
                if tokio::time::Instant::now() > deadline {
                    for task in &tasks {
                        task.abort();
                    }
                    return Err(Error::Timeout("the server to drop the storm's clients"));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    // Everyone dropped must be back or have given up; with the server trigger, clients the
    // server never dropped are waited for no longer than the deadline.
    let deadline = tokio::time::Instant::now() + args.deadline + Duration::from_secs(5);
    loop {
        let dropped = shared.dropped.load(Ordering::Relaxed);
        let settled = shared.back.load(Ordering::Relaxed) + shared.gave_up.load(Ordering::Relaxed);
        if (dropped == args.clients && settled == dropped) || tokio::time::Instant::now() > deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let generator = env.cpu_sample().since(&cpu);
    for task in &tasks {
        task.abort();
    }

    let times = std::mem::take(&mut *shared.times.lock().unwrap_or_else(|e| e.into_inner()));
    let mut each = Summary {
        count: times.len() as u64,
        latency: histogram(),
    };
    for (dropped, back) in &times {
        each.latency
            .saturating_record(back.saturating_sub(*dropped).max(1));
    }
    let first_drop = shared.first_drop.load(Ordering::Relaxed);
    let last_back = times.iter().map(|(_, back)| *back).max();
    let dropped = shared.dropped.load(Ordering::Relaxed);
    let back = shared.back.load(Ordering::Relaxed);
    let gave_up = shared.gave_up.load(Ordering::Relaxed);
    let never_dropped = args.clients - dropped;
    let all_back = back == args.clients;
    let all_back_s = last_back
        .filter(|_| all_back)
        .map(|last| last.saturating_sub(first_drop) as f64 / 1e9);
    let failures = gave_up + never_dropped + (dropped - back - gave_up);
    let last_error = shared
        .last_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut results = each.latency_json();
    for key in ["p50_ms", "p99_ms", "p999_ms", "max_ms"] {
        // Per-client time back, renamed so it is not read as a message latency.
        let value = results[key].take();
        results[format!("reconnect_{key}")] = value;
    }
    let results = json!({
        "clients": args.clients,
        "dropped": dropped,
        "back": back,
        "gave_up": gave_up,
        "never_dropped": never_dropped,
        "failures": failures,
        "all_back_s": all_back_s.map(round3),
        "failed_attempts": shared.attempts_failed(),
        "refused_attempts": shared.refused.load(Ordering::Relaxed),
        "timed_out_attempts": shared.timed_out.load(Ordering::Relaxed),
        "rejected_attempts": shared.rejected.load(Ordering::Relaxed),
        "other_failed_attempts": shared.other.load(Ordering::Relaxed),
        "reconnect_p50_ms": results["reconnect_p50_ms"],
        "reconnect_p99_ms": results["reconnect_p99_ms"],
        "reconnect_p999_ms": results["reconnect_p999_ms"],
        "reconnect_max_ms": results["reconnect_max_ms"],
        "last_error": last_error,
    });
    let text = format!(
        "{back} of {} back and rejoined{}, {failures} failures ({gave_up} gave up), \
         {} failed attempts; each client back in p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms{}",
        args.clients,
        all_back_s
            .map(|s| format!(" in {s:.2} s"))
            .unwrap_or_else(|| " (not all)".into()),
        shared.attempts_failed(),
        each.ms(0.5),
        each.ms(0.99),
        each.latency.max() as f64 / 1e6,
        last_error
            .map(|e| format!(" (last error: {e})"))
            .unwrap_or_default(),
    );
    Ok(env.report(
        "storm",
        json!({
            "clients": args.clients,
            "room_size": args.room_size,
            "jitter_ms": args.jitter.as_millis() as u64,
            "deadline_s": args.deadline.as_secs_f64(),
            "trigger": format!("{:?}", args.trigger).to_lowercase(),
        }),
        results,
        generator,
        text,
    ))
}

/// Hold the connection until the drop, then come back.
async fn client(
    target: Arc<Target>,
    mut conn: Conn,
    room: String,
    mut drop_now: watch::Receiver<bool>,
    shared: Arc<Shared>,
    args: Storm,
    gate: Arc<Semaphore>,
) {
    let index = conn.index;
    tokio::select! {
        _ = drop_now.wait_for(|d| *d) => conn.reset(),
        _ = conn.hold() => drop(conn),
    }
    let dropped_at = now_ns();
    shared.first_drop.fetch_min(dropped_at, Ordering::Relaxed);
    shared.dropped.fetch_add(1, Ordering::Relaxed);

    let mut rng = ws::seed();
    tokio::time::sleep(args.jitter.mul_f64(unit(&mut rng))).await;
    let mut backoff = Duration::from_millis(100);
    let give_up_at = dropped_at + args.deadline.as_nanos() as u64;
    loop {
        if now_ns() > give_up_at {
            shared.gave_up.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let attempt = {
            let _permit = gate.acquire().await.expect("never closed");
            target.connect_joined(index, &room).await
        };
        match attempt {
            Ok(mut conn) => {
                let back_at = now_ns();
                shared
                    .times
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((dropped_at, back_at));
                shared.back.fetch_add(1, Ordering::Relaxed);
                // Stay connected (answering pings) until the run ends.
                let _ = conn.hold().await;
                return;
            }
            Err(e) => {
                shared.failed_attempt(&e);
                tokio::time::sleep(backoff.mul_f64(0.5 + unit(&mut rng) / 2.0)).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
