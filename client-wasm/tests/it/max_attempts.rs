//! `Options::max_attempts`: after that many failed connection attempts in a row (none got
//! a welcome), the client closes for good with error 608. Default: unlimited.

use crate::common::*;
use chorus_client::PublishError;
use chorus_client::core::{ClientErrorCode, Event, Options, Probe, State};

fn limited(max: u32) -> Options {
    Options {
        max_attempts: Some(max),
        ..Options::default()
    }
}

fn to_next_deadline(d: &mut Driver) -> Vec<chorus_client::core::Action> {
    let deadline = d.core.next_deadline().expect("a deadline");
    d.advance(deadline - d.now)
}

#[test]
fn the_last_failed_attempt_closes_with_attempts_exhausted() {
    let mut d = Driver::new(limited(3));
    d.join("lobby");
    let id = d.publish("lobby", "queued");
    d.connect();
    // 1: the socket fails before opening.
    assert_eq!(
        reconnecting(&d.closed(1006)),
        vec![(1, reconnecting_delay(&d))]
    );
    // 2: the probe finds no server.
    to_next_deadline(&mut d);
    d.core.auth_probed(Probe::Unreachable, d.now);
    assert_eq!(d.core.state(), State::Reconnecting);
    // 3: the probe accepts the token but the socket fails again: the last attempt.
    to_next_deadline(&mut d);
    d.core.auth_probed(Probe::Accepted, d.now);
    d.actions();
    let actions = d.closed(1006);
    assert_eq!(reconnecting(&actions), vec![]);
    assert_eq!(settles(&actions), vec![(id, Err(PublishError::Closed))]);
    assert_eq!(
        events(&actions),
        vec![
            Event::Error {
                code: ClientErrorCode::AttemptsExhausted as u16,
                message: "gave up after 3 failed connection attempts in a row".into(),
                room: None
            },
            Event::Close {
                code: 1006,
                reason: "connection attempts exhausted".into()
            }
        ]
    );
    assert_eq!(
        states(&actions),
        vec![(
            State::Closed,
            1006,
            "connection attempts exhausted".to_owned()
        )]
    );
    assert_eq!(ClientErrorCode::AttemptsExhausted as u16, 608);
    assert_eq!(d.core.state(), State::Closed);
    assert_eq!(d.core.next_deadline(), None);
}

/// The delay of the wait under way.
fn reconnecting_delay(d: &Driver) -> u64 {
    d.core.next_deadline().unwrap() - d.now
}

#[test]
fn a_welcome_starts_the_count_again() {
    let mut d = Driver::new(limited(2));
    d.connect();
    for _ in 0..10 {
        // One failed attempt (the socket opened, no welcome), then a welcomed one.
        d.core.socket_opened(d.now);
        assert_eq!(reconnecting(&d.closed(1006)).len(), 1);
        d.until_open();
        d.welcome(welcome());
        d.closed(1006);
        d.until_open();
    }
    assert_eq!(d.core.state(), State::Connecting);
}

#[test]
fn timeouts_and_failing_get_token_count_as_failed_attempts() {
    let mut d = Driver::with(limited(2), None, true, 1);
    d.connect();
    d.core.token_fetched(Err("backend down".into()), d.now);
    assert_eq!(d.core.state(), State::Reconnecting);
    to_next_deadline(&mut d);
    d.core.token_fetched(Ok("t".into()), d.now);
    d.core.socket_opened(d.now);
    // No welcome within connect_timeout.
    let actions = d.advance(10_000);
    assert!(matches!(
        events(&actions)[..],
        [
            Event::Error { code: 608, .. },
            Event::Close { code: 4000, .. }
        ]
    ));
}

#[test]
fn one_means_no_retry_and_zero_counts_as_one() {
    for max in [0, 1] {
        let mut d = Driver::new(limited(max));
        d.connect();
        let actions = d.closed(1006);
        assert!(matches!(
            events(&actions)[..],
            [Event::Error { code: 608, ref message, .. }, Event::Close { .. }]
                if message == "gave up after 1 failed connection attempt"
        ));
    }
}

#[test]
fn by_default_attempts_are_unlimited() {
    assert_eq!(Options::default().max_attempts, None);
    let mut d = Driver::new(Options::default());
    d.connect();
    d.closed(1006);
    for _ in 0..200 {
        to_next_deadline(&mut d);
        d.core.auth_probed(Probe::Unreachable, d.now);
        assert_eq!(d.core.state(), State::Reconnecting);
    }
}

#[test]
fn a_lost_open_connection_is_not_a_failed_attempt() {
    let mut d = Driver::new(limited(1));
    d.connect();
    for _ in 0..5 {
        d.welcome(welcome());
        assert_eq!(reconnecting(&d.closed(1006)).len(), 1);
        d.until_open();
    }
}
