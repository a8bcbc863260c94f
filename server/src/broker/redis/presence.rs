//! Presence renewal: every third of the presence ttl, this instance renews its users in
//! each room where it has connections (restoring them if Redis lost them, and keeping the
//! room's history alive), and reaps the users of instances that stopped renewing.

use std::sync::Arc;

use bytes::Bytes;
use chorus_protocol::ServerMessage;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::{Inner, millis, scripts};
use crate::broker::BrokerError;
use crate::hub::encode;

/// Renew presence until `shutdown`.
pub(super) async fn run(inner: Arc<Inner>, shutdown: CancellationToken) {
    let every = inner.config.presence_ttl / 3;
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                if let Err(e) = inner.refresh_presence().await {
                    tracing::debug!(error = %e, "presence refresh failed");
                }
            }
        }
    }
}

impl Inner {
    /// Renew every room's presence; the first error, if any, after trying them all.
    pub(super) async fn refresh_presence(&self) -> Result<(), BrokerError> {
        let rooms: Vec<String> = {
            let local = self.local.lock().unwrap_or_else(|e| e.into_inner());
            local.rooms()
        };
        let mut first_error = None;
        for room in rooms {
            if let Err(e) = self.refresh_room(&room).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn refresh_room(&self, room: &str) -> Result<(), BrokerError> {
        let presence = self.config.policy(room).presence;
        let expired = {
            // Under the room's lock, so no join or leave of this instance interleaves: a
            // user who just left is not renewed, one who just came is not announced twice.
            let _room = self.lock(room).await;
            let users = self.local_users(room);
            if users.is_empty() {
                return Ok(());
            }
            let keys = &self.keys;
            let mut refresh = self.scripts.presence_refresh.prepare_invoke();
            refresh
                .key(keys.users(room))
                .key(keys.meta(room))
                .key(keys.log(room));
            for user in &users {
                refresh.key(keys.user(room, user));
            }
            refresh
                .arg(&self.instance)
                .arg(millis(self.config.presence_ttl))
                .arg(self.keep_ms(self.config.history_policy(room)));
            for user in &users {
                refresh.arg(user);
            }
            // Not retried, for the same reason as presence_add.
            let (absent, expired) = scripts::refreshed(self.invoke(&refresh, false).await?)?;
            if presence {
                // Users Redis had lost (restarted empty) or let expire (this instance was
                // cut off): present again, and announced like a join.
                for user in absent {
                    let joined = encode(&ServerMessage::MemberJoined {
                        room: room.to_owned(),
                        user: user.clone(),
                    });
                    self.publish_event(room, joined, Some(user)).await?;
                }
            }
            expired
        };
        self.reap(room, presence, expired).await
    }

    /// Remove the users whose presence expired everywhere, and announce those this call
    /// removed (another instance may have been first).
    async fn reap(
        &self,
        room: &str,
        presence: bool,
        expired: Vec<String>,
    ) -> Result<(), BrokerError> {
        if expired.is_empty() {
            return Ok(());
        }
        let mut reap = self.scripts.presence_reap.prepare_invoke();
        reap.key(self.keys.users(room));
        for user in &expired {
            reap.key(self.keys.user(room, user));
        }
        for user in &expired {
            reap.arg(user);
        }
        // Not retried: a second run would find the users gone and announce nobody.
        let gone = scripts::texts(self.invoke(&reap, false).await?, "a user name")?;
        for user in gone {
            tracing::debug!(room, user, "presence expired");
            if presence {
                let left: Bytes = encode(&ServerMessage::MemberLeft {
                    room: room.to_owned(),
                    user,
                });
                self.publish_event(room, left, None).await?;
            }
        }
        Ok(())
    }
}
