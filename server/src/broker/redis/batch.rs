//! Publishes share script calls. Every publish of an instance goes to one task, which puts
//! it in its lane and runs each lane's waiting publishes as calls of the publish script: at
//! once while the lane has fewer calls in Redis than it may, else in one call (up to
//! [`MAX_BATCH`] publishes or [`MAX_BATCH_BYTES`]) as soon as one of its calls returns. An
//! idle instance so sends each publish at once, alone; a busy one sends what gathered
//! meanwhile together. The publishes of a call share its fixed cost (in Redis 7.0, a third
//! of a lone publish's), its clock read and the failover fence's `INFO`
//! (`lua/publish.lua`).
//!
//! With one Redis, all publishes share one lane, with as many calls in flight as the
//! command pool has connections. In a Redis Cluster a script touches one slot: each slot is
//! a lane with one call in flight, so a busy room's publishes gather behind its call while
//! other slots' go their own way.
//!
//! Each publish of a call stays its own atomic step with its own answer: a duplicate, a
//! publish whose deadline passed while it waited, or one Redis refused (a key of another
//! type under the prefix, out of memory) answers for itself only. An error of the call
//! itself (Redis unreachable, a timeout, a reply this server cannot read) answers every
//! publish in it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::scripts::{self, Outcome, Published};
use super::{Inner, LUA_MAX, millis, new_epoch, unavailable};
use crate::broker::BrokerError;
use crate::history::HistoryPolicy;

/// Most publishes in one script call: Redis runs nothing else while a call runs.
pub(super) const MAX_BATCH: usize = 64;
/// Most bytes of messages in one call; a call takes at least one publish, whatever its size.
pub(super) const MAX_BATCH_BYTES: usize = 256 * 1024;

/// A publish waiting for its call.
pub(super) struct Job {
    pub(super) room: String,
    /// Its dedupe key.
    pub(super) dedupe: String,
    /// The encoded message around its sequence number (`envelope::message_parts`).
    pub(super) prefix: Vec<u8>,
    pub(super) suffix: Vec<u8>,
    pub(super) policy: HistoryPolicy,
    /// Unix ms past which Redis must not run it (see `PUBLISH_DEADLINE`).
    pub(super) deadline: u64,
    pub(super) answer: oneshot::Sender<Result<Published, BrokerError>>,
}

impl Job {
    fn bytes(&self) -> usize {
        self.prefix.len() + self.suffix.len()
    }
}

/// Publishes that go to Redis together: all of them with one Redis, one slot's in a Cluster.
#[derive(Default)]
struct Lane {
    waiting: VecDeque<Job>,
    in_flight: usize,
}

/// The task running the publishes sent on `jobs`, until `shutdown`. Calls in Redis then
/// finish and are answered; publishes still waiting are answered `unavailable`.
pub(super) async fn run(
    inner: Arc<Inner>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    shutdown: CancellationToken,
) {
    let cluster = inner.config.redis_cluster;
    let calls_per_lane = if cluster {
        1
    } else {
        inner.config.redis_pool_size.max(1)
    };
    let mut lanes: HashMap<u16, Lane> = HashMap::new();
    let mut calls: FuturesUnordered<BoxFuture<'static, u16>> = FuturesUnordered::new();
    let mut touched = Vec::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            job = jobs.recv() => {
                let Some(job) = job else { break };
                // Everything sent meanwhile, so that a burst goes out in as few calls as
                // the lanes allow.
                let mut next = Some(job);
                while let Some(job) = next {
                    let lane = if cluster { inner.keys.slot(&job.room) } else { 0 };
                    lanes.entry(lane).or_default().waiting.push_back(job);
                    touched.push(lane);
                    next = jobs.try_recv().ok();
                }
                for lane in touched.drain(..) {
                    start(&inner, &mut lanes, lane, calls_per_lane, &mut calls);
                }
            }
            Some(lane) = calls.next(), if !calls.is_empty() => {
                if let Some(state) = lanes.get_mut(&lane) {
                    state.in_flight -= 1;
                }
                start(&inner, &mut lanes, lane, calls_per_lane, &mut calls);
            }
        }
    }
    while calls.next().await.is_some() {}
    for job in lanes.into_values().flat_map(|lane| lane.waiting) {
        inner.answer(job, Err(unavailable("shutting down")));
    }
}

/// Start calls of `lane`'s waiting publishes while it may have more in flight; forget the
/// lane once it has neither.
fn start(
    inner: &Arc<Inner>,
    lanes: &mut HashMap<u16, Lane>,
    lane: u16,
    calls_per_lane: usize,
    calls: &mut FuturesUnordered<BoxFuture<'static, u16>>,
) {
    let Some(state) = lanes.get_mut(&lane) else {
        return;
    };
    while state.in_flight < calls_per_lane && !state.waiting.is_empty() {
        let mut bytes = 0;
        let mut batch = Vec::new();
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            let Some(job) = state.waiting.pop_front() else {
                break;
            };
            bytes += job.bytes();
            batch.push(job);
        }
        state.in_flight += 1;
        let inner = inner.clone();
        calls.push(Box::pin(async move {
            inner.publish_call(batch).await;
            lane
        }));
    }
    if state.in_flight == 0 && state.waiting.is_empty() {
        lanes.remove(&lane);
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

fn expired() -> BrokerError {
    unavailable("the publish waited past its deadline and was not published")
}

impl Inner {
    fn answer(&self, job: Job, result: Result<Published, BrokerError>) {
        self.metrics.publishes_pending.dec();
        // The publisher may be gone (its connection closed); the publish stands.
        let _ = job.answer.send(result);
    }

    /// Run `jobs` (of one slot) in one call of the publish script, and answer each.
    async fn publish_call(&self, jobs: Vec<Job>) {
        // Never sent to a Redis known to be down (see `PUBLISH_DEADLINE`).
        if !self.is_up() {
            for job in jobs {
                self.answer(job, Err(unavailable("not connected")));
            }
            return;
        }
        let now = unix_ms();
        let (jobs, late): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| j.deadline > now);
        for job in late {
            self.metrics.errors.inc();
            self.answer(job, Err(expired()));
        }
        if jobs.is_empty() {
            return;
        }
        match self.try_publish_call(&jobs).await {
            Ok(outcomes) => {
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    let result = match outcome {
                        Outcome::Published(published) => Ok(published),
                        Outcome::Expired => {
                            self.metrics.errors.inc();
                            Err(expired())
                        }
                        Outcome::Refused(error) => {
                            self.metrics.errors.inc();
                            tracing::warn!(room = %job.room, %error, "Redis refused a publish");
                            Err(unavailable(error))
                        }
                    };
                    self.answer(job, result);
                }
            }
            Err(error) => {
                for job in jobs {
                    self.answer(job, Err(error.clone()));
                }
            }
        }
    }

    async fn try_publish_call(&self, jobs: &[Job]) -> Result<Vec<Outcome>, BrokerError> {
        let keys = &self.keys;
        let mut publish = self.scripts.publish.prepare_invoke();
        for job in jobs {
            let policy = job.policy;
            publish
                .key(keys.meta(&job.room))
                .key(keys.log(&job.room))
                .key(&job.dedupe)
                .key(keys.channel(&job.room))
                .arg(new_epoch())
                .arg(&job.prefix)
                .arg(&job.suffix)
                .arg((policy.size as u64).min(LUA_MAX))
                .arg(millis(policy.ttl).min(LUA_MAX))
                .arg(millis(policy.dedupe_window).min(LUA_MAX))
                .arg(self.keep_ms(policy))
                .arg(job.deadline.min(LUA_MAX));
        }
        // Deduplication makes a publish safe to run twice: a second run answers with the
        // first one's sequence.
        let retry = jobs.iter().all(|j| !j.policy.dedupe_window.is_zero());
        self.metrics.publish_calls.inc();
        let (reply, mut conn) = self.invoke_on(&publish, retry).await?;
        let outcomes = scripts::publish_outcomes(reply, jobs.len())?;
        let wrote = outcomes.iter().any(|o| matches!(o, Outcome::Published(_)));
        if self.config.redis_wait_replicas > 0 && wrote {
            // A duplicate's script wrote too (it renews the dedupe key), after the original
            // in the replication stream: waiting for it covers the original.
            self.wait_replicas(&mut conn, &jobs[0].room).await?;
        }
        Ok(outcomes)
    }
}
