//! Reconnect backoff: exponential bound, full jitter, reset after a stable connection, the
//! server's `RetryAfter` hint, `wake`, and the connect timeout.

use crate::common::*;
use chorus_client::core::{Action, Event, Options, State};
use chorus_protocol::Reconnect;

/// `min(30 s, 500 ms * 2^(k-1))` with the default options.
fn bound(attempt: u32) -> u64 {
    (500u64 << (attempt - 1)).min(30_000)
}

/// The delays of attempts 1..=n for one seed: each connection opens its socket and fails
/// before the welcome.
fn delays(seed: u64, n: u32) -> Vec<(u32, u64)> {
    let mut d = Driver::with(Options::default(), Some("t"), true, seed);
    d.connect();
    let mut out = Vec::new();
    for _ in 0..n {
        d.core.socket_opened(d.now);
        let r = reconnecting(&d.closed(1006));
        assert_eq!(r.len(), 1);
        out.push(r[0]);
        d.until_open();
    }
    out
}

#[test]
fn delays_lie_within_the_exponential_bound_and_spread_over_it() {
    const SEEDS: u64 = 1000;
    const ATTEMPTS: u32 = 8;
    let runs: Vec<Vec<(u32, u64)>> = (0..SEEDS).map(|seed| delays(seed, ATTEMPTS)).collect();
    for k in 1..=ATTEMPTS {
        let bound = bound(k);
        let samples: Vec<u64> = runs
            .iter()
            .map(|run| {
                let (attempt, delay) = run[k as usize - 1];
                assert_eq!(attempt, k);
                delay
            })
            .collect();
        assert!(
            samples.iter().all(|&d| d <= bound),
            "attempt {k} over {bound}"
        );
        let mean = samples.iter().sum::<u64>() as f64 / SEEDS as f64;
        let half = bound as f64 / 2.0;
        assert!(
            (mean - half).abs() < bound as f64 * 0.05,
            "attempt {k}: mean {mean} not near {half}"
        );
        let low = samples.iter().filter(|&&d| d < bound / 4).count();
        let high = samples.iter().filter(|&&d| d > bound * 3 / 4).count();
        // Full jitter: each quarter holds about 250 of 1000.
        assert!(
            (150..350).contains(&low),
            "attempt {k}: {low} in the low quarter"
        );
        assert!(
            (150..350).contains(&high),
            "attempt {k}: {high} in the high quarter"
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_delays() {
    assert_eq!(delays(42, 5), delays(42, 5));
    assert_ne!(delays(42, 5), delays(43, 5));
}

#[test]
fn the_reconnect_waits_its_delay_and_then_opens_with_the_token() {
    let mut d = Driver::open(Options::default());
    let actions = d.closed(1006);
    assert_eq!(d.core.state(), State::Reconnecting);
    let (attempt, delay) = reconnecting(&actions)[0];
    assert_eq!(attempt, 1);
    assert_eq!(d.core.next_deadline(), Some(d.now + delay));
    if delay > 0 {
        assert!(opens(&d.advance(delay - 1)).is_empty());
    }
    assert_eq!(opens(&d.advance(1)), vec!["t0".to_owned()]);
    assert_eq!(d.core.state(), State::Connecting);
}

#[test]
fn a_stable_connection_resets_the_backoff() {
    let mut d = Driver::with(Options::default(), Some("t"), true, 3);
    d.connect();
    // Four failed attempts in a row.
    for expected in 1..=4 {
        d.core.socket_opened(d.now);
        assert_eq!(reconnecting(&d.closed(1006))[0].0, expected);
        d.until_open();
    }
    // Welcomed, and open for the 10 s `stable_after`: the next loss starts over.
    d.welcome(welcome());
    d.advance(10_000);
    let (attempt, delay) = reconnecting(&d.closed(1006))[0];
    assert_eq!(attempt, 1);
    assert!(delay <= 500);
}

#[test]
fn a_short_lived_connection_keeps_the_backoff_growing() {
    let mut d = Driver::with(Options::default(), Some("t"), true, 3);
    d.connect();
    for expected in 1..=3 {
        d.welcome(welcome());
        d.advance(2_000);
        assert_eq!(reconnecting(&d.closed(1006))[0].0, expected);
        d.until_open();
    }
}

#[test]
fn the_servers_retry_after_hint_is_honoured_with_a_little_jitter() {
    for seed in 0..200 {
        let mut d = Driver::with(Options::default(), Some("t"), true, seed);
        d.connect();
        d.welcome(welcome());
        d.frame(disconnect(1001, Reconnect::RetryAfter(20_000)));
        let actions = d.closed(1001);
        let (_, delay) = reconnecting(&actions)[0];
        assert!((20_000..=22_000).contains(&delay), "delay {delay}");
        // `wake` does not cut a delay the server asked for short.
        d.core.wake(d.now);
        assert!(d.actions().is_empty());
        assert_eq!(d.until_open(), delay);
    }
}

#[test]
fn a_retry_after_before_the_welcome_is_honoured_too() {
    // The server refuses a connection over its limits with a Disconnect and no welcome.
    let mut d = Driver::new(Options::default());
    d.connect();
    d.core.socket_opened(d.now);
    d.frame(disconnect(4005, Reconnect::RetryAfter(8_000)));
    let (_, delay) = reconnecting(&d.closed(4005))[0];
    assert!((8_000..=8_800).contains(&delay));
}

#[test]
fn wake_cuts_a_backoff_wait_short() {
    let mut d = Driver::open(Options {
        initial_backoff: std::time::Duration::from_secs(20),
        ..Options::default()
    });
    d.closed(1006);
    assert_eq!(d.core.state(), State::Reconnecting);
    d.core.wake(d.now);
    assert_eq!(opens(&d.actions()), vec!["t0".to_owned()]);
    assert_eq!(d.core.state(), State::Connecting);
}

#[test]
fn a_welcome_that_never_comes_times_out_and_counts_as_a_failure() {
    let mut d = Driver::new(Options::default());
    d.connect();
    d.core.socket_opened(d.now);
    assert_eq!(d.core.next_deadline(), Some(d.now + 10_000));
    assert!(d.advance(9_999).is_empty());
    let actions = d.advance(1);
    assert_eq!(closes(&actions), vec![(4000, "connect timeout".to_owned())]);
    assert_eq!(reconnecting(&actions)[0].0, 1);
    assert_eq!(d.core.state(), State::Reconnecting);
    // A socket that never opens times out the same way (the attempt after it asks about
    // the token first: see `auth_probe.rs`).
    d.until_open();
    let actions = d.advance(10_000);
    assert_eq!(closes(&actions).len(), 1);
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::ProbeAuth { .. }))
    );
    assert_eq!(reconnecting(&actions)[0].0, 2);
}

#[test]
fn open_is_emitted_on_each_welcome() {
    let mut d = Driver::new(Options::default());
    d.connect();
    let actions = d.welcome(welcome());
    assert!(events(&actions).contains(&Event::Open {
        session: "s1".into(),
        user: "me".into()
    }));
    d.closed(1006);
    d.until_open();
    assert!(matches!(
        events(&d.welcome(welcome()))[..],
        [Event::Open { .. }]
    ));
}
