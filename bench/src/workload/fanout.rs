//! Closed-loop room fan-out: subscribers spread over one or more servers (round robin over
//! `--url`), publishers keeping a window of unacknowledged publishes in flight, so the
//! result is the throughput the servers sustain, with every delivery's latency from publish
//! to receipt. `bench/redis-scale.sh` runs it against one embedded instance and against
//! three instances over Redis.
//!
//! A publish counts as acknowledged on its ack where the protocol has one (Chorus), else
//! when it comes back to its sender.

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

/// Fan-out arguments (the flags of `chorus-bench fanout`).
#[derive(Debug, Clone)]
pub struct Fanout {
    /// Rooms.
    pub rooms: usize,
    /// Subscribers per room.
    pub subscribers: usize,
    /// Publishers per room.
    pub publishers: usize,
    /// Unacknowledged publishes each publisher keeps in flight.
    pub window: usize,
    /// Body size in bytes.
    pub body: usize,
    /// Measured time.
    pub duration: Duration,
    /// Unmeasured load before.
    pub warmup: Duration,
}

struct Shared {
    measuring: AtomicBool,
    publishing: AtomicBool,
    acked: AtomicU64,
    errors: AtomicU64,
    deliveries: Recorder,
}

/// Run the closed-loop fan-out.
pub async fn run(env: &Env, args: &Fanout) -> Result<Report> {
    let protocol = env.target.protocol().clone();
    if !protocol.acks_publishes() && !protocol.delivers_to_sender() {
        return Err(Error::Usage(format!(
            "{}: closed-loop fanout needs acks or messages back to their sender",
            protocol.name()
        )));
    }
    let rooms = args.rooms.max(1);
    let subscribers = rooms * args.subscribers;
    let joins = (0..subscribers + rooms * args.publishers)
        .map(|i| (i as u32, format!("bench:{}", i % rooms)))
        .collect();
    let mut conns = connect_all(&env.target, joins, CONNECT_CONCURRENCY).await?;
    let publisher_conns = conns.split_off(subscribers);
    let shared = Arc::new(Shared {
        measuring: AtomicBool::new(false),
        publishing: AtomicBool::new(true),
        acked: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        deliveries: Recorder::for_threads(env.threads),
    });
    let subscriber_tasks: Vec<_> = conns
        .into_iter()
        .map(|conn| tokio::spawn(subscribe(conn, shared.clone())))
        .collect();
    let publisher_tasks: Vec<_> = publisher_conns
        .into_iter()
        .map(|conn| tokio::spawn(publish(conn, args.clone(), rooms, shared.clone())))
        .collect();

    let (seconds, generator) =
        measure_window(env, args.warmup, args.duration, &shared.measuring, || {
            shared.deliveries.take().map(drop)
        })
        .await?;
    shared.publishing.store(false, Ordering::Relaxed);
    for task in publisher_tasks {
        if let Err(e) = task.await.expect("publishers do not panic") {
            eprintln!("fanout: a publisher failed: {e}");
            shared.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    for task in subscriber_tasks {
        task.abort();
    }
    let summary = shared.deliveries.take()?;
    let acked = shared.acked.load(Ordering::Relaxed);
    let errors = shared.errors.load(Ordering::Relaxed);
    let mut results = summary.latency_json();
    results["publishes_per_second"] = json!(round3(acked as f64 / seconds));
    results["deliveries_per_second"] = json!(round3(summary.count as f64 / seconds));
    results["seconds"] = json!(round3(seconds));
    results["errors"] = json!(errors);
    let text = format!(
        "{} instance(s), {} rooms x {} subscribers, {} publishers/room (window {}), {} B: \
         {:.0} publishes/s, {:.0} deliveries/s, latency {}, {errors} errors",
        env.target.urls().len(),
        rooms,
        args.subscribers,
        args.publishers,
        args.window,
        args.body,
        acked as f64 / seconds,
        summary.count as f64 / seconds,
        summary.latency_text(),
    );
    Ok(env.report(
        "fanout",
        json!({
            "instances": env.target.urls().len(),
            "rooms": rooms,
            "subscribers_per_room": args.subscribers,
            "publishers_per_room": args.publishers,
            "window": args.window,
            "body": args.body,
            "duration_s": args.duration.as_secs_f64(),
            "warmup_s": args.warmup.as_secs_f64(),
        }),
        results,
        generator,
        text,
    ))
}

/// Receive until aborted, counting deliveries and their latency while measuring.
async fn subscribe(mut conn: Conn, shared: Arc<Shared>) {
    let protocol = conn.protocol_arc();
    let result: Result<()> = async {
        loop {
            conn.reader.fill().await?;
            {
                let now = now_ns();
                let measuring = shared.measuring.load(Ordering::Relaxed);
                let mut shard = shared.deliveries.shard(conn.index as usize);
                while let Some(frame) = conn.reader.next()? {
                    if let Incoming::Message(stamp) = handle(&*protocol, frame, &mut conn.writer)?
                        && measuring
                        && stamp.sender != conn.index
                    {
                        shard.record(now.saturating_sub(stamp.sent_ns));
                    }
                }
            }
            conn.writer.flush().await?;
        }
    }
    .await;
    if result.is_err() {
        shared.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// Publish with `window` publishes in flight until told to stop, then wait for the last
/// ones to be acknowledged.
async fn publish(mut conn: Conn, args: Fanout, rooms: usize, shared: Arc<Shared>) -> Result<()> {
    let protocol = conn.protocol_arc();
    let room = format!("bench:{}", conn.index as usize % rooms);
    let by_ack = protocol.acks_publishes();
    let mut id = crate::client::first_publish_id();
    let mut in_flight = 0usize;
    loop {
        let publishing = shared.publishing.load(Ordering::Relaxed);
        if publishing && in_flight < args.window {
            let now = now_ns();
            while in_flight < args.window {
                let stamp = Stamp {
                    sent_ns: now,
                    sender: conn.index,
                };
                protocol.publish(&room, id, stamp, args.body, &mut conn.writer);
                id += 1;
                in_flight += 1;
            }
            conn.writer.flush().await?;
        }
        if !publishing && in_flight == 0 {
            return Ok(());
        }
        tokio::time::timeout(Duration::from_secs(10), conn.reader.fill())
            .await
            .map_err(|_| Error::Timeout("an ack, for 10 s"))??;
        let measuring = shared.measuring.load(Ordering::Relaxed);
        while let Some(frame) = conn.reader.next()? {
            let done = match handle(&*protocol, frame, &mut conn.writer)? {
                Incoming::Ack => by_ack,
                Incoming::Message(stamp) => !by_ack && stamp.sender == conn.index,
                Incoming::Refused(_) => {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Incoming::Closing(why) => return Err(Error::Closed(why)),
                _ => false,
            };
            if done {
                in_flight = in_flight.saturating_sub(1);
                if measuring {
                    shared.acked.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}
