//! `Core::join` with `since`: a position the app kept (across a page reload) resumes the
//! room from there: the join asks for it, and nothing at or before it is delivered.

use crate::common::*;
use chorus_client::core::{Options, State};
use chorus_protocol::{ClientMessage, Position, Recovery};

const KEPT: Position = Position { epoch: 3, seq: 40 };

fn join_since(d: &mut Driver, room: &str, since: Option<Position>) {
    d.core.join(room, since, d.now).unwrap();
}

fn join_sent(messages: &[ClientMessage]) -> Vec<(String, Option<Position>)> {
    messages
        .iter()
        .filter_map(|m| match m {
            ClientMessage::Join { room, since } => Some((room.clone(), *since)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_join_before_connecting_resumes_from_the_kept_position() {
    let mut d = Driver::new(Options::default());
    join_since(&mut d, "lobby", Some(KEPT));
    d.connect();
    let sent = sent(&d.welcome(welcome()));
    assert_eq!(join_sent(&sent), vec![("lobby".to_owned(), Some(KEPT))]);
    // The server replays from 41; a message at or before 40 is not delivered again.
    d.frame(joined("lobby", 3, 42, Recovery::Recovered));
    let mut seen = Vec::new();
    for seq in [39, 40, 41, 42, 43] {
        seen.extend(delivered(&d.frame(message("lobby", seq, seq, "bob"))));
    }
    assert_eq!(seen, vec![41, 42, 43]);
}

#[test]
fn a_join_while_open_resumes_from_the_kept_position() {
    let mut d = Driver::open(Options::default());
    join_since(&mut d, "lobby", Some(KEPT));
    let sent = sent(&d.actions());
    assert_eq!(join_sent(&sent), vec![("lobby".to_owned(), Some(KEPT))]);
    d.frame(joined("lobby", 3, 40, Recovery::Recovered));
    assert!(delivered(&d.frame(message("lobby", 40, 1, "bob"))).is_empty());
    assert_eq!(
        delivered(&d.frame(message("lobby", 41, 2, "bob"))),
        vec![41]
    );
}

#[test]
fn after_a_reconnect_the_room_resumes_from_what_was_delivered_since() {
    let mut d = Driver::open(Options::default());
    join_since(&mut d, "lobby", Some(KEPT));
    d.frame(joined("lobby", 3, 45, Recovery::Recovered));
    for seq in 41..=45 {
        d.frame(message("lobby", seq, seq, "bob"));
    }
    d.closed(1006);
    d.until_open();
    let sent = sent(&d.welcome(welcome()));
    assert_eq!(
        join_sent(&sent),
        vec![("lobby".to_owned(), Some(Position { epoch: 3, seq: 45 }))]
    );
}

#[test]
fn a_kept_position_from_another_epoch_delivers_the_new_history_from_its_start() {
    let mut d = Driver::open(Options::default());
    join_since(&mut d, "lobby", Some(KEPT));
    d.frame(joined("lobby", 4, 2, Recovery::Missed));
    let mut seen = Vec::new();
    for seq in [1, 2, 3] {
        seen.extend(delivered(&d.frame(message("lobby", seq, seq, "bob"))));
    }
    assert_eq!(seen, vec![1, 2, 3]);
}

#[test]
fn since_is_ignored_for_a_room_already_wanted() {
    let mut d = Driver::open(Options::default());
    join_since(&mut d, "lobby", None);
    d.actions();
    d.frame(joined("lobby", 3, 10, Recovery::NotRequested));
    join_since(&mut d, "lobby", Some(KEPT));
    assert!(d.actions().is_empty());
    // The guard still stands at the joined position, not at the ignored one.
    assert_eq!(
        delivered(&d.frame(message("lobby", 11, 1, "bob"))),
        vec![11]
    );
    assert_eq!(d.core.state(), State::Open);
}
