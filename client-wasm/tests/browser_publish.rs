//! Two clients in a room: a publish is acknowledged with its sequence number and reaches
//! both members, the sender included.

#![cfg(target_arch = "wasm32")]

mod browser_common;

use browser_common::{
    TestServer, WAIT, fast_options, join_room, next_event_matching, open_as, within,
};
use chorus_client::{Ack, Body, Event};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const ROOM: &str = "chat:publish";

fn message_with_seq(seq: u64) -> impl FnMut(&Event) -> bool {
    move |e| matches!(e, Event::Message { room, seq: s, .. } if room == ROOM && *s == seq)
}

#[wasm_bindgen_test]
async fn members_of_a_room_get_acks_for_their_publishes_and_receive_each_others_messages() {
    let server = TestServer::start(&[]).await;
    let (alice, mut alice_events) = open_as(&server, "alice", fast_options()).await;
    let (bob, mut bob_events) = open_as(&server, "bob", fast_options()).await;
    join_room(&alice, &mut alice_events, ROOM).await;
    join_room(&bob, &mut bob_events, ROOM).await;

    let ack = within(WAIT, "alice's ack", alice.publish(ROOM, "hello bob"))
        .await
        .expect("acknowledged");
    assert_eq!(ack.room, ROOM);
    assert_eq!(ack.seq, 1);
    for (who, events) in [("bob", &mut bob_events), ("alice", &mut alice_events)] {
        let message = next_event_matching(events, "message 1", WAIT, message_with_seq(1)).await;
        let Event::Message {
            id, sender, body, ..
        } = message
        else {
            unreachable!()
        };
        assert_eq!((id, sender.as_str()), (ack.id, "alice"), "as {who} saw it");
        assert_eq!(body, Body::Text("hello bob".into()), "as {who} saw it");
    }

    let reply: Ack = within(WAIT, "bob's ack", bob.publish(ROOM, vec![1u8, 2, 3]))
        .await
        .expect("acknowledged");
    assert_eq!(reply.seq, 2);
    let message =
        next_event_matching(&mut alice_events, "message 2", WAIT, message_with_seq(2)).await;
    let Event::Message {
        id, sender, body, ..
    } = message
    else {
        unreachable!()
    };
    assert_eq!((id, sender.as_str()), (reply.id, "bob"));
    assert_eq!(body, Body::Binary(vec![1, 2, 3]));
}
