//! `Event::State`: every change of `Core::state()` is told once, in order, before the event
//! that goes with it (`Open`, `Reconnecting`, `Close`), with a code and a reason that say
//! why.

use crate::common::*;
use chorus_client::core::{Action, Event, Options, Probe, State};
use chorus_protocol::Reconnect;

fn state(state: State, code: u16, reason: &str) -> Event {
    Event::State {
        state,
        code,
        reason: reason.into(),
    }
}

/// Tick from deadline to deadline, answering no ping, until the state changes.
fn until_the_state_changes(d: &mut Driver) -> Vec<Action> {
    let before = d.core.state();
    loop {
        let deadline = d.core.next_deadline().expect("a deadline");
        let actions = d.advance(deadline - d.now);
        if d.core.state() != before {
            return actions;
        }
    }
}

#[test]
fn open_is_told_before_the_open_event_and_connecting_was_the_state_already() {
    let mut d = Driver::new(Options::default());
    assert_eq!(d.core.state(), State::Connecting);
    assert!(states(&d.connect()).is_empty());
    let all = all_events(&d.welcome(welcome()));
    assert_eq!(all[0], state(State::Open, 1000, ""));
    assert!(matches!(all[1], Event::Open { .. }));
}

#[test]
fn a_loss_says_why_in_the_state_and_reconnecting_events_and_the_attempt_after_it_too() {
    type Lose = fn(&mut Driver) -> Vec<Action>;
    let cases: [(Lose, u16, &str); 5] = [
        (|d| d.closed(1006), 1006, "connection lost"),
        (|d| d.closed(4001), 4001, "slow_consumer"),
        (|d| d.closed(1000), 1000, "connection closed"),
        (
            |d| {
                d.frame(disconnect(4005, Reconnect::RetryAfter(1000)));
                d.closed(4005)
            },
            4005,
            "bye",
        ),
        (until_the_state_changes, 4000, "heartbeat timeout"),
    ];
    for (lose, code, reason) in cases {
        let mut d = Driver::open(Options::default());
        let actions = lose(&mut d);
        let all = all_events(&actions);
        let at = all
            .iter()
            .position(|e| matches!(e, Event::State { .. }))
            .expect("a state event");
        assert_eq!(all[at], state(State::Reconnecting, code, reason));
        assert!(
            matches!(&all[at + 1], Event::Reconnecting { code: c, reason: r, .. } if *c == code && r == reason),
            "{all:?}"
        );
        assert_eq!(states(&actions).len(), 1);
        // The wait ends: connecting again, for the same reason.
        let actions = until_the_state_changes(&mut d);
        assert_eq!(
            states(&actions),
            vec![(State::Connecting, code, reason.to_owned())]
        );
    }
}

#[test]
fn a_socket_that_fails_before_opening_is_a_connection_failure() {
    let mut d = Driver::new(Options::default());
    d.connect();
    assert_eq!(
        states(&d.closed(1006)),
        vec![(State::Reconnecting, 1006, "connection failed".to_owned())]
    );
}

#[test]
fn a_failing_get_token_says_why_with_its_message() {
    let mut d = Driver::with(Options::default(), None, true, 1);
    d.connect();
    d.core.token_fetched(Err("backend down".into()), d.now);
    assert_eq!(
        states(&d.actions()),
        vec![(State::Reconnecting, 601, "backend down".to_owned())]
    );
}

#[test]
fn close_is_told_before_the_final_close_event() {
    let mut d = Driver::open(Options::default());
    d.core.close(d.now);
    assert_eq!(
        all_events(&d.actions()),
        vec![
            state(State::Closed, 1000, "client closed"),
            Event::Close {
                code: 1000,
                reason: "client closed".into()
            }
        ]
    );
}

#[test]
fn a_do_not_retry_closes_with_the_error_then_the_state_then_close() {
    let mut d = Driver::open(Options::default());
    d.frame(disconnect(4003, Reconnect::DoNotRetry));
    let all = all_events(&d.closed(4003));
    assert!(matches!(all[0], Event::Error { code: 603, .. }));
    assert_eq!(all[1], state(State::Closed, 4003, "bye"));
    assert!(matches!(all[2], Event::Close { code: 4003, .. }));
    assert_eq!(all.len(), 3);
}

/// A small deterministic PRNG for the walk below.
struct Walk(u64);

impl Walk {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Feed random inputs (socket events, server frames, time, the app's calls, probe and
/// token answers) and check after each that the `State` events are exactly the changes of
/// `state()`, and that `Open` and `Close` each follow their `State` at once.
#[test]
fn every_change_of_state_is_told_once_whatever_happens() {
    for seed in 1..=400u64 {
        let options = Options {
            max_attempts: (seed % 3 == 0).then_some(5),
            ..Options::default()
        };
        let mut d = Driver::with(options, Some("t"), seed % 2 == 0, seed);
        let mut walk = Walk(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut before = d.core.state();
        for step in 0..300 {
            let actions = match (step, walk.next(14)) {
                (0, _) => d.connect(),
                (_, 0) => {
                    d.core.socket_opened(d.now);
                    d.actions()
                }
                (_, 1) => d.frame(welcome()),
                (_, 2) => d.closed(1006),
                (_, 3) => d.closed(4002),
                (_, 4) if walk.next(10) == 0 => d.frame(disconnect(4003, Reconnect::DoNotRetry)),
                (_, 5) => d.frame(disconnect(4005, Reconnect::RetryAfter(1000))),
                (_, 6) => d.advance(walk.next(20_000)),
                (_, 7) => {
                    d.core.wake(d.now);
                    d.actions()
                }
                (_, 8) => {
                    d.core.reconnect(d.now);
                    d.actions()
                }
                (_, 9) => {
                    let outcome = [Probe::Accepted, Probe::Refused, Probe::Unreachable]
                        [walk.next(3) as usize];
                    d.core.auth_probed(outcome, d.now);
                    d.actions()
                }
                (_, 10) => {
                    let result = if walk.next(2) == 0 {
                        Ok("t".to_owned())
                    } else {
                        Err("no".to_owned())
                    };
                    d.core.token_fetched(result, d.now);
                    d.actions()
                }
                (_, 11) if walk.next(20) == 0 => {
                    d.core.close(d.now);
                    d.actions()
                }
                (_, 12) => {
                    d.join("lobby");
                    d.publish("lobby", "x");
                    d.actions()
                }
                _ => d.advance(1),
            };
            let after = d.core.state();
            let mut at = before;
            for (s, _, _) in states(&actions) {
                assert_ne!(
                    s, at,
                    "seed {seed} step {step}: a State that changed nothing"
                );
                at = s;
            }
            assert_eq!(at, after, "seed {seed} step {step}: {actions:?}");
            let all = all_events(&actions);
            for (i, e) in all.iter().enumerate() {
                let told = |s: State| {
                    i > 0 && matches!(&all[i - 1], Event::State { state, .. } if *state == s)
                };
                match e {
                    Event::Open { .. } => assert!(told(State::Open), "seed {seed}: {all:?}"),
                    Event::Close { .. } => assert!(told(State::Closed), "seed {seed}: {all:?}"),
                    _ => {}
                }
            }
            before = after;
        }
    }
}
