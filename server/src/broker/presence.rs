//! Who is present in which room on this instance: connections counted per room and user.
//! The in-memory broker's presence is this alone; the Redis broker keeps it beside the
//! shared sets, so that only a user's first and last connection here reach Redis.

use std::collections::HashMap;

/// Connections per room and user, on this instance. Rooms and users with no connection
/// are not kept.
#[derive(Debug, Default)]
pub(crate) struct LocalPresence {
    rooms: HashMap<String, HashMap<String, usize>>,
}

impl LocalPresence {
    /// Count one more connection of `user` in `room`. Returns whether the user was absent.
    pub(crate) fn add(&mut self, room: &str, user: &str) -> bool {
        let count = self
            .rooms
            .entry(room.to_owned())
            .or_default()
            .entry(user.to_owned())
            .or_insert(0);
        *count += 1;
        *count == 1
    }

    /// Count one more connection of `user` in `room` only if the user is present already.
    /// Returns whether it counted.
    pub(crate) fn add_if_present(&mut self, room: &str, user: &str) -> bool {
        match self
            .rooms
            .get_mut(room)
            .and_then(|users| users.get_mut(user))
        {
            Some(count) => {
                *count += 1;
                true
            }
            None => false,
        }
    }

    /// Count one connection of `user` in `room` fewer. Returns whether the user is now
    /// absent (false for a user who was not counted).
    pub(crate) fn remove(&mut self, room: &str, user: &str) -> bool {
        let Some(users) = self.rooms.get_mut(room) else {
            return false;
        };
        let Some(count) = users.get_mut(user) else {
            return false;
        };
        *count -= 1;
        if *count > 0 {
            return false;
        }
        users.remove(user);
        if users.is_empty() {
            self.rooms.remove(room);
        }
        true
    }

    /// The users present in `room`, each once, sorted.
    pub(crate) fn users(&self, room: &str) -> Vec<String> {
        let mut users: Vec<String> = self
            .rooms
            .get(room)
            .map(|users| users.keys().cloned().collect())
            .unwrap_or_default();
        users.sort_unstable();
        users
    }

    /// The rooms with anyone present.
    pub(crate) fn rooms(&self) -> Vec<String> {
        self.rooms.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_present_from_the_first_connection_to_the_last() {
        let mut presence = LocalPresence::default();
        assert!(presence.add("lobby", "alice"));
        assert!(!presence.add("lobby", "alice"));
        assert!(presence.add_if_present("lobby", "alice"));
        assert!(!presence.add_if_present("lobby", "bob"));
        assert_eq!(presence.users("lobby"), ["alice"]);
        assert!(!presence.remove("lobby", "alice"));
        assert!(!presence.remove("lobby", "alice"));
        assert!(presence.remove("lobby", "alice"));
        assert!(!presence.remove("lobby", "alice"), "not counted any more");
        assert!(presence.rooms().is_empty(), "empty rooms are not kept");
    }
}
