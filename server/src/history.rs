//! A room's bounded message log, in memory: sequence numbers, the epoch, and the recent
//! messages (by count and by age) kept for resume.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use chorus_protocol::{Position, Recovery};
use tokio::time::Instant;

/// How much a room's log keeps: recent messages, and recent publish ids for deduplication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryPolicy {
    /// Most messages kept.
    pub size: usize,
    /// Longest a message is kept.
    pub ttl: Duration,
    /// How long a publish's (sender, id) is remembered, so a resend gets the original
    /// sequence instead of a second message.
    pub dedupe_window: Duration,
}

/// The outcome of appending a publish to a room's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The message's sequence number.
    pub seq: u64,
    /// Whether the same (sender, id) was already published within the window: nothing was
    /// appended and `seq` is the original's.
    pub duplicate: bool,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    at: Instant,
    frame: Bytes,
}

/// What a resume can replay.
#[derive(Debug)]
pub struct Replay {
    /// The room's position now; replayed frames run up to it.
    pub position: Position,
    /// Whether everything after the requested position is in `frames`.
    pub recovery: Recovery,
    /// Encoded message frames with their sequence numbers, oldest first.
    pub frames: Vec<(u64, Bytes)>,
}

/// One room's sequence counter, retained messages and recent publish ids.
#[derive(Debug)]
pub struct RoomLog {
    epoch: u64,
    seq: u64,
    entries: VecDeque<Entry>,
    /// (sender, id) -> seq, for publishes within the dedupe window.
    recent: HashMap<(String, u64), u64>,
    /// The same keys in publication order, for expiry.
    recent_order: VecDeque<(Instant, String, u64)>,
}

impl RoomLog {
    /// An empty log in a new epoch.
    pub fn new(epoch: u64) -> RoomLog {
        RoomLog {
            epoch,
            seq: 0,
            entries: VecDeque::new(),
            recent: HashMap::new(),
            recent_order: VecDeque::new(),
        }
    }

    /// The current position.
    pub fn position(&self) -> Position {
        Position {
            epoch: self.epoch,
            seq: self.seq,
        }
    }

    /// The sequence number the next message will get.
    pub fn next_seq(&self) -> u64 {
        self.seq + 1
    }

    /// The sequence of an earlier publish of (`sender`, `id`) within the dedupe window.
    pub fn duplicate_of(
        &mut self,
        sender: &str,
        id: u64,
        now: Instant,
        policy: HistoryPolicy,
    ) -> Option<u64> {
        while let Some((at, _, _)) = self.recent_order.front() {
            if now.saturating_duration_since(*at) <= policy.dedupe_window {
                break;
            }
            if let Some((_, sender, id)) = self.recent_order.pop_front() {
                self.recent.remove(&(sender, id));
            }
        }
        self.recent.get(&(sender.to_owned(), id)).copied()
    }

    /// Append the frame of message `next_seq()`, published by `sender` with `id`, then trim
    /// to the policy. The caller has checked [`RoomLog::duplicate_of`].
    pub fn append(
        &mut self,
        sender: &str,
        id: u64,
        frame: Bytes,
        now: Instant,
        policy: HistoryPolicy,
    ) -> u64 {
        self.seq += 1;
        if !policy.dedupe_window.is_zero() {
            self.recent.insert((sender.to_owned(), id), self.seq);
            self.recent_order.push_back((now, sender.to_owned(), id));
        }
        if policy.size > 0 && !policy.ttl.is_zero() {
            self.entries.push_back(Entry {
                seq: self.seq,
                at: now,
                frame,
            });
        }
        self.trim(now, policy);
        self.seq
    }

    /// Drop entries beyond the policy's size or older than its ttl.
    pub fn trim(&mut self, now: Instant, policy: HistoryPolicy) {
        while self.entries.len() > policy.size {
            self.entries.pop_front();
        }
        while self
            .entries
            .front()
            .is_some_and(|e| now.saturating_duration_since(e.at) > policy.ttl)
        {
            self.entries.pop_front();
        }
    }

    /// What to replay for a client that last saw `since`.
    pub fn replay(
        &mut self,
        since: Option<Position>,
        now: Instant,
        policy: HistoryPolicy,
    ) -> Replay {
        self.trim(now, policy);
        let position = self.position();
        let Some(since) = since else {
            return Replay {
                position,
                recovery: Recovery::NotRequested,
                frames: Vec::new(),
            };
        };
        if since.epoch != self.epoch || since.seq > self.seq {
            // Another history, or a position this history never reached: what came before
            // is lost, but everything this history retains is new to the client.
            return Replay {
                position,
                recovery: Recovery::Missed,
                frames: self
                    .entries
                    .iter()
                    .map(|e| (e.seq, e.frame.clone()))
                    .collect(),
            };
        }
        // The oldest sequence still retained; with nothing retained, the next one.
        let oldest = self.entries.front().map_or(self.seq + 1, |e| e.seq);
        let recovery = if since.seq + 1 >= oldest {
            Recovery::Recovered
        } else {
            Recovery::Missed
        };
        let frames = self
            .entries
            .iter()
            .filter(|e| e.seq > since.seq)
            .map(|e| (e.seq, e.frame.clone()))
            .collect();
        Replay {
            position,
            recovery,
            frames,
        }
    }

    /// Whether the log retains nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: HistoryPolicy = HistoryPolicy {
        size: 3,
        ttl: Duration::from_secs(60),
        dedupe_window: Duration::from_secs(120),
    };

    fn log_with(n: u64, now: Instant) -> RoomLog {
        let mut log = RoomLog::new(7);
        for i in 1..=n {
            log.append("alice", i, Bytes::from(vec![i as u8]), now, POLICY);
        }
        log
    }

    fn seqs(replay: &Replay) -> Vec<u64> {
        replay.frames.iter().map(|(s, _)| *s).collect()
    }

    #[test]
    fn replays_everything_after_a_retained_position() {
        let now = Instant::now();
        let mut log = log_with(5, now);
        let r = log.replay(Some(Position { epoch: 7, seq: 2 }), now, POLICY);
        assert_eq!(r.recovery, Recovery::Recovered);
        assert_eq!(seqs(&r), vec![3, 4, 5]);
        assert_eq!(r.position, Position { epoch: 7, seq: 5 });
        let r = log.replay(Some(Position { epoch: 7, seq: 5 }), now, POLICY);
        assert_eq!(r.recovery, Recovery::Recovered);
        assert!(r.frames.is_empty());
    }

    #[test]
    fn a_position_older_than_the_history_is_missed() {
        let now = Instant::now();
        let mut log = log_with(5, now);
        let r = log.replay(Some(Position { epoch: 7, seq: 1 }), now, POLICY);
        assert_eq!(r.recovery, Recovery::Missed);
        assert_eq!(seqs(&r), vec![3, 4, 5]);
    }

    #[test]
    fn another_epoch_or_a_future_position_is_missed() {
        let now = Instant::now();
        let mut log = log_with(2, now);
        let r = log.replay(Some(Position { epoch: 8, seq: 1 }), now, POLICY);
        assert_eq!(r.recovery, Recovery::Missed);
        assert_eq!(seqs(&r), vec![1, 2], "the whole current history follows");
        let r = log.replay(Some(Position { epoch: 7, seq: 9 }), now, POLICY);
        assert_eq!(r.recovery, Recovery::Missed);
    }

    #[test]
    fn old_entries_expire() {
        let now = Instant::now();
        let mut log = log_with(2, now);
        let later = now + Duration::from_secs(61);
        let r = log.replay(Some(Position { epoch: 7, seq: 0 }), later, POLICY);
        assert_eq!(r.recovery, Recovery::Missed);
        assert!(log.is_empty());
        // Nothing retained, but nothing missed either for a client that saw everything.
        let r = log.replay(Some(Position { epoch: 7, seq: 2 }), later, POLICY);
        assert_eq!(r.recovery, Recovery::Recovered);
    }

    #[test]
    fn a_publish_id_is_remembered_for_the_dedupe_window() {
        let now = Instant::now();
        let mut log = log_with(2, now);
        assert_eq!(log.duplicate_of("alice", 2, now, POLICY), Some(2));
        assert_eq!(log.duplicate_of("bob", 2, now, POLICY), None);
        assert_eq!(log.duplicate_of("alice", 3, now, POLICY), None);
        let later = now + Duration::from_secs(121);
        assert_eq!(log.duplicate_of("alice", 2, later, POLICY), None);
    }
}
