//! A member that stops reading is dropped as a slow consumer (4001) once its bounded queue
//! fills, and nobody else notices.

use std::time::Duration;

use crate::common::{Client, TestServer};
use chorus_protocol::{Body, ClientMessage, ServerMessage};

const ROOM: &str = "lobby";
const SLOW_CONSUMERS: &str = r#"chorus_disconnects_total{reason="slow_consumer"}"#;
/// Large bodies fill the stuck socket's buffers quickly.
const BODY: usize = 8 * 1024;
/// The last message's text; readers stop when they see it.
const END: &str = "end";

/// Whether a message a reader may see besides the room's messages: the slow member leaving.
fn is_slow_member_leaving(message: &ServerMessage) -> bool {
    matches!(message, ServerMessage::MemberLeft { user, .. } if user == "carol")
}

/// Read the room's messages until the one with text [`END`]; return their sequences.
async fn read_to_end(client: &mut Client) -> Vec<u64> {
    let mut seqs = Vec::new();
    loop {
        match client.recv().await {
            ServerMessage::Message { seq, body, .. } => {
                seqs.push(seq);
                if body == Body::Text(END.into()) {
                    return seqs;
                }
            }
            other if is_slow_member_leaving(&other) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Publish `body` and wait for its ack, collecting the publisher's copies of the room's
/// messages that arrive meanwhile.
async fn publish_acked(publisher: &mut Client, id: u64, body: Body, seen: &mut Vec<u64>) {
    publisher
        .send(ClientMessage::Publish {
            room: ROOM.into(),
            id,
            body,
        })
        .await;
    loop {
        match publisher.recv().await {
            ServerMessage::PublishAck { id: acked, .. } if acked == id => return,
            ServerMessage::Message { seq, .. } => seen.push(seq),
            other if is_slow_member_leaving(&other) => {}
            other => panic!("publish {id}: unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_member_that_stops_reading_is_dropped_and_the_others_get_everything_in_order() {
    let server = TestServer::start_with(|c| {
        c.queue_max_messages = 8;
        c.queue_max_bytes = c.max_frame;
        // A write stuck on the full socket gives up soon.
        c.write_timeout = Duration::from_millis(200);
        c.publish_rate = 100_000;
        c.publish_burst = 100_000;
    })
    .await;
    let mut publisher = server.connect("alice").await;
    publisher.join(ROOM).await;
    let mut healthy = server.connect("bob").await;
    healthy.join(ROOM).await;
    let mut slow = server.connect_with_receive_buffer("carol", 4096).await;
    slow.join(ROOM).await;
    for (client, n) in [(&mut publisher, 2), (&mut healthy, 1)] {
        for _ in 0..n {
            assert!(matches!(
                client.recv().await,
                ServerMessage::MemberJoined { .. }
            ));
        }
    }
    let healthy = tokio::spawn(async move { read_to_end(&mut healthy).await });

    // From here on the slow member reads nothing.
    let mut published_seen = Vec::new();
    let big = Body::Text("x".repeat(BODY));
    let mut id = 0;
    loop {
        id += 1;
        publish_acked(&mut publisher, id, big.clone(), &mut published_seen).await;
        if id % 8 == 0 && server.metric(SLOW_CONSUMERS).await == 1.0 {
            break;
        }
        assert!(
            id < 2000,
            "no slow consumer after {id} messages of {BODY} bytes"
        );
    }
    // Life goes on for the others.
    for _ in 0..8 {
        id += 1;
        publish_acked(&mut publisher, id, big.clone(), &mut published_seen).await;
    }
    id += 1;
    publish_acked(
        &mut publisher,
        id,
        Body::Text(END.into()),
        &mut published_seen,
    )
    .await;
    if published_seen.last() != Some(&id) {
        published_seen.extend(read_to_end(&mut publisher).await);
    }

    let every: Vec<u64> = (1..=id).collect();
    assert_eq!(published_seen, every, "the publisher's copies");
    assert_eq!(healthy.await.unwrap(), every, "the healthy member's copies");
    assert_eq!(server.metric(SLOW_CONSUMERS).await, 1.0);

    // The slow member got a gap-free prefix, then the end of the connection: a 4001 close
    // if the goodbye fit into its socket, otherwise a bare end.
    let mut prefix = Vec::new();
    let closed = loop {
        match slow.next().await {
            Ok(ServerMessage::Message { seq, .. }) => prefix.push(seq),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(closed) => break closed,
        }
    };
    assert_eq!(prefix, (1..=prefix.len() as u64).collect::<Vec<_>>());
    assert!((prefix.len() as u64) < id, "the slow member got everything");
    if let Some(code) = closed.code() {
        assert_eq!(code, 4001, "{closed:?}");
    }
    if let Some(notice) = &closed.notice {
        assert!(
            matches!(notice, ServerMessage::Disconnect { code: 4001, .. }),
            "{notice:?}"
        );
    }
}
