//! The in-process broker: one instance, state in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chorus_protocol::{Position, ServerMessage};
use tokio::time::Instant;

use super::{Broker, BrokerError, Ephemeral, Publication};
use crate::history::{Appended, HistoryPolicy, Replay, RoomLog};
use crate::hub::{Hub, frame};

/// State in this process: histories, sequence numbers and presence. Delivery is a direct
/// call into the local [`Hub`].
#[derive(Debug)]
pub struct MemoryBroker {
    hub: Arc<Hub>,
    // One std Mutex per room log, behind a map lock held only to find or create it:
    // appending a message and fanning it out happen under the room's lock, which is what
    // keeps delivery in sequence order, and neither waits on anything.
    logs: Mutex<HashMap<String, Arc<Mutex<RoomLog>>>>,
    // user -> connection count, per room. Small and briefly held.
    presence: Mutex<HashMap<String, HashMap<String, usize>>>,
}

impl MemoryBroker {
    /// A broker that delivers to `hub`.
    pub(crate) fn new(hub: Arc<Hub>) -> MemoryBroker {
        MemoryBroker {
            hub,
            logs: Mutex::new(HashMap::new()),
            presence: Mutex::new(HashMap::new()),
        }
    }

    fn log(&self, room: &str) -> Arc<Mutex<RoomLog>> {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        logs.entry(room.to_owned())
            .or_insert_with(|| {
                // A fresh epoch for every new log: positions from a previous process, or an
                // evicted log, can never be taken for positions in this one.
                Arc::new(Mutex::new(RoomLog::new(rand::random::<u64>() >> 11)))
            })
            .clone()
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
        let log = self.log(room);
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if let Some(seq) = log.duplicate_of(&publication.sender, publication.id, now, policy) {
            return Ok(Appended {
                seq,
                duplicate: true,
            });
        }
        let seq = log.next_seq();
        let frame = frame(&ServerMessage::Message {
            room: room.to_owned(),
            seq,
            id: publication.id,
            sender: publication.sender.clone(),
            ts: publication.ts,
            body: publication.body,
        });
        log.append(
            &publication.sender,
            publication.id,
            frame.clone(),
            now,
            policy,
        );
        self.hub.broadcast(room, &frame, Some(seq), None);
        Ok(Appended {
            seq,
            duplicate: false,
        })
    }

    async fn broadcast(&self, room: &str, event: Ephemeral) -> Result<(), BrokerError> {
        self.hub
            .broadcast(room, &event.frame, None, event.except_user.as_deref());
        Ok(())
    }

    async fn replay(
        &self,
        room: &str,
        since: Option<Position>,
        policy: HistoryPolicy,
    ) -> Result<Replay, BrokerError> {
        let log = self.log(room);
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        Ok(log.replay(since, Instant::now(), policy))
    }

    async fn presence_add(&self, room: &str, user: &str) -> Result<bool, BrokerError> {
        let mut presence = self.presence.lock().unwrap_or_else(|e| e.into_inner());
        let count = presence
            .entry(room.to_owned())
            .or_default()
            .entry(user.to_owned())
            .or_insert(0);
        *count += 1;
        Ok(*count == 1)
    }

    async fn presence_remove(&self, room: &str, user: &str) -> Result<bool, BrokerError> {
        let mut presence = self.presence.lock().unwrap_or_else(|e| e.into_inner());
        let Some(users) = presence.get_mut(room) else {
            return Ok(false);
        };
        let Some(count) = users.get_mut(user) else {
            return Ok(false);
        };
        *count -= 1;
        if *count > 0 {
            return Ok(false);
        }
        users.remove(user);
        if users.is_empty() {
            presence.remove(room);
        }
        Ok(true)
    }

    async fn presence(&self, room: &str) -> Result<Vec<String>, BrokerError> {
        let presence = self.presence.lock().unwrap_or_else(|e| e.into_inner());
        let mut users: Vec<String> = presence
            .get(room)
            .map(|users| users.keys().cloned().collect())
            .unwrap_or_default();
        users.sort_unstable();
        Ok(users)
    }
}
