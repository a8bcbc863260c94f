//! The token probe (defect 4: every failed attempt used to cost a socket and a probe, two
//! console errors). A socket that fails before opening is not followed by a probe at once;
//! the next attempt, after the backoff delay, starts with the probe and opens a socket only
//! when the server answers and accepts the token. So while the server is down each attempt
//! costs exactly one request.

use crate::common::*;
use chorus_client::core::{Action, Event, Options, Probe, State};

/// Connect; the first socket fails before opening.
fn first_socket_failed() -> Driver {
    let mut d = Driver::new(Options::default());
    assert_eq!(opens(&d.connect()), vec!["t0".to_owned()]);
    let actions = d.closed(1006);
    assert!(probes(&actions).is_empty(), "no probe at once: {actions:?}");
    assert!(opens(&actions).is_empty());
    assert_eq!(d.core.state(), State::Reconnecting);
    d
}

/// Let time pass to the next deadline; returns what happened.
fn to_next_deadline(d: &mut Driver) -> Vec<Action> {
    let deadline = d.core.next_deadline().expect("a deadline");
    d.advance(deadline - d.now)
}

#[test]
fn while_the_server_is_unreachable_each_attempt_costs_one_probe_and_no_socket() {
    let mut d = first_socket_failed();
    for attempt in 2..=12u32 {
        let actions = to_next_deadline(&mut d);
        assert_eq!(probes(&actions), vec!["t0".to_owned()], "attempt {attempt}");
        assert!(opens(&actions).is_empty(), "attempt {attempt}: {actions:?}");
        assert_eq!(d.core.state(), State::Connecting);
        // The shell's fetch fails: a network error.
        d.core.auth_probed(Probe::Unreachable, d.now);
        let actions = d.actions();
        assert!(probes(&actions).is_empty());
        assert!(opens(&actions).is_empty());
        let r = reconnecting(&actions);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0, attempt);
        assert!(r[0].1 <= (500u64 << (attempt - 1)).min(30_000));
        assert_eq!(d.core.state(), State::Reconnecting);
    }
    // The server is back: the probe says so, and only then a socket opens.
    let actions = to_next_deadline(&mut d);
    assert_eq!(probes(&actions).len(), 1);
    d.core.auth_probed(Probe::Accepted, d.now);
    assert_eq!(opens(&d.actions()), vec!["t0".to_owned()]);
    d.welcome(welcome());
    assert_eq!(d.core.state(), State::Open);
}

#[test]
fn the_first_connect_and_the_first_reconnect_after_a_loss_open_a_socket_at_once() {
    let mut d = Driver::new(Options::default());
    let actions = d.connect();
    assert_eq!(opens(&actions).len(), 1);
    assert!(probes(&actions).is_empty());
    d.welcome(welcome());
    d.closed(1006);
    let actions = to_next_deadline(&mut d);
    assert_eq!(opens(&actions).len(), 1);
    assert!(probes(&actions).is_empty());
}

#[test]
fn a_socket_that_opened_and_failed_before_the_welcome_needs_no_probe() {
    let mut d = Driver::new(Options::default());
    d.connect();
    d.core.socket_opened(d.now);
    d.closed(1006);
    let actions = to_next_deadline(&mut d);
    assert_eq!(opens(&actions).len(), 1);
    assert!(probes(&actions).is_empty());
}

#[test]
fn a_socket_that_never_opens_makes_the_next_attempt_probe() {
    let mut d = Driver::new(Options::default());
    d.connect();
    let actions = d.advance(10_000);
    assert_eq!(closes(&actions), vec![(4000, "connect timeout".to_owned())]);
    assert!(probes(&actions).is_empty());
    let actions = to_next_deadline(&mut d);
    assert_eq!(probes(&actions).len(), 1);
    assert!(opens(&actions).is_empty());
}

#[test]
fn a_probe_without_an_answer_times_out_as_unreachable_and_its_late_answer_is_ignored() {
    let mut d = first_socket_failed();
    to_next_deadline(&mut d);
    assert_eq!(d.core.next_deadline(), Some(d.now + 10_000));
    assert!(d.advance(9_999).is_empty());
    let actions = d.advance(1);
    assert_eq!(d.core.state(), State::Reconnecting);
    assert!(events(&actions).contains(&Event::Reconnecting {
        attempt: 2,
        delay_ms: reconnecting(&actions)[0].1,
        code: 1006,
        reason: "server unreachable".into(),
    }));
    // The fetch answers at last: the core has moved on.
    d.core.auth_probed(Probe::Accepted, d.now);
    assert!(d.actions().is_empty());
    assert_eq!(d.core.state(), State::Reconnecting);
    // The next attempt probes again.
    assert_eq!(probes(&to_next_deadline(&mut d)).len(), 1);
}

#[test]
fn an_accepted_token_whose_socket_fails_again_is_probed_again_after_the_backoff() {
    let mut d = first_socket_failed();
    to_next_deadline(&mut d);
    d.core.auth_probed(Probe::Accepted, d.now);
    assert_eq!(opens(&d.actions()).len(), 1);
    let actions = d.closed(1006);
    assert!(probes(&actions).is_empty());
    assert_eq!(reconnecting(&actions)[0].0, 2);
    let actions = to_next_deadline(&mut d);
    assert_eq!(probes(&actions).len(), 1);
    assert!(opens(&actions).is_empty());
}

#[test]
fn wake_cuts_the_wait_short_and_still_probes_first() {
    let mut d = first_socket_failed();
    d.core.wake(d.now);
    let actions = d.actions();
    assert_eq!(probes(&actions).len(), 1);
    assert!(opens(&actions).is_empty());
}

#[test]
fn a_probe_answer_when_none_was_asked_for_does_nothing() {
    let mut d = Driver::open(Options::default());
    for outcome in [Probe::Accepted, Probe::Refused, Probe::Unreachable] {
        d.core.auth_probed(outcome, d.now);
        assert!(d.actions().is_empty());
        assert_eq!(d.core.state(), State::Open);
    }
}
