//! Publishes share script calls. Every publish of an instance joins one queue, and as many
//! tasks as the command pool has connections each take what has gathered there (all of it,
//! up to [`MAX_BATCH`] publishes or [`MAX_BATCH_BYTES`]) and run it as one call of the
//! publish script. An idle instance so sends each publish at once, alone; a busy one, whose
//! tasks are all waiting on Redis, sends what arrived meanwhile in one call. The publishes
//! of a call share its fixed cost (in Redis 7.0, a third of a lone publish's), its clock read
//! and the failover fence's `INFO` (`lua/publish.lua`).
//!
//! Each publish of a call stays its own atomic step with its own answer: a duplicate, a
//! publish whose deadline passed while it waited, or one Redis refused (a key of another
//! type under the prefix, out of memory) answers for itself only. An error of the call
//! itself (Redis unreachable, a timeout, a reply this server cannot read) answers every
//! publish in it.
//!
//! In a Redis Cluster a script touches one slot: a batch goes out as one call per slot, all
//! at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use tokio::sync::{Mutex, mpsc, oneshot};
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

/// The queue the tasks take from.
pub(super) type Queue = Arc<Mutex<mpsc::UnboundedReceiver<Job>>>;

/// One of the tasks running the queue's publishes, until `shutdown`.
pub(super) async fn run(inner: Arc<Inner>, queue: Queue, shutdown: CancellationToken) {
    loop {
        let jobs = tokio::select! {
            () = shutdown.cancelled() => return,
            jobs = take(&queue) => jobs,
        };
        match jobs {
            Some(jobs) => inner.publish_batch(jobs).await,
            None => return,
        }
    }
}

/// The next publish, and those waiting behind it, up to a call's limits.
async fn take(queue: &Mutex<mpsc::UnboundedReceiver<Job>>) -> Option<Vec<Job>> {
    let mut queue = queue.lock().await;
    let first = queue.recv().await?;
    let mut bytes = first.bytes();
    let mut jobs = vec![first];
    while jobs.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
        let Ok(job) = queue.try_recv() else { break };
        bytes += job.bytes();
        jobs.push(job);
    }
    Some(jobs)
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

    /// Run `jobs` and answer each.
    async fn publish_batch(&self, jobs: Vec<Job>) {
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
        if !self.config.redis_cluster {
            return self.publish_call(jobs).await;
        }
        let mut slots: BTreeMap<u16, Vec<Job>> = BTreeMap::new();
        for job in jobs {
            slots
                .entry(self.keys.slot(&job.room))
                .or_default()
                .push(job);
        }
        join_all(slots.into_values().map(|jobs| self.publish_call(jobs))).await;
    }

    /// Run `jobs`, all of one slot, in one call of the publish script, and answer each.
    async fn publish_call(&self, jobs: Vec<Job>) {
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
