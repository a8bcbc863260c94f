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

    /// The Redis Cluster slot of every name of `room`.
    pub(super) fn slot(&self, room: &str) -> u16 {
        slot(&self.channel(room))
    }

    /// The room a channel name belongs to, if it is one of ours.
    pub(super) fn room_of_channel<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(":{")?
            .strip_suffix("}:ch")
    }
}

/// Slots of a Redis Cluster.
pub(super) const SLOTS: u16 = 16384;

/// The Redis Cluster slot of `key`: CRC16 (XMODEM) of its hash tag (what is between the
/// first `{` and the next `}`, if not empty) or of the whole key, modulo [`SLOTS`].
pub(super) fn slot(key: &str) -> u16 {
    let key = key.as_bytes();
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key)) % SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_redis_cluster_key_slots() {
        // Values of CLUSTER KEYSLOT on Redis 7.0.
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("{user1000}.following"), slot("user1000"));
        assert_eq!(slot("foo{}{bar}"), slot_of_whole("foo{}{bar}"));
        assert_eq!(slot("foo{{bar}}zap"), slot("{bar"));
        assert_eq!(slot("foo{bar}{zap}"), slot("bar"));
        let keys = Keys::new("chorus");
        assert_eq!(keys.slot("chat:1"), slot(&keys.meta("chat:1")));
        assert_eq!(keys.slot("chat:1"), slot("chat:1"));
        // Checked against redis-rs's own routing.
        for key in ["a", "chorus:{lobby}:ch", "x{}y", "{", "}{", "zoë{ünï}"] {
            assert_eq!(
                format!("{:?}", redis::cluster_routing::Slot::for_key(key)),
                format!("Slot({})", slot(key)),
                "{key}"
            );
        }
    }

    fn slot_of_whole(key: &str) -> u16 {
        crc16::State::<crc16::XMODEM>::calculate(key.as_bytes()) % SLOTS
    }

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
