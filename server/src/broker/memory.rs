//! The in-process broker: one instance, state in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chorus_protocol::{Position, ServerMessage};
use prometheus_client::metrics::gauge::Gauge;
use tokio::time::Instant;

use super::presence::LocalPresence;
use super::{Broker, BrokerError, BrokerEvents, Ephemeral, PolicyOf, Publication};
use crate::history::{Appended, HistoryPage, HistoryPolicy, Replay, RoomLog};
use crate::hub::{Kind, encode};
use crate::ws;

/// A room's log, and whether the sweep has forgotten it.
#[derive(Debug)]
struct Slot {
    log: RoomLog,
    /// Set, under this lock, when the sweep removes the slot from the map. A caller that
    /// found the slot just before then must not use it: its writes would be lost with it.
    evicted: bool,
}

/// State in this process: histories, sequence numbers and presence. Delivery is a direct
/// call into the local [`Hub`].
#[derive(Debug)]
pub(crate) struct MemoryBroker {
    events: Arc<dyn BrokerEvents>,
    // One std Mutex per room log, behind a map lock held only to find or create it:
    // appending a message and fanning it out happen under the room's lock, which is what
    // keeps delivery in sequence order, and neither waits on anything. Lock order: the map,
    // a room's log, then the hub's lock; only the sweep holds the first two together.
    logs: Mutex<HashMap<String, Arc<Mutex<Slot>>>>,
    // user -> connection count, per room. Small and briefly held.
    presence: Mutex<LocalPresence>,
    /// The number of room logs held (`chorus_room_logs`).
    room_logs: Gauge,
}

impl MemoryBroker {
    /// A broker that reports to `events` (the local hub) and counts its room logs in
    /// `room_logs`.
    pub(crate) fn new(events: Arc<dyn BrokerEvents>, room_logs: Gauge) -> MemoryBroker {
        MemoryBroker {
            events,
            logs: Mutex::new(HashMap::new()),
            presence: Mutex::new(LocalPresence::default()),
            room_logs,
        }
    }

    /// Run `f` on `room`'s log, creating it if there is none.
    fn with_log<T>(&self, room: &str, f: impl FnOnce(&mut RoomLog) -> T) -> T {
        loop {
            let slot = {
                let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
                match logs.get(room) {
                    Some(slot) => slot.clone(),
                    None => {
                        // A fresh epoch for every new log: positions from a previous
                        // process, or an evicted log, can never be taken for positions in
                        // this one. Never 0, which stands for "no log" (see
                        // `Broker::history`).
                        let slot = Arc::new(Mutex::new(Slot {
                            log: RoomLog::new(rand::random_range(1..1 << 53)),
                            evicted: false,
                        }));
                        logs.insert(room.to_owned(), slot.clone());
                        self.room_logs.set(logs.len() as i64);
                        slot
                    }
                }
            };
            let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
            if !slot.evicted {
                return f(&mut slot.log);
            }
            // Evicted since we found it: the map no longer holds it; look again.
        }
    }

    /// Run `f` on `room`'s log if it has one, without creating it.
    fn with_existing_log<T>(&self, room: &str, f: impl FnOnce(&mut RoomLog) -> T) -> Option<T> {
        let slot = {
            let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
            logs.get(room)?.clone()
        };
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        // An evicted log is one the room no longer has.
        (!slot.evicted).then(|| f(&mut slot.log))
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn subscribe(&self, _room: &str) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn unsubscribe(&self, _room: &str) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn publish(
        &self,
        room: &str,
        publication: Publication,
        policy: HistoryPolicy,
    ) -> Result<Appended, BrokerError> {
        self.with_log(room, |log| {
            let now = Instant::now();
            if let Some(seq) = log.duplicate_of(&publication.sender, publication.id, now, policy) {
                return Ok(Appended {
                    seq,
                    duplicate: true,
                });
            }
            let seq = log.next_seq();
            // The log keeps the WebSocket frame every member is sent, and every replay.
            let frame = ws::binary(&encode(&ServerMessage::Message {
                room: room.to_owned(),
                seq,
                id: publication.id,
                sender: publication.sender.clone(),
                ts: publication.ts,
                body: publication.body,
            }));
            log.append(
                &publication.sender,
                publication.id,
                frame.clone(),
                now,
                policy,
            );
            let epoch = log.position().epoch;
            self.events
                .deliver(room, &frame, Kind::Message { epoch, seq }, None);
            Ok(Appended {
                seq,
                duplicate: false,
            })
        })
    }

    async fn broadcast(&self, room: &str, event: Ephemeral) -> Result<(), BrokerError> {
        self.events.deliver(
            room,
            &ws::binary(&event.message),
            Kind::Event,
            event.except_user.as_deref(),
        );
        Ok(())
    }

    async fn replay(
        &self,
        room: &str,
        since: Option<Position>,
        policy: HistoryPolicy,
    ) -> Result<Replay, BrokerError> {
        Ok(self.with_log(room, |log| log.replay(since, Instant::now(), policy)))
    }

    async fn history(
        &self,
        room: &str,
        before: Option<Position>,
        limit: usize,
        max_bytes: usize,
        policy: HistoryPolicy,
    ) -> Result<HistoryPage, BrokerError> {
        let now = Instant::now();
        let page = self
            .with_existing_log(room, |log| log.page(before, limit, max_bytes, now, policy))
            // No log: read an empty one in epoch 0, allocated nowhere but here.
            .unwrap_or_else(|| RoomLog::new(0).page(before, limit, max_bytes, now, policy))?;
        Ok(page)
    }

    async fn sweep(&self, policy: &PolicyOf<'_>) -> Result<(), BrokerError> {
        let now = Instant::now();
        // Holding the map lock for the whole pass keeps eviction simple: nobody can find a
        // log while it is being judged. The pass only trims and checks, so it is brief.
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        logs.retain(|room, slot| {
            let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
            slot.log.forget_expired(now, policy(room));
            // Local members are checked under the room's lock: a join adds its member to the
            // hub before it reads the log, so either the sweep sees the member and keeps the
            // log, or the join finds the log evicted and starts a new one. A member holding
            // a position in a forgotten epoch would otherwise take the new epoch's messages
            // for ones it had seen.
            if !slot.log.is_idle() || self.events.has_local_members(room) {
                return true;
            }
            slot.evicted = true;
            false
        });
        self.room_logs.set(logs.len() as i64);
        Ok(())
    }

    async fn presence_add(&self, room: &str, user: &str) -> Result<bool, BrokerError> {
        let mut presence = self.presence.lock().unwrap_or_else(|e| e.into_inner());
        Ok(presence.add(room, user))
    }

    async fn presence_remove(&self, room: &str, user: &str) -> Result<bool, BrokerError> {
        let mut presence = self.presence.lock().unwrap_or_else(|e| e.into_inner());
        Ok(presence.remove(room, user))
    }

    async fn presence(&self, room: &str) -> Result<Vec<String>, BrokerError> {
        let presence = self.presence.lock().unwrap_or_else(|e| e.into_inner());
        Ok(presence.users(room))
    }
}
