//! Tokens: after a socket fails before it opens, the next attempt asks the server whether
//! it takes the token (see `auth_probe.rs`); a refused or expired token is replaced through
//! `getToken`, and without `getToken` the client closes instead of retrying blindly.

use crate::common::*;
use chorus_client::PublishError;
use chorus_client::core::{ClientErrorCode, Event, Options, Probe, State};
use chorus_protocol::Reconnect;

/// Connect with `old`; the socket fails before opening; after the backoff delay the next
/// attempt probes the token. Returns the delay waited.
fn probing_after_a_failed_socket(d: &mut Driver, token: &str) -> u64 {
    let actions = d.closed(1006);
    assert!(probes(&actions).is_empty(), "no probe at once: {actions:?}");
    let (_, delay) = reconnecting(&actions)[0];
    let actions = d.advance(delay);
    assert_eq!(probes(&actions), vec![token.to_owned()]);
    assert!(opens(&actions).is_empty());
    delay
}

fn refused_before_open(can_fetch: bool) -> Driver {
    let mut d = Driver::with(Options::default(), Some("old"), can_fetch, 1);
    assert_eq!(opens(&d.connect()), vec!["old".to_owned()]);
    probing_after_a_failed_socket(&mut d, "old");
    d
}

#[test]
fn a_refused_token_is_replaced_at_once() {
    let mut d = refused_before_open(true);
    d.core.auth_probed(Probe::Refused, d.now);
    let actions = d.actions();
    assert!(has_fetch(&actions));
    // The failed socket was reported when the wait began; nothing more to say.
    assert_eq!(reconnecting(&actions), vec![]);
    assert_eq!(d.core.state(), State::Connecting);
    d.core.token_fetched(Ok("new".into()), d.now);
    // A fresh token goes straight to a socket.
    assert_eq!(opens(&d.actions()), vec!["new".to_owned()]);
    d.welcome(welcome());
    assert_eq!(d.core.state(), State::Open);
}

#[test]
fn a_token_refused_again_waits_a_growing_backoff_before_each_probe() {
    let mut d = refused_before_open(true);
    for attempt in 2..=6u32 {
        d.core.auth_probed(Probe::Refused, d.now);
        assert!(has_fetch(&d.actions()));
        d.core.token_fetched(Ok("bad".into()), d.now);
        assert_eq!(opens(&d.actions()), vec!["bad".to_owned()]);
        // The new token is refused too: its socket fails, then the backoff, then the probe.
        let start = d.now;
        let actions = d.closed(1006);
        let (n, delay) = reconnecting(&actions)[0];
        assert_eq!(n, attempt);
        assert!(delay <= (500u64 << (attempt - 1)).min(30_000));
        assert!(!has_fetch(&actions));
        assert_eq!(probing_after_a_failed_socket_after(&mut d, delay), "bad");
        assert_eq!(d.now - start, delay);
    }
}

/// The probe that follows a wait of `delay` already announced.
fn probing_after_a_failed_socket_after(d: &mut Driver, delay: u64) -> String {
    if delay > 0 {
        assert!(probes(&d.advance(delay - 1)).is_empty());
    }
    let probed = probes(&d.advance(delay.min(1)));
    assert_eq!(probed.len(), 1);
    probed[0].clone()
}

#[test]
fn an_accepted_token_opens_the_socket_without_fetching() {
    let mut d = refused_before_open(true);
    d.core.auth_probed(Probe::Accepted, d.now);
    let actions = d.actions();
    assert!(!has_fetch(&actions));
    assert_eq!(opens(&actions), vec!["old".to_owned()]);
    assert!(events(&actions).is_empty());
}

#[test]
fn without_get_token_a_refused_token_closes_for_good() {
    let mut d = refused_before_open(false);
    d.join("lobby");
    let id = d.publish("lobby", "x");
    d.core.auth_probed(Probe::Refused, d.now);
    let actions = d.actions();
    assert_eq!(settles(&actions), vec![(id, Err(PublishError::Closed))]);
    let e = events(&actions);
    assert!(
        matches!(&e[0], Event::Error { code, .. } if *code == ClientErrorCode::Unauthorized as u16)
    );
    assert!(matches!(&e[1], Event::Close { code: 1006, .. }));
    assert_eq!(d.core.state(), State::Closed);
    assert_eq!(d.core.next_deadline(), None);
    d.core.wake(d.now);
    assert!(d.advance(600_000).is_empty());
}

#[test]
fn a_failing_get_token_is_reported_and_retried_after_backoff() {
    let mut d = Driver::with(Options::default(), None, true, 1);
    assert!(has_fetch(&d.connect()));
    assert_eq!(d.core.state(), State::Connecting);
    d.core.token_fetched(Err("offline".into()), d.now);
    let actions = d.actions();
    assert_eq!(
        events(&actions)[0],
        Event::Error {
            code: ClientErrorCode::TokenUnavailable as u16,
            message: "offline".into(),
            room: None
        }
    );
    let (attempt, delay) = reconnecting(&actions)[0];
    assert_eq!(attempt, 1);
    assert!(has_fetch(&d.advance(delay)));
    d.core.token_fetched(Ok("t".into()), d.now);
    assert_eq!(opens(&d.actions()), vec!["t".to_owned()]);
}

#[test]
fn an_expired_token_notice_fetches_a_new_one() {
    let mut d = Driver::with(Options::default(), Some("old"), true, 1);
    d.connect();
    d.welcome(welcome());
    d.live(3_600_000);
    assert_eq!(d.core.state(), State::Open);
    d.frame(disconnect(4002, Reconnect::DoNotRetry));
    let actions = d.closed(4002);
    assert!(has_fetch(&actions));
    assert!(opens(&actions).is_empty());
    d.core.token_fetched(Ok("new".into()), d.now);
    assert_eq!(opens(&d.actions()), vec!["new".to_owned()]);
}

#[test]
fn tokens_expiring_right_after_each_welcome_do_not_cause_a_storm() {
    let mut d = Driver::with(Options::default(), Some("old"), true, 1);
    d.connect();
    let mut refreshes = Vec::new();
    for _ in 0..6 {
        d.welcome(welcome());
        d.live(1_000);
        d.frame(disconnect(4002, Reconnect::DoNotRetry));
        let mut actions = d.closed(4002);
        let (attempt, delay) = reconnecting(&actions)[0];
        refreshes.push((attempt, delay));
        while !has_fetch(&actions) {
            actions = d.advance(d.core.next_deadline().unwrap() - d.now);
        }
        d.core.token_fetched(Ok("short-lived".into()), d.now);
        d.actions();
    }
    // The first refresh goes at once; the connections never get stable, so later ones
    // wait a backoff that keeps growing.
    assert_eq!(refreshes[0], (1, 0));
    for (i, (attempt, delay)) in refreshes.iter().enumerate().skip(1) {
        assert_eq!(*attempt, i as u32 + 1);
        assert!(*delay <= (500 << i).min(30_000));
    }
    assert!(refreshes[1..].iter().map(|r| r.1).sum::<u64>() > 1_000);
}

#[test]
fn a_stable_connection_lets_the_next_refresh_go_at_once() {
    let mut d = Driver::with(Options::default(), Some("old"), true, 1);
    d.connect();
    for _ in 0..3 {
        d.welcome(welcome());
        d.live(60_000);
        d.frame(disconnect(4002, Reconnect::DoNotRetry));
        let actions = d.closed(4002);
        assert!(has_fetch(&actions));
        assert_eq!(reconnecting(&actions), vec![(1, 0)]);
        d.core.token_fetched(Ok("next".into()), d.now);
        d.actions();
    }
}

#[test]
fn token_expired_close_code_without_a_notice_also_refreshes() {
    let mut d = Driver::open(Options::default());
    assert!(has_fetch(&d.closed(4002)));
}

#[test]
fn do_not_retry_closes_for_good() {
    let mut d = Driver::open(Options::default());
    d.frame(disconnect(4003, Reconnect::DoNotRetry));
    let actions = d.closed(4003);
    assert_eq!(
        events(&actions),
        vec![
            Event::Error {
                code: ClientErrorCode::DoNotRetry as u16,
                message: "bye".into(),
                room: None
            },
            Event::Close {
                code: 4003,
                reason: "bye".into()
            }
        ]
    );
    assert_eq!(d.core.state(), State::Closed);
    assert_eq!(d.core.next_deadline(), None);
}

#[test]
fn an_expired_token_without_get_token_closes_for_good() {
    let mut d = Driver::with(Options::default(), Some("t"), false, 1);
    d.connect();
    d.welcome(welcome());
    d.frame(disconnect(4002, Reconnect::DoNotRetry));
    let actions = d.closed(4002);
    assert!(!has_fetch(&actions));
    assert_eq!(d.core.state(), State::Closed);
    assert!(matches!(
        events(&actions)[..],
        [
            Event::Error { code: 603, .. },
            Event::Close { code: 4002, .. }
        ]
    ));
}

#[test]
fn no_token_and_no_get_token_closes_at_connect() {
    let mut d = Driver::with(Options::default(), None, false, 1);
    let actions = d.connect();
    assert!(opens(&actions).is_empty());
    assert_eq!(d.core.state(), State::Closed);
    assert!(matches!(
        events(&actions)[..],
        [Event::Error { code: 600, .. }, Event::Close { .. }]
    ));
}
