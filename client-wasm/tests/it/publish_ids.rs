//! `Core::publish` with the app's own id (an idempotency key, at most 2^53 - 1), and
//! `Core::pending`.

use crate::common::*;
use chorus_client::core::{ClientErrorCode, Options};
use chorus_client::{Ack, PublishError};
use chorus_protocol::{Recovery, ServerMessage};

const MAX_SAFE: u64 = (1 << 53) - 1;

fn in_lobby() -> Driver {
    let mut d = Driver::new(Options::default());
    d.join("lobby");
    d.connect();
    d.welcome(welcome());
    d.frame(joined("lobby", 1, 0, Recovery::NotRequested));
    d
}

#[test]
fn the_apps_id_goes_on_the_wire_and_settles_the_publish() {
    let mut d = in_lobby();
    for id in [0, 7, MAX_SAFE] {
        let returned = d.core.publish("lobby", text("x"), Some(id), d.now);
        assert_eq!(returned, id);
        assert_eq!(publish_ids(&sent(&d.actions())), vec![id]);
        let actions = d.frame(ServerMessage::PublishAck {
            room: "lobby".into(),
            id,
            seq: 1,
        });
        assert_eq!(
            settles(&actions),
            vec![(
                id,
                Ok(Ack {
                    room: "lobby".into(),
                    id,
                    seq: 1
                })
            )]
        );
    }
}

#[test]
fn an_id_over_2_pow_53_minus_1_is_refused_at_once_as_an_invalid_argument() {
    let mut d = in_lobby();
    for id in [MAX_SAFE + 1, u64::MAX] {
        let returned = d.core.publish("lobby", text("x"), Some(id), d.now);
        assert_eq!(returned, id);
        let actions = d.actions();
        assert!(sent(&actions).is_empty());
        match &settles(&actions)[..] {
            [(settled, Err(error @ PublishError::Rejected { .. }))] => {
                assert_eq!(*settled, id);
                assert_eq!(error.code(), ClientErrorCode::InvalidArgument as u16);
                assert_eq!(error.code(), 602);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(d.core.pending(), 0);
}

#[test]
fn a_publish_with_the_same_id_after_a_reload_goes_out_with_that_id_again() {
    // The page published with id 42 and was reloaded before the ack; the new page's core
    // publishes the same message with the same id, and the server (deduplicating by user
    // and id) delivers it once.
    let mut first = in_lobby();
    first
        .core
        .publish("lobby", text("hello"), Some(42), first.now);
    assert_eq!(publish_ids(&sent(&first.actions())), vec![42]);
    let mut reloaded = Driver::with(Options::default(), Some("t0"), true, 99);
    reloaded.join("lobby");
    reloaded
        .core
        .publish("lobby", text("hello"), Some(42), reloaded.now);
    reloaded.connect();
    let mut actions = reloaded.welcome(welcome());
    actions.extend(reloaded.frame(joined("lobby", 1, 0, Recovery::NotRequested)));
    assert_eq!(publish_ids(&sent(&actions)), vec![42]);
}

#[test]
fn without_an_id_the_core_picks_fresh_ones() {
    let mut d = in_lobby();
    let a = d.core.publish("lobby", text("a"), None, d.now);
    let b = d.core.publish("lobby", text("b"), None, d.now);
    assert_ne!(a, b);
    assert!(a <= MAX_SAFE && b <= MAX_SAFE);
}

#[test]
fn pending_counts_publishes_queued_and_awaiting_their_ack() {
    let mut d = Driver::new(Options::default());
    d.join("lobby");
    assert_eq!(d.core.pending(), 0);
    d.publish("lobby", "queued offline");
    d.publish("lobby", "queued too");
    assert_eq!(d.core.pending(), 2);
    // Refused at once: never pending.
    d.publish("not-joined", "x");
    assert_eq!(d.core.pending(), 2);
    d.connect();
    let mut actions = d.welcome(welcome());
    actions.extend(d.frame(joined("lobby", 1, 0, Recovery::NotRequested)));
    let ids = publish_ids(&sent(&actions));
    assert_eq!(ids.len(), 2);
    assert_eq!(d.core.pending(), 2, "sent, awaiting the acks");
    d.frame(ServerMessage::PublishAck {
        room: "lobby".into(),
        id: ids[0],
        seq: 1,
    });
    assert_eq!(d.core.pending(), 1);
    d.core.close(d.now);
    assert_eq!(d.core.pending(), 0);
}
