//! `Client::reconnect` on an open connection: the socket closes with "reconnect requested",
//! a new one opens at once, and the room is rejoined without missing anything.

#![cfg(target_arch = "wasm32")]

mod browser_common;

use browser_common::{TestServer, WAIT, fast_options, join_room, next_event_matching, open_as};
use chorus_client::{Event, State};
use chorus_protocol::Recovery;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const ROOM: &str = "chat:reconnect-now";

#[wasm_bindgen_test]
async fn reconnect_reopens_at_once_and_rejoins_recovering() {
    let server = TestServer::start(&[]).await;
    let (alice, mut events) = open_as(&server, "alice", fast_options()).await;
    join_room(&alice, &mut events, ROOM).await;
    server.publish(ROOM, "before").await;

    alice.reconnect();
    assert_eq!(alice.state(), State::Connecting);
    let mut seen = Vec::new();
    next_event_matching(&mut events, "the rejoin", WAIT, |e| {
        seen.push(e.clone());
        matches!(e, Event::Joined { room, .. } if room == ROOM)
    })
    .await;
    let requested = |e: &Event| match e {
        Event::State {
            state: State::Connecting,
            code,
            reason,
        }
        | Event::Reconnecting { code, reason, .. } => {
            *code == 1000 && reason == "reconnect requested"
        }
        _ => false,
    };
    assert_eq!(seen.iter().filter(|e| requested(e)).count(), 2, "{seen:#?}");
    assert!(
        seen.iter()
            .any(|e| matches!(e, Event::Reconnecting { delay_ms: 0, .. })),
        "{seen:#?}"
    );
    let Some(Event::Joined { recovery, .. }) = seen.last() else {
        unreachable!()
    };
    assert_eq!(*recovery, Recovery::Recovered);
    assert!(seen.iter().any(|e| matches!(e, Event::Open { .. })));
    assert_eq!(alice.state(), State::Open);
}
