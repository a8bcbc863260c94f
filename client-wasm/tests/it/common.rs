//! A test driver for the sans-IO core: a fake clock, hand-built server frames, and helpers
//! that pick apart the actions the core returns.

use chorus_client::core::{Action, Core, Event, Options, State};
use chorus_client::{Ack, HistoryError, HistoryPage, PublishError};
use chorus_protocol::{
    Body, ClientMessage, HistoryMessage, Limits, Position, Reconnect, Recovery, ServerMessage,
};

/// The clock starts here, not at 0, so "no deadline" and "deadline 0" never blur.
pub(crate) const T0: u64 = 1_000_000;

/// Server defaults, as the real server announces them.
pub(crate) fn limits() -> Limits {
    Limits {
        max_frame: 65_536,
        max_body: 64_512,
        max_rooms: 100,
        publish_per_second: 20,
        publish_burst: 50,
        typing_throttle_ms: 1000,
        typing_ttl_ms: 5000,
    }
}

pub(crate) fn welcome() -> ServerMessage {
    welcome_with(25_000, limits())
}

pub(crate) fn welcome_with(heartbeat_ms: u32, limits: Limits) -> ServerMessage {
    ServerMessage::Welcome {
        session: "s1".into(),
        user: "me".into(),
        protocol: chorus_protocol::PROTOCOL_VERSION,
        heartbeat_ms,
        heartbeat_timeout_ms: heartbeat_ms * 2 + 10_000,
        limits,
    }
}

pub(crate) fn joined(room: &str, epoch: u64, seq: u64, recovery: Recovery) -> ServerMessage {
    ServerMessage::Joined {
        room: room.into(),
        position: Position { epoch, seq },
        members: vec!["me".into()],
        recovery,
    }
}

pub(crate) fn message(room: &str, seq: u64, id: u64, sender: &str) -> ServerMessage {
    ServerMessage::Message {
        room: room.into(),
        seq,
        id,
        sender: sender.into(),
        ts: 1_700_000_000_000,
        body: Body::Text(format!("m{seq}")),
    }
}

/// A message as history holds it (the same fields as [`message`] gives).
pub(crate) fn stored(seq: u64, id: u64, sender: &str) -> HistoryMessage {
    HistoryMessage {
        seq,
        id,
        sender: sender.into(),
        ts: 1_700_000_000_000,
        body: Body::Text(format!("m{seq}")),
    }
}

/// The server's answer to history request `request`: messages `seqs` of epoch `epoch`, the
/// room being at `at`.
pub(crate) fn history_page(
    request: u64,
    room: &str,
    epoch: u64,
    at: u64,
    seqs: impl IntoIterator<Item = u64>,
    more: bool,
) -> ServerMessage {
    ServerMessage::History {
        request,
        room: room.into(),
        position: Position { epoch, seq: at },
        messages: seqs
            .into_iter()
            .map(|seq| stored(seq, 100 + seq, "bob"))
            .collect(),
        more,
    }
}

pub(crate) fn typing(room: &str, user: &str, on: bool) -> ServerMessage {
    ServerMessage::Typing {
        room: room.into(),
        user: user.into(),
        typing: on,
    }
}

pub(crate) fn disconnect(code: u16, reconnect: Reconnect) -> ServerMessage {
    ServerMessage::Disconnect {
        code,
        reason: "bye".into(),
        reconnect,
    }
}

pub(crate) fn text(s: &str) -> Body {
    Body::Text(s.into())
}

/// A core, the fake clock, and the actions it returned.
pub(crate) struct Driver {
    pub(crate) core: Core,
    pub(crate) now: u64,
}

impl Driver {
    /// A core with a token and a `getToken`.
    pub(crate) fn new(options: Options) -> Driver {
        Driver::with(options, Some("t0"), true, 7)
    }

    pub(crate) fn with(
        options: Options,
        token: Option<&str>,
        can_fetch: bool,
        seed: u64,
    ) -> Driver {
        Driver {
            core: Core::new(options, token.map(str::to_owned), can_fetch, seed),
            now: T0,
        }
    }

    /// A core welcomed on its first connection, its connect actions drained.
    pub(crate) fn open(options: Options) -> Driver {
        let mut d = Driver::new(options);
        d.connect();
        d.welcome(welcome());
        assert_eq!(d.core.state(), State::Open);
        d
    }

    /// Drain the actions.
    pub(crate) fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.core.poll_action()).collect()
    }

    pub(crate) fn connect(&mut self) -> Vec<Action> {
        self.core.connect(self.now);
        self.actions()
    }

    /// The socket opens and the server welcomes it.
    pub(crate) fn welcome(&mut self, welcome: ServerMessage) -> Vec<Action> {
        self.core.socket_opened(self.now);
        self.frame(welcome)
    }

    pub(crate) fn frame(&mut self, message: ServerMessage) -> Vec<Action> {
        let bytes = message.encode(usize::MAX).unwrap();
        self.core.socket_frame(&bytes, self.now);
        self.actions()
    }

    pub(crate) fn closed(&mut self, code: u16) -> Vec<Action> {
        self.core.socket_closed(code, self.now);
        self.actions()
    }

    pub(crate) fn publish(&mut self, room: &str, body: &str) -> u64 {
        self.core.publish(room, text(body), None, self.now)
    }

    /// Ask for up to `limit` messages of `room` before `before`.
    pub(crate) fn history(&mut self, room: &str, before: Option<Position>, limit: u32) -> u64 {
        self.core.history(room, before, limit, self.now)
    }

    pub(crate) fn join(&mut self, room: &str) -> Vec<Action> {
        self.core.join(room, None, self.now).unwrap();
        self.actions()
    }

    /// Let `ms` pass, ticking at every deadline on the way, as the shell's timer would.
    pub(crate) fn advance(&mut self, ms: u64) -> Vec<Action> {
        let target = self.now + ms;
        let mut ticks = 0;
        while let Some(deadline) = self.core.next_deadline() {
            if deadline > target {
                break;
            }
            self.now = self.now.max(deadline);
            self.core.tick(self.now);
            ticks += 1;
            assert!(ticks < 100_000, "deadline {deadline} never cleared");
        }
        self.now = target;
        self.actions()
    }

    /// Let `ms` pass on a healthy connection: every ping is answered at once.
    pub(crate) fn live(&mut self, ms: u64) -> Vec<Action> {
        let target = self.now + ms;
        let mut all = Vec::new();
        while let Some(deadline) = self.core.next_deadline().filter(|&d| d <= target) {
            let actions = self.advance(deadline - self.now);
            let nonce = ping_nonce(&sent(&actions));
            all.extend(actions);
            if let Some(nonce) = nonce {
                all.extend(self.frame(ServerMessage::Pong { nonce }));
            }
        }
        all.extend(self.advance(target - self.now));
        all
    }

    /// Let time pass until the core opens a socket; returns the time waited.
    pub(crate) fn until_open(&mut self) -> u64 {
        let start = self.now;
        loop {
            let deadline = self.core.next_deadline().expect("nothing pending");
            self.now = self.now.max(deadline);
            self.core.tick(self.now);
            if !opens(&self.actions()).is_empty() {
                return self.now - start;
            }
        }
    }
}

pub(crate) fn sent(actions: &[Action]) -> Vec<ClientMessage> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(frame) => Some(ClientMessage::decode(frame, usize::MAX).unwrap()),
            _ => None,
        })
        .collect()
}

/// The events but [`Event::State`], which [`states`] reads: most tests are about the rest.
pub(crate) fn events(actions: &[Action]) -> Vec<Event> {
    all_events(actions)
        .into_iter()
        .filter(|e| !matches!(e, Event::State { .. }))
        .collect()
}

/// Every event, in order.
pub(crate) fn all_events(actions: &[Action]) -> Vec<Event> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Emit(event) => Some(event.clone()),
            _ => None,
        })
        .collect()
}

/// The `(state, code, reason)` of the `State` events.
pub(crate) fn states(actions: &[Action]) -> Vec<(State, u16, String)> {
    all_events(actions)
        .into_iter()
        .filter_map(|e| match e {
            Event::State {
                state,
                code,
                reason,
            } => Some((state, code, reason)),
            _ => None,
        })
        .collect()
}

/// Tokens of the `ProbeAuth` actions.
pub(crate) fn probes(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::ProbeAuth { token } => Some(token.clone()),
            _ => None,
        })
        .collect()
}

pub(crate) fn settles(actions: &[Action]) -> Vec<(u64, Result<Ack, PublishError>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Settle { id, result } => Some((*id, result.clone())),
            _ => None,
        })
        .collect()
}

pub(crate) fn history_done(actions: &[Action]) -> Vec<(u64, Result<HistoryPage, HistoryError>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::HistoryDone { request, result } => Some((*request, result.clone())),
            _ => None,
        })
        .collect()
}

/// The history requests sent: `(request, room, before, limit)`.
pub(crate) fn history_requests(
    messages: &[ClientMessage],
) -> Vec<(u64, String, Option<Position>, u32)> {
    messages
        .iter()
        .filter_map(|m| match m {
            ClientMessage::History {
                request,
                room,
                before,
                limit,
            } => Some((*request, room.clone(), *before, *limit)),
            _ => None,
        })
        .collect()
}

/// Tokens of the `Open` actions.
pub(crate) fn opens(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Open { token } => Some(token.clone()),
            _ => None,
        })
        .collect()
}

pub(crate) fn closes(actions: &[Action]) -> Vec<(u16, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Close { code, reason } => Some((*code, reason.clone())),
            _ => None,
        })
        .collect()
}

/// The `(attempt, delay_ms)` of the `Reconnecting` events.
pub(crate) fn reconnecting(actions: &[Action]) -> Vec<(u32, u64)> {
    events(actions)
        .into_iter()
        .filter_map(|e| match e {
            Event::Reconnecting {
                attempt, delay_ms, ..
            } => Some((attempt, delay_ms)),
            _ => None,
        })
        .collect()
}

/// The users of the `Typing` events, by room.
pub(crate) fn typists(actions: &[Action]) -> Vec<(String, Vec<String>)> {
    events(actions)
        .into_iter()
        .filter_map(|e| match e {
            Event::Typing { room, users } => Some((room, users)),
            _ => None,
        })
        .collect()
}

/// The seqs of the `Message` events.
pub(crate) fn delivered(actions: &[Action]) -> Vec<u64> {
    events(actions)
        .into_iter()
        .filter_map(|e| match e {
            Event::Message { seq, .. } => Some(seq),
            _ => None,
        })
        .collect()
}

pub(crate) fn has_fetch(actions: &[Action]) -> bool {
    actions.iter().any(|a| matches!(a, Action::FetchToken))
}

pub(crate) fn ping_nonce(messages: &[ClientMessage]) -> Option<u64> {
    messages.iter().find_map(|m| match m {
        ClientMessage::Ping { nonce } => Some(*nonce),
        _ => None,
    })
}

pub(crate) fn publish_ids(messages: &[ClientMessage]) -> Vec<u64> {
    messages
        .iter()
        .filter_map(|m| match m {
            ClientMessage::Publish { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}
