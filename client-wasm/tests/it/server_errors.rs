//! Server frames that report problems: errors not tied to a publish or a join, and frames
//! that do not decode.

use crate::common::*;
use chorus_client::core::{Event, Options, State};
use chorus_protocol::ServerMessage;

#[test]
fn an_undecodable_frame_is_reported_as_error_100_and_ignored() {
    let mut d = Driver::open(Options::default());
    d.core.socket_frame(&[0xff, 0xff, 0xff], d.now);
    let actions = d.actions();
    assert!(matches!(
        &events(&actions)[..],
        [Event::Error {
            code: 100,
            room: None,
            ..
        }]
    ));
    assert_eq!(d.core.state(), State::Open);
    // Trailing bytes after a valid frame are garbage too.
    let mut frame = ServerMessage::Pong { nonce: 1 }.encode(usize::MAX).unwrap();
    frame.push(0);
    d.core.socket_frame(&frame, d.now);
    assert!(matches!(
        events(&d.actions())[..],
        [Event::Error { code: 100, .. }]
    ));
}

#[test]
fn an_error_without_id_or_pending_join_is_passed_to_the_app() {
    let mut d = Driver::open(Options::default());
    let actions = d.frame(ServerMessage::Error {
        code: 101,
        message: "text frames are not supported".into(),
        id: None,
        room: None,
    });
    assert_eq!(
        events(&actions),
        vec![Event::Error {
            code: 101,
            message: "text frames are not supported".into(),
            room: None
        }]
    );
}

#[test]
fn an_error_for_an_unknown_publish_id_is_passed_to_the_app() {
    let mut d = Driver::open(Options::default());
    let actions = d.frame(ServerMessage::Error {
        code: 105,
        message: "not joined".into(),
        id: Some(12345),
        room: Some("lobby".into()),
    });
    assert!(settles(&actions).is_empty());
    assert!(matches!(
        &events(&actions)[..],
        [Event::Error { code: 105, .. }]
    ));
}
