//! The offline queue: limits by count and bytes, the body limit, the publish timeout, and
//! the flush in order after the welcome and the rejoins.

use crate::common::*;
use chorus_client::core::Options;
use chorus_client::{Ack, PublishError};
use chorus_protocol::{ClientMessage, Limits, ServerMessage, validate};

fn offline(options: Options) -> Driver {
    let mut d = Driver::new(options);
    d.join("lobby");
    d
}

#[test]
fn a_body_over_the_protocol_default_is_too_large_before_any_welcome() {
    let mut d = offline(Options::default());
    let max = validate::max_body(chorus_protocol::DEFAULT_MAX_FRAME);
    let ok = d.core.publish(
        "lobby",
        chorus_protocol::Body::Binary(vec![0; max]),
        None,
        d.now,
    );
    let big = d.core.publish(
        "lobby",
        chorus_protocol::Body::Binary(vec![0; max + 1]),
        None,
        d.now,
    );
    assert_eq!(
        settles(&d.actions()),
        vec![(big, Err(PublishError::TooLarge { size: max + 1, max }))]
    );
    assert_ne!(ok, big);
}

#[test]
fn the_welcomes_body_limit_replaces_the_default() {
    let mut d = offline(Options::default());
    d.connect();
    d.welcome(welcome_with(
        25_000,
        Limits {
            max_body: 10,
            ..limits()
        },
    ));
    d.publish("lobby", "0123456789");
    let id = d.publish("lobby", "0123456789a");
    assert_eq!(
        settles(&d.actions()),
        vec![(id, Err(PublishError::TooLarge { size: 11, max: 10 }))]
    );
}

#[test]
fn the_queue_is_full_by_count() {
    let mut d = offline(Options {
        queue_max_messages: 3,
        ..Options::default()
    });
    for _ in 0..3 {
        d.publish("lobby", "x");
    }
    let id = d.publish("lobby", "x");
    assert_eq!(
        settles(&d.actions()),
        vec![(id, Err(PublishError::QueueFull))]
    );
}

#[test]
fn the_queue_is_full_by_bytes() {
    let mut d = offline(Options {
        queue_max_bytes: 10,
        ..Options::default()
    });
    d.publish("lobby", "123456");
    d.publish("lobby", "1234");
    let id = d.publish("lobby", "1");
    assert_eq!(
        settles(&d.actions()),
        vec![(id, Err(PublishError::QueueFull))]
    );
}

#[test]
fn acks_make_room_in_the_queue() {
    let mut d = offline(Options {
        queue_max_messages: 1,
        ..Options::default()
    });
    d.connect();
    d.welcome(welcome());
    let first = d.publish("lobby", "a");
    d.actions();
    let second = d.publish("lobby", "b");
    assert_eq!(
        settles(&d.actions()),
        vec![(second, Err(PublishError::QueueFull))]
    );
    d.frame(ServerMessage::PublishAck {
        room: "lobby".into(),
        id: first,
        seq: 1,
    });
    let third = d.publish("lobby", "c");
    assert_eq!(publish_ids(&sent(&d.actions())), vec![third]);
}

#[test]
fn a_publish_without_an_ack_times_out_and_is_dropped() {
    let mut d = offline(Options::default());
    let id = d.publish("lobby", "a");
    assert_eq!(d.core.next_deadline(), Some(d.now + 15_000));
    assert!(settles(&d.advance(14_999)).is_empty());
    assert_eq!(
        settles(&d.advance(1)),
        vec![(id, Err(PublishError::TimedOut))]
    );
    // Dropped: not sent when the connection comes.
    d.connect();
    let out = sent(&d.welcome(welcome()));
    assert!(publish_ids(&out).is_empty());
}

#[test]
fn offline_publishes_go_out_in_order_after_the_welcome_and_the_rejoins() {
    let mut d = offline(Options::default());
    d.join("news");
    let ids = [
        d.publish("lobby", "1"),
        d.publish("news", "2"),
        d.publish("lobby", "3"),
    ];
    assert!(sent(&d.actions()).is_empty());
    d.connect();
    // Nothing before the welcome, even once the socket is open.
    d.core.socket_opened(d.now);
    assert!(sent(&d.actions()).is_empty());
    let out = sent(&d.frame(welcome()));
    assert_eq!(
        out,
        vec![
            ClientMessage::Join {
                room: "lobby".into(),
                since: None
            },
            ClientMessage::Join {
                room: "news".into(),
                since: None
            },
            ClientMessage::Publish {
                room: "lobby".into(),
                id: ids[0],
                body: text("1")
            },
            ClientMessage::Publish {
                room: "news".into(),
                id: ids[1],
                body: text("2")
            },
            ClientMessage::Publish {
                room: "lobby".into(),
                id: ids[2],
                body: text("3")
            },
        ]
    );
    let actions = d.frame(ServerMessage::PublishAck {
        room: "news".into(),
        id: ids[1],
        seq: 4,
    });
    assert_eq!(
        settles(&actions),
        vec![(
            ids[1],
            Ok(Ack {
                room: "news".into(),
                id: ids[1],
                seq: 4
            })
        )]
    );
}

#[test]
fn publishing_to_a_room_not_joined_or_invalid_is_rejected_at_once() {
    let mut d = offline(Options::default());
    let unjoined = d.publish("elsewhere", "x");
    let invalid = d.publish("bad room", "x");
    let s = settles(&d.actions());
    assert!(matches!(s[0], (id, Err(PublishError::Rejected { code: 105, .. })) if id == unjoined));
    assert!(matches!(s[1], (id, Err(PublishError::Rejected { code: 102, .. })) if id == invalid));
}

#[test]
fn leaving_a_room_rejects_its_queued_publishes() {
    let mut d = offline(Options::default());
    let id = d.publish("lobby", "x");
    d.core.leave("lobby", d.now);
    let s = settles(&d.actions());
    assert!(matches!(s[..], [(i, Err(PublishError::Rejected { code: 105, .. }))] if i == id));
}
