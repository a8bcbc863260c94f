//! Redis key and channel names. Every name of a room carries the room in a hash tag,
//! `{<room>}`, so one room's keys and channel live in one Redis Cluster slot and its
//! scripts can touch them together. Room names cannot contain braces
//! (`chorus_protocol::validate::room`), and neither can the prefix (`Config::validate`).

/// The names under one prefix.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    fn of(&self, room: &str, part: &str) -> String {
        format!("{}:{{{room}}}:{part}", self.prefix)
    }

    /// Hash: `epoch` (the history's identity) and `seq` (the last sequence number).
    pub(super) fn meta(&self, room: &str) -> String {
        self.of(room, "meta")
    }

    /// Stream: the retained messages, id `<seq>-0`, fields `t` (ms) and `f` (the encoded `Message`).
    pub(super) fn log(&self, room: &str) -> String {
        self.of(room, "log")
    }

    /// String `<epoch>:<seq>`: a publish of (`sender`, `id`) within the dedupe window.
    pub(super) fn dedupe(&self, room: &str, sender: &str, id: u64) -> String {
        self.of(room, &format!("d:{id}:{sender}"))
    }

    /// Sorted set: user → expiry (ms), the latest of the user's instances.
    pub(super) fn users(&self, room: &str) -> String {
        self.of(room, "users")
    }

    /// Sorted set: instance → expiry (ms), the instances where `user` is in the room.
    pub(super) fn user(&self, room: &str, user: &str) -> String {
        self.of(room, &format!("u:{user}"))
    }

    /// The room's pub/sub channel.
    pub(super) fn channel(&self, room: &str) -> String {
        self.of(room, "ch")
    }

    /// The room a channel name belongs to, if it is one of ours.
    pub(super) fn room_of_channel<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(":{")?
            .strip_suffix("}:ch")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_of_a_room_has_the_room_as_its_hash_tag() {
        let keys = Keys::new("chorus");
        assert_eq!(keys.meta("chat:1"), "chorus:{chat:1}:meta");
        assert_eq!(keys.dedupe("lobby", "a:b}", 7), "chorus:{lobby}:d:7:a:b}");
        assert_eq!(keys.user("lobby", "zoë"), "chorus:{lobby}:u:zoë");
        assert_eq!(keys.channel("lobby"), "chorus:{lobby}:ch");
        assert_eq!(keys.room_of_channel("chorus:{chat:1}:ch"), Some("chat:1"));
        assert_eq!(keys.room_of_channel("other:{chat:1}:ch"), None);
        assert_eq!(keys.room_of_channel("chorus:{chat:1}:meta"), None);
    }
}
