//! A server restart on the same port: the client reconnects by itself and rejoins its
//! rooms, so messages published after the restart reach it without another `join`.

#![cfg(target_arch = "wasm32")]

mod browser_common;

use browser_common::{
    RECONNECT_WAIT, TestServer, WAIT, fast_options, join_room, next_event_matching, open_as,
    wait_joined, wait_open, wait_text,
};
use chorus_client::Event;
use chorus_protocol::Recovery;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const ROOM: &str = "chat:reconnect";

#[wasm_bindgen_test]
async fn after_a_server_restart_the_client_reconnects_and_rejoins_its_rooms() {
    let server = TestServer::start(&[]).await;
    let (alice, mut events) = open_as(&server, "alice", fast_options()).await;
    join_room(&alice, &mut events, ROOM).await;
    server.publish(ROOM, "before the restart").await;
    wait_text(&mut events, ROOM, "before the restart", WAIT).await;

    server.restart().await;
    next_event_matching(&mut events, "Reconnecting", WAIT, |e| {
        matches!(e, Event::Reconnecting { .. })
    })
    .await;
    wait_open(&mut events, "alice", RECONNECT_WAIT).await;
    let rejoined = wait_joined(&mut events, ROOM, WAIT).await;
    let Event::Joined { recovery, .. } = rejoined else {
        unreachable!()
    };
    // The restarted server lost the room's history (a new epoch): the app must hear that
    // it may have missed messages.
    assert_eq!(recovery, Recovery::Missed);

    let seq = server.publish(ROOM, "after the restart").await;
    let message = wait_text(&mut events, ROOM, "after the restart", WAIT).await;
    let Event::Message {
        seq: got, sender, ..
    } = message
    else {
        unreachable!()
    };
    assert_eq!((got, sender.as_str()), (seq, "server"));
}
