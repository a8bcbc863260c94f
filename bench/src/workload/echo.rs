//! Echo round trip, closed loop: each connection sends one message and waits for it to come
//! back before sending the next. One result per (connections, body size).
//!
//! For the peers this is their echo message. For Chorus it is a publish to a room of one
//! (the connection's own), timed until the connection's own message comes back: the
//! protocol has no echo, and its ping carries no body (see [`crate::protocol::chorus`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;

use super::{CONNECT_CONCURRENCY, Env, connect_all, measure_window};
use crate::client::Conn;
use crate::clock::now_ns;
use crate::protocol::{Incoming, Stamp, handle};
use crate::report::Report;
use crate::stats::{Recorder, round3};
use crate::{Error, Result};

/// Echo arguments.
#[derive(Debug, Clone)]
pub struct Echo {
    /// Connection counts, one run each.
    pub connections: Vec<usize>,
    /// Body sizes in bytes, one run each.
    pub bodies: Vec<usize>,
    /// Measured time per run.
    pub duration: Duration,
    /// Unmeasured time before.
    pub warmup: Duration,
}

struct Shared {
    measuring: AtomicBool,
    errors: AtomicU64,
    last_error: std::sync::Mutex<Option<String>>,
    recorder: Recorder,
}

/// Run every (connections, body) combination, handing each result to `emit` as it comes.
pub async fn run(env: &Env, args: &Echo, emit: &mut dyn FnMut(&Report)) -> Result<Vec<Report>> {
    let mut reports = Vec::new();
    for &connections in &args.connections {
        for &body in &args.bodies {
            let report = one(env, args, connections, body).await?;
            emit(&report);
            reports.push(report);
        }
    }
    Ok(reports)
}

async fn one(env: &Env, args: &Echo, connections: usize, body: usize) -> Result<Report> {
    let joins = (0..connections)
        .map(|i| (i as u32, format!("bench:echo-{i}")))
        .collect();
    let conns = connect_all(&env.target, joins, CONNECT_CONCURRENCY).await?;
    let shared = Arc::new(Shared {
        measuring: AtomicBool::new(false),
        errors: AtomicU64::new(0),
        last_error: Default::default(),
        recorder: Recorder::for_threads(env.threads),
    });
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|conn| tokio::spawn(echo_loop(conn, body, shared.clone())))
        .collect();

    let (seconds, generator) =
        measure_window(env, args.warmup, args.duration, &shared.measuring, || {
            shared.recorder.take().map(drop)
        })
        .await?;
    for task in &tasks {
        task.abort();
    }
    let summary = shared.recorder.take()?;
    let errors = shared.errors.load(Ordering::Relaxed);
    let rate = summary.count as f64 / seconds;
    let mut results = summary.latency_json();
    results["round_trips"] = json!(summary.count);
    results["round_trips_per_second"] = json!(round3(rate));
    results["errors"] = json!(errors);
    let last_error = shared
        .last_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some(e) = &last_error {
        results["last_error"] = json!(e);
    }
    let text = format!(
        "{connections} connection(s), {body} B: {rate:.0} round trips/s, {}, {errors} errors{}",
        summary.latency_text(),
        last_error
            .map(|e| format!(" (last: {e})"))
            .unwrap_or_default()
    );
    Ok(env.report(
        "echo",
        json!({
            "connections": connections,
            "body": body,
            "duration_s": args.duration.as_secs_f64(),
            "warmup_s": args.warmup.as_secs_f64(),
        }),
        results,
        generator,
        text,
    ))
}

/// Send, wait for the echo, record, repeat; until aborted.
async fn echo_loop(mut conn: Conn, body: usize, shared: Arc<Shared>) {
    let room = format!("bench:echo-{}", conn.index);
    let protocol = conn.protocol_arc();
    let mut id = crate::client::first_publish_id();
    loop {
        let stamp = Stamp {
            sent_ns: now_ns(),
            sender: conn.index,
        };
        protocol.echo(&room, id, stamp, body, &mut conn.writer);
        id += 1;
        let answered = match conn.writer.flush().await {
            Ok(()) => wait_echo(&mut conn, stamp).await,
            Err(e) => Err(e),
        };
        if let Err(e) = answered {
            shared.errors.fetch_add(1, Ordering::Relaxed);
            *shared.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
            return;
        }
        if shared.measuring.load(Ordering::Relaxed) {
            let rtt = now_ns().saturating_sub(stamp.sent_ns);
            shared.recorder.shard(conn.index as usize).record(rtt);
        }
    }
}

/// Receive until the message with `stamp` comes back.
async fn wait_echo(conn: &mut Conn, stamp: Stamp) -> Result<()> {
    let protocol = conn.protocol_arc();
    loop {
        let mut back = false;
        while let Some(frame) = conn.reader.next()? {
            match handle(&*protocol, frame, &mut conn.writer)? {
                Incoming::Message(s) if s == stamp => back = true,
                Incoming::Refused(why) => return Err(Error::Protocol(why)),
                Incoming::Closing(why) => return Err(Error::Closed(why)),
                _ => {}
            }
        }
        conn.writer.flush().await?;
        if back {
            return Ok(());
        }
        conn.reader.fill().await?;
    }
}
