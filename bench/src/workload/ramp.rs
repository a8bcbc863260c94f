//! Open-loop room traffic at a rising rate, in steps: room fan-out (one publisher, N
//! subscribers) and all-to-all chat (every member publishes and receives).
//!
//! Each step asks for a number of deliveries per second. Publishers send on a fixed
//! schedule, whatever the server does (open loop), and stamp each message with the time it
//! was *scheduled*, so a server that falls behind shows as latency rather than as a slower
//! publisher (no coordinated omission). After the step, the generator waits for the
//! stragglers, then judges the step: it holds if p99 ≤ the limit (50 ms), at least 99 % of
//! the expected deliveries arrived, and no connection was lost. The rate then rises by a
//! factor until a step fails, and a few bisecting steps narrow the edge. The result is the
//! best step that held: deliveries per second and latency there.
//!
//! Deliveries count messages to members other than the sender (a room message to its own
//! sender is not counted, whether or not the protocol sends it), so N subscribers make N
//! deliveries per publish, and a chat room of M makes M − 1.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

use super::{CONNECT_CONCURRENCY, Env, unit};
use crate::client::{Conn, Target};
use crate::clock::{instant_at, now_ns};
use crate::protocol::{Incoming, Stamp, handle};
use crate::report::Report;
use crate::stats::{CpuSample, CpuUsage, Recorder, Summary, round3};
use crate::{Error, Result};

/// How the rate rises.
#[derive(Debug, Clone)]
pub struct Ramp {
    /// Deliveries per second of the first step.
    pub from: f64,
    /// Each step asks for this many times the last.
    pub factor: f64,
    /// Most rising steps.
    pub max_steps: usize,
    /// Bisecting steps between the last step that held and the first that failed.
    pub refine: usize,
    /// Publishing time of each step.
    pub step: Duration,
    /// A step holds while p99 is at most this.
    pub p99_limit: Duration,
    /// Body size in bytes.
    pub body: usize,
}

/// Who is in the rooms.
#[derive(Debug, Clone, Copy)]
pub enum Layout {
    /// One room, one publisher, `subscribers` receivers.
    Fanout {
        /// Receivers.
        subscribers: usize,
    },
    /// `rooms` rooms of `members`, each publishing and receiving.
    Chat {
        /// Rooms.
        rooms: usize,
        /// Members per room.
        members: usize,
    },
}

impl Layout {
    fn workload(self) -> &'static str {
        match self {
            Layout::Fanout { .. } => "fanout-ramp",
            Layout::Chat { .. } => "chat",
        }
    }

    /// The members: (index, room, publishes, receives).
    fn members(self) -> Vec<Member> {
        match self {
            Layout::Fanout { subscribers } => {
                let room = "bench:fanout".to_owned();
                let mut members: Vec<Member> = (0..subscribers)
                    .map(|i| Member {
                        index: i as u32,
                        room: room.clone(),
                        publishes: false,
                        slot: 0.0,
                    })
                    .collect();
                members.push(Member {
                    index: subscribers as u32,
                    room,
                    publishes: true,
                    slot: 0.0,
                });
                members
            }
            Layout::Chat { rooms, members } => {
                let publishers = (rooms * members) as f64;
                (0..rooms * members)
                    .map(|i| Member {
                        index: i as u32,
                        room: format!("bench:chat-{}", i / members),
                        publishes: true,
                        slot: i as f64 / publishers,
                    })
                    .collect()
            }
        }
    }

    /// Deliveries (to others) per publish.
    fn fanout(self) -> usize {
        match self {
            Layout::Fanout { subscribers } => subscribers,
            Layout::Chat { members, .. } => members.saturating_sub(1),
        }
    }

    fn publishers(self) -> usize {
        match self {
            Layout::Fanout { .. } => 1,
            Layout::Chat { rooms, members } => rooms * members,
        }
    }

    fn params(self) -> Value {
        match self {
            Layout::Fanout { subscribers } => json!({"subscribers": subscribers, "publishers": 1}),
            Layout::Chat { rooms, members } => json!({"rooms": rooms, "members": members}),
        }
    }

    fn describe(self) -> String {
        match self {
            Layout::Fanout { subscribers } => format!("1 -> {subscribers}"),
            Layout::Chat { rooms, members } => format!("{rooms} rooms of {members}"),
        }
    }
}

#[derive(Debug, Clone)]
struct Member {
    index: u32,
    room: String,
    publishes: bool,
    /// Where in each publishing interval this member sends, in [0, 1): spreads the
    /// publishers' sends evenly instead of in bursts.
    slot: f64,
}

/// One step's schedule: every publisher sends `per_publisher` messages per second in
/// `[start_ns, end_ns)`.
#[derive(Debug, Clone, Copy)]
struct Phase {
    per_publisher: f64,
    start_ns: u64,
    end_ns: u64,
}

/// Shared by the member tasks and the controller.
struct Shared {
    /// The generator's worker threads (its CPU ceiling, in cores).
    threads: usize,
    /// The server process, whose CPU time each step reports when known.
    server_pid: Option<u32>,
    recorder: Recorder,
    sent: AtomicU64,
    refused: AtomicU64,
    disconnects: AtomicU64,
    alive: AtomicUsize,
    stopping: AtomicBool,
    last_error: std::sync::Mutex<Option<String>>,
}

impl Shared {
    fn error(&self, e: &Error) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
    }
}

/// What one step measured.
#[derive(Debug)]
struct Step {
    asked: f64,
    publish_rate: f64,
    sent: u64,
    expected: u64,
    seconds: f64,
    summary: Summary,
    disconnects: u64,
    refused: u64,
    generator: CpuUsage,
    /// Whether the generator used (nearly) all its threads' CPU: the figures may then be
    /// the generator's, not the server's.
    saturated: bool,
    failed: Option<String>,
}

impl Step {
    fn deliveries_per_second(&self) -> f64 {
        self.summary.count as f64 / self.seconds
    }

    fn json(&self) -> Value {
        let mut step = self.summary.latency_json();
        step["asked_deliveries_per_second"] = json!(round3(self.asked));
        step["publishes_per_second"] = json!(round3(self.publish_rate));
        step["deliveries_per_second"] = json!(round3(self.deliveries_per_second()));
        step["sent"] = json!(self.sent);
        step["expected"] = json!(self.expected);
        step["delivered"] = json!(self.summary.count);
        step["disconnects"] = json!(self.disconnects);
        step["refused"] = json!(self.refused);
        step["held"] = json!(self.failed.is_none());
        step["failed"] = json!(self.failed);
        step["generator"] = self.generator.json();
        step["server"] = self.generator.server_json().unwrap_or(Value::Null);
        step["generator_saturated"] = json!(self.saturated);
        step
    }

    fn text(&self) -> String {
        format!(
            "  asked {:>10.0}/s: {:>10.0} deliveries/s ({:.0} publishes/s), {}, {}{}{}",
            self.asked,
            self.deliveries_per_second(),
            self.publish_rate,
            self.summary.latency_text(),
            self.generator.text(),
            if self.saturated { " (SATURATED)" } else { "" },
            self.failed
                .as_ref()
                .map(|why| format!(" -- FAILED: {why}"))
                .unwrap_or_default()
        )
    }
}

/// Connect everyone in `layout`, then run the rising steps.
pub async fn run(env: &Env, layout: Layout, ramp: &Ramp) -> Result<Report> {
    let members = layout.members();
    let total = members.len();
    let shared = Arc::new(Shared {
        threads: env.threads,
        server_pid: env.server_pid,
        recorder: Recorder::for_threads(env.threads),
        sent: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        disconnects: AtomicU64::new(0),
        alive: AtomicUsize::new(0),
        stopping: AtomicBool::new(false),
        last_error: Default::default(),
    });
    let (phase, phase_rx) = watch::channel(None::<Phase>);
    let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let tasks: Vec<_> = members
        .into_iter()
        .map(|member| {
            tokio::spawn(member_task(
                env.target.clone(),
                member,
                shared.clone(),
                phase_rx.clone(),
                ramp.body,
                gate.clone(),
            ))
        })
        .collect();
    drop(phase_rx);

    let setup = Duration::from_secs(30) + Duration::from_millis(20 * total as u64);
    let outcome = async {
        if !wait_alive(&shared, total, setup).await {
            return Err(Error::Protocol(format!(
                "only {} of {total} members connected and joined within {setup:?}; last error: {}",
                shared.alive.load(Ordering::Relaxed),
                shared
                    .last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
                    .unwrap_or_default()
            )));
        }
        steps(&shared, &phase, layout, ramp, total).await
    }
    .await;
    shared.stopping.store(true, Ordering::Relaxed);
    for task in &tasks {
        task.abort();
    }
    let steps = outcome?;

    let best = steps.iter().filter(|s| s.failed.is_none()).max_by(|a, b| {
        a.deliveries_per_second()
            .total_cmp(&b.deliveries_per_second())
    });
    let generator = steps.iter().fold(CpuUsage::default(), |sum, s| CpuUsage {
        wall: sum.wall + s.generator.wall,
        cpu: sum.cpu + s.generator.cpu,
        user: sum.user + s.generator.user,
        system: sum.system + s.generator.system,
        server: sum
            .server
            .zip(s.generator.server)
            .map(|(sum, step)| sum + step)
            .or(s.generator.server),
    });
    let best_json = best.map(|b| {
        let mut j = b.summary.latency_json();
        j["deliveries_per_second"] = json!(round3(b.deliveries_per_second()));
        j["publishes_per_second"] = json!(round3(b.publish_rate));
        j["generator_cpu_percent"] = json!(round3(b.generator.percent()));
        j["server_cpu_percent"] = json!(b.generator.server_percent().map(round3));
        j
    });
    let mut text = format!(
        "{}, {} B: best {}",
        layout.describe(),
        ramp.body,
        match best {
            Some(b) => format!(
                "{:.0} deliveries/s at p99 <= {} ms ({})",
                b.deliveries_per_second(),
                ramp.p99_limit.as_millis(),
                b.summary.latency_text()
            ),
            None => format!(
                "none: no step held p99 <= {} ms",
                ramp.p99_limit.as_millis()
            ),
        }
    );
    for step in &steps {
        text.push('\n');
        text.push_str(&step.text());
    }
    let mut params = layout.params();
    params["body"] = json!(ramp.body);
    params["from_deliveries_per_second"] = json!(ramp.from);
    params["factor"] = json!(ramp.factor);
    params["step_s"] = json!(ramp.step.as_secs_f64());
    params["p99_limit_ms"] = json!(ramp.p99_limit.as_secs_f64() * 1e3);
    Ok(env.report(
        layout.workload(),
        params,
        json!({
            "best": best_json,
            "steps": steps.iter().map(Step::json).collect::<Vec<_>>(),
        }),
        generator,
        text,
    ))
}

/// A warm-up step, the rising steps, then the bisecting ones.
async fn steps(
    shared: &Shared,
    phase: &watch::Sender<Option<Phase>>,
    layout: Layout,
    ramp: &Ramp,
    total: usize,
) -> Result<Vec<Step>> {
    // A warm-up step at the first rate, not counted: a server's first burst pays for cold
    // caches, lazily grown buffers and, on Node, code not yet compiled by the JIT.
    step(shared, phase, layout, ramp, total, ramp.from).await?;
    let mut steps = Vec::new();
    let mut asked = ramp.from;
    let mut held: Option<f64> = None;
    let mut failed: Option<f64> = None;
    for _ in 0..ramp.max_steps {
        let step = step(shared, phase, layout, ramp, total, asked).await?;
        let ok = step.failed.is_none();
        steps.push(step);
        if ok {
            held = Some(asked);
            asked *= ramp.factor;
        } else {
            failed = Some(asked);
            break;
        }
    }
    // Even the first step failed: step down while each publisher still sends a few
    // messages per step, so there is a figure to compare.
    while held.is_none() && !steps.is_empty() {
        asked /= ramp.factor;
        let per_publisher = asked / layout.fanout().max(1) as f64 / layout.publishers() as f64;
        if per_publisher * ramp.step.as_secs_f64() < 2.0 {
            break;
        }
        let step = step(shared, phase, layout, ramp, total, asked).await?;
        if step.failed.is_none() {
            held = Some(asked);
        }
        steps.push(step);
    }
    for _ in 0..ramp.refine {
        let (Some(low), Some(high)) = (held, failed) else {
            break;
        };
        let middle = (low * high).sqrt();
        let step = step(shared, phase, layout, ramp, total, middle).await?;
        if step.failed.is_none() {
            held = Some(middle);
        } else {
            failed = Some(middle);
        }
        steps.push(step);
    }
    Ok(steps)
}

/// Run one step asking for `asked` deliveries per second.
async fn step(
    shared: &Shared,
    phase: &watch::Sender<Option<Phase>>,
    layout: Layout,
    ramp: &Ramp,
    total: usize,
    asked: f64,
) -> Result<Step> {
    // Start from a quiet, complete room: reconnect whoever a failed step cost, and let the
    // last step's stragglers arrive before forgetting them.
    if !wait_alive(shared, total, Duration::from_secs(60)).await {
        return Err(Error::Protocol(format!(
            "members lost and not back within 60 s (last error: {})",
            shared
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_default()
        )));
    }
    wait_quiet(shared, Duration::from_millis(200), Duration::from_secs(30)).await;
    shared.recorder.take()?;
    shared.sent.store(0, Ordering::Relaxed);
    shared.refused.store(0, Ordering::Relaxed);
    let disconnects = shared.disconnects.load(Ordering::Relaxed);

    let fanout = layout.fanout().max(1) as f64;
    let publish_rate = asked / fanout;
    let per_publisher = publish_rate / layout.publishers() as f64;
    let cpu = CpuSample::with_server(shared.server_pid);
    let start_ns = now_ns() + 20_000_000;
    let end_ns = start_ns + ramp.step.as_nanos() as u64;
    phase.send_replace(Some(Phase {
        per_publisher,
        start_ns,
        end_ns,
    }));
    tokio::time::sleep_until(instant_at(end_ns).into()).await;

    // Stragglers: wait for every expected delivery, or until nothing arrives for a while.
    let drain_limit = ramp.step + Duration::from_secs(2);
    let drain_start = tokio::time::Instant::now();
    let mut last = (shared.recorder.count(), tokio::time::Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let expected = shared.sent.load(Ordering::Relaxed) * layout.fanout() as u64;
        let count = shared.recorder.count();
        if count >= expected || drain_start.elapsed() > drain_limit {
            break;
        }
        if count != last.0 {
            last = (count, tokio::time::Instant::now());
        } else if last.1.elapsed() > Duration::from_millis(300).max(ramp.p99_limit * 2) {
            break;
        }
    }
    let generator = CpuSample::with_server(shared.server_pid).since(&cpu);
    let summary = shared.recorder.take()?;
    let sent = shared.sent.load(Ordering::Relaxed);
    let expected = sent * layout.fanout() as u64;
    let lost = shared.disconnects.load(Ordering::Relaxed) - disconnects;
    let refused = shared.refused.load(Ordering::Relaxed);
    let seconds = ramp.step.as_secs_f64();
    let p99 = summary.ms(0.99);
    let limit = ramp.p99_limit.as_secs_f64() * 1e3;
    let failed = if lost > 0 {
        Some(format!("{lost} connection(s) lost"))
    } else if summary.count * 100 < expected * 99 {
        Some(format!(
            "{} of {expected} deliveries arrived",
            summary.count
        ))
    } else if p99 > limit {
        Some(format!("p99 {p99:.1} ms over {limit:.0} ms"))
    } else if refused > 0 {
        Some(format!("{refused} publishes refused"))
    } else if sent == 0 {
        Some("nothing was sent".into())
    } else {
        None
    };
    Ok(Step {
        asked,
        publish_rate: sent as f64 / seconds,
        sent,
        expected,
        seconds,
        summary,
        disconnects: lost,
        refused,
        saturated: generator.percent() >= 90.0 * shared.threads as f64,
        generator,
        failed,
    })
}

/// Wait until `total` members are connected and joined; false on timeout.
async fn wait_alive(shared: &Shared, total: usize, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while shared.alive.load(Ordering::Relaxed) < total {
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Wait until no delivery arrived for `quiet`, at most `limit`.
async fn wait_quiet(shared: &Shared, quiet: Duration, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut last = shared.recorder.count();
    let mut since = tokio::time::Instant::now();
    while tokio::time::Instant::now() < deadline && since.elapsed() < quiet {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let count = shared.recorder.count();
        if count != last {
            last = count;
            since = tokio::time::Instant::now();
        }
    }
}

/// One member for the whole run: connect and join (again after a loss, with jittered
/// backoff), then receive and publish until aborted.
async fn member_task(
    target: Arc<Target>,
    member: Member,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Option<Phase>>,
    body: usize,
    gate: Arc<Semaphore>,
) {
    let mut rng = crate::ws::seed();
    let mut backoff = Duration::from_millis(100);
    loop {
        let conn = {
            let _permit = gate.acquire().await.expect("never closed");
            target.connect_joined(member.index, &member.room).await
        };
        match conn {
            Ok(conn) => {
                backoff = Duration::from_millis(100);
                shared.alive.fetch_add(1, Ordering::Relaxed);
                let ended = drive(conn, &member, &shared, &mut phase, body).await;
                shared.alive.fetch_sub(1, Ordering::Relaxed);
                if shared.stopping.load(Ordering::Relaxed) {
                    return;
                }
                shared.disconnects.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = ended {
                    shared.error(&e);
                }
            }
            Err(e) => {
                shared.error(&e);
                tokio::time::sleep(backoff.mul_f64(0.5 + unit(&mut rng) / 2.0)).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// A publisher's place in the current phase.
struct Schedule {
    next_ns: u64,
    interval_ns: u64,
    end_ns: u64,
}

/// Receive (recording others' messages) and publish on schedule, until the connection
/// fails.
async fn drive(
    mut conn: Conn,
    member: &Member,
    shared: &Shared,
    phase: &mut watch::Receiver<Option<Phase>>,
    body: usize,
) -> Result<()> {
    let protocol = conn.protocol_arc();
    let mut schedule: Option<Schedule> = None;
    let mut ticker = tokio::time::interval(Duration::from_secs(3600));
    let mut id = crate::client::first_publish_id();
    // A phase already running when this member (re)joined is not for it.
    phase.mark_unchanged();
    loop {
        tokio::select! {
            read = conn.reader.fill() => {
                read?;
                {
                    // One clock read per batch: every frame in it arrived by now.
                    let now = now_ns();
                    let mut shard = shared.recorder.shard(member.index as usize);
                    while let Some(frame) = conn.reader.next()? {
                        match handle(&*protocol, frame, &mut conn.writer)? {
                            Incoming::Message(stamp) if stamp.sender != member.index => {
                                shard.record(now.saturating_sub(stamp.sent_ns));
                            }
                            Incoming::Refused(_) => {
                                shared.refused.fetch_add(1, Ordering::Relaxed);
                            }
                            Incoming::Closing(why) => return Err(Error::Closed(why)),
                            _ => {}
                        }
                    }
                }
                conn.writer.flush().await?;
            }
            changed = phase.changed(), if member.publishes => {
                if changed.is_err() {
                    return Ok(());
                }
                let Some(p) = *phase.borrow_and_update() else {
                    schedule = None;
                    continue;
                };
                let interval_ns = (1e9 / p.per_publisher.max(1e-3)) as u64;
                let first = p.start_ns + (member.slot * interval_ns as f64) as u64;
                schedule = Some(Schedule { next_ns: first, interval_ns, end_ns: p.end_ns });
                // Wake once per message, but at most once a millisecond (then several go
                // out together in one write).
                let period = Duration::from_nanos(interval_ns.max(1_000_000));
                ticker = tokio::time::interval_at(instant_at(first).into(), period);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            }
            _ = ticker.tick(), if schedule.is_some() => {
                let s = schedule.as_mut().expect("checked");
                let now = now_ns();
                let mut sent = 0;
                while s.next_ns <= now && s.next_ns < s.end_ns {
                    let stamp = Stamp { sent_ns: s.next_ns, sender: member.index };
                    protocol.publish(&member.room, id, stamp, body, &mut conn.writer);
                    id += 1;
                    sent += 1;
                    s.next_ns += s.interval_ns;
                }
                if s.next_ns >= s.end_ns {
                    schedule = None;
                }
                shared.sent.fetch_add(sent, Ordering::Relaxed);
                conn.writer.flush().await?;
            }
        }
    }
}
