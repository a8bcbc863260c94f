//! Publish outcomes: acks and refusals, resends after a reconnect with the same id, and
//! exactly one settle per id.

use std::collections::HashSet;

use crate::common::*;
use chorus_client::core::Options;
use chorus_client::{Ack, PublishError};
use chorus_protocol::{ClientMessage, Position, Recovery, ServerMessage};

fn ack(room: &str, id: u64, seq: u64) -> Ack {
    Ack {
        room: room.into(),
        id,
        seq,
    }
}

/// Open, in `lobby` at epoch 1, seq 10.
fn open() -> Driver {
    let mut d = Driver::new(Options::default());
    d.join("lobby");
    d.connect();
    d.welcome(welcome());
    d.frame(joined("lobby", 1, 10, Recovery::NotRequested));
    d
}

/// Lose the connection and come back; returns what the new connection sent on its welcome.
fn reconnect(d: &mut Driver) -> Vec<ClientMessage> {
    d.closed(1006);
    d.until_open();
    sent(&d.welcome(welcome()))
}

#[test]
fn an_ack_settles_the_publish_with_its_seq() {
    let mut d = open();
    let id = d.publish("lobby", "hi");
    assert_eq!(publish_ids(&sent(&d.actions())), vec![id]);
    let actions = d.frame(ServerMessage::PublishAck {
        room: "lobby".into(),
        id,
        seq: 11,
    });
    assert_eq!(settles(&actions), vec![(id, Ok(ack("lobby", id, 11)))]);
}

#[test]
fn a_server_error_with_the_id_rejects_the_publish() {
    let mut d = open();
    let id = d.publish("lobby", "hi");
    d.actions();
    let actions = d.frame(ServerMessage::Error {
        code: 106,
        message: "publish rate limit exceeded".into(),
        id: Some(id),
        room: Some("lobby".into()),
    });
    assert_eq!(
        settles(&actions),
        vec![(
            id,
            Err(PublishError::Rejected {
                code: 106,
                message: "publish rate limit exceeded".into()
            })
        )]
    );
    assert!(events(&actions).is_empty());
}

#[test]
fn unacked_publishes_are_sent_again_with_the_same_id_after_a_reconnect() {
    let mut d = open();
    let id = d.publish("lobby", "hi");
    d.actions();
    let out = reconnect(&mut d);
    // Rejoin from the last position, then a ping marking the end of the replay; the
    // publish waits for it, in case the replay shows the server already had it.
    assert_eq!(
        out[0],
        ClientMessage::Join {
            room: "lobby".into(),
            since: Some(Position { epoch: 1, seq: 10 })
        }
    );
    let nonce = ping_nonce(&out).expect("a sync ping");
    assert!(publish_ids(&out).is_empty());
    d.frame(joined("lobby", 1, 10, Recovery::Recovered));
    let out = sent(&d.frame(ServerMessage::Pong { nonce }));
    assert_eq!(
        out,
        vec![ClientMessage::Publish {
            room: "lobby".into(),
            id,
            body: text("hi")
        }]
    );
    // The server's answer to the resend settles it, once.
    let a = d.frame(ServerMessage::PublishAck {
        room: "lobby".into(),
        id,
        seq: 11,
    });
    assert_eq!(settles(&a), vec![(id, Ok(ack("lobby", id, 11)))]);
}

#[test]
fn a_publish_the_replay_shows_delivered_is_settled_and_not_sent_again() {
    let mut d = open();
    let id = d.publish("lobby", "hi");
    d.actions();
    // The server took it, but the ack was lost with the connection.
    let out = reconnect(&mut d);
    let nonce = ping_nonce(&out).unwrap();
    d.frame(joined("lobby", 1, 11, Recovery::Recovered));
    let actions = d.frame(message("lobby", 11, id, "me"));
    assert_eq!(delivered(&actions), vec![11]);
    assert_eq!(settles(&actions), vec![(id, Ok(ack("lobby", id, 11)))]);
    assert!(sent(&d.frame(ServerMessage::Pong { nonce })).is_empty());
}

#[test]
fn each_id_is_settled_exactly_once() {
    let mut d = open();
    let a = d.publish("lobby", "a");
    let b = d.publish("lobby", "b");
    let c = d.publish("lobby", "c");
    let mut all = Vec::new();
    all.extend(d.actions());
    for (id, seq) in [(a, 11), (a, 11)] {
        all.extend(d.frame(ServerMessage::PublishAck {
            room: "lobby".into(),
            id,
            seq,
        }));
    }
    // The echo of an acked publish settles nothing more.
    all.extend(d.frame(message("lobby", 11, a, "me")));
    // b: the echo first, then the ack.
    all.extend(d.frame(message("lobby", 12, b, "me")));
    all.extend(d.frame(ServerMessage::PublishAck {
        room: "lobby".into(),
        id: b,
        seq: 12,
    }));
    // c: times out, then its late ack and error arrive.
    all.extend(d.advance(15_000));
    all.extend(d.frame(ServerMessage::PublishAck {
        room: "lobby".into(),
        id: c,
        seq: 13,
    }));
    let s = settles(&all);
    assert_eq!(
        s,
        vec![
            (a, Ok(ack("lobby", a, 11))),
            (b, Ok(ack("lobby", b, 12))),
            (c, Err(PublishError::TimedOut)),
        ]
    );
}

#[test]
fn another_users_message_with_the_same_id_settles_nothing() {
    let mut d = open();
    let id = d.publish("lobby", "a");
    d.actions();
    assert!(settles(&d.frame(message("lobby", 11, id, "bob"))).is_empty());
}

#[test]
fn resends_keep_their_order_and_new_publishes_wait_behind_them() {
    let mut d = open();
    let a = d.publish("lobby", "a");
    let b = d.publish("lobby", "b");
    d.actions();
    let out = reconnect(&mut d);
    let nonce = ping_nonce(&out).unwrap();
    let c = d.publish("lobby", "c");
    assert!(publish_ids(&sent(&d.actions())).is_empty());
    d.frame(joined("lobby", 1, 10, Recovery::Recovered));
    let out = sent(&d.frame(ServerMessage::Pong { nonce }));
    assert_eq!(publish_ids(&out), vec![a, b, c]);
}

#[test]
fn ids_are_unique_and_safe_in_javascript() {
    let mut seen = HashSet::new();
    for seed in 0..20 {
        let mut d = Driver::with(Options::default(), Some("t"), true, seed);
        d.join("lobby");
        for _ in 0..500 {
            let id = d.publish("lobby", "x");
            assert!(id < 1 << 53);
            assert!(seen.insert(id), "id {id} repeated");
        }
    }
}
