//! An unsolicited `Joined` for a room the client is in: the server lost the room's history
//! (a Redis restart, say) or could not deliver all of it. The client adopts the new
//! position, tells the app (`joined` with recovery `missed`), delivers the messages that
//! follow instead of taking them for ones already seen, and resumes from the new history.

use crate::common::*;
use chorus_client::core::{Event, Options};
use chorus_protocol::{ClientMessage, Position, Recovery, ServerMessage};

/// Open, in "lobby" at epoch 7, having delivered messages 1..=5.
fn in_lobby_at_five() -> Driver {
    let mut d = Driver::new(Options::default());
    d.join("lobby");
    d.connect();
    d.welcome(welcome());
    d.frame(joined("lobby", 7, 0, Recovery::NotRequested));
    for seq in 1..=5 {
        assert_eq!(
            delivered(&d.frame(message("lobby", seq, seq, "bob"))),
            vec![seq]
        );
    }
    d
}

/// The position the client resumes from after its connection drops.
fn resumes_from(d: &mut Driver) -> Option<Position> {
    d.closed(1006);
    d.until_open();
    match &sent(&d.welcome(welcome()))[..] {
        [ClientMessage::Join { since, .. }] => *since,
        other => panic!("expected one join, got {other:?}"),
    }
}

fn joined_event(actions: &[chorus_client::core::Action]) -> (Position, Recovery) {
    match &events(actions)[..] {
        [
            Event::Joined {
                room,
                position,
                recovery,
                ..
            },
        ] if room == "lobby" => (*position, *recovery),
        other => panic!("expected one joined event, got {other:?}"),
    }
}

#[test]
fn a_new_epoch_is_adopted_and_its_first_messages_are_delivered() {
    let mut d = in_lobby_at_five();
    let actions = d.frame(joined("lobby", 9, 0, Recovery::Missed));
    assert_eq!(
        joined_event(&actions),
        (Position { epoch: 9, seq: 0 }, Recovery::Missed)
    );
    // Sequences 1 and 2 again, of the new history: new messages, not duplicates.
    assert_eq!(delivered(&d.frame(message("lobby", 1, 11, "bob"))), vec![1]);
    assert_eq!(delivered(&d.frame(message("lobby", 2, 12, "bob"))), vec![2]);
    assert!(delivered(&d.frame(message("lobby", 2, 12, "bob"))).is_empty());
    assert_eq!(resumes_from(&mut d), Some(Position { epoch: 9, seq: 2 }));
}

#[test]
fn a_new_epoch_joined_further_along_delivers_what_follows() {
    let mut d = in_lobby_at_five();
    let actions = d.frame(joined("lobby", 9, 3, Recovery::Missed));
    assert_eq!(joined_event(&actions).1, Recovery::Missed);
    assert_eq!(delivered(&d.frame(message("lobby", 4, 14, "bob"))), vec![4]);
    assert_eq!(resumes_from(&mut d), Some(Position { epoch: 9, seq: 4 }));
}

#[test]
fn a_gap_in_the_same_epoch_is_reported_and_the_messages_after_it_delivered() {
    let mut d = in_lobby_at_five();
    let actions = d.frame(joined("lobby", 7, 8, Recovery::Missed));
    assert_eq!(
        joined_event(&actions),
        (Position { epoch: 7, seq: 8 }, Recovery::Missed)
    );
    assert_eq!(delivered(&d.frame(message("lobby", 9, 9, "bob"))), vec![9]);
    assert_eq!(resumes_from(&mut d), Some(Position { epoch: 7, seq: 9 }));
}

#[test]
fn a_publish_in_flight_across_the_reset_settles_once() {
    let mut d = in_lobby_at_five();
    let id = d.publish("lobby", "hello");
    d.frame(joined("lobby", 9, 0, Recovery::Missed));
    let actions = d.frame(ServerMessage::PublishAck {
        room: "lobby".into(),
        id,
        seq: 1,
    });
    assert!(matches!(&settles(&actions)[..], [(i, Ok(ack))] if *i == id && ack.seq == 1));
    let mut echo = message("lobby", 1, id, "me");
    if let ServerMessage::Message { body, .. } = &mut echo {
        *body = text("hello");
    }
    let actions = d.frame(echo);
    assert_eq!(delivered(&actions), vec![1]);
    assert!(settles(&actions).is_empty(), "settled once");
}
