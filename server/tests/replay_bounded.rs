//! A join's replay streams out as the socket takes it, within `--queue-max-bytes`, and
//! shares the log's frames: joiners that stop reading cost the server a queue's worth of
//! bytes each, not a copy of the room's whole history.
//!
//! One test in its own binary: it measures the resident memory of the process the server
//! runs in.

// Shared with the tests in `it/`; this binary uses part of it.
#[allow(dead_code)]
#[path = "it/common.rs"]
mod common;

use chorus_protocol::{Position, ServerMessage};
use common::TestServer;

/// Resident memory of this process, in bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: usize = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .map(|n| n.trim().parse().unwrap())
        .unwrap();
    kib * 1024
}

const MESSAGES: u64 = 100;
const BODY: usize = 60_000;
const JOINERS: usize = 16;
const QUEUE_BYTES: usize = 256 * 1024;

#[tokio::test]
async fn joiners_that_stop_reading_hold_a_queue_of_replay_not_the_whole_history() {
    let server = TestServer::start_with(|c| {
        c.queue_max_bytes = QUEUE_BYTES;
        c.publish_rate = 10_000;
        c.publish_burst = 10_000;
    })
    .await;
    let mut publisher = server.connect("publisher").await;
    let ServerMessage::Joined { position, .. } = publisher.join("big").await else {
        unreachable!("join_since checks for Joined");
    };
    let body = "x".repeat(BODY);
    for id in 1..=MESSAGES {
        publisher.publish("big", id, &body).await;
        assert_eq!(publisher.ack(id).await, id);
    }
    let history = MESSAGES as usize * BODY;

    let before = rss();
    let mut joiners = Vec::new();
    for i in 0..JOINERS {
        // A small receive buffer: the server's writes block after a few KiB unread.
        let mut joiner = server
            .connect_with_receive_buffer(&format!("joiner{i}"), 16 * 1024)
            .await;
        let since = Position {
            epoch: position.epoch,
            seq: 0,
        };
        // `Joined` goes out ahead of the replay; once it arrives, the old reply path had
        // already copied every retained message for this joiner.
        joiner.join_since("big", Some(since)).await;
        joiners.push(joiner);
    }
    let grown = rss().saturating_sub(before);
    // Each joiner may hold a queue's worth (plus its allocator's slack); a copy of the
    // history each would be JOINERS × 6 MB.
    let bound = JOINERS * (QUEUE_BYTES + 512 * 1024);
    assert!(
        grown < bound && grown < history * JOINERS / 3,
        "the process grew by {grown} bytes for {JOINERS} joiners of a {history}-byte history \
         (bound {bound})"
    );

    // Streamed, the replay is still whole and in order for a joiner that reads on.
    let joiner = &mut joiners[0];
    for seq in 1..=MESSAGES {
        match joiner.recv().await {
            ServerMessage::Message { seq: s, body, .. } => {
                assert_eq!(s, seq);
                assert_eq!(body.len(), BODY);
            }
            other => panic!("expected message {seq}, got {other:?}"),
        }
    }
}
