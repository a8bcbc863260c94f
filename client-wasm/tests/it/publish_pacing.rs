//! Publishes are paced to the publish rate and burst the server announces in its welcome:
//! a full offline queue flushed after an outage, publishes sent again after a reconnect and
//! live publishes beyond the burst all stay within the server's token bucket, so none is
//! refused as rate limited (which would also get the connection closed for abuse).
//!
//! The server here is a model of the real one's bucket (`server/src/rate_limit.rs`, GCRA
//! in nanoseconds), fed each publish at the time it arrives.

use crate::common::*;
use chorus_client::PublishError;
use chorus_client::core::{Action, Options};
use chorus_protocol::{ClientMessage, ErrorCode, Limits, Recovery, ServerMessage};

/// The server's publish bucket, as `server/src/rate_limit.rs` keeps it: full when the
/// connection opens.
struct ServerBucket {
    /// Nanoseconds one token takes to come back.
    interval: u64,
    /// Nanoseconds the whole burst takes to come back.
    window: u64,
    /// When the bucket is full again, in nanoseconds.
    full_at: u64,
}

impl ServerBucket {
    fn new(limits: &Limits) -> ServerBucket {
        let interval = 1_000_000_000 / u64::from(limits.publish_per_second.max(1));
        ServerBucket {
            interval,
            window: interval * u64::from(limits.publish_burst.max(1)),
            full_at: 0,
        }
    }

    /// Take a token for a publish arriving at `now_ms`, if one is left.
    fn check(&mut self, now_ms: u64) -> bool {
        let now = now_ms * 1_000_000;
        let full_at = self.full_at.max(now) + self.interval;
        if full_at - now > self.window {
            return false;
        }
        self.full_at = full_at;
        true
    }
}

/// A server at the other end of the core: answers pings, takes a token for each publish
/// and acknowledges it, or refuses it with 106 when the bucket is empty. Publishes reach it
/// `delay(sent_at)` ms after they were sent (in order: one TCP stream).
struct Server {
    bucket: ServerBucket,
    next_seq: u64,
    acked: Vec<u64>,
    refused: Vec<u64>,
    /// `(time sent, id)` of every publish.
    sent: Vec<(u64, u64)>,
}

impl Server {
    fn new(limits: &Limits) -> Server {
        Server {
            bucket: ServerBucket::new(limits),
            next_seq: 1,
            acked: Vec::new(),
            refused: Vec::new(),
            sent: Vec::new(),
        }
    }

    /// Answer what the core sent in `actions`; publishes are checked at `arrival`.
    fn answer(&mut self, d: &mut Driver, actions: &[Action], arrival: u64) {
        for message in sent(actions) {
            let reply = match message {
                ClientMessage::Publish { room, id, .. } => {
                    self.sent.push((d.now, id));
                    if self.bucket.check(arrival) {
                        self.acked.push(id);
                        self.next_seq += 1;
                        ServerMessage::PublishAck {
                            room,
                            id,
                            seq: self.next_seq - 1,
                        }
                    } else {
                        self.refused.push(id);
                        ServerMessage::Error {
                            code: ErrorCode::RateLimited.as_u16(),
                            message: "publish rate limit exceeded".into(),
                            id: Some(id),
                            room: Some(room),
                        }
                    }
                }
                ClientMessage::Ping { nonce } => ServerMessage::Pong { nonce },
                ClientMessage::Join { room, .. } => joined(&room, 1, 0, Recovery::NotRequested),
                _ => continue,
            };
            let more = d.frame(reply);
            self.answer(d, &more, arrival);
        }
    }

    /// Run the core until `until` (a time), answering at each deadline; publishes arrive
    /// at `arrival(sent_at)`.
    fn run(&mut self, d: &mut Driver, until: u64, arrival: impl Fn(u64) -> u64) {
        while let Some(deadline) = d.core.next_deadline().filter(|&t| t <= until) {
            d.now = d.now.max(deadline);
            d.core.tick(d.now);
            let actions = d.actions();
            let at = arrival(d.now);
            self.answer(d, &actions, at);
        }
        d.now = until;
    }
}

/// The server's default publish limits: 50 a second, bursts of 100.
fn default_rate() -> Limits {
    Limits {
        publish_per_second: 50,
        publish_burst: 100,
        ..limits()
    }
}

/// A client in `lobby`, offline, with `n` publishes queued.
fn queued_offline(n: usize) -> (Driver, Vec<u64>) {
    let mut d = Driver::new(Options::default());
    d.join("lobby");
    d.connect();
    let ids = (0..n).map(|i| d.publish("lobby", &i.to_string())).collect();
    assert!(settles(&d.actions()).is_empty(), "all queued");
    (d, ids)
}

#[test]
fn a_full_queue_flushed_after_an_outage_stays_within_the_servers_bucket() {
    let limits = default_rate();
    let (mut d, ids) = queued_offline(256);
    let mut server = Server::new(&limits);
    let welcomed_at = d.now;
    let actions = d.welcome(welcome_with(25_000, limits));
    let now = d.now;
    server.answer(&mut d, &actions, now);
    // Some go out at once: not all, nor so few that a short queue waits.
    let at_once = server.sent.len();
    assert!(
        (50..100).contains(&at_once),
        "{at_once} publishes went out with the welcome; the burst is 100"
    );
    server.run(&mut d, welcomed_at + 10_000, |t| t);
    assert_eq!(server.refused, Vec::<u64>::new(), "none refused");
    assert_eq!(server.acked, ids, "all acknowledged, in order");
    // Paced near the server's rate, not far below it: 156 past the burst at 50 a second
    // take a little over 3 s.
    let last = server.sent.last().unwrap().0;
    assert!(
        last - welcomed_at < 5_000,
        "the last publish went out {} ms after the welcome",
        last - welcomed_at
    );
}

#[test]
fn publishes_held_up_on_the_way_and_then_let_through_together_are_not_refused() {
    // A hiccup: everything sent in the first 400 ms after the welcome reaches the server at
    // once, at 400 ms. The client leaves headroom in the server's bucket for that.
    let limits = default_rate();
    let (mut d, ids) = queued_offline(256);
    let mut server = Server::new(&limits);
    let released = d.now + 400;
    let actions = d.welcome(welcome_with(25_000, limits));
    server.answer(&mut d, &actions, released);
    server.run(&mut d, released + 10_000, |t| t.max(released));
    assert_eq!(server.refused, Vec::<u64>::new(), "none refused");
    assert_eq!(server.acked.len(), ids.len());
}

#[test]
fn a_low_rate_with_a_small_burst_is_kept_too() {
    let limits = Limits {
        publish_per_second: 5,
        publish_burst: 2,
        ..limits()
    };
    let (mut d, ids) = queued_offline(20);
    let mut server = Server::new(&limits);
    let actions = d.welcome(welcome_with(25_000, limits));
    let now = d.now;
    server.answer(&mut d, &actions, now);
    let now = d.now;
    server.run(&mut d, now + 14_000, |t| t);
    assert_eq!(server.refused, Vec::<u64>::new(), "none refused");
    assert_eq!(server.acked, ids);
}

#[test]
fn live_publishes_beyond_the_burst_wait_their_turn() {
    let limits = Limits {
        publish_per_second: 10,
        publish_burst: 4,
        ..limits()
    };
    let mut d = Driver::new(Options::default());
    d.join("lobby");
    d.connect();
    let mut server = Server::new(&limits);
    let actions = d.welcome(welcome_with(25_000, limits));
    let now = d.now;
    server.answer(&mut d, &actions, now);
    let ids: Vec<u64> = (0..10)
        .map(|i| d.publish("lobby", &i.to_string()))
        .collect();
    let actions = d.actions();
    let at_once = publish_ids(&sent(&actions)).len();
    assert!(
        (1..4).contains(&at_once),
        "{at_once} of 10 went out at once; the burst is 4"
    );
    let now = d.now;
    server.answer(&mut d, &actions, now);
    // The core wants to be woken for the next one, well before any other timer.
    let next = d.core.next_deadline().unwrap();
    assert!(
        next > d.now && next <= d.now + 150,
        "the next publish may go {} ms from now",
        next - d.now
    );
    // At that time, one more goes out.
    d.now = next;
    d.core.tick(d.now);
    let actions = d.actions();
    assert_eq!(publish_ids(&sent(&actions)), vec![ids[at_once]]);
    let now = d.now;
    server.answer(&mut d, &actions, now);
    let now = d.now;
    server.run(&mut d, now + 5_000, |t| t);
    assert_eq!(server.refused, Vec::<u64>::new(), "none refused");
    assert_eq!(server.acked, ids);
}

#[test]
fn publishes_sent_again_after_a_reconnect_are_paced_on_the_new_connection() {
    let limits = Limits {
        publish_per_second: 20,
        publish_burst: 8,
        ..limits()
    };
    let mut d = Driver::new(Options::default());
    d.join("lobby");
    d.connect();
    d.welcome(welcome_with(25_000, limits));
    d.frame(joined("lobby", 1, 0, Recovery::NotRequested));
    // 40 publishes; the connection dies before any is acknowledged.
    let ids: Vec<u64> = (0..40)
        .map(|i| d.publish("lobby", &i.to_string()))
        .collect();
    d.advance(5_000);
    d.closed(1006);
    d.until_open();
    // The new connection has a bucket of its own, full.
    let mut server = Server::new(&limits);
    let actions = d.welcome(welcome_with(25_000, limits));
    let now = d.now;
    server.answer(&mut d, &actions, now);
    let now = d.now;
    server.run(&mut d, now + 10_000, |t| t);
    assert_eq!(server.refused, Vec::<u64>::new(), "none refused");
    let mut acked = server.acked.clone();
    acked.sort_unstable();
    let mut expected = ids;
    expected.sort_unstable();
    assert_eq!(acked, expected, "every publish acknowledged once");
}

#[test]
fn a_rate_limited_refusal_slows_the_client_down() {
    // The server may count publishes the client did not see coming (another tab is not
    // one: the bucket is per connection; a server whose clock runs ahead is): after a 106,
    // the client assumes the server's bucket is empty.
    let limits = Limits {
        publish_per_second: 10,
        publish_burst: 20,
        ..limits()
    };
    let mut d = Driver::new(Options::default());
    d.join("lobby");
    d.connect();
    d.welcome(welcome_with(25_000, limits));
    d.frame(joined("lobby", 1, 0, Recovery::NotRequested));
    let first = d.publish("lobby", "a");
    d.actions();
    let actions = d.frame(ServerMessage::Error {
        code: ErrorCode::RateLimited.as_u16(),
        message: "publish rate limit exceeded".into(),
        id: Some(first),
        room: Some("lobby".into()),
    });
    assert!(matches!(
        &settles(&actions)[..],
        [(id, Err(PublishError::Rejected { code: 106, .. }))] if *id == first
    ));
    let second = d.publish("lobby", "b");
    assert!(publish_ids(&sent(&d.actions())).is_empty(), "waits");
    let actions = d.advance(200);
    assert_eq!(publish_ids(&sent(&actions)), vec![second]);
}

#[test]
fn a_zero_rate_means_no_limit() {
    let limits = Limits {
        publish_per_second: 0,
        publish_burst: 0,
        ..limits()
    };
    let (mut d, ids) = queued_offline(256);
    let out = sent(&d.welcome(welcome_with(25_000, limits)));
    assert_eq!(publish_ids(&out), ids);
}
