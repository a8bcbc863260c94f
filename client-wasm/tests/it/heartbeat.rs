//! Heartbeat: pings at the server's interval; a connection silent for the interval plus the
//! pong timeout is closed and replaced; any frame counts as life.

use crate::common::*;
use chorus_client::core::{Options, State};
use chorus_protocol::{ClientMessage, ServerMessage};

/// Welcomed with a 1 s heartbeat; the pong timeout is the default 10 s.
fn open() -> Driver {
    let mut d = Driver::new(Options::default());
    d.connect();
    d.welcome(welcome_with(1_000, limits()));
    d
}

#[test]
fn pings_go_out_at_the_servers_interval() {
    let mut d = open();
    assert!(d.advance(999).is_empty());
    let mut nonces = Vec::new();
    for _ in 0..3 {
        let out = sent(&d.advance(1_000));
        assert_eq!(out.len(), 1);
        nonces.push(ping_nonce(&out).expect("a ping"));
        d.frame(ServerMessage::Pong {
            nonce: nonces[nonces.len() - 1],
        });
    }
    nonces.dedup();
    assert_eq!(nonces.len(), 3, "nonces differ");
}

#[test]
fn a_silent_connection_is_closed_and_replaced_without_waiting_for_the_socket() {
    let mut d = open();
    // Pings go out, nothing comes back. Dead at 1 s + 10 s after the last frame.
    let actions = d.advance(10_999);
    assert!(closes(&actions).is_empty());
    assert_eq!(d.core.state(), State::Open);
    let actions = d.advance(1);
    assert_eq!(
        closes(&actions),
        vec![(4000, "heartbeat timeout".to_owned())]
    );
    assert_eq!(d.core.state(), State::Reconnecting);
    assert_eq!(reconnecting(&actions)[0].0, 1);
    // No socket_closed comes for the dropped socket; the next attempt opens on its own.
    d.until_open();
    assert_eq!(d.core.state(), State::Connecting);
}

#[test]
fn a_live_connection_is_not_declared_dead() {
    let mut d = open();
    // A minute of traffic, none of it pongs, each frame 9 s after the last: every frame
    // arrives inside the 11 s window.
    for i in 0..7 {
        let actions = d.advance(9_000);
        assert!(closes(&actions).is_empty(), "closed at round {i}");
        d.frame(ServerMessage::MemberJoined {
            room: "lobby".into(),
            user: "bob".into(),
        });
    }
    assert_eq!(d.core.state(), State::Open);
}

#[test]
fn pongs_keep_a_quiet_connection_alive() {
    let mut d = open();
    for _ in 0..100 {
        let out = sent(&d.advance(1_000));
        let nonce = ping_nonce(&out).unwrap();
        d.frame(ServerMessage::Pong { nonce });
    }
    assert_eq!(d.core.state(), State::Open);
}

#[test]
fn wake_checks_liveness_with_a_ping() {
    let mut d = open();
    d.advance(500);
    d.core.wake(d.now);
    let out = sent(&d.actions());
    assert!(matches!(out[..], [ClientMessage::Ping { .. }]));
    // An answer: still open long after the probe's deadline.
    d.advance(100);
    d.frame(ServerMessage::Pong {
        nonce: ping_nonce(&out).unwrap(),
    });
    assert_eq!(d.core.state(), State::Open);
}

#[test]
fn wake_finds_a_dead_connection_within_the_pong_timeout() {
    // A long heartbeat, so only the wake's ping can find the socket dead early.
    let mut d = Driver::new(Options::default());
    d.connect();
    d.welcome(welcome_with(60_000, limits()));
    d.advance(5_000);
    d.core.wake(d.now);
    d.actions();
    assert!(closes(&d.advance(9_999)).is_empty());
    assert_eq!(
        closes(&d.advance(1)),
        vec![(4000, "heartbeat timeout".to_owned())]
    );
    assert_eq!(d.core.state(), State::Reconnecting);
}

#[test]
fn no_ping_before_the_welcome() {
    let mut d = Driver::new(Options::default());
    d.connect();
    d.core.socket_opened(d.now);
    assert!(sent(&d.advance(9_000)).is_empty());
}
