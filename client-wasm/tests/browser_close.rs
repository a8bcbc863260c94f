//! After `close()` nothing more happens: no event, no reconnect, no timer; a publish
//! fails with `Closed`.

#![cfg(target_arch = "wasm32")]

mod browser_common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use browser_common::{
    RECONNECT_WAIT, TestServer, WAIT, drain_ready, fast_options, join_room, next_event_matching,
    open_as, wait_joined, wait_open, wait_text, within,
};
use chorus_client::{Event, Options, PublishError, State};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const ROOM: &str = "chat:close";

#[wasm_bindgen_test]
async fn after_close_no_event_arrives_no_reconnect_happens_and_publish_fails_with_closed() {
    // A short heartbeat: a ping or pong timer left behind by close() would fire (and a
    // missed pong would say Reconnecting) well within the test.
    let server =
        TestServer::start(&["--heartbeat-interval", "200ms", "--heartbeat-timeout", "2s"]).await;
    let options = Options {
        pong_timeout: Duration::from_millis(300),
        ..fast_options()
    };
    let (alice, mut alice_events) = open_as(&server, "alice", options).await;
    let (bob, mut bob_events) = open_as(&server, "bob", fast_options()).await;
    join_room(&alice, &mut alice_events, ROOM).await;
    join_room(&bob, &mut bob_events, ROOM).await;
    let heard = Rc::new(RefCell::new(Vec::new()));
    let _subscription = alice.on_event({
        let heard = heard.clone();
        move |event| heard.borrow_mut().push(event.clone())
    });

    alice.close();
    assert_eq!(alice.state(), State::Closed);
    assert!(
        matches!(heard.borrow().last(), Some(Event::Close { .. })),
        "the callback heard the Close before close() returned: {:?}",
        heard.borrow()
    );
    let heard_at_close = heard.borrow().len();
    let close = next_event_matching(&mut alice_events, "Close", WAIT, |e| {
        matches!(e, Event::Close { .. })
    })
    .await;
    assert!(
        matches!(close, Event::Close { code: 1000, .. }),
        "{close:?}"
    );

    // Things that would make an open client speak: a message in its room, a restart of
    // the server, and the time for a reconnect; Bob's fence shows they all happened.
    within(WAIT, "an ack", bob.publish(ROOM, "after alice left"))
        .await
        .expect("acked");
    server.restart().await;
    wait_open(&mut bob_events, "bob", RECONNECT_WAIT).await;
    wait_joined(&mut bob_events, ROOM, WAIT).await;
    within(WAIT, "an ack", bob.publish(ROOM, "fence"))
        .await
        .expect("acked");
    wait_text(&mut bob_events, ROOM, "fence", WAIT).await;

    let (late, ended) = drain_ready(&mut alice_events);
    assert!(late.is_empty(), "events after the close: {late:?}");
    assert!(ended, "the event stream ended with the close");
    assert_eq!(
        heard.borrow()[heard_at_close..],
        [],
        "the callback heard nothing after the close"
    );
    assert_eq!(
        server.metric("chorus_connections").await,
        1.0,
        "only Bob reconnected"
    );
    let publish = within(WAIT, "the publish to fail", alice.publish(ROOM, "too late")).await;
    assert_eq!(publish, Err(PublishError::Closed));
}
