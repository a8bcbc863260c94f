//! `close()`: the socket closes with 1000, pending publishes reject with `Closed`, the app
//! hears `Close` once, and after that no input makes the core do anything.

use crate::common::*;
use chorus_client::PublishError;
use chorus_client::core::{Action, Event, Options, Probe, State};
use chorus_protocol::{Reconnect, Recovery, ServerMessage};

fn close_event() -> Event {
    Event::Close {
        code: 1000,
        reason: "client closed".into(),
    }
}

/// Throw every input at a closed core; none may produce an action or a deadline.
fn assert_inert(d: &mut Driver) {
    assert_eq!(d.core.state(), State::Closed);
    assert_eq!(d.core.next_deadline(), None);
    let now = d.now + 1;
    let core = &mut d.core;
    core.connect(now);
    core.join("other", None, now).unwrap();
    core.leave("lobby", now);
    core.typing("lobby", now);
    core.token_fetched(Ok("t".into()), now);
    core.auth_probed(Probe::Refused, now);
    core.auth_probed(Probe::Accepted, now);
    core.wake(now);
    core.socket_opened(now);
    let frame = welcome().encode(usize::MAX).unwrap();
    core.socket_frame(&frame, now);
    core.socket_frame(&[0xff, 0xff], now);
    core.socket_closed(1006, now);
    core.close(now);
    for t in [now, now + 60_000, now + 3_600_000] {
        core.tick(t);
    }
    assert_eq!(d.actions(), vec![]);
    assert_eq!(d.core.next_deadline(), None);
}

#[test]
fn close_rejects_pending_publishes_and_emits_close_once() {
    let mut d = Driver::new(Options::default());
    d.join("lobby");
    d.connect();
    d.welcome(welcome());
    d.frame(joined("lobby", 1, 0, Recovery::NotRequested));
    let sent_id = d.publish("lobby", "in flight");
    d.core.typing("lobby", d.now);
    d.frame(typing("lobby", "bob", true));
    d.actions();
    d.core.close(d.now);
    let actions = d.actions();
    assert_eq!(
        actions,
        vec![
            Action::Close {
                code: 1000,
                reason: "client closed".into()
            },
            Action::Settle {
                id: sent_id,
                result: Err(PublishError::Closed)
            },
            Action::Emit(Event::State {
                state: State::Closed,
                code: 1000,
                reason: "client closed".into()
            }),
            Action::Emit(close_event()),
        ]
    );
    assert_inert(&mut d);
}

#[test]
fn close_while_waiting_to_reconnect_cancels_the_attempt() {
    let mut d = Driver::open(Options::default());
    d.join("lobby");
    d.frame(joined("lobby", 1, 0, Recovery::NotRequested));
    let id = d.publish("lobby", "x");
    d.closed(1006);
    assert_eq!(d.core.state(), State::Reconnecting);
    d.core.close(d.now);
    let actions = d.actions();
    assert_eq!(settles(&actions), vec![(id, Err(PublishError::Closed))]);
    assert_eq!(events(&actions), vec![close_event()]);
    assert_inert(&mut d);
}

#[test]
fn close_before_connect_and_while_fetching_a_token() {
    let mut d = Driver::new(Options::default());
    d.core.close(d.now);
    assert_eq!(events(&d.actions()), vec![close_event()]);
    assert_inert(&mut d);

    let mut d = Driver::with(Options::default(), None, true, 1);
    d.connect();
    d.core.close(d.now);
    assert_eq!(events(&d.actions()), vec![close_event()]);
    assert_inert(&mut d);
}

#[test]
fn a_publish_after_close_is_rejected_at_once() {
    let mut d = Driver::open(Options::default());
    d.core.close(d.now);
    d.actions();
    let id = d.publish("lobby", "late");
    assert_eq!(
        d.actions(),
        vec![Action::Settle {
            id,
            result: Err(PublishError::Closed)
        }]
    );
    assert_eq!(d.core.next_deadline(), None);
}

#[test]
fn closed_for_good_by_the_server_is_inert_too() {
    let mut d = Driver::open(Options::default());
    d.frame(ServerMessage::Disconnect {
        code: 4003,
        reason: "policy_violation".into(),
        reconnect: Reconnect::DoNotRetry,
    });
    d.closed(4003);
    assert_inert(&mut d);
}
