//! A sequence skipped on a live connection is never passed over in silence: the client
//! resumes the room from the last sequence it delivered (it leaves and joins again with
//! `since`, and the server replays what follows), and delivers what comes after the gap in
//! order, once. The position to resume from never moves past a gap.

use std::time::Duration;

use crate::common::*;
use chorus_client::core::{Event, Options};
use chorus_protocol::{ClientMessage, Position, Recovery, ServerMessage};

const ROOM: &str = "lobby";

fn at(seq: u64) -> Position {
    Position { epoch: 7, seq }
}

/// Open, in `ROOM` at epoch 7, messages 1 and 2 delivered.
fn at_two() -> Driver {
    let mut d = Driver::new(Options::default());
    d.join(ROOM);
    d.connect();
    d.welcome(welcome());
    d.frame(joined(ROOM, 7, 0, Recovery::NotRequested));
    for seq in 1..=2 {
        assert_eq!(
            delivered(&d.frame(message(ROOM, seq, seq, "bob"))),
            vec![seq]
        );
    }
    d
}

fn left(room: &str) -> ServerMessage {
    ServerMessage::Left { room: room.into() }
}

/// The resume the client asks for: leave, then join again from `since`.
fn resume(since: u64) -> Vec<ClientMessage> {
    vec![
        ClientMessage::Leave { room: ROOM.into() },
        ClientMessage::Join {
            room: ROOM.into(),
            since: Some(at(since)),
        },
    ]
}

#[test]
fn a_skipped_sequence_resumes_the_room_from_the_last_one_delivered() {
    let mut d = at_two();
    // 3 is lost on the way; 4 arrives.
    let actions = d.frame(message(ROOM, 4, 4, "bob"));
    assert_eq!(delivered(&actions), Vec::<u64>::new(), "not out of order");
    assert_eq!(sent(&actions), resume(2));
    // The server's answers: the leave (which is not the app's), the join, its replay.
    assert!(
        events(&d.frame(left(ROOM))).is_empty(),
        "no Left for the app"
    );
    let actions = d.frame(joined(ROOM, 7, 4, Recovery::Recovered));
    assert!(matches!(
        &events(&actions)[..],
        [Event::Joined { room, recovery: Recovery::Recovered, position, .. }]
            if room == ROOM && *position == at(4)
    ));
    let mut seen = Vec::new();
    for seq in [3, 4, 5] {
        seen.extend(delivered(&d.frame(message(ROOM, seq, seq, "bob"))));
    }
    assert_eq!(seen, vec![3, 4, 5], "in order, once each");
}

#[test]
fn what_arrives_between_the_gap_and_the_replay_comes_once_and_in_order() {
    let mut d = at_two();
    let mut seen = delivered(&d.frame(message(ROOM, 4, 4, "bob")));
    // Live messages still on the way before the server takes the leave.
    for seq in [5, 6] {
        seen.extend(delivered(&d.frame(message(ROOM, seq, seq, "bob"))));
    }
    d.frame(left(ROOM));
    d.frame(joined(ROOM, 7, 6, Recovery::Recovered));
    for seq in 3..=7 {
        seen.extend(delivered(&d.frame(message(ROOM, seq, seq, "bob"))));
    }
    assert_eq!(seen, vec![3, 4, 5, 6, 7]);
}

#[test]
fn the_resume_position_stays_before_the_gap() {
    let mut d = at_two();
    d.frame(message(ROOM, 4, 4, "bob"));
    // The connection drops before the resume is answered: the reconnect resumes from 2.
    d.closed(1006);
    d.until_open();
    assert_eq!(
        sent(&d.welcome(welcome())),
        vec![ClientMessage::Join {
            room: ROOM.into(),
            since: Some(at(2)),
        }]
    );
    d.frame(joined(ROOM, 7, 4, Recovery::Recovered));
    let mut seen = Vec::new();
    for seq in 3..=4 {
        seen.extend(delivered(&d.frame(message(ROOM, seq, seq, "bob"))));
    }
    assert_eq!(seen, vec![3, 4]);
}

#[test]
fn a_gap_the_server_cannot_fill_is_reported_as_missed() {
    let mut d = at_two();
    d.frame(message(ROOM, 9, 9, "bob"));
    d.frame(left(ROOM));
    // The server no longer has 3..=5: it says so, and replays what it retains.
    let actions = d.frame(joined(ROOM, 7, 9, Recovery::Missed));
    assert!(matches!(
        &events(&actions)[..],
        [Event::Joined {
            recovery: Recovery::Missed,
            ..
        }]
    ));
    let mut seen = Vec::new();
    for seq in 6..=10 {
        seen.extend(delivered(&d.frame(message(ROOM, seq, seq, "bob"))));
    }
    assert_eq!(seen, vec![6, 7, 8, 9, 10]);
    // No second resume: the app was told.
    assert!(
        !sent(&d.actions())
            .iter()
            .any(|m| matches!(m, ClientMessage::Leave { .. }))
    );
}

#[test]
fn a_gap_in_a_replay_the_server_said_was_complete_is_resumed_too() {
    let mut d = at_two();
    d.closed(1006);
    d.until_open();
    d.welcome(welcome());
    d.frame(joined(ROOM, 7, 5, Recovery::Recovered));
    assert_eq!(delivered(&d.frame(message(ROOM, 3, 3, "bob"))), vec![3]);
    let actions = d.frame(message(ROOM, 5, 5, "bob"));
    assert!(delivered(&actions).is_empty());
    assert_eq!(sent(&actions), resume(3));
}

#[test]
fn a_gap_that_keeps_coming_back_is_retried_with_backoff_not_in_a_loop() {
    let options = Options {
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(400),
        ..Options::default()
    };
    let mut d = Driver::new(options);
    d.join(ROOM);
    d.connect();
    d.welcome(welcome());
    d.frame(joined(ROOM, 7, 2, Recovery::NotRequested));
    // A server that says it recovers but skips 3 every time.
    let first = d.frame(message(ROOM, 4, 4, "bob"));
    assert_eq!(sent(&first), resume(2));
    let mut joins = 1;
    for _ in 0..5 {
        d.frame(left(ROOM));
        d.frame(joined(ROOM, 7, 4, Recovery::Recovered));
        let actions = d.frame(message(ROOM, 4, 4, "bob"));
        assert!(delivered(&actions).is_empty());
        let out = sent(&actions);
        assert_eq!(
            out.first(),
            Some(&ClientMessage::Leave { room: ROOM.into() })
        );
        if out.len() == 2 {
            joins += 1;
            continue;
        }
        // The join again waits: nothing for a while, then the join.
        let out = sent(&d.advance(400));
        assert_eq!(
            out,
            vec![ClientMessage::Join {
                room: ROOM.into(),
                since: Some(at(2)),
            }]
        );
        joins += 1;
    }
    assert_eq!(joins, 6);
    assert_eq!(d.core.state(), chorus_client::core::State::Open);
}

#[test]
fn the_first_message_after_a_missed_recovery_may_jump() {
    let mut d = at_two();
    // An unsolicited Joined: the server lost part of the room's history.
    let actions = d.frame(joined(ROOM, 7, 8, Recovery::Missed));
    assert!(matches!(
        &events(&actions)[..],
        [Event::Joined {
            recovery: Recovery::Missed,
            ..
        }]
    ));
    let actions = d.frame(message(ROOM, 9, 9, "bob"));
    assert_eq!(delivered(&actions), vec![9]);
    assert!(sent(&actions).is_empty(), "no resume");
    // After it, sequences must follow again.
    let actions = d.frame(message(ROOM, 11, 11, "bob"));
    assert!(delivered(&actions).is_empty());
    assert_eq!(sent(&actions), resume(9));
}

#[test]
fn the_apps_own_leave_is_still_reported() {
    let mut d = at_two();
    d.core.leave(ROOM, d.now);
    d.actions();
    assert_eq!(
        events(&d.frame(left(ROOM))),
        vec![Event::Left { room: ROOM.into() }]
    );
}

#[test]
fn leaving_during_a_resume_reports_the_apps_leave() {
    let mut d = at_two();
    d.frame(message(ROOM, 4, 4, "bob"));
    d.core.leave(ROOM, d.now);
    d.actions();
    // The resume's Left, then the app's: the app hears one.
    let mut heard = events(&d.frame(left(ROOM)));
    heard.extend(events(&d.frame(left(ROOM))));
    assert_eq!(
        heard
            .iter()
            .filter(|e| matches!(e, Event::Left { .. }))
            .count(),
        1
    );
}
