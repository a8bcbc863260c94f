//! Option values at the ends of their range do not overflow deadline arithmetic.

use std::time::Duration;

use crate::common::*;
use chorus_client::core::{Options, Probe, State};
use chorus_protocol::Recovery;

#[test]
fn durations_at_their_maximum_do_not_overflow() {
    let huge = Duration::MAX;
    let mut d = Driver::new(Options {
        initial_backoff: huge,
        max_backoff: huge,
        stable_after: huge,
        connect_timeout: huge,
        pong_timeout: huge,
        publish_timeout: huge,
        typing_idle: huge,
        ..Options::default()
    });
    d.join("lobby");
    d.publish("lobby", "queued");
    d.connect();
    d.welcome(welcome());
    d.frame(joined("lobby", 1, 0, Recovery::NotRequested));
    d.core.typing("lobby", d.now);
    d.core.wake(d.now);
    // Pings answered: the server's own heartbeat timeout (in the welcome) bounds the wait
    // for a pong, whatever `pong_timeout` says.
    d.live(3_600_000);
    assert_eq!(d.core.state(), State::Open);
    d.closed(1006);
    assert_eq!(d.core.state(), State::Reconnecting);
    assert!(d.core.next_deadline().is_some());
    d.core.wake(d.now);
    assert_eq!(opens(&d.actions()).len(), 1);
}

#[test]
fn zero_durations_and_queue_limits_work() {
    let zero = Duration::ZERO;
    let mut d = Driver::new(Options {
        initial_backoff: zero,
        max_backoff: zero,
        queue_max_messages: 0,
        ..Options::default()
    });
    d.join("lobby");
    let id = d.publish("lobby", "x");
    assert_eq!(
        settles(&d.actions()),
        vec![(id, Err(chorus_client::PublishError::QueueFull))]
    );
    d.connect();
    assert_eq!(reconnecting(&d.closed(1006)), vec![(1, 0)]);
    // The socket failed before opening: the next attempt, at once, asks first.
    assert_eq!(probes(&d.advance(0)), vec!["t0".to_owned()]);
    d.core.auth_probed(Probe::Accepted, d.now);
    assert_eq!(opens(&d.actions()), vec!["t0".to_owned()]);
}
