//! `Core::reconnect`: connect now. An open connection is closed and opened again at once,
//! a backoff wait is cut short (not the server's `RetryAfter`), an attempt under way is
//! left alone, and a closed client starts again.

use crate::common::*;
use chorus_client::core::{Event, Options, Probe, State};
use chorus_protocol::{ClientMessage, Position, Reconnect, Recovery};

fn joins(messages: &[ClientMessage]) -> Vec<(String, Option<Position>)> {
    messages
        .iter()
        .filter_map(|m| match m {
            ClientMessage::Join { room, since } => Some((room.clone(), *since)),
            _ => None,
        })
        .collect()
}

#[test]
fn when_open_the_socket_is_closed_and_a_new_one_opens_at_once_resuming_the_rooms() {
    let mut d = Driver::new(Options::default());
    d.join("lobby");
    d.connect();
    d.welcome(welcome());
    d.frame(joined("lobby", 1, 4, Recovery::NotRequested));
    d.frame(message("lobby", 5, 5, "bob"));
    d.core.reconnect(d.now);
    let actions = d.actions();
    assert_eq!(
        closes(&actions),
        vec![(1000, "reconnect requested".to_owned())]
    );
    assert_eq!(opens(&actions), vec!["t0".to_owned()]);
    assert!(probes(&actions).is_empty());
    assert_eq!(
        states(&actions),
        vec![(State::Connecting, 1000, "reconnect requested".to_owned())]
    );
    assert!(events(&actions).contains(&Event::Reconnecting {
        attempt: 1,
        delay_ms: 0,
        code: 1000,
        reason: "reconnect requested".into()
    }));
    // The close comes first, then the state, then the new socket.
    let close_at = actions
        .iter()
        .position(|a| !closes(std::slice::from_ref(a)).is_empty());
    let open_at = actions
        .iter()
        .position(|a| !opens(std::slice::from_ref(a)).is_empty());
    assert!(close_at < open_at);
    let sent = sent(&d.welcome(welcome()));
    assert_eq!(
        joins(&sent),
        vec![("lobby".to_owned(), Some(Position { epoch: 1, seq: 5 }))]
    );
}

#[test]
fn a_publish_in_flight_is_sent_again_on_the_new_connection() {
    let mut d = Driver::new(Options::default());
    d.join("lobby");
    d.connect();
    d.welcome(welcome());
    d.frame(joined("lobby", 1, 0, Recovery::NotRequested));
    let id = d.publish("lobby", "hi");
    d.actions();
    d.core.reconnect(d.now);
    d.actions();
    let mut actions = d.welcome(welcome());
    actions.extend(d.frame(joined("lobby", 1, 0, Recovery::Recovered)));
    let nonce = ping_nonce(&sent(&actions)).expect("a ping marks the end of the replay");
    let actions = d.frame(chorus_protocol::ServerMessage::Pong { nonce });
    assert_eq!(publish_ids(&sent(&actions)), vec![id]);
    assert_eq!(d.core.pending(), 1);
}

#[test]
fn while_waiting_the_attempt_goes_at_once() {
    let mut d = Driver::open(Options {
        initial_backoff: std::time::Duration::from_secs(20),
        ..Options::default()
    });
    d.closed(1006);
    assert_eq!(d.core.state(), State::Reconnecting);
    d.core.reconnect(d.now);
    let actions = d.actions();
    assert_eq!(opens(&actions), vec!["t0".to_owned()]);
    assert_eq!(
        states(&actions),
        vec![(State::Connecting, 1000, "reconnect requested".to_owned())]
    );
}

#[test]
fn while_waiting_after_a_failed_socket_the_attempt_starts_with_the_probe() {
    let mut d = Driver::new(Options::default());
    d.connect();
    d.closed(1006);
    d.core.reconnect(d.now);
    let actions = d.actions();
    assert_eq!(probes(&actions), vec!["t0".to_owned()]);
    assert!(opens(&actions).is_empty());
}

#[test]
fn a_wait_the_server_asked_for_is_kept() {
    let mut d = Driver::open(Options::default());
    d.frame(disconnect(1001, Reconnect::RetryAfter(20_000)));
    d.closed(1001);
    d.core.reconnect(d.now);
    assert!(d.actions().is_empty());
    assert_eq!(d.core.state(), State::Reconnecting);
}

#[test]
fn while_connecting_nothing_happens() {
    let mut d = Driver::new(Options::default());
    d.connect();
    d.core.reconnect(d.now);
    assert!(d.actions().is_empty());
    d.core.socket_opened(d.now);
    d.core.reconnect(d.now);
    assert!(d.actions().is_empty());
    // Probing, after a socket that failed before opening.
    let mut d = Driver::new(Options::default());
    d.connect();
    d.closed(1006);
    assert_eq!(
        probes(&d.advance(d.core.next_deadline().unwrap() - d.now)).len(),
        1
    );
    d.core.reconnect(d.now);
    assert!(d.actions().is_empty());
    d.core.auth_probed(Probe::Accepted, d.now);
    assert_eq!(opens(&d.actions()).len(), 1);
}

#[test]
fn before_connect_it_connects() {
    let mut d = Driver::new(Options::default());
    d.core.reconnect(d.now);
    assert_eq!(opens(&d.actions()), vec!["t0".to_owned()]);
}

#[test]
fn when_closed_it_starts_again_with_the_rooms_still_wanted_and_a_fresh_backoff() {
    let mut d = Driver::new(Options::default());
    d.join("lobby");
    d.connect();
    // Five failed attempts: the backoff has grown.
    for _ in 0..5 {
        d.core.socket_opened(d.now);
        d.closed(1006);
        d.until_open();
    }
    d.welcome(welcome());
    d.frame(joined("lobby", 1, 2, Recovery::NotRequested));
    d.core.close(d.now);
    d.actions();
    // Joined while closed: wanted on the next connection too.
    d.join("news");
    assert_eq!(d.core.state(), State::Closed);

    d.core.reconnect(d.now);
    let actions = d.actions();
    assert_eq!(opens(&actions), vec!["t0".to_owned()]);
    assert_eq!(
        states(&actions),
        vec![(State::Connecting, 1000, "reconnect requested".to_owned())]
    );
    assert_eq!(d.core.state(), State::Connecting);
    let sent = sent(&d.welcome(welcome()));
    assert_eq!(
        joins(&sent),
        vec![
            ("lobby".to_owned(), Some(Position { epoch: 1, seq: 2 })),
            ("news".to_owned(), None)
        ]
    );
    // A Joined now is the join's answer, not a stale one.
    let actions = d.frame(joined("lobby", 1, 2, Recovery::Recovered));
    assert!(matches!(events(&actions)[..], [Event::Joined { .. }]));
    // Fresh backoff: the next loss is attempt 1.
    assert_eq!(reconnecting(&d.closed(1006))[0].0, 1);
}
