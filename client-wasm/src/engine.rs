//! The engine behind the npm package: the sans-IO [`Core`] offered to JavaScript through
//! numbers and bytes only (feature `js`).
//!
//! The JavaScript API itself (events, Promises, room handles, codecs, the socket and the
//! timer) is TypeScript (`client-wasm/ts/`). It feeds the engine inputs ([`Engine::input`],
//! with `now` from `performance.now()`), then calls
//! [`Engine::drain`] and reads the records the core decided on from wasm memory at
//! [`Engine::out_ptr`]. Nothing here builds a
//! JavaScript object or touches a browser API, so the module has no imports at all and
//! loads the same way in browsers, workers, Node, Deno and Bun.
//!
//! ## The record format
//! `drain` writes records back to back. Each starts with a tag byte; numbers are `f64`
//! little-endian (every id, sequence, epoch and time is below 2^53, see `core`), strings
//! and bytes a `u32` little-endian length and then UTF-8 or raw bytes, a body a kind byte
//! (0 text, 1 bytes) and then the bytes. An absent room is the empty string (room names are
//! never empty). `ts/engine.ts` reads exactly this.
//!
//! | tag | record | fields |
//! |---|---|---|
//! | 1 | open a socket | token |
//! | 2 | send | bytes |
//! | 3 | close the socket | code, reason |
//! | 4 | fetch a token | |
//! | 5 | probe the token | token |
//! | 6 | publish acknowledged | id, room, seq |
//! | 7 | publish failed | id, code, message, size, max |
//! | 8 | history page | request, room, epoch, seq, more (byte), count, count × (seq, id, sender, ts, body) |
//! | 9 | history failed | request, code, message |
//! | 10 | event open | session, user |
//! | 11 | event close | code, reason |
//! | 12 | event reconnecting | attempt, delay, code, reason |
//! | 13 | event joined | room, epoch, seq, recovery (byte: 0 not requested, 1 recovered, 2 missed), count, count × member |
//! | 14 | event left | room |
//! | 15 | event message | room, seq, id, sender, ts, body |
//! | 16 | event member joined | room, user |
//! | 17 | event member left | room, user |
//! | 18 | event typing | room, count, count × user |
//! | 19 | event error | code, message, room |
//! | 20 | event state | state (byte: 0 connecting, 1 open, 2 reconnecting, 3 closed), code, reason |
//! | 21 | arm the timer | when (ms on the caller's clock; -1: no timer), last in a drain, and only when it changed or the timer fired |

use crate::prelude::*;
use ::core::time::Duration;

use chorus_protocol::{Body, HistoryMessage, Position, Recovery};
use wasm_bindgen::prelude::*;

use crate::core::{
    Ack, Action, Core, Event, HistoryError, HistoryPage, Millis, Options, Probe, PublishError,
    State,
};

const OPEN_SOCKET: u8 = 1;
const SEND: u8 = 2;
const CLOSE_SOCKET: u8 = 3;
const FETCH_TOKEN: u8 = 4;
const PROBE: u8 = 5;
const ACKED: u8 = 6;
const PUBLISH_FAILED: u8 = 7;
const HISTORY: u8 = 8;
const HISTORY_FAILED: u8 = 9;
const EV_OPEN: u8 = 10;
const EV_CLOSE: u8 = 11;
const EV_RECONNECTING: u8 = 12;
const EV_JOINED: u8 = 13;
const EV_LEFT: u8 = 14;
const EV_MESSAGE: u8 = 15;
const EV_MEMBER_JOINED: u8 = 16;
const EV_MEMBER_LEFT: u8 = 17;
const EV_TYPING: u8 = 18;
const EV_ERROR: u8 = 19;
const EV_STATE: u8 = 20;
const DEADLINE: u8 = 21;

/// What [`Engine::input`] does, by its `op` (`ts/wire.ts` has the same numbers).
struct Op;

impl Op {
    /// Start connecting.
    const CONNECT: u8 = 0;
    /// Leave room `name`.
    const LEAVE: u8 = 1;
    /// Publish `bytes` (UTF-8) as text to room `name`; `x`: the app's message id, or `NaN`.
    const PUBLISH_TEXT: u8 = 2;
    /// Publish `bytes` to room `name`; `x` as above.
    const PUBLISH_BYTES: u8 = 3;
    /// A page of room `name`'s history before position (`x`, `y`) (`NaN`: the newest), of at
    /// most `z` messages.
    const HISTORY: u8 = 4;
    /// A keystroke in room `name`.
    const TYPING: u8 = 5;
    /// Close for good.
    const CLOSE: u8 = 6;
    /// Connect again now.
    const RECONNECT: u8 = 7;
    /// The network is back, or the page visible again.
    const WAKE: u8 = 8;
    /// The app's `getToken` settled: `x` 1 with the token in `name`, else 0 with why.
    const TOKEN_FETCHED: u8 = 9;
    /// The token probe's outcome `x`: 0 accepted, 1 refused, 2 server unreachable.
    const AUTH_PROBED: u8 = 10;
    /// The socket opened.
    const SOCKET_OPENED: u8 = 11;
    /// A binary frame, `bytes`, arrived.
    const SOCKET_FRAME: u8 = 12;
    /// The socket closed with code `x`.
    const SOCKET_CLOSED: u8 = 13;
    /// The timer the last `DEADLINE` record asked for fired.
    const TICK: u8 = 14;
    /// Whether room `name` is still wanted (joined or being joined; a join refused for good
    /// is not): answers 1 or 0.
    const WANTS: u8 = 15;
    /// Join room `name`, resuming from position (`x`, `y`) (`NaN`: none). A name the
    /// protocol refuses answers the length of why, in UTF-8 at [`Engine::out_ptr`]; 0 when
    /// accepted.
    const JOIN: u8 = 16;
    /// How many publishes wait (queued offline, paced, or awaiting their ack).
    const PENDING: u8 = 17;
}

/// The client core for JavaScript. See the module docs.
#[wasm_bindgen]
pub struct Engine {
    core: Core,
    /// The records of the last [`Engine::drain`].
    out: Vec<u8>,
    /// The deadline the last [`DEADLINE`] record told; `NaN` when the next drain must tell
    /// it again (after `TICK`: the shell's timer is spent).
    reported: f64,
}

/// A duration in ms from JavaScript: `NaN` (or anything not finite, or negative) means "the
/// default". Not inlined: once for all the options is smaller.
#[inline(never)]
fn duration(ms: f64, default: Duration) -> Duration {
    if ms.is_finite() && ms >= 0.0 {
        Duration::from_millis(ms as u64)
    } else {
        default
    }
}

/// A count from JavaScript, read as [`duration`] reads a time (and not inlined either).
#[inline(never)]
fn count(value: f64, default: usize) -> usize {
    if value.is_finite() && value >= 0.0 {
        value as usize
    } else {
        default
    }
}

/// A position from JavaScript: none when `epoch` is not a finite number.
fn position(epoch: f64, seq: f64) -> Option<Position> {
    (epoch.is_finite() && seq.is_finite()).then_some(Position {
        epoch: epoch as u64,
        seq: seq as u64,
    })
}

fn now(ms: f64) -> Millis {
    if ms > 0.0 { ms as Millis } else { 0 }
}

#[wasm_bindgen]
impl Engine {
    /// A client core. `options`, as `f64`s little-endian (a `Float64Array`'s bytes: one way
    /// in less for the glue): initial backoff, max backoff, stable after, connect timeout,
    /// pong timeout, publish timeout, request timeout (all ms), queue max messages, queue max
    /// bytes, typing idle (ms), max attempts; `NaN` for the default of each.
    /// `token` is empty when there is none yet. `seed` seeds jitter and ids.
    #[wasm_bindgen(constructor)]
    pub fn new(options: &[u8], token: &str, can_fetch_token: bool, seed: f64) -> Engine {
        let d = Options::default();
        let at = |i: usize| {
            options
                .get(i * 8..i * 8 + 8)
                .and_then(|bytes| bytes.try_into().ok())
                .map_or(f64::NAN, f64::from_le_bytes)
        };
        let max_attempts = at(10);
        let options = Options {
            initial_backoff: duration(at(0), d.initial_backoff),
            max_backoff: duration(at(1), d.max_backoff),
            stable_after: duration(at(2), d.stable_after),
            connect_timeout: duration(at(3), d.connect_timeout),
            pong_timeout: duration(at(4), d.pong_timeout),
            publish_timeout: duration(at(5), d.publish_timeout),
            request_timeout: duration(at(6), d.request_timeout),
            queue_max_messages: count(at(7), d.queue_max_messages),
            queue_max_bytes: count(at(8), d.queue_max_bytes),
            typing_idle: duration(at(9), d.typing_idle),
            max_attempts: (max_attempts.is_finite() && max_attempts >= 0.0)
                .then_some(max_attempts as u32),
        };
        let token = (!token.is_empty()).then(|| token.to_owned());
        // The seed arrives as a double with 53 random bits; spread them over 64.
        let seed = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Engine {
            core: Core::new(options, token, can_fetch_token, seed),
            out: Vec::new(),
            reported: f64::NAN,
        }
    }

    /// One input to the core (see [`Op`] for what each reads: a `name`, `bytes`, and
    /// numbers `x`, `y`, `z`; unused ones are empty or `NaN`), at `now_ms`. Returns a
    /// publish's message id, a history request's id, 1 or 0 for `WANTS`, what `JOIN` says,
    /// else 0.
    ///
    /// One entry point rather than one per input: each export costs its own shim in the
    /// wasm and its own wrapper in the glue, and the package is downloaded by every page.
    #[allow(clippy::too_many_arguments)]
    pub fn input(
        &mut self,
        op: u8,
        name: &str,
        bytes: &[u8],
        x: f64,
        y: f64,
        z: f64,
        now_ms: f64,
    ) -> f64 {
        let now = now(now_ms);
        let core = &mut self.core;
        let id = || (x.is_finite() && x >= 0.0).then_some(x as u64);
        match op {
            Op::CONNECT => core.connect(now),
            Op::LEAVE => core.leave(name, now),
            // One call site of `publish` for both.
            Op::PUBLISH_TEXT | Op::PUBLISH_BYTES => {
                let data = bytes.to_vec();
                let body = if op == Op::PUBLISH_TEXT {
                    Body::Text(String::from_utf8(data).unwrap_or_default())
                } else {
                    Body::Binary(data)
                };
                return core.publish(name, body, id(), now) as f64;
            }
            Op::HISTORY => {
                let limit = if z >= 0.0 { z as u32 } else { 0 };
                return core.history(name, position(x, y), limit, now) as f64;
            }
            Op::TYPING => core.typing(name, now),
            Op::CLOSE => core.close(now),
            Op::RECONNECT => core.reconnect(now),
            Op::WAKE => core.wake(now),
            Op::TOKEN_FETCHED => {
                let value = name.to_owned();
                core.token_fetched(if x == 1.0 { Ok(value) } else { Err(value) }, now);
            }
            Op::AUTH_PROBED => {
                let outcome = match x as u8 {
                    0 => Probe::Accepted,
                    1 => Probe::Refused,
                    _ => Probe::Unreachable,
                };
                core.auth_probed(outcome, now);
            }
            Op::SOCKET_OPENED => core.socket_opened(now),
            Op::SOCKET_FRAME => core.socket_frame(bytes, now),
            Op::SOCKET_CLOSED => core.socket_closed(x as u16, now),
            Op::TICK => {
                self.reported = f64::NAN;
                core.tick(now);
            }
            Op::WANTS => return f64::from(u8::from(core.wants(name))),
            Op::PENDING => return core.pending() as f64,
            Op::JOIN => {
                if let Err(refused) = core.join(name, position(x, y), now) {
                    // Why, in place of the last drain's records (already copied out).
                    self.out.clear();
                    self.out.extend_from_slice(refused.0.as_bytes());
                    return self.out.len() as f64;
                }
            }
            _ => {}
        }
        0.0
    }

    /// A binary frame arrived on the socket: the input and the [`Engine::drain`] after it in
    /// one call, since that is what every message costs.
    pub fn frame(&mut self, frame: &[u8], now_ms: f64) -> usize {
        self.core.socket_frame(frame, now(now_ms));
        self.drain()
    }

    /// Write every action the core decided on since the last call as records at
    /// [`Engine::out_ptr`]; returns their length in bytes. Valid until the next call.
    pub fn drain(&mut self) -> usize {
        self.out.clear();
        while let Some(action) = self.core.poll_action() {
            write_action(&mut self.out, &action);
        }
        let at = self.core.next_deadline().map_or(-1.0, |at| at as f64);
        if at != self.reported {
            self.out.push(DEADLINE);
            put_f64(&mut self.out, at);
            self.reported = at;
        }
        self.out.len()
    }

    /// Where the records of the last [`Engine::drain`] start in wasm memory.
    #[wasm_bindgen(js_name = outPtr)]
    pub fn out_ptr(&self) -> usize {
        self.out.as_ptr() as usize
    }
}

fn put_f64(out: &mut Vec<u8>, value: f64) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_num(out: &mut Vec<u8>, value: u64) {
    put_f64(out, value as f64);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    put_bytes(out, text.as_bytes());
}

fn put_body(out: &mut Vec<u8>, body: &Body) {
    match body {
        Body::Text(text) => {
            out.push(0);
            put_str(out, text);
        }
        Body::Binary(bytes) => {
            out.push(1);
            put_bytes(out, bytes);
        }
    }
}

fn put_position(out: &mut Vec<u8>, position: Position) {
    put_num(out, position.epoch);
    put_num(out, position.seq);
}

fn put_list(out: &mut Vec<u8>, items: &[String]) {
    put_num(out, items.len() as u64);
    for item in items {
        put_str(out, item);
    }
}

fn write_action(out: &mut Vec<u8>, action: &Action) {
    match action {
        Action::Open { token } => {
            out.push(OPEN_SOCKET);
            put_str(out, token);
        }
        Action::Send(frame) => {
            out.push(SEND);
            put_bytes(out, frame);
        }
        Action::Close { code, reason } => {
            out.push(CLOSE_SOCKET);
            put_num(out, u64::from(*code));
            put_str(out, reason);
        }
        Action::FetchToken => out.push(FETCH_TOKEN),
        Action::ProbeAuth { token } => {
            out.push(PROBE);
            put_str(out, token);
        }
        Action::Emit(event) => write_event(out, event),
        Action::Settle { id, result } => write_settled(out, *id, result),
        Action::HistoryDone { request, result } => write_history(out, *request, result),
    }
}

fn write_settled(out: &mut Vec<u8>, id: u64, result: &Result<Ack, PublishError>) {
    match result {
        Ok(ack) => {
            out.push(ACKED);
            put_num(out, id);
            put_str(out, &ack.room);
            put_num(out, ack.seq);
        }
        Err(error) => {
            out.push(PUBLISH_FAILED);
            put_num(out, id);
            put_num(out, error.code().into());
            let (message, size, max) = match error {
                PublishError::QueueFull => ("the offline queue is full", 0, 0),
                PublishError::TimedOut => ("no acknowledgement in time", 0, 0),
                PublishError::TooLarge { size, max } => {
                    ("the body is larger than the server accepts", *size, *max)
                }
                PublishError::Rejected { message, .. } => (message.as_str(), 0, 0),
                PublishError::Closed => ("the client was closed", 0, 0),
            };
            put_str(out, message);
            put_num(out, size as u64);
            put_num(out, max as u64);
        }
    }
}

fn write_history(out: &mut Vec<u8>, request: u64, result: &Result<HistoryPage, HistoryError>) {
    match result {
        Ok(page) => {
            out.push(HISTORY);
            put_num(out, request);
            put_str(out, &page.room);
            put_position(out, page.position);
            out.push(u8::from(page.more));
            put_num(out, page.messages.len() as u64);
            for HistoryMessage {
                seq,
                id,
                sender,
                ts,
                body,
            } in &page.messages
            {
                put_num(out, *seq);
                put_num(out, *id);
                put_str(out, sender);
                put_num(out, *ts);
                put_body(out, body);
            }
        }
        Err(error) => {
            out.push(HISTORY_FAILED);
            put_num(out, request);
            put_num(out, error.code().into());
            let message = match error {
                HistoryError::TooManyPending => "too many history requests are pending",
                HistoryError::TimedOut => "no answer in time",
                HistoryError::Rejected { message, .. } => message.as_str(),
                HistoryError::Closed => "the client was closed",
            };
            put_str(out, message);
        }
    }
}

fn write_event(out: &mut Vec<u8>, event: &Event) {
    match event {
        Event::Open { session, user } => {
            out.push(EV_OPEN);
            put_str(out, session);
            put_str(out, user);
        }
        Event::Close { code, reason } => {
            out.push(EV_CLOSE);
            put_num(out, u64::from(*code));
            put_str(out, reason);
        }
        Event::Reconnecting {
            attempt,
            delay_ms,
            code,
            reason,
        } => {
            out.push(EV_RECONNECTING);
            put_num(out, u64::from(*attempt));
            put_num(out, *delay_ms);
            put_num(out, u64::from(*code));
            put_str(out, reason);
        }
        Event::Joined {
            room,
            members,
            position,
            recovery,
        } => {
            out.push(EV_JOINED);
            put_str(out, room);
            put_position(out, *position);
            out.push(match recovery {
                Recovery::NotRequested => 0,
                Recovery::Recovered => 1,
                Recovery::Missed => 2,
            });
            put_list(out, members);
        }
        Event::Left { room } => {
            out.push(EV_LEFT);
            put_str(out, room);
        }
        Event::Message {
            room,
            seq,
            id,
            sender,
            ts,
            body,
        } => {
            out.push(EV_MESSAGE);
            put_str(out, room);
            put_num(out, *seq);
            put_num(out, *id);
            put_str(out, sender);
            put_num(out, *ts);
            put_body(out, body);
        }
        Event::MemberJoined { room, user } => {
            out.push(EV_MEMBER_JOINED);
            put_str(out, room);
            put_str(out, user);
        }
        Event::MemberLeft { room, user } => {
            out.push(EV_MEMBER_LEFT);
            put_str(out, room);
            put_str(out, user);
        }
        Event::Typing { room, users } => {
            out.push(EV_TYPING);
            put_str(out, room);
            put_list(out, users);
        }
        Event::Error {
            code,
            message,
            room,
        } => {
            out.push(EV_ERROR);
            put_num(out, u64::from(*code));
            put_str(out, message);
            put_str(out, room.as_deref().unwrap_or(""));
        }
        Event::State {
            state,
            code,
            reason,
        } => {
            out.push(EV_STATE);
            out.push(match state {
                State::Connecting => 0,
                State::Open => 1,
                State::Reconnecting => 2,
                State::Closed => 3,
            });
            put_num(out, u64::from(*code));
            put_str(out, reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use chorus_protocol::{Limits, ServerMessage};

    use super::*;

    /// A cursor over records, as `ts/wire.ts` reads them.
    struct Records<'a>(&'a [u8]);

    impl Records<'_> {
        fn u8(&mut self) -> u8 {
            let (first, rest) = self.0.split_first().expect("a byte");
            self.0 = rest;
            *first
        }

        fn num(&mut self) -> f64 {
            let (bytes, rest) = self.0.split_at(8);
            self.0 = rest;
            f64::from_le_bytes(bytes.try_into().expect("8 bytes"))
        }

        fn bytes(&mut self) -> Vec<u8> {
            let (len, rest) = self.0.split_at(4);
            let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
            let (bytes, rest) = rest.split_at(len);
            self.0 = rest;
            bytes.to_vec()
        }

        fn str(&mut self) -> String {
            String::from_utf8(self.bytes()).expect("UTF-8")
        }

        /// Nothing left but, perhaps, the timer's record.
        fn deadline_at_most(&mut self) {
            if !self.0.is_empty() {
                assert_eq!(self.u8(), DEADLINE);
                self.num();
            }
            assert!(self.0.is_empty(), "nothing else: {:?}", self.0);
        }
    }

    const NAN: f64 = f64::NAN;

    /// An input without a name or numbers.
    fn input(engine: &mut Engine, op: u8, bytes: &[u8], now: f64) {
        engine.input(op, "", bytes, NAN, NAN, NAN, now);
    }

    fn frame(message: &ServerMessage) -> Vec<u8> {
        message.encode(usize::MAX).expect("encodes")
    }

    /// An engine welcomed and joined to `room`; its records so far are drained.
    fn joined(room: &str) -> Engine {
        let mut engine = Engine::new(&[], "token", false, 7.0);
        input(&mut engine, Op::CONNECT, &[], 0.0);
        input(&mut engine, Op::SOCKET_OPENED, &[], 1.0);
        input(
            &mut engine,
            Op::SOCKET_FRAME,
            &frame(&ServerMessage::Welcome {
                session: "s1".into(),
                user: "alice".into(),
                protocol: 1,
                heartbeat_ms: 25_000,
                heartbeat_timeout_ms: 60_000,
                limits: Limits {
                    max_frame: 65_536,
                    max_body: 64_512,
                    max_rooms: 64,
                    publish_per_second: 50,
                    publish_burst: 100,
                    typing_throttle_ms: 1000,
                    typing_ttl_ms: 5000,
                },
            }),
            2.0,
        );
        assert_eq!(engine.input(Op::JOIN, room, &[], NAN, NAN, NAN, 3.0), 0.0);
        input(
            &mut engine,
            Op::SOCKET_FRAME,
            &frame(&ServerMessage::Joined {
                room: room.into(),
                position: Position { epoch: 5, seq: 0 },
                members: vec!["alice".into()],
                recovery: Recovery::NotRequested,
            }),
            3.0,
        );
        engine.drain();
        engine
    }

    #[test]
    fn connect_asks_for_a_socket_with_the_token() {
        let mut engine = Engine::new(&[], "token", false, 7.0);
        input(&mut engine, Op::CONNECT, &[], 0.0);
        let len = engine.drain();
        let mut records = Records(&engine.out[..len]);
        assert_eq!(records.u8(), OPEN_SOCKET);
        assert_eq!(records.str(), "token");
        assert_eq!(records.u8(), DEADLINE);
        assert_eq!(records.num(), 10_000.0, "the connect timeout");
        assert!(records.0.is_empty(), "nothing else: {:?}", records.0);
    }

    #[test]
    fn a_message_becomes_one_message_record_with_every_field() {
        let mut engine = joined("lobby");
        input(
            &mut engine,
            Op::SOCKET_FRAME,
            &frame(&ServerMessage::Message {
                room: "lobby".into(),
                seq: 1,
                id: (1 << 53) - 1,
                sender: "bob".into(),
                ts: 1_700_000_000_000,
                body: Body::Binary(vec![0, 255]),
            }),
            4.0,
        );
        let len = engine.drain();
        let mut records = Records(&engine.out[..len]);
        assert_eq!(records.u8(), EV_MESSAGE);
        assert_eq!(records.str(), "lobby");
        assert_eq!(records.num(), 1.0);
        assert_eq!(records.num(), ((1u64 << 53) - 1) as f64);
        assert_eq!(records.str(), "bob");
        assert_eq!(records.num(), 1_700_000_000_000.0);
        assert_eq!(records.u8(), 1, "a binary body");
        assert_eq!(records.bytes(), [0, 255]);
        records.deadline_at_most();
    }

    #[test]
    fn a_refused_room_name_is_answered_by_join_and_an_unset_option_is_the_default() {
        let mut engine = Engine::new(
            &[f64::NAN.to_le_bytes(), (-1.0f64).to_le_bytes()].concat(),
            "token",
            false,
            7.0,
        );
        let len = engine.input(Op::JOIN, "", &[], NAN, NAN, NAN, 0.0) as usize;
        assert_eq!(engine.out[..len], *b"invalid room name: name is empty");
        let len = engine.drain();
        let mut records = Records(&engine.out[..len]);
        assert_eq!(records.u8(), DEADLINE);
        assert_eq!(records.num(), -1.0, "nothing to wait for before connect");
        assert!(records.0.is_empty());
        assert_eq!(engine.drain(), 0, "an unchanged deadline is told once");
    }

    #[test]
    fn a_publish_with_an_app_id_is_settled_under_that_id() {
        let mut engine = joined("lobby");
        let id = engine.input(Op::PUBLISH_TEXT, "lobby", b"hi", 42.0, NAN, NAN, 5.0);
        assert_eq!(id, 42.0);
        input(
            &mut engine,
            Op::SOCKET_FRAME,
            &frame(&ServerMessage::PublishAck {
                room: "lobby".into(),
                id: 42,
                seq: 9,
            }),
            6.0,
        );
        let len = engine.drain();
        let mut records = Records(&engine.out[..len]);
        assert_eq!(records.u8(), SEND, "the publish goes out");
        records.bytes();
        assert_eq!(records.u8(), ACKED);
        assert_eq!(records.num(), 42.0);
        assert_eq!(records.str(), "lobby");
        assert_eq!(records.num(), 9.0);
    }

    #[test]
    fn the_timer_is_asked_for_again_after_it_fired_even_when_unchanged() {
        let mut engine = Engine::new(&[], "token", false, 7.0);
        input(&mut engine, Op::CONNECT, &[], 0.0);
        engine.drain();
        // Early (a timer may fire a little early): nothing is due, the deadline stands.
        input(&mut engine, Op::TICK, &[], 5.0);
        let len = engine.drain();
        let mut records = Records(&engine.out[..len]);
        assert_eq!(records.u8(), DEADLINE);
        assert_eq!(records.num(), 10_000.0);
        assert!(records.0.is_empty());
    }
}
