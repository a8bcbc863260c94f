//! History requests: sent when the connection is open (at once, or after the welcome),
//! sent again after a lost connection, settled exactly once (by the page, the server's
//! error, the timeout, the bound, or `close()`), and kept apart from the live stream: no
//! duplicate guard, no resume position moved.

use crate::common::*;
use chorus_client::core::{Action, ClientErrorCode, Event, MAX_HISTORY_REQUESTS, Options, State};
use chorus_client::{HistoryError, HistoryPage};
use chorus_protocol::{ClientMessage, ErrorCode, Position, Recovery, ServerMessage};

/// Open, in `lobby` at epoch 1, seq 10.
fn open() -> Driver {
    let mut d = Driver::new(Options::default());
    d.join("lobby");
    d.connect();
    d.welcome(welcome());
    d.frame(joined("lobby", 1, 10, Recovery::NotRequested));
    d
}

fn at(epoch: u64, seq: u64) -> Position {
    Position { epoch, seq }
}

fn rejected(code: u16, message: &str) -> HistoryError {
    HistoryError::Rejected {
        code,
        message: message.into(),
    }
}

fn the_page(request: u64, frame: &ServerMessage) -> HistoryPage {
    let ServerMessage::History {
        room,
        position,
        messages,
        more,
        request: answered,
    } = frame.clone()
    else {
        panic!("not a page: {frame:?}");
    };
    assert_eq!(answered, request);
    HistoryPage {
        room,
        position,
        messages,
        more,
    }
}

#[test]
fn a_request_on_an_open_connection_is_sent_at_once_and_settled_by_its_page() {
    let mut d = open();
    let request = d.history("lobby", None, 50);
    assert_eq!(
        history_requests(&sent(&d.actions())),
        vec![(request, "lobby".to_owned(), None, 50)]
    );
    let answer = history_page(request, "lobby", 1, 10, 1..=10, false);
    let actions = d.frame(answer.clone());
    assert_eq!(
        history_done(&actions),
        vec![(request, Ok(the_page(request, &answer)))]
    );
    assert!(events(&actions).is_empty(), "a page is no event");
    // Paging back names the position it got.
    let older = d.history("lobby", Some(at(1, 5)), 4);
    assert_eq!(
        history_requests(&sent(&d.actions())),
        vec![(older, "lobby".to_owned(), Some(at(1, 5)), 4)]
    );
}

#[test]
fn request_ids_come_from_the_same_sequence_as_publish_ids() {
    let mut d = open();
    let publish = d.publish("lobby", "a");
    let request = d.history("lobby", None, 10);
    let next = d.publish("lobby", "b");
    assert_eq!((request, next), (publish + 1, publish + 2));
}

#[test]
fn a_room_need_not_be_joined_to_read_its_history() {
    let mut d = open();
    let request = d.history("elsewhere", None, 10);
    assert_eq!(
        history_requests(&sent(&d.actions())),
        vec![(request, "elsewhere".to_owned(), None, 10)]
    );
}

#[test]
fn an_invalid_room_or_a_zero_limit_is_refused_at_once_with_the_servers_code() {
    let mut d = open();
    let bad_room = d.history("", None, 10);
    let zero = d.history("lobby", None, 0);
    let actions = d.actions();
    assert!(sent(&actions).is_empty());
    assert_eq!(
        history_done(&actions),
        vec![
            (
                bad_room,
                Err(rejected(102, "invalid room name: name is empty"))
            ),
            (zero, Err(rejected(111, "the limit must be 1 or more"))),
        ]
    );
    assert_eq!(
        d.core.next_deadline(),
        Some(d.now + 25_000),
        "nothing pending"
    );
}

#[test]
fn a_request_made_before_the_connection_opens_is_sent_after_the_welcome() {
    let mut d = Driver::new(Options::default());
    d.join("lobby");
    let early = d.history("lobby", None, 20);
    assert!(sent(&d.actions()).is_empty());
    d.connect();
    d.core.socket_opened(d.now);
    let handshake = d.history("lobby", None, 30);
    assert!(
        sent(&d.actions()).is_empty(),
        "nothing goes before the welcome"
    );
    let out = sent(&d.frame(welcome()));
    assert!(
        matches!(out[0], ClientMessage::Join { .. }),
        "joins first: {out:?}"
    );
    assert_eq!(
        history_requests(&out),
        vec![
            (early, "lobby".to_owned(), None, 20),
            (handshake, "lobby".to_owned(), None, 30)
        ]
    );
    let answer = history_page(early, "lobby", 1, 0, [], false);
    assert_eq!(
        history_done(&d.frame(answer.clone())),
        vec![(early, Ok(the_page(early, &answer)))]
    );
}

#[test]
fn a_request_whose_answer_was_lost_with_the_connection_is_sent_again_and_settled_once() {
    let mut d = open();
    let request = d.history("lobby", None, 50);
    d.actions();
    let gone = d.closed(1006);
    assert!(history_done(&gone).is_empty(), "still pending");
    d.until_open();
    let out = sent(&d.welcome(welcome()));
    assert_eq!(
        history_requests(&out),
        vec![(request, "lobby".to_owned(), None, 50)]
    );
    let answer = history_page(request, "lobby", 1, 12, 3..=12, true);
    let mut all = d.frame(answer.clone());
    // A second answer to the same id (a server repeating itself) settles nothing more.
    all.extend(d.frame(answer.clone()));
    assert_eq!(
        history_done(&all),
        vec![(request, Ok(the_page(request, &answer)))]
    );
    // Not sent a third time on the connection after.
    d.closed(1006);
    d.until_open();
    assert!(history_requests(&sent(&d.welcome(welcome()))).is_empty());
}

#[test]
fn an_unanswered_request_times_out_after_request_timeout() {
    let mut d = Driver::open(Options {
        request_timeout: std::time::Duration::from_secs(4),
        ..Options::default()
    });
    let request = d.history("lobby", None, 50);
    d.actions();
    assert!(history_done(&d.live(3_999)).is_empty());
    let actions = d.live(1);
    assert_eq!(
        history_done(&actions),
        vec![(request, Err(HistoryError::TimedOut))]
    );
    // Its late answer is dropped quietly.
    let late = d.frame(history_page(request, "lobby", 1, 10, 1..=10, false));
    assert_eq!(late, vec![]);
}

#[test]
fn a_request_waiting_offline_times_out_too() {
    let mut d = Driver::new(Options::default());
    let request = d.history("lobby", None, 50);
    assert_eq!(d.core.next_deadline(), Some(d.now + 15_000));
    let actions = d.advance(15_000);
    assert_eq!(
        history_done(&actions),
        vec![(request, Err(HistoryError::TimedOut))]
    );
    assert_eq!(d.core.next_deadline(), None);
}

#[test]
fn a_server_error_with_the_id_rejects_the_request_with_its_code_and_message() {
    let mut d = open();
    let request = d.history("lobby", Some(at(7, 3)), 50);
    d.actions();
    let actions = d.frame(ServerMessage::Error {
        code: ErrorCode::EpochChanged.as_u16(),
        message: "that history is gone".into(),
        id: Some(request),
        room: Some("lobby".into()),
    });
    assert_eq!(
        history_done(&actions),
        vec![(request, Err(rejected(112, "that history is gone")))]
    );
    assert!(events(&actions).is_empty(), "told through the request only");
    assert_eq!(
        HistoryError::Rejected {
            code: 112,
            message: String::new()
        }
        .code(),
        112
    );
}

#[test]
fn an_error_for_a_request_is_not_taken_for_a_refused_join_of_its_room() {
    let mut d = Driver::new(Options {
        request_timeout: std::time::Duration::from_secs(1),
        ..Options::default()
    });
    d.connect();
    d.welcome(welcome());
    let request = d.history("news", None, 10);
    d.advance(1_000);
    // Joining `news` while the refusal of the timed-out request arrives.
    d.join("news");
    let actions = d.frame(ServerMessage::Error {
        code: 104,
        message: "forbidden".into(),
        id: Some(request),
        room: Some("news".into()),
    });
    assert!(matches!(
        &events(&actions)[..],
        [Event::Error { code: 104, .. }]
    ));
    let actions = d.frame(joined("news", 1, 0, Recovery::NotRequested));
    assert!(
        matches!(&events(&actions)[..], [Event::Joined { room, .. }] if room == "news"),
        "the join still stands"
    );
}

#[test]
fn close_rejects_pending_requests_and_later_ones_at_once() {
    let mut d = open();
    let in_flight = d.history("lobby", None, 50);
    d.closed(1006);
    let queued = d.history("lobby", None, 50);
    d.actions();
    d.core.close(d.now);
    let actions = d.actions();
    assert_eq!(
        history_done(&actions),
        vec![
            (in_flight, Err(HistoryError::Closed)),
            (queued, Err(HistoryError::Closed))
        ]
    );
    assert_eq!(d.core.state(), State::Closed);
    let after = d.history("lobby", None, 50);
    assert_eq!(
        d.actions(),
        vec![Action::HistoryDone {
            request: after,
            result: Err(HistoryError::Closed)
        }]
    );
    assert_eq!(d.core.next_deadline(), None);
    assert_eq!(HistoryError::Closed.code(), ClientErrorCode::Closed as u16);
}

#[test]
fn requests_beyond_the_bound_are_refused_until_one_is_settled() {
    let mut d = open();
    let first = d.history("lobby", None, 1);
    for _ in 1..MAX_HISTORY_REQUESTS {
        d.history("lobby", None, 1);
    }
    let sent_now = history_requests(&sent(&d.actions()));
    assert_eq!(sent_now.len(), MAX_HISTORY_REQUESTS);
    let refused = d.history("lobby", None, 1);
    assert_eq!(
        d.actions(),
        vec![Action::HistoryDone {
            request: refused,
            result: Err(HistoryError::TooManyPending)
        }]
    );
    assert_eq!(HistoryError::TooManyPending.code(), 606);
    d.frame(history_page(first, "lobby", 1, 10, 10..=10, true));
    let admitted = d.history("lobby", None, 1);
    assert_eq!(
        history_requests(&sent(&d.actions())),
        vec![(admitted, "lobby".to_owned(), None, 1)]
    );
}

#[test]
fn a_page_is_not_live_traffic_it_neither_moves_the_resume_position_nor_blocks_live_messages() {
    let mut d = open();
    // The page reaches past what the live stream delivered (seq 10): 11 and 12 were
    // published meanwhile, and their live copies are on their way.
    let request = d.history("lobby", None, 50);
    d.actions();
    let actions = d.frame(history_page(request, "lobby", 1, 12, 1..=12, false));
    assert_eq!(history_done(&actions).len(), 1);
    assert!(delivered(&actions).is_empty());
    let live: Vec<_> = (11..=12)
        .flat_map(|seq| d.frame(message("lobby", seq, 200 + seq, "bob")))
        .collect();
    assert_eq!(delivered(&live), vec![11, 12], "each live message once");
    // A rejoin resumes from what the live stream delivered.
    d.closed(1006);
    d.until_open();
    let out = sent(&d.welcome(welcome()));
    assert_eq!(
        out[0],
        ClientMessage::Join {
            room: "lobby".into(),
            since: Some(at(1, 12))
        }
    );
}

#[test]
fn a_page_resting_on_an_older_resume_position_does_not_hide_later_messages() {
    let mut d = open();
    let request = d.history("lobby", None, 50);
    d.actions();
    d.frame(history_page(request, "lobby", 1, 20, 11..=20, true));
    d.closed(1006);
    d.until_open();
    let out = sent(&d.welcome(welcome()));
    assert_eq!(
        out[0],
        ClientMessage::Join {
            room: "lobby".into(),
            since: Some(at(1, 10))
        },
        "the page moved nothing"
    );
    d.frame(joined("lobby", 1, 20, Recovery::Recovered));
    let replay: Vec<_> = (11..=20)
        .flat_map(|seq| d.frame(message("lobby", seq, 200 + seq, "bob")))
        .collect();
    assert_eq!(delivered(&replay), (11..=20).collect::<Vec<_>>());
}

#[test]
fn older_names_the_page_before_this_one_while_there_is_more() {
    let page = |seqs: Vec<u64>, more| the_page(1, &history_page(1, "lobby", 4, 30, seqs, more));
    assert_eq!(page((21..=30).collect(), true).older(), Some(at(4, 21)));
    assert_eq!(page((1..=30).collect(), false).older(), None);
    assert_eq!(page(vec![], false).older(), None);
    // An empty page that claims more gives nothing to page from, rather than the same
    // request forever.
    assert_eq!(page(vec![], true).older(), None);
}
