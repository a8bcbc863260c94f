//! The last guard: the app never sees a room's sequence twice.

use crate::common::*;
use chorus_client::core::Options;
use chorus_protocol::Recovery;

fn open_in_lobby(seq: u64) -> Driver {
    let mut d = Driver::new(Options::default());
    d.join("lobby");
    d.connect();
    d.welcome(welcome());
    d.frame(joined("lobby", 1, seq, Recovery::NotRequested));
    d
}

#[test]
fn a_repeated_or_older_sequence_is_dropped() {
    let mut d = open_in_lobby(0);
    let mut seen = Vec::new();
    for seq in [1, 2, 2, 1, 3, 3, 4, 2, 5] {
        seen.extend(delivered(&d.frame(message("lobby", seq, seq, "bob"))));
    }
    // 2 arrived after 4: it is behind the last delivered, so dropped too. (A sequence
    // ahead of the next one is a gap: see sequence_gap.rs.)
    assert_eq!(seen, vec![1, 2, 3, 4, 5]);
}

#[test]
fn sequences_up_to_the_joined_position_are_dropped() {
    let mut d = open_in_lobby(10);
    assert!(delivered(&d.frame(message("lobby", 10, 1, "bob"))).is_empty());
    assert_eq!(
        delivered(&d.frame(message("lobby", 11, 2, "bob"))),
        vec![11]
    );
}

#[test]
fn a_replay_overlapping_what_was_seen_delivers_each_sequence_once() {
    let mut d = open_in_lobby(0);
    for seq in 1..=5 {
        d.frame(message("lobby", seq, seq, "bob"));
    }
    d.closed(1006);
    d.until_open();
    d.welcome(welcome());
    d.frame(joined("lobby", 1, 8, Recovery::Recovered));
    let mut seen = Vec::new();
    for seq in 4..=9 {
        seen.extend(delivered(&d.frame(message("lobby", seq, seq, "bob"))));
    }
    assert_eq!(seen, vec![6, 7, 8, 9]);
}

#[test]
fn a_message_before_its_rooms_joined_is_dropped() {
    let mut d = Driver::new(Options::default());
    d.join("lobby");
    d.connect();
    d.welcome(welcome());
    assert!(d.frame(message("lobby", 1, 1, "bob")).is_empty());
}
