//! Typing indicators. Local: the user's own keystrokes become a throttled `TypingStarted`
//! and, after a pause, a `TypingStopped`. Remote: who else is typing, each state expiring
//! unless the server refreshes it.

use super::names::NameMap;
use super::{Millis, earlier};
use crate::prelude::*;

/// A room where this user's `TypingStarted` went out and no `TypingStopped` yet.
#[derive(Debug)]
struct Local {
    started_sent_at: Millis,
    last_key: Millis,
}

#[derive(Debug, Default)]
pub(crate) struct LocalTyping {
    rooms: NameMap<Local>,
}

impl LocalTyping {
    /// A keystroke in `room`. Returns whether to send `TypingStarted` (the first keystroke,
    /// or the first after a `throttle` window).
    pub(crate) fn keystroke(&mut self, room: &str, now: Millis, throttle: Millis) -> bool {
        match self.rooms.get_mut(room) {
            Some(local) => {
                local.last_key = now;
                if now.saturating_sub(local.started_sent_at) >= throttle {
                    local.started_sent_at = now;
                    return true;
                }
                false
            }
            None => {
                self.rooms.insert(
                    room,
                    Local {
                        started_sent_at: now,
                        last_key: now,
                    },
                );
                true
            }
        }
    }

    /// End typing in `room`. Returns whether "started" had been sent (so "stopped" is due).
    pub(crate) fn stop(&mut self, room: &str) -> bool {
        self.rooms.remove(room).is_some()
    }

    /// Rooms where no key was pressed for `idle`; their typing ends.
    pub(crate) fn take_idle(&mut self, now: Millis, idle: Millis) -> Vec<String> {
        let mut rooms = Vec::new();
        self.rooms.retain(|room, l| {
            let typing = now < l.last_key.saturating_add(idle);
            if !typing {
                rooms.push(room.clone());
            }
            typing
        });
        rooms
    }

    pub(crate) fn deadline(&self, idle: Millis) -> Option<Millis> {
        self.rooms.values().fold(None, |at, l| {
            earlier(at, Some(l.last_key.saturating_add(idle)))
        })
    }

    pub(crate) fn clear(&mut self) {
        self.rooms.clear();
    }
}

/// Who else is typing, per room: user → when their state expires.
#[derive(Debug, Default)]
pub(crate) struct RemoteTyping {
    rooms: NameMap<NameMap<Millis>>,
}

impl RemoteTyping {
    /// `user` is typing in `room` until `until`. Returns whether the set of typists changed.
    pub(crate) fn start(&mut self, room: &str, user: &str, until: Millis) -> bool {
        self.rooms
            .get_or_insert_with(room, NameMap::default)
            .is_some_and(|users| users.insert(user, until))
    }

    /// `user` stopped typing in `room`. Returns whether the set changed.
    pub(crate) fn stop(&mut self, room: &str, user: &str) -> bool {
        let Some(users) = self.rooms.get_mut(room) else {
            return false;
        };
        let changed = users.remove(user).is_some();
        if users.is_empty() {
            self.rooms.remove(room);
        }
        changed
    }

    /// Drop expired states; returns the rooms whose set changed.
    pub(crate) fn expire(&mut self, now: Millis) -> Vec<String> {
        let mut changed = Vec::new();
        self.rooms.retain(|room, users| {
            let before = users.len();
            users.retain(|_, until| *until > now);
            if users.len() != before {
                changed.push(room.clone());
            }
            !users.is_empty()
        });
        changed
    }

    /// The users typing in `room`: sorted and unique, as the map keys are.
    pub(crate) fn users(&self, room: &str) -> Vec<String> {
        // A loop of `push` rather than `to_vec`, whose clone of a `String` slice the wasm would
        // carry for this alone.
        let mut users = Vec::new();
        if let Some(typing) = self.rooms.get(room) {
            for user in typing.names() {
                users.push(user.clone());
            }
        }
        users
    }

    pub(crate) fn deadline(&self) -> Option<Millis> {
        self.rooms.values().fold(None, |at, users| {
            users
                .values()
                .fold(at, |at, &until| earlier(at, Some(until)))
        })
    }

    /// Forget everyone; returns the rooms that had typists.
    pub(crate) fn clear(&mut self) -> Vec<String> {
        ::core::mem::take(&mut self.rooms).into_names()
    }

    /// Forget one room without telling anyone (the app left it).
    pub(crate) fn forget(&mut self, room: &str) {
        self.rooms.remove(room);
    }
}
