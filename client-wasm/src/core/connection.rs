//! The connection's life: opening a socket, the welcome, losing it, waiting out the backoff,
//! refreshing the token, closing for good.

use chorus_protocol::{
    ClientMessage, DEFAULT_MAX_FRAME, DisconnectReason, Limits, Reconnect, validate,
};

use super::heartbeat::Heartbeat;
use super::{Action, ClientErrorCode, Core, Event, HistoryError, Millis, PublishError, backoff};

/// Ping interval when the server announces none. Its default, 25 s.
const DEFAULT_HEARTBEAT_MS: u32 = 25_000;

/// Where the connection is, in more detail than [`super::State`].
#[derive(Debug)]
pub(crate) enum Phase {
    /// `connect` not called yet.
    Idle,
    /// Waiting for the app's `getToken`.
    FetchingToken,
    /// A socket is opening; the welcome must arrive by `deadline`.
    Opening { deadline: Millis },
    /// The socket is open; the welcome must arrive by `deadline`.
    Handshake { deadline: Millis },
    /// Welcomed.
    Open(Box<OpenConnection>),
    /// The socket failed before opening; asking whether the server refuses the token.
    Probing,
    /// Waiting until `until`, then `next`. A `firm` wait is the server's `RetryAfter`, which
    /// `wake` does not cut short.
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

impl Core {
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

    pub(super) fn open_socket(&mut self, now: Millis) {
        let Some(token) = self.token.clone() else {
            return self.start(now);
        };
        self.notice = None;
        self.push(Action::Open { token });
        self.phase = Phase::Opening {
            deadline: now.saturating_add(self.timings.connect_timeout),
        };
    }

    fn fetch_token(&mut self) {
        self.push(Action::FetchToken);
        self.phase = Phase::FetchingToken;
    }

    pub(super) fn proceed(&mut self, next: Next, now: Millis) {
        match next {
            Next::Open => self.open_socket(now),
            Next::FetchToken => self.fetch_token(),
        }
    }

    /// Wait `delay` before `next`, telling the app.
    pub(super) fn wait(&mut self, now: Millis, delay: Millis, next: Next, firm: bool) {
        self.emit(Event::Reconnecting {
            attempt: self.backoff.attempt(),
            delay_ms: delay,
        });
        self.phase = Phase::Waiting {
            until: now.saturating_add(delay),
            next,
            firm,
        };
    }

    /// Another attempt after the backoff delay.
    pub(super) fn retry(&mut self, now: Millis) {
        let delay = self.backoff.delay(&mut self.rng);
        self.wait(now, delay, Next::Open, false);
    }

    /// The token is refused or expired: get another. The first refresh since the last
    /// stable connection goes at once; later ones wait their backoff.
    pub(super) fn refresh_token(&mut self, now: Millis) {
        self.token_refreshes = self.token_refreshes.saturating_add(1);
        if self.token_refreshes == 1 {
            self.emit(Event::Reconnecting {
                attempt: self.backoff.attempt(),
                delay_ms: 0,
            });
            self.fetch_token();
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
        let mut interval = match heartbeat_ms {
            0 => DEFAULT_HEARTBEAT_MS,
            ms => ms,
        };
        // The server's configuration forbids a timeout at or under the interval; were it
        // so, pinging at the interval would get this client cut off.
        if heartbeat_timeout_ms > 0 && heartbeat_timeout_ms <= interval {
            interval = (heartbeat_timeout_ms / 2).max(1);
        }
        let heartbeat = Heartbeat::new(now, interval.into(), self.timings.pong_timeout);
        self.phase = Phase::Open(Box::new(OpenConnection {
            since: now,
            heartbeat,
            sync: None,
        }));
        self.user = Some(user.clone());
        self.emit(Event::Open { session, user });
        for (room, since) in self.rooms.rejoin_all() {
            self.send(&ClientMessage::Join { room, since });
        }
        self.after_joins();
        self.flush_requests();
    }

    /// The socket is gone (closed, or given up on by the client), after a welcome at
    /// `open_since` if there was one. Decide what comes next: the server's `Disconnect`
    /// notice first, then the close code, then plain backoff.
    pub(super) fn connection_ended(&mut self, now: Millis, code: u16, open_since: Option<Millis>) {
        self.last_close_code = code;
        self.rooms.connection_lost();
        self.outbox.connection_lost();
        self.requests.connection_lost();
        self.local_typing.clear();
        for room in self.remote_typing.clear() {
            self.emit(Event::Typing {
                room,
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
        match self.notice.take() {
            Some(Notice {
                code: notice_code,
                reason,
                reconnect: Reconnect::DoNotRetry,
            }) => {
                if (is_token_expired(notice_code) || is_token_expired(code)) && self.can_fetch_token
                {
                    self.refresh_token(now);
                } else {
                    let message = reason.clone();
                    self.shut(code, &reason, Some((ClientErrorCode::DoNotRetry, message)));
                }
            }
            Some(Notice {
                reconnect: Reconnect::RetryAfter(ms),
                ..
            }) => {
                let delay = backoff::retry_after(ms, &mut self.rng);
                self.wait(now, delay, Next::Open, true);
            }
            None if is_token_expired(code) && self.can_fetch_token => self.refresh_token(now),
            None => self.retry(now),
        }
    }

    /// Closed for good: settle every publish and history request, tell the app (an error
    /// first, if any), and hold no more state that could fire.
    pub(super) fn shut(
        &mut self,
        code: u16,
        reason: &str,
        error: Option<(ClientErrorCode, String)>,
    ) {
        self.phase = Phase::Closed;
        for p in self.outbox.take_all() {
            self.settle(p.id, Err(PublishError::Closed));
        }
        for r in self.requests.take_all() {
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
        self.emit(Event::Close {
            code,
            reason: reason.to_owned(),
        });
    }
}
