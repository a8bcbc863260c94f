//! Idle joined connections: open them (in rising totals, keeping the ones already open),
//! keep them alive (answering pings), and with `--server-pid` report the server's resident
//! memory per connection: (VmRSS now − VmRSS before the first one) / connections.
//!
//! Connections are spread over 127.0.0.x source addresses (see
//! [`crate::client::Target::new`]), so tens of thousands fit in the ephemeral port range.
//! The open-file limit of this process is raised to its hard limit first; `max` as a total
//! means as many as that limit allows, less a few descriptors of headroom.
//!
//! Run it on a fresh server: one whose heap other workloads have grown and freed reuses
//! that memory, and the difference in RSS understates the cost per connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{CONNECT_CONCURRENCY, Env};
use crate::client::{Conn, Target};
use crate::report::Report;
use crate::stats::{raise_fd_limit, round3, rss_bytes};
use crate::ws;
use crate::{Error, Result};

/// Descriptors kept free below the limit when the total is `max`.
const FD_HEADROOM: u64 = 64;

/// A total of connections: a number, or as many as the open-file limit allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    /// This many.
    Count(usize),
    /// The open-file limit less some headroom.
    Max,
}

impl std::str::FromStr for Total {
    type Err = String;

    fn from_str(s: &str) -> Result<Total, String> {
        if s == "max" {
            return Ok(Total::Max);
        }
        s.parse()
            .map(Total::Count)
            .map_err(|_| format!("{s}: a number or `max`"))
    }
}

/// Idle arguments.
#[derive(Debug, Clone)]
pub struct Idle {
    /// Totals to reach, in order (each keeps the connections of the last).
    pub totals: Vec<Total>,
    /// Connections per room.
    pub room_size: usize,
    /// How long to hold each total (the server's RSS is read at its end, and connections
    /// lost meanwhile are counted).
    pub hold: Duration,
}

/// Open the totals in turn; one report each, handed to `emit` as it comes.
pub async fn run(env: &Env, args: &Idle, emit: &mut dyn FnMut(&Report)) -> Result<Vec<Report>> {
    let limit = raise_fd_limit();
    // An idle connection never needs a big read buffer; it grows if a large frame comes.
    let mut target = Target::clone(&env.target);
    target.options = ws::Options {
        read_buffer: 1024,
        ..env.target.options
    };
    target.timeout = env.target.timeout.max(Duration::from_secs(30));
    let target = Arc::new(target);
    let rss_before = env.server_pid.map(rss_bytes).transpose()?;
    let lost = Arc::new(AtomicU64::new(0));
    let mut open = JoinSet::new();
    let mut opened = 0usize;
    let mut failures = 0usize;
    let mut last_error: Option<String> = None;
    let mut reports = Vec::new();
    for total in &args.totals {
        let total = match *total {
            Total::Count(n) => n,
            Total::Max => limit.saturating_sub(FD_HEADROOM) as usize,
        };
        if total <= opened {
            continue;
        }
        let new = total - opened;
        let cpu = env.cpu_sample();
        let started = Instant::now();
        let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
        let mut connecting = JoinSet::new();
        for index in opened..total {
            let target = target.clone();
            let gate = gate.clone();
            let room = format!("bench:idle-{}", index / args.room_size.max(1));
            connecting.spawn(async move {
                let _permit = gate.acquire_owned().await.expect("never closed");
                target.connect_joined(index as u32, &room).await
            });
        }
        let mut failed_now = 0;
        while let Some(done) = connecting.join_next().await {
            match done.expect("connects do not panic") {
                Ok(conn) => {
                    open.spawn(keep_alive(conn, lost.clone()));
                }
                Err(e) => {
                    failed_now += 1;
                    last_error = Some(e.to_string());
                }
            }
        }
        let open_seconds = started.elapsed().as_secs_f64();
        failures += failed_now;
        opened = total;
        let lost_before = lost.load(Ordering::Relaxed);
        tokio::time::sleep(args.hold).await;
        let lost_holding = lost.load(Ordering::Relaxed) - lost_before;
        let generator = env.cpu_sample().since(&cpu);
        let alive = open.len() as u64 - lost.load(Ordering::Relaxed);
        let rss_after = env.server_pid.map(rss_bytes).transpose()?;
        let per_connection = match (rss_before, rss_after) {
            (Some(before), Some(after)) if alive > 0 => {
                Some(after.saturating_sub(before) as f64 / alive as f64)
            }
            _ => None,
        };
        let own_rss = rss_bytes(std::process::id()).ok();
        let text = format!(
            "{alive} of {total} connections open and joined ({failures} failed, \
             {lost_holding} lost while held), opened in {open_seconds:.1} s{}{}",
            per_connection
                .map(|b| format!(", server RSS {:.0} B per connection", b))
                .unwrap_or_default(),
            last_error
                .as_ref()
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default(),
        );
        let report = env.report(
            "idle",
            json!({
                "connections": total,
                "room_size": args.room_size,
                "hold_s": args.hold.as_secs_f64(),
                "fd_limit": limit,
                "server_pid": env.server_pid,
            }),
            json!({
                "open": alive,
                "failed": failures,
                "lost_while_held": lost_holding,
                "open_seconds": round3(open_seconds),
                "connects_per_second": round3(new as f64 / open_seconds),
                "server_rss_before_bytes": rss_before,
                "server_rss_after_bytes": rss_after,
                "server_rss_per_connection_bytes": per_connection.map(round3),
                "generator_rss_bytes": own_rss,
                "last_error": last_error,
            }),
            generator,
            text,
        );
        emit(&report);
        reports.push(report);
    }
    open.abort_all();
    if reports.is_empty() {
        return Err(Error::Usage("idle: no totals given".into()));
    }
    Ok(reports)
}

/// Hold the connection until it ends (counted as lost) or the task is aborted.
async fn keep_alive(mut conn: Conn, lost: Arc<AtomicU64>) {
    if conn.hold().await.is_err() {
        lost.fetch_add(1, Ordering::Relaxed);
    }
}
