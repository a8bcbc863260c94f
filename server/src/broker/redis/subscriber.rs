//! The subscription connection: one per instance, owned by one task that (re)connects with
//! backoff, subscribes to the rooms with local members, catches their members up, then
//! delivers the rooms' envelopes to the hub in channel order, filling any gap from the
//! room's log before going on.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use chorus_protocol::{Position, Recovery, ServerMessage};
use futures_util::StreamExt;
use redis::Value;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::envelope::{self, Envelope};
use super::{COMMAND_TIMEOUT, CONNECT_TIMEOUT, Inner, unavailable};
use crate::broker::BrokerError;
use crate::history;
use crate::hub::{Kind, encode};
use crate::ws;

/// How often the subscription connection and the command pool are pinged: how soon a
/// silent Redis is noticed, and a recovered one reported up.
const PING_EVERY: Duration = Duration::from_secs(1);
/// Subscriptions sent per SUBSCRIBE when restoring them.
const SUBSCRIBE_BATCH: usize = 512;
/// The longest wait between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What to do with a message, given the room's cursor.
enum Step {
    /// The next one: deliver it.
    Deliver,
    /// Already delivered.
    Skip,
    /// A gap, or another epoch: read the log first.
    CatchUp,
    /// At or below the last message of the same epoch on this subscription: the channel
    /// carries a room's messages in order, so the room went back. It needs a new epoch.
    Regressed,
}

/// Run until `shutdown`: connect, serve, and after a loss connect again.
pub(super) async fn run(inner: Arc<Inner>, shutdown: CancellationToken) {
    let mut failures: u32 = 0;
    loop {
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => break,
            attempt = inner.open_link() => attempt,
        };
        match attempt {
            Ok((sink, stream, stale)) => {
                if failures > 0 {
                    tracing::info!("connected to Redis again");
                }
                failures = 0;
                inner.serve_link(sink, stream, stale, &shutdown).await;
                inner.link_lost();
                if shutdown.is_cancelled() {
                    break;
                }
                tracing::warn!("lost the Redis subscription connection; reconnecting");
            }
            Err(e) => {
                inner.link_lost();
                if failures == 0 {
                    tracing::warn!(error = %e, "cannot reach Redis; serving degraded until it answers");
                } else {
                    tracing::debug!(error = %e, failures, "cannot reach Redis");
                }
                failures = failures.saturating_add(1);
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(backoff(failures)) => {}
        }
    }
    inner.link_lost();
}

/// The wait before connection attempt `failures + 1`: from 50 ms, doubling, up to
/// [`MAX_BACKOFF`], with up to a quarter of jitter so instances do not reconnect in step.
fn backoff(failures: u32) -> Duration {
    let base = Duration::from_millis(50)
        .saturating_mul(1 << failures.min(16))
        .min(MAX_BACKOFF);
    base + base.mul_f64(rand::random_range(0.0..0.25))
}

impl Inner {
    /// Connect, subscribe to every room with local members, restore presence and catch the
    /// members up. Messages arriving meanwhile wait in the stream, so each room's catch-up
    /// comes before them. Also answers the rooms whose own catch-up failed (see
    /// [`Inner::room_failed`]), to retry.
    async fn open_link(&self) -> Result<(PubSubSink, PubSubStream, BTreeSet<String>), BrokerError> {
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| unavailable("no Redis client"))?;
        let pubsub = tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub())
            .await
            .map_err(|_| unavailable("connecting timed out"))?
            .map_err(unavailable)?;
        let (mut sink, stream) = pubsub.split();
        let rooms = self.events.local_rooms();
        for batch in rooms.chunks(SUBSCRIBE_BATCH) {
            let channels: Vec<String> = batch.iter().map(|room| self.keys.channel(room)).collect();
            tokio::time::timeout(COMMAND_TIMEOUT, sink.subscribe(channels))
                .await
                .map_err(|_| unavailable("subscribing timed out"))?
                .map_err(unavailable)?;
        }
        {
            let mut link = self.link.lock().unwrap_or_else(|e| e.into_inner());
            link.sink = Some(sink.clone());
            link.subscribed = rooms.iter().cloned().collect();
        }
        // Rooms whose last member left while they were being subscribed.
        for room in &rooms {
            if !self.events.has_local_members(room) {
                let _ = self.unsubscribe(room).await;
            }
        }
        self.ping_pool().await;
        // Presence first (Redis may have restarted empty), so the members listed in a
        // catch-up's `Joined` include this instance's.
        self.refresh_presence().await?;
        let mut stale = BTreeSet::new();
        for room in &rooms {
            if self.events.has_local_members(room)
                && let Err(e) = self.catch_up(room).await
            {
                if !self.room_failed(room, &e) {
                    return Err(e);
                }
                stale.insert(room.clone());
            }
        }
        self.metrics.connects.inc();
        self.subscriber_up.store(true, Ordering::Relaxed);
        self.set_health();
        Ok((sink, stream, stale))
    }

    /// Whether a failed catch-up of `room` was the room's own failure (Redis refused its
    /// script, or answered it unreadably: keys of another program under the prefix, say)
    /// rather than the connection's: the commands still answer. The link then serves the
    /// other rooms on, and the room is caught up again every second until it can be.
    fn room_failed(&self, room: &str, error: &BrokerError) -> bool {
        let own = self.commands_up.load(Ordering::Relaxed);
        if own {
            tracing::warn!(error = %error, room, "cannot catch a room up; retrying every second");
        }
        own
    }

    /// The connection is gone: joins must wait for the next one.
    fn link_lost(&self) {
        let mut link = self.link.lock().unwrap_or_else(|e| e.into_inner());
        link.sink = None;
        link.subscribed.clear();
        drop(link);
        // The next connection's messages start a new order.
        let mut cursors = self.cursors.lock().unwrap_or_else(|e| e.into_inner());
        for cursor in cursors.values_mut() {
            cursor.live = None;
        }
        drop(cursors);
        self.subscriber_up.store(false, Ordering::Relaxed);
        self.set_health();
    }

    /// Deliver envelopes until the connection ends, fails a ping, or a catch-up fails for
    /// want of Redis. `stale` rooms (whose own catch-up failed) are caught up again every
    /// second; their messages meanwhile try it too.
    async fn serve_link(
        &self,
        mut sink: PubSubSink,
        mut stream: PubSubStream,
        mut stale: BTreeSet<String>,
        shutdown: &CancellationToken,
    ) {
        let mut tick = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                message = stream.next() => {
                    let Some(message) = message else { return };
                    if let Err(e) = self.on_message(&message).await {
                        let room = self.keys.room_of_channel(message.get_channel_name());
                        match room {
                            Some(room) if stale.contains(room) => {}
                            Some(room) if self.room_failed(room, &e) => {
                                stale.insert(room.to_owned());
                            }
                            _ => {
                                tracing::warn!(error = %e, "cannot catch a room up");
                                return;
                            }
                        }
                    }
                }
                _ = tick.tick() => {
                    let ping = tokio::time::timeout(COMMAND_TIMEOUT, sink.ping::<Value>()).await;
                    if !matches!(ping, Ok(Ok(_))) {
                        self.metrics.errors.inc();
                        return;
                    }
                    self.ping_pool().await;
                    for room in std::mem::take(&mut stale) {
                        if !self.events.has_local_members(&room) {
                            continue;
                        }
                        match self.catch_up(&room).await {
                            Ok(()) => tracing::info!(room, "caught a room up again"),
                            Err(_) if self.commands_up.load(Ordering::Relaxed) => {
                                stale.insert(room);
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot catch a room up");
                                return;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Ping every command connection; the pool is up when all answer. A connection whose
    /// reconnection failed starts another one on its next command, so pinging also keeps
    /// requests from being the ones to find out.
    pub(super) async fn ping_pool(&self) {
        let pings = self.commands.all().into_iter().map(|mut conn| async move {
            let ping = redis::cmd("PING");
            tokio::time::timeout(COMMAND_TIMEOUT, ping.query_async::<Value>(&mut conn)).await
        });
        let mut up = true;
        for outcome in futures_util::future::join_all(pings).await {
            if !matches!(outcome, Ok(Ok(_))) {
                self.metrics.errors.inc();
                up = false;
            }
        }
        self.commands_up.store(up, Ordering::Relaxed);
        self.set_health();
    }

    async fn on_message(&self, message: &redis::Msg) -> Result<(), BrokerError> {
        self.metrics.pubsub_messages.inc();
        let Some(room) = self.keys.room_of_channel(message.get_channel_name()) else {
            return Ok(());
        };
        self.on_envelope(room, message.get_payload_bytes(), 0).await
    }

    /// An envelope of `room`'s channel, received on subscription connection `link` (the
    /// order in which one connection brings a room's messages is the order they were
    /// published in).
    pub(super) async fn on_envelope(
        &self,
        room: &str,
        payload: &[u8],
        link: u64,
    ) -> Result<(), BrokerError> {
        if !self.events.has_local_members(room) {
            return Ok(());
        }
        let payload = Bytes::copy_from_slice(payload);
        let Some(envelope) = envelope::decode(payload) else {
            tracing::warn!(room, "undecodable envelope on a room channel");
            return Ok(());
        };
        match envelope {
            Envelope::Event {
                except_user,
                message: event,
            } => {
                self.events.deliver(
                    room,
                    &ws::binary(&event),
                    Kind::Event,
                    except_user.as_deref(),
                );
            }
            Envelope::Message {
                epoch,
                seq,
                message: encoded,
            } => match self.step(room, epoch, seq, link) {
                Step::Deliver => {
                    let frame = ws::binary(&encoded);
                    self.events
                        .deliver(room, &frame, Kind::Message { epoch, seq }, None);
                }
                Step::Skip => {}
                Step::CatchUp => self.catch_up(room).await?,
                Step::Regressed => {
                    self.rebase(room, epoch).await?;
                    self.catch_up(room).await?;
                }
            },
            Envelope::Reset { epoch } => {
                let known = {
                    let cursors = self.cursors.lock().unwrap_or_else(|e| e.into_inner());
                    cursors
                        .get(room)
                        .and_then(|c| c.fanned)
                        .is_some_and(|p| p.epoch == epoch)
                };
                if !known {
                    self.catch_up(room).await?;
                }
            }
        }
        Ok(())
    }

    /// Place message `seq` of `epoch` against `room`'s cursor, moving the cursor when it is
    /// to be delivered.
    fn step(&self, room: &str, epoch: u64, seq: u64, link: u64) -> Step {
        let mut cursors = self.cursors.lock().unwrap_or_else(|e| e.into_inner());
        let cursor = cursors.entry(room.to_owned()).or_default();
        let seen = cursor.live.replace((link, Position { epoch, seq }));
        if seen.is_some_and(|(l, p)| l == link && p.epoch == epoch && seq <= p.seq) {
            return Step::Regressed;
        }
        match cursor.fanned {
            // The first since subscribing: every member's join read the room after the
            // subscription began, so nothing before it can be missing.
            None => {
                cursor.fanned = Some(Position { epoch, seq });
                Step::Deliver
            }
            Some(p) if p.epoch == epoch && seq <= p.seq => Step::Skip,
            Some(p) if p.epoch == epoch && seq == p.seq + 1 => {
                cursor.fanned = Some(Position { epoch, seq });
                Step::Deliver
            }
            Some(_) => Step::CatchUp,
        }
    }

    /// Bring `room`'s local members up to the room's current position from its log: the
    /// messages after the cursor, in order; and if the room is in another epoch now, or the
    /// log no longer holds all of them, first an unsolicited `Joined` (recovery `Missed`)
    /// that moves each member not there yet to the new position.
    pub(super) async fn catch_up(&self, room: &str) -> Result<(), BrokerError> {
        let from = {
            let cursors = self.cursors.lock().unwrap_or_else(|e| e.into_inner());
            cursors.get(room).and_then(|c| c.fanned.or(c.floor))
        };
        // No join has read the room yet: the joins in progress will.
        let Some(from) = from else {
            return Ok(());
        };
        let policy = self.config.history_policy(room);
        let presence = self.config.policy(room).presence;
        let mut read = self.read_room(room, Some(from), policy, presence).await?;
        if read.position.epoch == from.epoch && read.position.seq < from.seq {
            // Behind what was delivered, in the same epoch: the numbers it reuses would be
            // dropped as already seen.
            self.rebase(room, from.epoch).await?;
            read = self.read_room(room, Some(from), policy, presence).await?;
        }
        let position = read.position;
        let plan = history::plan_resume(Some(from), position, read.oldest, read.continues);
        let after = plan.after.unwrap_or(0);
        let entries: Vec<(u64, Bytes)> = read
            .entries
            .into_iter()
            .filter(|(seq, _)| *seq > after)
            .collect();
        if plan.recovery == Recovery::Missed {
            let at = entries
                .first()
                .map_or(position.seq, |(seq, _)| seq.saturating_sub(1));
            let mut members = if presence { read.members } else { Vec::new() };
            members.sort_unstable();
            let joined = encode(&ServerMessage::Joined {
                room: room.to_owned(),
                position: Position {
                    epoch: position.epoch,
                    seq: at,
                },
                members,
                recovery: Recovery::Missed,
            });
            self.events.deliver(
                room,
                &ws::binary(&joined),
                Kind::Reset {
                    epoch: position.epoch,
                    seq: at,
                },
                None,
            );
            self.metrics.epoch_resets.inc();
            tracing::info!(
                room,
                epoch = position.epoch,
                seq = at,
                "members told that the room's history was lost"
            );
        }
        for (seq, message) in &entries {
            let kind = Kind::Message {
                epoch: position.epoch,
                seq: *seq,
            };
            self.events.deliver(room, &ws::binary(message), kind, None);
        }
        if self.events.has_local_members(room) {
            let mut cursors = self.cursors.lock().unwrap_or_else(|e| e.into_inner());
            cursors.entry(room.to_owned()).or_default().fanned = Some(position);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_limit_with_jitter() {
        assert!(backoff(0) >= Duration::from_millis(50) && backoff(0) < Duration::from_millis(63));
        assert!(backoff(3) >= Duration::from_millis(400));
        for failures in [6, 20, u32::MAX] {
            let wait = backoff(failures);
            assert!(
                wait >= MAX_BACKOFF && wait <= MAX_BACKOFF.mul_f64(1.25),
                "{wait:?}"
            );
        }
    }
}
