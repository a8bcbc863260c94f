//! Rooms across reconnects: every wanted room is joined again from the last position seen,
//! refused joins are forgotten, transient refusals retried, left rooms stay left.

use crate::common::*;
use chorus_client::core::{Event, InvalidArgument, Options};
use chorus_protocol::{ClientMessage, Position, Recovery, ServerMessage};

fn join_msg(room: &str, since: Option<Position>) -> ClientMessage {
    ClientMessage::Join {
        room: room.into(),
        since,
    }
}

fn reconnect(d: &mut Driver) -> Vec<ClientMessage> {
    d.closed(1006);
    d.until_open();
    sent(&d.welcome(welcome()))
}

fn refusal(code: u16, room: &str) -> ServerMessage {
    ServerMessage::Error {
        code,
        message: "refused".into(),
        id: None,
        room: Some(room.into()),
    }
}

#[test]
fn rooms_are_rejoined_after_a_reconnect_from_the_last_position_seen() {
    let mut d = Driver::new(Options::default());
    d.join("a");
    d.join("b");
    d.join("c");
    d.connect();
    d.welcome(welcome());
    d.frame(joined("a", 7, 10, Recovery::NotRequested));
    d.frame(message("a", 11, 1, "bob"));
    d.frame(message("a", 12, 2, "bob"));
    d.frame(joined("b", 3, 0, Recovery::NotRequested));
    // "c" never got its Joined: it rejoins without a position.
    let out = reconnect(&mut d);
    assert_eq!(
        out,
        vec![
            join_msg("a", Some(Position { epoch: 7, seq: 12 })),
            join_msg("b", Some(Position { epoch: 3, seq: 0 })),
            join_msg("c", None),
        ]
    );
    // The replay follows the Joined and is delivered.
    let actions = d.frame(joined("a", 7, 14, Recovery::Recovered));
    assert!(matches!(
        &events(&actions)[..],
        [Event::Joined { room, recovery: Recovery::Recovered, position, .. }]
            if room == "a" && *position == Position { epoch: 7, seq: 14 }
    ));
    assert_eq!(delivered(&d.frame(message("a", 13, 3, "bob"))), vec![13]);
    assert_eq!(delivered(&d.frame(message("a", 14, 4, "bob"))), vec![14]);
    // And the next reconnect resumes from there.
    assert_eq!(
        reconnect(&mut d)[0],
        join_msg("a", Some(Position { epoch: 7, seq: 14 }))
    );
}

#[test]
fn a_join_while_open_goes_out_at_once_and_only_once() {
    let mut d = Driver::open(Options::default());
    assert_eq!(sent(&d.join("lobby")), vec![join_msg("lobby", None)]);
    assert!(d.join("lobby").is_empty());
}

#[test]
fn an_invalid_room_name_is_refused_at_once() {
    let mut d = Driver::open(Options::default());
    assert!(matches!(
        d.core.join("no spaces", None, d.now),
        Err(InvalidArgument(m)) if m.contains("invalid room name")
    ));
    assert!(d.actions().is_empty());
}

#[test]
fn a_new_epoch_resets_the_position() {
    let mut d = Driver::new(Options::default());
    d.join("a");
    d.connect();
    d.welcome(welcome());
    d.frame(joined("a", 7, 50, Recovery::NotRequested));
    reconnect(&mut d);
    // The server lost the history: epoch 8, three messages in, which it replays.
    d.frame(joined("a", 8, 3, Recovery::Missed));
    for seq in 1..=4 {
        assert_eq!(
            delivered(&d.frame(message("a", seq, seq, "bob"))),
            vec![seq]
        );
    }
    assert!(delivered(&d.frame(message("a", 2, 2, "bob"))).is_empty());
    assert_eq!(
        reconnect(&mut d)[0],
        join_msg("a", Some(Position { epoch: 8, seq: 4 }))
    );
}

#[test]
fn a_refused_join_is_forgotten_with_an_error() {
    for code in [102, 104, 107, 108] {
        let mut d = Driver::new(Options::default());
        d.join("vip");
        d.join("lobby");
        d.connect();
        d.welcome(welcome());
        let actions = d.frame(refusal(code, "vip"));
        assert_eq!(
            events(&actions),
            vec![Event::Error {
                code,
                message: "refused".into(),
                room: Some("vip".into())
            }]
        );
        // Messages for it are not delivered, and it is not rejoined.
        assert!(d.frame(message("vip", 1, 1, "bob")).is_empty());
        assert_eq!(reconnect(&mut d), vec![join_msg("lobby", None)]);
    }
}

#[test]
fn a_transient_join_refusal_is_retried_after_a_delay() {
    let mut d = Driver::new(Options::default());
    d.join("lobby");
    d.connect();
    d.welcome(welcome());
    let actions = d.frame(refusal(503, "lobby"));
    assert!(matches!(
        events(&actions)[..],
        [Event::Error { code: 503, .. }]
    ));
    // Retried within the first backoff bound (0.5 s).
    let out = sent(&d.advance(500));
    assert_eq!(out, vec![join_msg("lobby", None)]);
    let actions = d.frame(joined("lobby", 1, 0, Recovery::NotRequested));
    assert!(matches!(events(&actions)[..], [Event::Joined { .. }]));
}

#[test]
fn an_error_naming_a_joined_room_does_not_forget_it() {
    let mut d = Driver::new(Options::default());
    d.join("lobby");
    d.connect();
    d.welcome(welcome());
    d.frame(joined("lobby", 1, 0, Recovery::NotRequested));
    let actions = d.frame(refusal(104, "lobby"));
    assert!(matches!(
        events(&actions)[..],
        [Event::Error { code: 104, .. }]
    ));
    assert_eq!(delivered(&d.frame(message("lobby", 1, 1, "bob"))), vec![1]);
}

#[test]
fn a_left_room_is_not_rejoined_and_its_messages_are_dropped() {
    let mut d = Driver::new(Options::default());
    d.join("lobby");
    d.join("news");
    d.connect();
    d.welcome(welcome());
    d.frame(joined("lobby", 1, 0, Recovery::NotRequested));
    d.core.leave("lobby", d.now);
    assert_eq!(
        sent(&d.actions()),
        vec![ClientMessage::Leave {
            room: "lobby".into()
        }]
    );
    // In flight before the server took the leave: dropped.
    assert!(d.frame(message("lobby", 1, 1, "bob")).is_empty());
    let actions = d.frame(ServerMessage::Left {
        room: "lobby".into(),
    });
    assert_eq!(
        events(&actions),
        vec![Event::Left {
            room: "lobby".into()
        }]
    );
    assert_eq!(reconnect(&mut d), vec![join_msg("news", None)]);
}

#[test]
fn presence_passes_through_for_wanted_rooms() {
    let mut d = Driver::new(Options::default());
    d.join("lobby");
    d.connect();
    d.welcome(welcome());
    let actions = d.frame(ServerMessage::MemberJoined {
        room: "lobby".into(),
        user: "bob".into(),
    });
    assert_eq!(
        events(&actions),
        vec![Event::MemberJoined {
            room: "lobby".into(),
            user: "bob".into()
        }]
    );
    let actions = d.frame(ServerMessage::MemberLeft {
        room: "lobby".into(),
        user: "bob".into(),
    });
    assert_eq!(
        events(&actions),
        vec![Event::MemberLeft {
            room: "lobby".into(),
            user: "bob".into()
        }]
    );
}
