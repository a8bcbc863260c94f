//! A dead connection is found within the server's own heartbeat timeout: with the welcome
//! announcing pings every 1 s and a 3 s timeout, a stalled link is given up 3 s after the
//! last frame, not after the interval plus the client's 10 s `pong_timeout`; a shorter
//! `pong_timeout` still wins, and publishes sent into the dead link go out again that much
//! sooner.

use std::time::Duration;

use crate::common::*;
use chorus_client::core::{Options, State};
use chorus_protocol::{Recovery, ServerMessage};

/// A welcome announcing `heartbeat_ms` and `timeout_ms`.
fn welcome_heartbeat(heartbeat_ms: u32, timeout_ms: u32) -> ServerMessage {
    match welcome_with(heartbeat_ms, limits()) {
        ServerMessage::Welcome {
            session,
            user,
            protocol,
            heartbeat_ms,
            limits,
            ..
        } => ServerMessage::Welcome {
            session,
            user,
            protocol,
            heartbeat_ms,
            heartbeat_timeout_ms: timeout_ms,
            limits,
        },
        _ => unreachable!(),
    }
}

fn open(options: Options, heartbeat_ms: u32, timeout_ms: u32) -> Driver {
    let mut d = Driver::new(options);
    d.join("lobby");
    d.connect();
    d.welcome(welcome_heartbeat(heartbeat_ms, timeout_ms));
    d.frame(joined("lobby", 1, 0, Recovery::NotRequested));
    d
}

/// How long after now the core gives the connection up, with nothing arriving.
fn given_up_after(d: &mut Driver) -> u64 {
    let start = d.now;
    while d.core.state() == State::Open {
        let deadline = d.core.next_deadline().expect("a heartbeat deadline");
        d.advance(deadline - d.now);
        assert!(d.now - start < 60_000, "never given up");
    }
    d.now - start
}

#[test]
fn a_silent_connection_is_given_up_after_the_servers_heartbeat_timeout() {
    let mut d = open(Options::default(), 1_000, 3_000);
    assert!(closes(&d.advance(2_999)).is_empty());
    assert_eq!(d.core.state(), State::Open);
    assert_eq!(
        closes(&d.advance(1)),
        vec![(4000, "heartbeat timeout".to_owned())]
    );
    assert_eq!(d.core.state(), State::Reconnecting);
}

#[test]
fn silence_is_counted_from_the_last_frame() {
    let mut d = open(Options::default(), 1_000, 3_000);
    d.advance(2_500);
    d.frame(ServerMessage::MemberJoined {
        room: "lobby".into(),
        user: "bob".into(),
    });
    assert_eq!(given_up_after(&mut d), 3_000);
}

#[test]
fn a_pong_timeout_shorter_than_the_servers_allowance_still_decides() {
    let options = Options {
        pong_timeout: Duration::from_millis(300),
        ..Options::default()
    };
    let mut d = open(options, 1_000, 3_000);
    assert_eq!(given_up_after(&mut d), 1_300);
}

#[test]
fn without_a_server_timeout_the_interval_plus_the_pong_timeout_applies() {
    let mut d = open(Options::default(), 1_000, 0);
    assert_eq!(given_up_after(&mut d), 11_000);
}

#[test]
fn the_servers_default_timing_leaves_the_pong_timeout_in_charge() {
    // Pings every 25 s, cut off after 60 s: the interval plus 10 s comes first.
    let mut d = open(Options::default(), 25_000, 60_000);
    assert_eq!(given_up_after(&mut d), 35_000);
}

#[test]
fn a_connection_heard_from_within_the_servers_timeout_stays_open() {
    let mut d = open(Options::default(), 1_000, 3_000);
    for round in 0..20 {
        assert!(
            closes(&d.advance(2_900)).is_empty(),
            "closed at round {round}"
        );
        d.frame(ServerMessage::MemberJoined {
            room: "lobby".into(),
            user: "bob".into(),
        });
    }
    assert_eq!(d.core.state(), State::Open);
}

#[test]
fn wake_finds_a_dead_connection_within_the_servers_allowance() {
    // Pings every 1 s, cut off after 3 s: a wake's ping must be answered within 2 s.
    let mut d = open(Options::default(), 1_000, 3_000);
    d.advance(100);
    d.core.wake(d.now);
    d.actions();
    assert_eq!(given_up_after(&mut d), 2_000);
}

#[test]
fn a_publish_into_a_stalled_link_goes_out_again_after_the_servers_timeout() {
    let options = Options {
        initial_backoff: Duration::from_millis(100),
        ..Options::default()
    };
    let mut d = open(options, 1_000, 3_000);
    // The link stalls: from here on nothing arrives.
    let published_at = d.now;
    let id = d.publish("lobby", "into the void");
    assert_eq!(publish_ids(&sent(&d.actions())), vec![id]);
    given_up_after(&mut d);
    d.until_open();
    let out = sent(&d.welcome(welcome_heartbeat(1_000, 3_000)));
    // A ping after the rejoin marks the end of its replay; its pong lets the publish go
    // again.
    let nonce = ping_nonce(&out).expect("a ping after the rejoin");
    d.frame(joined("lobby", 1, 0, Recovery::Recovered));
    let resent = publish_ids(&sent(&d.frame(ServerMessage::Pong { nonce })));
    assert_eq!(resent, vec![id]);
    assert!(
        d.now - published_at <= 3_000 + 100,
        "sent again {} ms after the publish",
        d.now - published_at
    );
}
