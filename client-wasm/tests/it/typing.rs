//! Typing indicators: the local throttle and idle stop, and remote typists with their expiry.

use crate::common::*;
use chorus_client::core::{Event, Options};
use chorus_protocol::{ClientMessage, Limits, Recovery, ServerMessage};

fn started(room: &str) -> ClientMessage {
    ClientMessage::TypingStarted { room: room.into() }
}

fn stopped(room: &str) -> ClientMessage {
    ClientMessage::TypingStopped { room: room.into() }
}

/// Open, in `lobby`, with the server's typing limits.
fn open_with(limits: Limits) -> Driver {
    let mut d = Driver::new(Options::default());
    d.join("lobby");
    d.connect();
    d.welcome(welcome_with(60_000, limits));
    d.frame(joined("lobby", 1, 0, Recovery::NotRequested));
    d
}

fn open() -> Driver {
    open_with(limits())
}

fn keystroke(d: &mut Driver) -> Vec<ClientMessage> {
    d.core.typing("lobby", d.now);
    sent(&d.actions())
}

#[test]
fn typing_started_goes_out_once_per_throttle_window_of_the_server() {
    let mut d = open_with(Limits {
        typing_throttle_ms: 2_000,
        ..limits()
    });
    let mut started_at = Vec::new();
    let t0 = d.now;
    // A keystroke every 100 ms for 5 s.
    for _ in 0..50 {
        let out = keystroke(&mut d);
        if out == vec![started("lobby")] {
            started_at.push(d.now - t0);
        } else {
            assert!(out.is_empty(), "{out:?}");
        }
        d.advance(100);
    }
    assert_eq!(started_at, vec![0, 2_000, 4_000]);
}

#[test]
fn typing_stopped_goes_out_after_the_idle_time() {
    let mut d = open();
    keystroke(&mut d);
    d.advance(2_000);
    keystroke(&mut d);
    // Idle is 3 s from the last keystroke.
    assert!(sent(&d.advance(2_999)).is_empty());
    assert_eq!(sent(&d.advance(1)), vec![stopped("lobby")]);
    // The next keystroke starts again at once.
    d.advance(100);
    assert_eq!(keystroke(&mut d), vec![started("lobby")]);
}

#[test]
fn publishing_stops_typing_before_the_message() {
    let mut d = open();
    keystroke(&mut d);
    let id = d.publish("lobby", "hi");
    let out = sent(&d.actions());
    assert_eq!(out[0], stopped("lobby"));
    assert_eq!(publish_ids(&out[1..]), vec![id]);
    // Nothing left to stop later.
    assert!(
        sent(&d.advance(10_000))
            .iter()
            .all(|m| matches!(m, ClientMessage::Ping { .. }))
    );
    // A publish without typing first sends no stop.
    d.publish("lobby", "again");
    assert!(!sent(&d.actions()).contains(&stopped("lobby")));
}

#[test]
fn nothing_is_sent_when_not_open_and_state_resets_on_reconnect() {
    let mut d = Driver::new(Options::default());
    d.join("lobby");
    d.core.typing("lobby", d.now);
    assert!(d.actions().is_empty());
    d.connect();
    d.welcome(welcome());
    assert_eq!(keystroke(&mut d), vec![started("lobby")]);
    // Lost mid-word: no stop goes anywhere, and the new connection starts fresh.
    d.closed(1006);
    d.core.typing("lobby", d.now);
    assert!(sent(&d.actions()).is_empty());
    d.until_open();
    d.welcome(welcome());
    assert_eq!(keystroke(&mut d), vec![started("lobby")]);
}

#[test]
fn typing_in_a_room_not_joined_sends_nothing() {
    let mut d = open();
    d.core.typing("elsewhere", d.now);
    assert!(d.actions().is_empty());
}

#[test]
fn typing_stops_being_sent_where_the_server_disabled_it() {
    let mut d = open();
    keystroke(&mut d);
    let actions = d.frame(ServerMessage::Error {
        code: 110,
        message: "typing is off".into(),
        id: None,
        room: Some("lobby".into()),
    });
    assert!(matches!(
        events(&actions)[..],
        [Event::Error { code: 110, .. }]
    ));
    d.advance(1_500);
    assert!(keystroke(&mut d).is_empty());
}

#[test]
fn remote_typing_expires_after_the_servers_ttl() {
    let mut d = open_with(Limits {
        typing_ttl_ms: 4_000,
        ..limits()
    });
    let actions = d.frame(typing("lobby", "bob", true));
    assert_eq!(
        typists(&actions),
        vec![("lobby".into(), vec!["bob".into()])]
    );
    assert!(typists(&d.advance(3_999)).is_empty());
    assert_eq!(typists(&d.advance(1)), vec![("lobby".into(), vec![])]);
}

#[test]
fn a_refresh_extends_remote_typing_without_an_event() {
    let mut d = open();
    d.frame(typing("lobby", "bob", true));
    d.advance(3_000);
    assert!(typists(&d.frame(typing("lobby", "bob", true))).is_empty());
    assert!(typists(&d.advance(4_999)).is_empty());
    assert_eq!(typists(&d.advance(1)), vec![("lobby".into(), vec![])]);
}

#[test]
fn remote_typing_ends_on_stop_message_or_member_left() {
    let mut d = open();
    for user in ["ann", "bob", "cat"] {
        d.frame(typing("lobby", user, true));
    }
    let actions = d.frame(typing("lobby", "ann", false));
    assert_eq!(
        typists(&actions),
        vec![("lobby".into(), vec!["bob".into(), "cat".into()])]
    );
    let actions = d.frame(message("lobby", 1, 9, "bob"));
    assert_eq!(delivered(&actions), vec![1]);
    assert_eq!(
        typists(&actions),
        vec![("lobby".into(), vec!["cat".into()])]
    );
    let actions = d.frame(ServerMessage::MemberLeft {
        room: "lobby".into(),
        user: "cat".into(),
    });
    assert_eq!(typists(&actions), vec![("lobby".into(), vec![])]);
    // Stopping someone who is not typing changes nothing.
    assert!(typists(&d.frame(typing("lobby", "ann", false))).is_empty());
}

#[test]
fn remote_typists_are_sorted_and_unique() {
    let mut d = open();
    let mut last = Vec::new();
    for user in ["zed", "amy", "zed", "max", "amy"] {
        if let Some((_, users)) = typists(&d.frame(typing("lobby", user, true))).pop() {
            last = users;
        }
    }
    assert_eq!(last, vec!["amy".to_owned(), "max".into(), "zed".into()]);
}

#[test]
fn connection_loss_clears_remote_typing() {
    let mut d = Driver::new(Options::default());
    d.join("a");
    d.join("b");
    d.join("c");
    d.connect();
    d.welcome(welcome());
    d.frame(typing("a", "bob", true));
    d.frame(typing("b", "cat", true));
    let actions = d.closed(1006);
    assert_eq!(
        typists(&actions),
        vec![("a".into(), vec![]), ("b".into(), vec![])]
    );
    // Nothing left to expire.
    d.until_open();
    assert!(typists(&d.advance(10_000)).is_empty());
}

#[test]
fn typing_in_rooms_not_wanted_is_ignored() {
    let mut d = open();
    assert!(d.frame(typing("elsewhere", "bob", true)).is_empty());
}
