//! The connection's life: opening a socket (after asking the server about the token when
//! the last socket failed before opening), the welcome, losing it, waiting out the backoff,
//! refreshing the token, reconnecting on request, closing for good; and the
//! [`Event::State`] that tells the app of each change of [`super::State`].

use crate::prelude::*;
use chorus_protocol::{
    ClientMessage, DEFAULT_MAX_FRAME, DisconnectReason, Limits, Reconnect, validate,
};

use super::backoff::Backoff;
use super::heartbeat::Heartbeat;
use super::{
    Action, ClientErrorCode, Core, Event, HistoryError, Millis, PublishError, backoff, text,
};

/// Ping interval when the server announces none. Its default, 25 s.
const DEFAULT_HEARTBEAT_MS: u32 = 25_000;

/// Close code and reason of a socket closed because the app asked for a new connection.
pub(crate) const RECONNECT_REQUESTED: (u16, &str) = (1000, "reconnect requested");

/// Where the connection is, in more detail than [`super::State`].
#[derive(Debug)]
pub(crate) enum Phase {
    /// `connect` not called yet.
    Idle,
    /// Waiting for the app's `getToken`.
    FetchingToken,
    /// Asking the server over HTTP whether it is reachable and accepts the token, before
    /// opening a socket; an answer that has not come by `deadline` counts as unreachable.
    Probing { deadline: Millis },
    /// A socket is opening; the welcome must arrive by `deadline`.
    Opening { deadline: Millis },
    /// The socket is open; the welcome must arrive by `deadline`.
    Handshake { deadline: Millis },
    /// Welcomed.
    Open(Box<OpenConnection>),
    /// Waiting until `until`, then `next`. A `firm` wait is the server's `RetryAfter`, which
    /// `wake` and `reconnect` do not cut short.
    Waiting {
        until: Millis,
        next: Next,
        firm: bool,
    },
    /// For good.
    Closed,
}

/// A welcomed connection.
#[derive(Debug)]
pub(crate) struct OpenConnection {
    /// When the welcome came: how long it stays open decides whether backoff resets.
    pub(crate) since: Millis,
    pub(crate) heartbeat: Heartbeat,
    /// The nonce of the ping that marks the end of the rejoins' replays, while awaited.
    pub(crate) sync: Option<u64>,
}

/// What a wait leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// A connection attempt: a socket, or first the token probe (see `Core::attempt`).
    Open,
    FetchToken,
}

/// The server's `Disconnect`, kept until the socket closes.
#[derive(Debug)]
pub(crate) struct Notice {
    pub(crate) code: u16,
    pub(crate) reason: String,
    pub(crate) reconnect: Reconnect,
}

/// The server's limits that the client applies: protocol defaults until a welcome brings
/// the real ones.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerLimits {
    pub(crate) max_body: usize,
    pub(crate) typing_throttle: Millis,
    pub(crate) typing_ttl: Millis,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_body: validate::max_body(DEFAULT_MAX_FRAME),
            typing_throttle: 1000,
            typing_ttl: 5000,
        }
    }
}

impl From<Limits> for ServerLimits {
    fn from(limits: Limits) -> Self {
        ServerLimits {
            max_body: limits.max_body as usize,
            typing_throttle: limits.typing_throttle_ms.into(),
            typing_ttl: limits.typing_ttl_ms.into(),
        }
    }
}

fn is_token_expired(code: u16) -> bool {
    DisconnectReason::from_close_code(code) == Some(DisconnectReason::TokenExpired)
}

/// Words for a close code that came without the server's `Disconnect` notice: the name the
/// server gives its own codes, else what a browser's codes mean here.
pub(crate) fn close_reason(code: u16, opened: bool) -> &'static str {
    if let Some(reason) = DisconnectReason::from_close_code(code) {
        return reason.name();
    }
    match code {
        1006 if opened => "connection lost",
        1006 => "connection failed",
        _ => "connection closed",
    }
}

impl Core {
    /// Enter `phase`. When that changes [`Core::state`], tell the app, with the code and
    /// reason in `self.cause`: every caller sets the cause first when the change has a new
    /// one.
    pub(super) fn enter(&mut self, phase: Phase) {
        let before = self.state();
        self.phase = phase;
        let state = self.state();
        if state != before {
            let (code, reason) = self.cause.clone();
            self.emit(Event::State {
                state,
                code,
                reason,
            });
        }
    }

    /// Why the next state change happens.
    pub(super) fn set_cause(&mut self, code: u16, reason: &str) {
        self.cause = (code, reason.to_owned());
    }

    /// A backoff with no failure counted.
    pub(super) fn fresh_backoff(&self) -> Backoff {
        Backoff::new(
            self.timings.initial_backoff,
            self.timings.max_backoff,
            self.timings.stable_after,
        )
    }

    /// First connect: with the token given, or one fetched.
    pub(super) fn start(&mut self, now: Millis) {
        if self.token.is_some() {
            self.open_socket(now);
        } else if self.can_fetch_token {
            self.fetch_token();
        } else {
            self.shut(
                1000,
                "unauthorized",
                Some((
                    ClientErrorCode::Unauthorized,
                    "no token, and no getToken to fetch one".to_owned(),
                )),
            );
        }
    }

    /// A connection attempt. After a socket that failed before opening (or a probe that
    /// found no server), the attempt starts with the token probe, so that while the server
    /// is down each attempt costs one request, and a refused token is told from a network
    /// failure; otherwise it opens a socket at once.
    fn attempt(&mut self, now: Millis) {
        match self.token.clone() {
            Some(token) if self.probe_first => {
                self.enter(Phase::Probing {
                    deadline: now.saturating_add(self.timings.connect_timeout),
                });
                self.push(Action::ProbeAuth { token });
            }
            _ => self.open_socket(now),
        }
    }

    pub(super) fn open_socket(&mut self, now: Millis) {
        let Some(token) = self.token.clone() else {
            return self.start(now);
        };
        self.notice = None;
        self.enter(Phase::Opening {
            deadline: now.saturating_add(self.timings.connect_timeout),
        });
        self.push(Action::Open { token });
    }

    pub(super) fn fetch_token(&mut self) {
        self.enter(Phase::FetchingToken);
        self.push(Action::FetchToken);
    }

    pub(super) fn proceed(&mut self, next: Next, now: Millis) {
        match next {
            Next::Open => self.attempt(now),
            Next::FetchToken => self.fetch_token(),
        }
    }

    /// Wait `delay` before `next`, telling the app.
    pub(super) fn wait(&mut self, now: Millis, delay: Millis, next: Next, firm: bool) {
        self.enter(Phase::Waiting {
            until: now.saturating_add(delay),
            next,
            firm,
        });
        self.emit_reconnecting(delay);
    }

    fn emit_reconnecting(&mut self, delay_ms: Millis) {
        let (code, reason) = self.cause.clone();
        self.emit(Event::Reconnecting {
            attempt: self.backoff.attempt(),
            delay_ms,
            code,
            reason,
        });
    }

    /// Go on to `next` without waiting, telling the app what a wait of 0 ms would: the
    /// state, then `Reconnecting`, then the action.
    pub(super) fn go_at_once(&mut self, now: Millis, next: Next) {
        match (next, self.token.clone()) {
            (Next::FetchToken, _) => {
                self.enter(Phase::FetchingToken);
                self.emit_reconnecting(0);
                self.push(Action::FetchToken);
            }
            (Next::Open, Some(token)) => {
                self.notice = None;
                self.enter(Phase::Opening {
                    deadline: now.saturating_add(self.timings.connect_timeout),
                });
                self.emit_reconnecting(0);
                self.push(Action::Open { token });
            }
            (Next::Open, None) => {
                self.emit_reconnecting(0);
                self.start(now);
            }
        }
    }

    /// Another attempt after the backoff delay.
    pub(super) fn retry(&mut self, now: Millis) {
        let delay = self.backoff.delay(&mut self.rng);
        self.wait(now, delay, Next::Open, false);
    }

    /// An attempt failed before any socket was welcomed (the cause is set): count it, then
    /// wait the backoff delay before `next`, unless that was the last attempt allowed.
    pub(super) fn attempt_failed(&mut self, now: Millis, next: Next) {
        self.backoff.failed();
        if self.attempts_exhausted() {
            return;
        }
        let delay = self.backoff.delay(&mut self.rng);
        self.wait(now, delay, next, false);
    }

    /// Count a failed attempt. When that was the last one `max_attempts` allows, close for
    /// good and return true.
    fn attempts_exhausted(&mut self) -> bool {
        self.failed_attempts = self.failed_attempts.saturating_add(1);
        let Some(max) = self.max_attempts else {
            return false;
        };
        if self.failed_attempts < max.max(1) {
            return false;
        }
        let mut message = String::from("gave up after ");
        text::push_decimal(&mut message, self.failed_attempts.into());
        message.push_str(if self.failed_attempts == 1 {
            " failed connection attempt"
        } else {
            " failed connection attempts in a row"
        });
        self.shut(
            self.last_close_code,
            "connection attempts exhausted",
            Some((ClientErrorCode::AttemptsExhausted, message)),
        );
        true
    }

    /// The token is refused or expired: get another. The first refresh since the last
    /// stable connection goes at once; later ones wait their backoff.
    pub(super) fn refresh_token(&mut self, now: Millis) {
        self.token_refreshes = self.token_refreshes.saturating_add(1);
        if self.token_refreshes == 1 {
            self.go_at_once(now, Next::FetchToken);
        } else {
            let delay = self.backoff.delay(&mut self.rng);
            self.wait(now, delay, Next::FetchToken, false);
        }
    }

    /// The welcome: the connection is open. Rejoin every wanted room from where the client
    /// left it, then send what the outbox holds and the history requests.
    pub(super) fn welcome(
        &mut self,
        now: Millis,
        session: String,
        user: String,
        heartbeat_ms: u32,
        heartbeat_timeout_ms: u32,
        limits: Limits,
    ) {
        self.limits = limits.into();
        // The server's publish bucket is new with the connection.
        self.outbox
            .pace(now, limits.publish_per_second, limits.publish_burst);
        let mut interval = match heartbeat_ms {
            0 => DEFAULT_HEARTBEAT_MS,
            ms => ms,
        };
        // The server's configuration forbids a timeout at or under the interval; were it
        // so, pinging at the interval would get this client cut off.
        if heartbeat_timeout_ms > 0 && heartbeat_timeout_ms <= interval {
            interval = (heartbeat_timeout_ms / 2).max(1);
        }
        let heartbeat = Heartbeat::new(
            now,
            interval.into(),
            heartbeat_timeout_ms.into(),
            self.timings.pong_timeout,
        );
        self.failed_attempts = 0;
        self.probe_first = false;
        self.set_cause(1000, "");
        self.enter(Phase::Open(Box::new(OpenConnection {
            since: now,
            heartbeat,
            sync: None,
        })));
        self.user = Some(user.clone());
        self.emit(Event::Open { session, user });
        let actions = &mut self.actions;
        self.rooms.rejoin_all(|room, since| {
            let room = room.to_owned();
            actions.push(Action::Send(super::encode(&ClientMessage::Join {
                room,
                since,
            })));
        });
        self.after_joins(now);
        self.flush_requests();
    }

    /// What every end of a socket does, whatever comes next: rooms to rejoin, publishes and
    /// requests to send again, typing forgotten, and the backoff told (`open_since` is when
    /// the welcome came, if it did).
    pub(super) fn lose_connection(&mut self, now: Millis, open_since: Option<Millis>) {
        self.rooms.connection_lost();
        self.outbox.connection_lost();
        self.requests.connection_lost();
        self.local_typing.clear();
        for room in &self.remote_typing.clear() {
            self.emit(Event::Typing {
                room: room.clone(),
                users: Vec::new(),
            });
        }
        match open_since {
            Some(since) => {
                let open_for = now.saturating_sub(since);
                if self.backoff.is_stable(open_for) {
                    self.token_refreshes = 0;
                }
                self.backoff.lost(open_for);
            }
            None => {
                self.backoff.failed();
            }
        }
    }

    /// The socket is gone (closed with `code`, or given up on by the client for `reason`),
    /// after a welcome at `open_since` if there was one. Decide what comes next: the
    /// server's `Disconnect` notice first, then the close code, then plain backoff.
    pub(super) fn connection_ended(
        &mut self,
        now: Millis,
        code: u16,
        reason: &str,
        open_since: Option<Millis>,
    ) {
        self.last_close_code = code;
        self.lose_connection(now, open_since);
        let notice = self.notice.take();
        match &notice {
            Some(notice) => self.cause = (notice.code, notice.reason.clone()),
            None => self.set_cause(code, reason),
        }
        let token_expired =
            is_token_expired(code) || notice.as_ref().is_some_and(|n| is_token_expired(n.code));
        let refresh = token_expired && self.can_fetch_token;
        if let Some(Notice {
            reason,
            reconnect: Reconnect::DoNotRetry,
            ..
        }) = &notice
            && !refresh
        {
            let message = reason.clone();
            return self.shut(code, reason, Some((ClientErrorCode::DoNotRetry, message)));
        }
        if open_since.is_none() && self.attempts_exhausted() {
            return;
        }
        match notice {
            Some(Notice {
                reconnect: Reconnect::RetryAfter(ms),
                ..
            }) => {
                let delay = backoff::retry_after(ms, &mut self.rng);
                self.wait(now, delay, Next::Open, true);
            }
            _ if refresh => self.refresh_token(now),
            _ => self.retry(now),
        }
    }

    /// Closed for good: settle every publish and history request, tell the app (an error
    /// first, if any, then the state, then `Close`), and hold no more state that could
    /// fire.
    pub(super) fn shut(
        &mut self,
        code: u16,
        reason: &str,
        error: Option<(ClientErrorCode, String)>,
    ) {
        for p in &self.outbox.take_all() {
            self.settle(p.id, Err(PublishError::Closed));
        }
        for r in &self.requests.take_all() {
            self.history_done(r.id, Err(HistoryError::Closed));
        }
        self.local_typing.clear();
        self.remote_typing.clear();
        if let Some((code, message)) = error {
            self.emit(Event::Error {
                code: code as u16,
                message,
                room: None,
            });
        }
        self.set_cause(code, reason);
        self.enter(Phase::Closed);
        self.emit(Event::Close {
            code,
            reason: reason.to_owned(),
        });
    }
}
