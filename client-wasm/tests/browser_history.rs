//! History against a real server: a client that never saw the messages pages back through
//! exactly what was published, in order; a request made before the connection opens, or
//! whose answer is lost with a connection, is answered once a connection is open.

#![cfg(target_arch = "wasm32")]

mod browser_common;

use browser_common::{
    RECONNECT_WAIT, TestServer, WAIT, connect, fast_options, join_room, next_event_matching,
    open_as, wait_open, within,
};
use chorus_client::{Body, Event, HistoryMessage, HistoryQuery, State};
use futures_util::FutureExt;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const ROOM: &str = "chat:history";

fn texts(messages: &[HistoryMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|m| match &m.body {
            Body::Text(text) => text.clone(),
            Body::Binary(bytes) => format!("{bytes:?}"),
        })
        .collect()
}

#[wasm_bindgen_test]
async fn a_client_that_comes_later_pages_back_through_exactly_the_published_history() {
    const PUBLISHED: u64 = 25;
    const LIMIT: u32 = 10;
    let server = TestServer::start(&[]).await;
    let (alice, mut alice_events) = open_as(&server, "alice", fast_options()).await;
    join_room(&alice, &mut alice_events, ROOM).await;
    let mut acks = Vec::new();
    for n in 1..=PUBLISHED {
        let ack = within(WAIT, "an ack", alice.publish(ROOM, format!("message {n}")))
            .await
            .expect("acknowledged");
        acks.push(ack);
    }

    // Bob never joins the room: reading its history does not need it.
    let (bob, _bob_events) = open_as(&server, "bob", fast_options()).await;
    let newest = HistoryQuery {
        before: None,
        limit: LIMIT,
    };
    let mut page = within(WAIT, "the newest page", bob.history(ROOM, newest))
        .await
        .expect("a page");
    assert_eq!(page.room, ROOM);
    assert_eq!(page.position.seq, PUBLISHED, "the room's position");
    let epoch = page.position.epoch;
    let mut pages = vec![page.messages.clone()];
    while let Some(before) = page.older() {
        assert!(pages.len() < 10, "paging does not end: {pages:?}");
        let query = HistoryQuery {
            before: Some(before),
            limit: LIMIT,
        };
        page = within(WAIT, "an older page", bob.history(ROOM, query))
            .await
            .expect("a page");
        assert_eq!(page.position.epoch, epoch, "one history throughout");
        pages.push(page.messages.clone());
    }
    assert!(!page.more, "the last page says there is no more");

    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(
        sizes,
        [10, 10, 5],
        "newest first, each page up to the limit"
    );
    let all: Vec<HistoryMessage> = pages.into_iter().rev().flatten().collect();
    let seqs: Vec<u64> = all.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=PUBLISHED).collect::<Vec<_>>(),
        "in order, no gap"
    );
    let expected: Vec<String> = (1..=PUBLISHED).map(|n| format!("message {n}")).collect();
    assert_eq!(texts(&all), expected);
    for (message, ack) in all.iter().zip(&acks) {
        assert_eq!(
            (message.id, message.seq, message.sender.as_str()),
            (ack.id, ack.seq, "alice")
        );
    }
}

#[wasm_bindgen_test]
async fn a_history_request_made_before_the_connection_opens_is_answered_after_it_opens() {
    let server = TestServer::start(&[]).await;
    for text in ["one", "two", "three"] {
        server.publish(ROOM, text).await;
    }
    let (bob, mut events) = connect(&server.ws, server.token("bob").await, fast_options());
    assert_eq!(bob.state(), State::Connecting);
    let mut request = bob.history(ROOM, HistoryQuery::default());
    assert!(
        (&mut request).now_or_never().is_none(),
        "waits for the connection"
    );
    wait_open(&mut events, "bob", WAIT).await;
    let page = within(WAIT, "the page", request).await.expect("a page");
    assert_eq!(texts(&page.messages), ["one", "two", "three"]);
    assert_eq!(page.position.seq, 3);
    assert!(!page.more);
}

#[wasm_bindgen_test]
async fn a_history_request_whose_answer_is_lost_with_the_connection_is_answered_on_the_next() {
    let server = TestServer::start(&[]).await;
    server.publish(ROOM, "kept").await;
    let link = server.link().await;
    let (bob, mut events) = connect(&link.ws, server.token("bob").await, fast_options());
    wait_open(&mut events, "bob", WAIT).await;

    // The request goes out on this connection, but the server answers nothing while frozen,
    // and the connection is gone before it thaws.
    server.freeze().await;
    let mut request = bob.history(ROOM, HistoryQuery::default());
    link.cut().await;
    next_event_matching(&mut events, "Reconnecting", WAIT, |e| {
        matches!(e, Event::Reconnecting { .. })
    })
    .await;
    assert!((&mut request).now_or_never().is_none(), "still pending");
    server.thaw().await;
    link.restore().await;
    wait_open(&mut events, "bob", RECONNECT_WAIT).await;

    let page = within(WAIT, "the page", request).await.expect("a page");
    assert_eq!(texts(&page.messages), ["kept"]);
}
