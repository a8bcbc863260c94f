//! Every request that names a room is answered with `Error` 102 (`invalid_room`) when the
//! name breaks the naming rules, before any other check (joined, rate limits, namespace):
//! `Leave` is not answered `Left`, `Publish` and typing not `not_joined`. The error carries
//! the request's id when it has one, and the connection stays usable.

use crate::common::{Client, TestServer};
use chorus_protocol::{Body, ClientMessage, ErrorCode, ServerMessage};

/// Names breaking the rules: empty, too long, a character not allowed, an empty namespace.
fn invalid_names() -> Vec<String> {
    vec![
        String::new(),
        "a".repeat(129),
        "a!b".to_owned(),
        ":lobby".to_owned(),
    ]
}

/// Every request naming `room`, with the id its error must carry.
fn requests(room: &str) -> Vec<(ClientMessage, Option<u64>)> {
    let room = room.to_owned();
    vec![
        (
            ClientMessage::Join {
                room: room.clone(),
                since: None,
            },
            None,
        ),
        (ClientMessage::Leave { room: room.clone() }, None),
        (
            ClientMessage::Publish {
                room: room.clone(),
                id: 41,
                body: Body::Text("hi".into()),
            },
            Some(41),
        ),
        (ClientMessage::TypingStarted { room: room.clone() }, None),
        (ClientMessage::TypingStopped { room: room.clone() }, None),
        (
            ClientMessage::History {
                request: 42,
                room,
                before: None,
                limit: 10,
            },
            Some(42),
        ),
    ]
}

/// Send every request naming `room` and return those whose answer (the very next message)
/// is not `Error` 102 for `room` carrying the request's id, with what came instead.
async fn wrong_answers(client: &mut Client, room: &str) -> Vec<(ClientMessage, ServerMessage)> {
    let mut wrong = Vec::new();
    for (request, id) in requests(room) {
        client.send(request.clone()).await;
        let answer = client.recv().await;
        let right = matches!(
            &answer,
            ServerMessage::Error { code, id: got_id, room: Some(got_room), .. }
                if *code == ErrorCode::InvalidRoom.as_u16() && *got_id == id && got_room == room
        );
        if !right {
            wrong.push((request, answer));
        }
    }
    wrong
}

#[tokio::test]
async fn every_request_naming_an_invalid_room_gets_invalid_room() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let mut wrong = Vec::new();
    for name in invalid_names() {
        wrong.extend(wrong_answers(&mut alice, &name).await);
    }
    assert!(wrong.is_empty(), "not answered invalid_room: {wrong:#?}");
    // Still usable: a valid room can be joined and used.
    alice.join("lobby").await;
    alice.publish("lobby", 7, "still here").await;
    alice.ack(7).await;
}

#[tokio::test]
async fn an_invalid_room_is_refused_even_while_in_rooms() {
    // A joined connection's checks (joined rooms, namespace policy) come after the name's.
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    alice.join("lobby").await;
    let wrong = wrong_answers(&mut alice, "lobby!").await;
    assert!(wrong.is_empty(), "not answered invalid_room: {wrong:#?}");
    alice.ping(9).await;
}
