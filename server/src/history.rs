//! A room's bounded message log, in memory: sequence numbers, the epoch, and the recent
//! messages (by count and by age) kept for resume and for history pages.
//!
//! The rules every store follows are here too, as pure functions the in-memory log and the
//! Redis broker share: which messages a resume replays and what the client is told
//! ([`plan_resume`]), and how a history page is cut ([`page_end`], [`fill_page`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chorus_protocol::{HistoryMessage, Position, Recovery, ServerMessage};
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
    /// The messages' complete WebSocket frames (as [`RoomLog::append`] takes them), with
    /// their sequence numbers, oldest first: shared with the log and every other replay.
    pub frames: Vec<(u64, Bytes)>,
}

/// A page of a room's history (see [`RoomLog::page`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// The room's position when the page was read.
    pub position: Position,
    /// Consecutive messages, oldest first.
    pub messages: Vec<HistoryMessage>,
    /// Whether older messages are retained before the first one in `messages`.
    pub more: bool,
}

/// Why a history page cannot be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// `before` names a position in another epoch: that history is gone.
    #[error("position from epoch {asked}, but the room's history is epoch {current}")]
    EpochChanged {
        /// The epoch of the requested position.
        asked: u64,
        /// The room's current epoch.
        current: u64,
    },
    /// A retained message cannot be read back.
    #[error("retained message {seq} is corrupt: {reason}")]
    Corrupt {
        /// Its sequence number.
        seq: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The newest message of the page is larger than the whole byte budget, so no page can
    /// hold it. With one `max_frame` for publishing and reading this cannot happen (a body
    /// leaves `FRAME_OVERHEAD` bytes for the rest); it could if messages were published with
    /// a larger frame limit than the one reading them. Answering an empty page instead would
    /// leave the client nothing to page back from, and skipping the message would hide it.
    #[error("message {seq} ({size} bytes) is larger than a page may be ({max_bytes} bytes)")]
    TooLarge {
        /// Its sequence number.
        seq: u64,
        /// Its encoded size.
        size: usize,
        /// The page's byte budget.
        max_bytes: usize,
    },
}

/// One room's sequence counter, retained messages and recent publish ids.
#[derive(Debug)]
pub struct RoomLog {
    epoch: u64,
    seq: u64,
    entries: VecDeque<Entry>,
    /// sender -> id -> seq, for publishes within the dedupe window. By sender first, so
    /// that a lookup borrows the sender's name and an append allocates nothing for a
    /// sender already here.
    recent: HashMap<Arc<str>, HashMap<u64, u64>>,
    /// The same keys in publication order, for expiry.
    recent_order: VecDeque<(Instant, Arc<str>, u64)>,
}

impl RoomLog {
    /// An empty log in a new epoch. Epoch 0 is reserved for rooms with no log at all (see
    /// [`RoomLog::page`]): a log that exists should use any other.
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
        self.forget_expired_ids(now, policy);
        self.recent.get(sender)?.get(&id).copied()
    }

    fn forget_expired_ids(&mut self, now: Instant, policy: HistoryPolicy) {
        while let Some((at, _, _)) = self.recent_order.front() {
            if now.saturating_duration_since(*at) <= policy.dedupe_window {
                break;
            }
            if let Some((_, sender, id)) = self.recent_order.pop_front()
                && let Some(ids) = self.recent.get_mut(&sender)
            {
                ids.remove(&id);
                if ids.is_empty() {
                    self.recent.remove(&sender);
                }
            }
        }
    }

    /// Append message `next_seq()`, published by `sender` with `id`, then trim to the
    /// policy. `frame` is the message's complete WebSocket frame, as live members are sent
    /// it: a replay then shares it rather than building a copy per joiner. The caller has
    /// checked [`RoomLog::duplicate_of`].
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
            let name = match self.recent.get_key_value(sender) {
                Some((name, _)) => name.clone(),
                None => Arc::from(sender),
            };
            self.recent
                .entry(name.clone())
                .or_default()
                .insert(id, self.seq);
            self.recent_order.push_back((now, name, id));
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
        // The oldest sequence still retained; with nothing retained, the next one.
        let oldest = self.entries.front().map_or(self.seq + 1, |e| e.seq);
        let plan = plan_resume(since, position, oldest, None);
        let frames = match plan.after {
            None => Vec::new(),
            Some(after) => self
                .entries
                .iter()
                .filter(|e| e.seq > after)
                .map(|e| (e.seq, e.frame.clone()))
                .collect(),
        };
        Replay {
            position,
            recovery: plan.recovery,
            frames,
        }
    }

    /// A page of the retained history, after trimming it to `policy`: the messages with
    /// sequence numbers below `before.seq` (all of them with `before: None`), the newest
    /// first to be included, as many as fit in both `limit` messages and `max_bytes` bytes of
    /// encoded [`HistoryMessage`]s, returned oldest first.
    ///
    /// A `before` in another epoch is [`PageError::EpochChanged`]. A log in epoch 0, which
    /// is what a room without a log reads as, has an empty history, so a position
    /// `{ epoch: 0, .. }` gets an empty page.
    pub fn page(
        &mut self,
        before: Option<Position>,
        limit: usize,
        max_bytes: usize,
        now: Instant,
        policy: HistoryPolicy,
    ) -> Result<HistoryPage, PageError> {
        self.trim(now, policy);
        let end = match page_end(before, self.epoch)? {
            None => self.entries.len(),
            Some(below) => self.entries.partition_point(|e| e.seq < below),
        };
        let candidates = self
            .entries
            .range(..end)
            .rev()
            .map(|e| (e.seq, ws_payload(&e.frame)));
        fill_page(self.position(), candidates, false, limit, max_bytes)
    }

    /// Trim to `policy` and forget publish ids past the dedupe window.
    pub fn forget_expired(&mut self, now: Instant, policy: HistoryPolicy) {
        self.trim(now, policy);
        self.forget_expired_ids(now, policy);
    }

    /// Whether the log retains nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the log holds nothing anyone could still use: no messages and no publish ids
    /// (call [`RoomLog::forget_expired`] first). Forgetting such a log loses only its epoch
    /// and sequence counter.
    pub fn is_idle(&self) -> bool {
        self.entries.is_empty() && self.recent.is_empty()
    }
}

/// How a resume goes: its outcome, and which retained messages follow the `Joined`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePlan {
    /// What the client is told.
    pub recovery: Recovery,
    /// The retained messages with a sequence above this follow; `None`: none follow.
    pub after: Option<u64>,
}

/// The rule of recovery, for any store: a client that last saw `since` joins a room at
/// `position`, whose oldest retained message is `oldest` (`position.seq + 1` when nothing
/// is retained). `continues` is the position of an earlier history up to which the room's
/// holds the same messages, when its epoch began as a continuation of that one (Redis: a
/// copy of the room that may lack the last writes, see `broker::redis`).
///
/// - No `since`: nothing is replayed ([`Recovery::NotRequested`]).
/// - Another epoch, or a position this history never reached: what came before is lost
///   ([`Recovery::Missed`]). From the epoch this one continues, the retained messages after
///   what both hold follow (after `since.seq`, or after the continuation's `seq` if the
///   client saw further: those may be gone); from any other, everything retained.
/// - Otherwise the messages after `since.seq` are replayed, and the outcome is
///   [`Recovery::Recovered`] when the first of them is still retained.
pub fn plan_resume(
    since: Option<Position>,
    position: Position,
    oldest: u64,
    continues: Option<Position>,
) -> ResumePlan {
    let Some(since) = since else {
        return ResumePlan {
            recovery: Recovery::NotRequested,
            after: None,
        };
    };
    if since.epoch != position.epoch || since.seq > position.seq {
        let after = match continues {
            Some(c) if c.epoch == since.epoch && since.epoch != position.epoch => {
                since.seq.min(c.seq)
            }
            _ => 0,
        };
        return ResumePlan {
            recovery: Recovery::Missed,
            after: Some(after),
        };
    }
    let recovery = if since.seq.saturating_add(1) >= oldest {
        Recovery::Recovered
    } else {
        Recovery::Missed
    };
    ResumePlan {
        recovery,
        after: Some(since.seq),
    }
}

/// The rule of `before`, for any store: a history page of a room in `epoch` holds messages
/// with sequences below the returned bound (`None`: the newest). A position from another
/// epoch is [`PageError::EpochChanged`].
pub fn page_end(before: Option<Position>, epoch: u64) -> Result<Option<u64>, PageError> {
    match before {
        None => Ok(None),
        Some(p) if p.epoch != epoch => Err(PageError::EpochChanged {
            asked: p.epoch,
            current: epoch,
        }),
        Some(p) => Ok(Some(p.seq)),
    }
}

/// Fill a history page, for any store: `candidates` are retained `(seq, encoded Message)`s
/// below the page's end, newest first; `older_beyond` says whether retained messages older
/// than the last candidate exist that were not offered. The page takes the newest
/// candidates that fit in `limit` messages and `max_bytes` bytes of encoded
/// [`HistoryMessage`]s, decoding only those, and returns them oldest first.
pub fn fill_page<'a>(
    position: Position,
    candidates: impl Iterator<Item = (u64, &'a [u8])>,
    older_beyond: bool,
    limit: usize,
    max_bytes: usize,
) -> Result<HistoryPage, PageError> {
    let mut candidates = candidates.peekable();
    let mut messages = Vec::new();
    let mut bytes = 0;
    let mut full = false;
    while messages.len() < limit {
        let Some((seq, encoded)) = candidates.peek().copied() else {
            break;
        };
        let message = history_message(seq, encoded)?;
        let size = encoded_len(&message, seq)?;
        if bytes + size > max_bytes {
            if messages.is_empty() {
                return Err(PageError::TooLarge {
                    seq,
                    size,
                    max_bytes,
                });
            }
            full = true;
            break;
        }
        bytes += size;
        messages.push(message);
        candidates.next();
    }
    let more = full || candidates.peek().is_some() || older_beyond;
    messages.reverse();
    Ok(HistoryPage {
        position,
        messages,
        more,
    })
}

/// A retained message as a [`HistoryMessage`], decoded from its encoded `Message`.
///
/// Stores keep only the encoded `Message` (in the in-memory log, inside its frame), encoded
/// once at publish, fanned out and shared by every replay, rather than the fields as well:
/// keeping both would double the memory a log spends on bodies (up to `history_size` ×
/// `max_body` per room), while a history page decodes at most a page of messages, and
/// history requests are rate limited. An entry that does not decode as message `seq` is an
/// error for the whole page, never a message silently left out.
fn history_message(seq: u64, encoded: &[u8]) -> Result<HistoryMessage, PageError> {
    let corrupt = |reason: String| PageError::Corrupt { seq, reason };
    match chorus_protocol::decode::<ServerMessage>(encoded, usize::MAX) {
        Ok(ServerMessage::Message {
            seq: s,
            id,
            sender,
            ts,
            body,
            ..
        }) if s == seq => Ok(HistoryMessage {
            seq,
            id,
            sender,
            ts,
            body,
        }),
        Ok(ServerMessage::Message { seq: s, .. }) => Err(corrupt(format!("message of seq {s}"))),
        Ok(_) => Err(corrupt("not a `Message`".into())),
        Err(e) => Err(corrupt(e.to_string())),
    }
}

/// The encoded message in a WebSocket frame built by the server.
fn ws_payload(frame: &[u8]) -> &[u8] {
    &frame[frame.len() - crate::ws::payload_len(frame)..]
}

/// The size of `message` in a page: its exact encoding, so the page fills the frame.
fn encoded_len(message: &HistoryMessage, seq: u64) -> Result<usize, PageError> {
    chorus_protocol::encode(message, usize::MAX)
        .map(|bytes| bytes.len())
        .map_err(|e| PageError::Corrupt {
            seq,
            reason: e.to_string(),
        })
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
            log.append("alice", i, crate::ws::binary(&[i as u8]), now, POLICY);
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

    // History pages. These logs hold the frames of real `Message`s, as the broker stores them.

    const ROOMY: HistoryPolicy = HistoryPolicy {
        size: 100,
        ttl: Duration::from_secs(60),
        dedupe_window: Duration::from_secs(120),
    };

    fn message(seq: u64, body: &str) -> HistoryMessage {
        HistoryMessage {
            seq,
            id: 100 + seq,
            sender: "alice".into(),
            ts: 1_000 + seq,
            body: body.into(),
        }
    }

    /// The WebSocket frame of `m`, as the in-memory log keeps it.
    fn frame_of(m: &HistoryMessage) -> Bytes {
        crate::ws::binary(&encoded(m))
    }

    /// The encoded `Message` of `m`, as the Redis broker keeps it.
    fn encoded(m: &HistoryMessage) -> Bytes {
        let message = ServerMessage::Message {
            room: "lobby".into(),
            seq: m.seq,
            id: m.id,
            sender: m.sender.clone(),
            ts: m.ts,
            body: m.body.clone(),
        };
        Bytes::from(chorus_protocol::encode(&message, usize::MAX).unwrap())
    }

    /// A log in epoch 7 with messages 1..=n whose bodies are `body_len` bytes.
    fn real_log(n: u64, body_len: usize, now: Instant) -> RoomLog {
        let mut log = RoomLog::new(7);
        for seq in 1..=n {
            let m = message(seq, &"x".repeat(body_len));
            log.append(&m.sender, m.id, frame_of(&m), now, ROOMY);
        }
        log
    }

    fn page_seqs(page: &HistoryPage) -> Vec<u64> {
        page.messages.iter().map(|m| m.seq).collect()
    }

    const NO_BUDGET: usize = usize::MAX;

    #[test]
    fn the_newest_page_holds_the_newest_messages_oldest_first() {
        let now = Instant::now();
        let mut log = real_log(10, 3, now);
        let page = log.page(None, 3, NO_BUDGET, now, ROOMY).unwrap();
        assert_eq!(page_seqs(&page), vec![8, 9, 10]);
        assert_eq!(
            page.messages[0],
            message(8, "xxx"),
            "every field comes back"
        );
        assert_eq!(page.position, Position { epoch: 7, seq: 10 });
        assert!(page.more);
    }

    #[test]
    fn paging_back_with_before_visits_every_message_once_until_no_more() {
        let now = Instant::now();
        let mut log = real_log(10, 3, now);
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = log.page(before, 4, NO_BUDGET, now, ROOMY).unwrap();
            let mut seqs = page_seqs(&page);
            seqs.extend(seen);
            seen = seqs;
            if !page.more {
                break;
            }
            before = Some(Position {
                epoch: page.position.epoch,
                seq: page.messages[0].seq,
            });
        }
        assert_eq!(seen, (1..=10).collect::<Vec<_>>());
    }

    #[test]
    fn before_excludes_its_own_sequence_and_the_first_message_has_nothing_before() {
        let now = Instant::now();
        let mut log = real_log(5, 3, now);
        let at = |seq| Some(Position { epoch: 7, seq });
        let page = log.page(at(4), 2, NO_BUDGET, now, ROOMY).unwrap();
        assert_eq!((page_seqs(&page), page.more), (vec![2, 3], true));
        let page = log.page(at(1), 2, NO_BUDGET, now, ROOMY).unwrap();
        assert_eq!((page_seqs(&page), page.more), (vec![], false));
        let page = log.page(None, 50, NO_BUDGET, now, ROOMY).unwrap();
        assert_eq!((page_seqs(&page), page.more), ((1..=5).collect(), false));
    }

    #[test]
    fn more_is_false_when_older_messages_were_trimmed_away() {
        let now = Instant::now();
        let mut log = real_log(5, 3, now);
        let small = HistoryPolicy { size: 2, ..ROOMY };
        let page = log.page(None, 10, NO_BUDGET, now, small).unwrap();
        assert_eq!((page_seqs(&page), page.more), (vec![4, 5], false));
    }

    #[test]
    fn the_byte_budget_keeps_the_newest_messages_that_fit() {
        let now = Instant::now();
        let mut log = real_log(10, 100, now);
        let one = chorus_protocol::encode(&message(10, &"x".repeat(100)), usize::MAX)
            .unwrap()
            .len();
        let page = log.page(None, 10, 3 * one + one - 1, now, ROOMY).unwrap();
        assert_eq!((page_seqs(&page), page.more), (vec![8, 9, 10], true));
        let page = log.page(None, 10, 3 * one, now, ROOMY).unwrap();
        assert_eq!(page_seqs(&page), vec![8, 9, 10], "an exact fit is taken");
        let page = log.page(None, 2, 3 * one, now, ROOMY).unwrap();
        assert_eq!(page_seqs(&page), vec![9, 10], "and the limit still applies");
    }

    #[test]
    fn a_message_larger_than_the_budget_is_an_error_not_a_skip() {
        let now = Instant::now();
        let mut log = real_log(3, 100, now);
        let err = log.page(None, 10, 50, now, ROOMY).unwrap_err();
        assert!(
            matches!(
                err,
                PageError::TooLarge {
                    seq: 3,
                    max_bytes: 50,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_position_from_another_epoch_is_refused() {
        let now = Instant::now();
        let mut log = real_log(3, 3, now);
        let err = log
            .page(
                Some(Position { epoch: 8, seq: 2 }),
                10,
                NO_BUDGET,
                now,
                ROOMY,
            )
            .unwrap_err();
        assert_eq!(
            err,
            PageError::EpochChanged {
                asked: 8,
                current: 7
            }
        );
    }

    #[test]
    fn expired_messages_are_not_paged() {
        let now = Instant::now();
        let mut log = real_log(3, 3, now);
        let later = now + Duration::from_secs(61);
        let page = log.page(None, 10, NO_BUDGET, later, ROOMY).unwrap();
        assert_eq!(page_seqs(&page), Vec::<u64>::new());
        assert!(!page.more);
        assert_eq!(page.position, Position { epoch: 7, seq: 3 });
    }

    #[test]
    fn an_entry_that_does_not_decode_is_an_error_not_a_skipped_message() {
        let now = Instant::now();
        // `log_with` stores one-byte frames that are not messages.
        let mut log = log_with(2, now);
        let err = log.page(None, 10, NO_BUDGET, now, POLICY).unwrap_err();
        assert!(matches!(err, PageError::Corrupt { seq: 2, .. }), "{err:?}");
    }

    #[test]
    fn a_log_in_epoch_zero_reads_as_no_history() {
        let now = Instant::now();
        let mut none = RoomLog::new(0);
        let page = none.page(None, 10, NO_BUDGET, now, ROOMY).unwrap();
        assert_eq!(
            page,
            HistoryPage {
                position: Position { epoch: 0, seq: 0 },
                messages: vec![],
                more: false,
            }
        );
        let page = none.page(
            Some(Position { epoch: 0, seq: 9 }),
            10,
            NO_BUDGET,
            now,
            ROOMY,
        );
        assert!(page.unwrap().messages.is_empty());
        let err = none.page(
            Some(Position { epoch: 7, seq: 9 }),
            10,
            NO_BUDGET,
            now,
            ROOMY,
        );
        assert!(matches!(err, Err(PageError::EpochChanged { .. })));
    }

    // The shared rules, as a store other than `RoomLog` (Redis) uses them.

    #[test]
    fn plan_resume_is_the_rule_of_recovery() {
        let at = |epoch, seq| Position { epoch, seq };
        let plan = |since, oldest| plan_resume(since, at(7, 10), oldest, None);
        let resume = |recovery, after| ResumePlan { recovery, after };
        assert_eq!(plan(None, 3), resume(Recovery::NotRequested, None));
        // Within the retained history (or just before its oldest message).
        assert_eq!(
            plan(Some(at(7, 4)), 3),
            resume(Recovery::Recovered, Some(4))
        );
        assert_eq!(
            plan(Some(at(7, 2)), 3),
            resume(Recovery::Recovered, Some(2))
        );
        assert_eq!(
            plan(Some(at(7, 10)), 11),
            resume(Recovery::Recovered, Some(10))
        );
        // Older than what is retained: what is retained after it follows.
        assert_eq!(plan(Some(at(7, 1)), 3), resume(Recovery::Missed, Some(1)));
        // Another history, or a position this one never reached: all that is retained.
        assert_eq!(plan(Some(at(8, 4)), 3), resume(Recovery::Missed, Some(0)));
        assert_eq!(plan(Some(at(7, 11)), 3), resume(Recovery::Missed, Some(0)));
        assert_eq!(
            plan_resume(Some(at(7, u64::MAX)), at(7, u64::MAX), 1, None),
            resume(Recovery::Recovered, Some(u64::MAX)),
            "no overflow"
        );
        // A history continuing epoch 6 up to seq 8: a client from epoch 6 is told it missed
        // (the epoch changed) but gets what it lacks of the common part, or everything
        // after the common part if it saw past it (what it saw there may be gone).
        let continued = |since| plan_resume(Some(since), at(7, 10), 3, Some(at(6, 8)));
        assert_eq!(continued(at(6, 5)), resume(Recovery::Missed, Some(5)));
        assert_eq!(continued(at(6, 8)), resume(Recovery::Missed, Some(8)));
        assert_eq!(continued(at(6, 12)), resume(Recovery::Missed, Some(8)));
        assert_eq!(continued(at(5, 5)), resume(Recovery::Missed, Some(0)));
        assert_eq!(continued(at(7, 4)), resume(Recovery::Recovered, Some(4)));
        assert_eq!(continued(at(7, 11)), resume(Recovery::Missed, Some(0)));
    }

    #[test]
    fn page_end_refuses_another_epoch() {
        let at = |epoch, seq| Some(Position { epoch, seq });
        assert_eq!(page_end(None, 7), Ok(None));
        assert_eq!(page_end(at(7, 5), 7), Ok(Some(5)));
        assert_eq!(
            page_end(at(6, 5), 7),
            Err(PageError::EpochChanged {
                asked: 6,
                current: 7
            })
        );
    }

    #[test]
    fn fill_page_takes_what_fits_and_says_whether_more_is_retained() {
        let messages: Vec<(u64, Bytes)> = (1..=5)
            .rev()
            .map(|seq| (seq, encoded(&message(seq, "xxx"))))
            .collect();
        let newest_first = || messages.iter().map(|(seq, message)| (*seq, &message[..]));
        let at = Position { epoch: 7, seq: 5 };
        let page = fill_page(at, newest_first(), false, 10, NO_BUDGET).unwrap();
        assert_eq!((page_seqs(&page), page.more), ((1..=5).collect(), false));
        // Candidates left over, or older ones the store did not offer, mean more.
        let page = fill_page(at, newest_first(), false, 2, NO_BUDGET).unwrap();
        assert_eq!((page_seqs(&page), page.more), (vec![4, 5], true));
        let page = fill_page(at, newest_first().take(2), true, 2, NO_BUDGET).unwrap();
        assert_eq!((page_seqs(&page), page.more), (vec![4, 5], true));
        let one = chorus_protocol::encode(&message(5, "xxx"), usize::MAX)
            .unwrap()
            .len();
        let page = fill_page(at, newest_first(), false, 10, 2 * one).unwrap();
        assert_eq!((page_seqs(&page), page.more), (vec![4, 5], true));
        let empty = fill_page(at, std::iter::empty(), false, 10, NO_BUDGET).unwrap();
        assert_eq!((empty.messages.len(), empty.more), (0, false));
        let wrong = [(4u64, encoded(&message(5, "x")))];
        let err = fill_page(
            at,
            wrong.iter().map(|(s, f)| (*s, &f[..])),
            false,
            1,
            NO_BUDGET,
        );
        assert!(
            matches!(err, Err(PageError::Corrupt { seq: 4, .. })),
            "{err:?}"
        );
    }

    #[test]
    fn a_log_is_idle_once_its_messages_and_publish_ids_have_expired() {
        let now = Instant::now();
        let mut log = real_log(2, 3, now);
        assert!(!log.is_idle());
        let after_ttl = now + Duration::from_secs(61);
        log.forget_expired(after_ttl, ROOMY);
        assert!(log.is_empty());
        assert!(
            !log.is_idle(),
            "publish ids are still within the dedupe window"
        );
        log.forget_expired(now + Duration::from_secs(121), ROOMY);
        assert!(log.is_idle());
    }
}
