//! The JavaScript API: the `ChorusClient` class of the npm package `chorus-client`, a thin
//! layer over [`Client`] that speaks camelCase, plain objects, Promises and
//! `Error`s. Rust code uses [`Client`] instead.
//!
//! The TypeScript types of options, events, history pages and errors are written out below
//! (`typescript_custom_section`) and tied to the methods with `typescript_type`, so the
//! package's `.d.ts` has no `any`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use chorus_protocol::{Body, Position};
use futures_channel::oneshot;
use js_sys::{Function, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::Error;
use super::client::{Client, Config, HistoryQuery, Subscription};
use super::env::{self, set};
use super::shell::{Outcome, TokenFn};
use crate::core::text::push_decimal;
use crate::core::{Ack, Event, HistoryError, HistoryPage, Options, PublishError, State};
use chorus_protocol::Recovery;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** How to connect. At least one of `token` and `getToken` is required. */
export interface ConnectOptions {
  /** The token (a JWT) to connect with first. */
  token?: string;
  /**
   * Called for a token when there is none yet, and whenever the server refuses or expires
   * the current one. A rejection is reported as an "error" event (code 1002).
   */
  getToken?: () => Promise<string>;
  /** First reconnect delay bound, in ms. Default: 500. */
  initialBackoffMs?: number;
  /** Largest reconnect delay bound, in ms. Default: 30000. */
  maxBackoffMs?: number;
  /** A connection open this long resets the backoff, in ms. Default: 10000. */
  stableAfterMs?: number;
  /** The socket must open and the server's welcome arrive within this, in ms. Default: 10000. */
  connectTimeoutMs?: number;
  /** The connection is dead when nothing arrives within the heartbeat interval plus this, in ms. Default: 10000. */
  pongTimeoutMs?: number;
  /** A publish not acknowledged within this fails with code "timed_out", in ms. Default: 15000. */
  publishTimeoutMs?: number;
  /** A history request not answered within this fails with code 1005, in ms. Default: 15000. */
  requestTimeoutMs?: number;
  /** Most publishes waiting (queued offline or awaiting their ack). Default: 256. */
  queueMaxMessages?: number;
  /** Most body bytes waiting. Default: 1048576 (1 MiB). */
  queueMaxBytes?: number;
  /** "Typing stopped" is sent after this long without a keystroke, in ms. Default: 3000. */
  typingIdleMs?: number;
}

/** Where the connection is. */
export type ChorusState = "connecting" | "open" | "reconnecting" | "closed";

/** What a message carries: text, or bytes. */
export type ChorusBody = string | Uint8Array;

/** A room's place in its history: which history (`epoch`) and how far along it (`seq`). */
export interface Position {
  epoch: number;
  seq: number;
}

/** A publish acknowledged by the server. */
export interface Ack {
  room: string;
  /** The publish's message id. */
  id: number;
  /** The sequence number the message got in the room. */
  seq: number;
}

/** Why a publish failed: the `code` of a rejected publish Promise's error. */
export type PublishErrorCode = "queue_full" | "timed_out" | "too_large" | "rejected" | "closed";

/** The error a publish Promise rejects with. */
export interface PublishError extends Error {
  name: "PublishError";
  code: PublishErrorCode;
  /** For "rejected": the server's error code (see docs/PROTOCOL.md). */
  serverCode?: number;
  /** For "too_large": the body's size in bytes. */
  size?: number;
  /** For "too_large": the server's limit in bytes. */
  max?: number;
}

/** What `history()` asks for. */
export interface HistoryOptions {
  /**
   * Only messages before this position; omit for the newest. To page back, pass
   * `{ epoch: page.position.epoch, seq: page.messages[0].seq }`. A position from another
   * epoch is refused with code 112: that history is gone; ask again without `before`.
   */
  before?: Position;
  /**
   * Most messages wanted, 1 or more. The server may answer fewer (its page limit, 100 by
   * default, or its frame size) and then sets `more`. Default: 50.
   */
  limit?: number;
}

/** A message as a room's history keeps it. */
export interface HistoryMessage {
  /** Per-room sequence number. */
  seq: number;
  /** The publisher's message id. */
  id: number;
  sender: string;
  /** Server time of publication, ms since the Unix epoch. */
  ts: number;
  body: ChorusBody;
}

/** A page of a room's history: what `history()` resolves with. */
export interface HistoryPage {
  room: string;
  /** The room's position when the page was read. */
  position: Position;
  /** Oldest first, consecutive sequence numbers: the newest ones before `before`. */
  messages: HistoryMessage[];
  /** Whether older messages are retained before `messages[0]`. */
  more: boolean;
}

/**
 * The error a history Promise rejects with. `code` is a server error code (102 invalid
 * room, 104 forbidden, 106 rate limited, 111 limit below 1, 112 the epoch of `before` is
 * gone, ...) or a client one: 1005 timed out, 1006 the client was closed, 1007 too many
 * history requests pending.
 */
export interface HistoryError extends Error {
  name: "HistoryError";
  code: number;
}

/** "open": the server welcomed a connection (the first, or one after a reconnect). */
export interface ChorusOpenEvent {
  session: string;
  user: string;
}

/** "close": the client is closed for good. */
export interface ChorusCloseEvent {
  /** The last socket's close code (1000 after close()). */
  code: number;
  reason: string;
}

/** "reconnecting": the connection was lost; the next attempt comes after `delayMs`. */
export interface ChorusReconnectingEvent {
  /** 1 for the first attempt after a loss, then 2, 3... */
  attempt: number;
  delayMs: number;
}

/** "joined": a room was joined, or rejoined after a reconnect. */
export interface ChorusJoinedEvent {
  room: string;
  /** Users present. */
  members: string[];
  /** The room's position when the join took effect. */
  position: Position;
  /** "missed": the server could not replay everything since the last connection; reload the room. */
  recovery: "not_requested" | "recovered" | "missed";
}

/** "left": a room was left. */
export interface ChorusLeftEvent {
  room: string;
}

/** "message": a message published to a room (each at most once). */
export interface ChorusMessageEvent {
  room: string;
  /** Per-room sequence number. */
  seq: number;
  /** The publisher's message id. */
  id: number;
  sender: string;
  /** Server time of publication, ms since the Unix epoch. */
  ts: number;
  body: ChorusBody;
}

/** "presence": who is in a room: the whole list on every join, then each change. */
export type ChorusPresenceEvent =
  | { room: string; kind: "list"; members: string[] }
  | { room: string; kind: "join"; user: string }
  | { room: string; kind: "leave"; user: string };

/** "typing": who is typing in a room changed (sorted, without expired states). */
export interface ChorusTypingEvent {
  room: string;
  users: string[];
}

/**
 * "error": something failed that no Promise reports: a join refused, the token refused, a
 * server error. `code` is a server error code (100-599) or a client one: 1001 unauthorized,
 * 1002 getToken failed, 1003 invalid argument, 1004 the server said not to reconnect.
 */
export interface ChorusErrorEvent {
  code: number;
  message: string;
  room?: string;
}

/** Every event a ChorusClient emits, by name. */
export interface ChorusEventMap {
  open: ChorusOpenEvent;
  close: ChorusCloseEvent;
  reconnecting: ChorusReconnectingEvent;
  joined: ChorusJoinedEvent;
  left: ChorusLeftEvent;
  message: ChorusMessageEvent;
  presence: ChorusPresenceEvent;
  typing: ChorusTypingEvent;
  error: ChorusErrorEvent;
}

export interface ChorusClient {
  /**
   * Call `handler` with every `event` from now on. Adding the same handler twice for the
   * same event has no effect. A handler may call back into the client.
   */
  on<K extends keyof ChorusEventMap>(event: K, handler: (event: ChorusEventMap[K]) => void): void;
  /** Stop calling `handler` for `event`. */
  off<K extends keyof ChorusEventMap>(event: K, handler: (event: ChorusEventMap[K]) => void): void;
  /**
   * Ask for a page of `room`'s history: the newest messages, or those before
   * `options.before`. The room need not be joined. While disconnected the request waits
   * (and it is sent again if the connection is lost before the answer). Resolves with the
   * page; rejects with a `HistoryError`. Throws a `TypeError` for options of the wrong type.
   */
  history(room: string, options?: HistoryOptions): Promise<HistoryPage>;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// `ConnectOptions` in TypeScript.
    #[wasm_bindgen(typescript_type = "ConnectOptions")]
    pub type ConnectOptions;

    /// `string | Uint8Array` in TypeScript.
    #[wasm_bindgen(typescript_type = "ChorusBody")]
    pub type ChorusBody;

    /// `Promise<Ack>` in TypeScript.
    #[wasm_bindgen(typescript_type = "Promise<Ack>")]
    pub type AckPromise;

    /// `ChorusState` in TypeScript.
    #[wasm_bindgen(typescript_type = "ChorusState")]
    pub type ChorusState;
}

/// The JavaScript client. Create it with `ChorusClient.connect(url, options)`.
#[wasm_bindgen]
pub struct ChorusClient {
    client: Client,
    handlers: Handlers,
    _events: Subscription,
}

/// The app's handlers, by event.
type Handlers = Rc<RefCell<Vec<(Kind, Function)>>>;

#[wasm_bindgen]
impl ChorusClient {
    /// Connect to `url` (`wss://host/ws`; `ws:`, `http:`, `https:` and a URL relative to
    /// the page work too) and keep the connection up until `close()`. Throws an `Error` for
    /// a bad URL or options without a `token` or `getToken`.
    pub fn connect(url: &str, options: ConnectOptions) -> Result<ChorusClient, JsValue> {
        let config = read_config(url, &options)?;
        let client = Client::connect(config).map_err(|e| rust_error(&e))?;
        let handlers: Handlers = Rc::default();
        let events = client.on_event({
            let handlers = handlers.clone();
            move |event| dispatch(&handlers, event)
        });
        Ok(ChorusClient {
            client,
            handlers,
            _events: events,
        })
    }

    /// Join `room` now, or as soon as connected; it is rejoined after every reconnect, with
    /// what was missed replayed. Throws an `Error` (code "invalid_argument") for a room name
    /// that breaks the naming rules; a refusal by the server arrives as an "error" event.
    pub fn join(&self, room: &str) -> Result<(), JsValue> {
        self.client.join(room).map_err(|e| rust_error(&e))
    }

    /// Leave `room` (and stop rejoining it).
    pub fn leave(&self, room: &str) {
        self.client.leave(room);
    }

    /// Typed in the TypeScript section above.
    #[wasm_bindgen(skip_typescript)]
    pub fn history(&self, room: &str, options: JsValue) -> Result<Promise, JsValue> {
        let query = read_history_options(&options)?;
        Ok(promise(self.client.history(room, query).outcome, true))
    }

    /// Publish `body` (a string, or bytes) to `room`; while disconnected it waits in the
    /// offline queue. Resolves with the server's `Ack`; rejects with a `PublishError` whose
    /// `code` is "queue_full", "timed_out", "too_large", "rejected" (with `serverCode`) or
    /// "closed".
    pub fn publish(&self, room: &str, body: ChorusBody) -> Result<AckPromise, JsValue> {
        let body = read_body(&body)?;
        Ok(promise(self.client.publish(room, body).outcome, false).unchecked_into())
    }

    /// The user typed in `room`: call on every keystroke (throttled by the client).
    pub fn typing(&self, room: &str) {
        self.client.typing(room);
    }

    /// Close for good: pending publishes reject with "closed", the "close" event fires, and
    /// nothing else follows. Calling it again does nothing. The "close" event fires before
    /// this returns; when called from an event handler, right after that handler.
    pub fn close(&self) {
        self.client.close();
    }

    /// Where the connection is: "connecting", "open", "reconnecting" or "closed".
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> ChorusState {
        let name = match self.client.state() {
            State::Connecting => "connecting",
            State::Open => "open",
            State::Reconnecting => "reconnecting",
            State::Closed => "closed",
        };
        JsValue::from_str(name).unchecked_into()
    }

    /// Typed in the TypeScript section above.
    #[wasm_bindgen(skip_typescript)]
    pub fn on(&self, event: &str, handler: Function) -> Result<(), JsValue> {
        let kind = Kind::parse(event)?;
        let mut handlers = self.handlers.borrow_mut();
        if !handlers.iter().any(|(k, h)| *k == kind && *h == handler) {
            handlers.push((kind, handler));
        }
        Ok(())
    }

    /// Typed in the TypeScript section above.
    #[wasm_bindgen(skip_typescript)]
    pub fn off(&self, event: &str, handler: Function) -> Result<(), JsValue> {
        let kind = Kind::parse(event)?;
        let removed = {
            let mut handlers = self.handlers.borrow_mut();
            let index = handlers
                .iter()
                .position(|(k, h)| *k == kind && *h == handler);
            index.map(|index| handlers.remove(index))
        };
        drop(removed);
        Ok(())
    }
}

/// The event names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Open,
    Close,
    Reconnecting,
    Joined,
    Left,
    Message,
    Presence,
    Typing,
    Error,
}

impl Kind {
    const ALL: [(&'static str, Kind); 9] = [
        ("open", Kind::Open),
        ("close", Kind::Close),
        ("reconnecting", Kind::Reconnecting),
        ("joined", Kind::Joined),
        ("left", Kind::Left),
        ("message", Kind::Message),
        ("presence", Kind::Presence),
        ("typing", Kind::Typing),
        ("error", Kind::Error),
    ];

    fn parse(name: &str) -> Result<Kind, JsValue> {
        match Kind::ALL.iter().find(|(n, _)| *n == name) {
            Some((_, kind)) => Ok(*kind),
            None => Err(type_error(&env::quoted(
                name,
                " is not a ChorusClient event; expected open, close, reconnecting, joined, \
                 left, message, presence, typing or error",
            ))),
        }
    }
}

/// Call the app's handlers for `event`. Each handler runs even if an earlier one throws
/// (the exception goes to `reportError`), and one removed by an earlier handler is skipped.
fn dispatch(handlers: &Handlers, event: &Event) {
    let kinds: &[Kind] = match event {
        Event::Open { .. } => &[Kind::Open],
        Event::Close { .. } => &[Kind::Close],
        Event::Reconnecting { .. } => &[Kind::Reconnecting],
        Event::Joined { .. } => &[Kind::Joined, Kind::Presence],
        Event::Left { .. } => &[Kind::Left],
        Event::Message { .. } => &[Kind::Message],
        Event::MemberJoined { .. } | Event::MemberLeft { .. } => &[Kind::Presence],
        Event::Typing { .. } => &[Kind::Typing],
        Event::Error { .. } => &[Kind::Error],
    };
    for &kind in kinds {
        let listening: Vec<Function> = handlers
            .borrow()
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, h)| h.clone())
            .collect();
        if listening.is_empty() {
            continue;
        }
        let value = event_to_js(event, kind);
        for handler in listening {
            let still_there = handlers
                .borrow()
                .iter()
                .any(|(k, h)| *k == kind && *h == handler);
            if still_there && let Err(exception) = handler.call1(&JsValue::UNDEFINED, &value) {
                env::report_error(&exception);
            }
        }
    }
}

// The shapes of the events in JavaScript: plain objects, built field by field (serde and
// serde-wasm-bindgen would do the same with several kilobytes more code). Numbers are `f64`
// because JavaScript numbers are (the server keeps ids, epochs and sequences below 2^53).

/// A plain object with these fields, in this order.
fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let object = js_sys::Object::new();
    for (key, value) in fields {
        set(&object, key, value);
    }
    object.into()
}

fn string(text: &str) -> JsValue {
    JsValue::from_str(text)
}

fn number(n: f64) -> JsValue {
    JsValue::from_f64(n)
}

/// An array of strings.
fn strings(list: &[String]) -> JsValue {
    let array = js_sys::Array::new();
    for item in list {
        array.push(&string(item));
    }
    array.into()
}

/// `event` as the object handlers of `kind` get.
fn event_to_js(event: &Event, kind: Kind) -> JsValue {
    match event {
        Event::Open { session, user } => {
            object(&[("session", string(session)), ("user", string(user))])
        }
        Event::Close { code, reason } => object(&[
            ("code", number(f64::from(*code))),
            ("reason", string(reason)),
        ]),
        Event::Reconnecting { attempt, delay_ms } => object(&[
            ("attempt", number(f64::from(*attempt))),
            ("delayMs", number(*delay_ms as f64)),
        ]),
        Event::Joined { room, members, .. } if kind == Kind::Presence => object(&[
            ("room", string(room)),
            ("kind", string("list")),
            ("members", strings(members)),
        ]),
        Event::Joined {
            room,
            members,
            position,
            recovery,
        } => object(&[
            ("room", string(room)),
            ("members", strings(members)),
            ("position", position_to_js(position)),
            (
                "recovery",
                string(match recovery {
                    Recovery::NotRequested => "not_requested",
                    Recovery::Recovered => "recovered",
                    Recovery::Missed => "missed",
                }),
            ),
        ]),
        Event::Left { room } => object(&[("room", string(room))]),
        Event::Message {
            room,
            seq,
            id,
            sender,
            ts,
            body,
        } => object(&[
            ("room", string(room)),
            ("seq", number(*seq as f64)),
            ("id", number(*id as f64)),
            ("sender", string(sender)),
            ("ts", number(*ts as f64)),
            ("body", body_to_js(body)),
        ]),
        Event::MemberJoined { room, user } => object(&[
            ("room", string(room)),
            ("kind", string("join")),
            ("user", string(user)),
        ]),
        Event::MemberLeft { room, user } => object(&[
            ("room", string(room)),
            ("kind", string("leave")),
            ("user", string(user)),
        ]),
        Event::Typing { room, users } => {
            object(&[("room", string(room)), ("users", strings(users))])
        }
        Event::Error {
            code,
            message,
            room: None,
        } => object(&[
            ("code", number(f64::from(*code))),
            ("message", string(message)),
        ]),
        Event::Error {
            code,
            message,
            room: Some(room),
        } => object(&[
            ("code", number(f64::from(*code))),
            ("message", string(message)),
            ("room", string(room)),
        ]),
    }
}

/// Text as a string, bytes as a `Uint8Array` (a copy).
fn body_to_js(body: &Body) -> JsValue {
    match body {
        Body::Text(text) => string(text),
        Body::Binary(bytes) => Uint8Array::new_from_slice(bytes).into(),
    }
}

fn position_to_js(position: &Position) -> JsValue {
    object(&[
        ("epoch", number(position.epoch as f64)),
        ("seq", number(position.seq as f64)),
    ])
}

fn page_to_js(page: &HistoryPage) -> JsValue {
    let messages = js_sys::Array::new();
    for m in &page.messages {
        messages.push(&object(&[
            ("seq", number(m.seq as f64)),
            ("id", number(m.id as f64)),
            ("sender", string(&m.sender)),
            ("ts", number(m.ts as f64)),
            ("body", body_to_js(&m.body)),
        ]));
    }
    object(&[
        ("room", string(&page.room)),
        ("position", position_to_js(&page.position)),
        ("messages", messages.into()),
        ("more", JsValue::from_bool(page.more)),
    ])
}

/// A `HistoryError` in JavaScript: an `Error` named "HistoryError" with a numeric `code`.
fn history_error(error: &HistoryError) -> JsValue {
    let message = match error {
        HistoryError::TooManyPending => {
            String::from("history request refused: too many history requests are pending")
        }
        HistoryError::TimedOut => {
            String::from("history request timed out: the server did not answer in time")
        }
        HistoryError::Rejected {
            code,
            message: text,
        } => {
            let mut message = String::from("history request rejected: ");
            message.push_str(text);
            message.push_str(" (code ");
            push_decimal(&mut message, u64::from(*code));
            message.push(')');
            message
        }
        HistoryError::Closed => {
            String::from("history request failed: the client was closed before the server answered")
        }
    };
    let js = js_sys::Error::new(&message);
    set(&js, "name", &JsValue::from_str("HistoryError"));
    set(&js, "code", &JsValue::from_f64(f64::from(error.code())));
    js.into()
}

/// The Promise of a publish (`history` false) or a history request: one function, and one
/// future type, for both (see [`Outcome`]).
fn promise(outcome: oneshot::Receiver<Outcome>, history: bool) -> Promise {
    wasm_bindgen_futures::future_to_promise(async move {
        // A dropped sender (the client torn down) means closed.
        let outcome = outcome.await.unwrap_or(if history {
            Outcome::History(Err(HistoryError::Closed))
        } else {
            Outcome::Publish(Err(PublishError::Closed))
        });
        match outcome {
            Outcome::Publish(Ok(ack)) => Ok(ack_to_js(&ack)),
            Outcome::Publish(Err(error)) => Err(publish_error(&error)),
            Outcome::History(Ok(page)) => Ok(page_to_js(&page)),
            Outcome::History(Err(error)) => Err(history_error(&error)),
        }
    })
}

fn ack_to_js(ack: &Ack) -> JsValue {
    object(&[
        ("room", string(&ack.room)),
        ("id", number(ack.id as f64)),
        ("seq", number(ack.seq as f64)),
    ])
}

/// A `PublishError` in JavaScript: an `Error` named "PublishError" with a `code`.
fn publish_error(error: &PublishError) -> JsValue {
    let (code, message) = match error {
        PublishError::QueueFull => (
            "queue_full",
            String::from("publish failed: the offline queue is full"),
        ),
        PublishError::TimedOut => (
            "timed_out",
            String::from(
                "publish timed out: the server did not acknowledge it in time \
                 (it may still have it)",
            ),
        ),
        PublishError::TooLarge { size, max } => {
            let mut message = String::from("publish failed: the body is ");
            push_decimal(&mut message, *size as u64);
            message.push_str(" bytes, over the server's limit of ");
            push_decimal(&mut message, *max as u64);
            ("too_large", message)
        }
        PublishError::Rejected {
            code,
            message: text,
        } => {
            let mut message = String::from("publish rejected by the server: ");
            message.push_str(text);
            message.push_str(" (code ");
            push_decimal(&mut message, u64::from(*code));
            message.push(')');
            ("rejected", message)
        }
        PublishError::Closed => (
            "closed",
            String::from("publish failed: the client was closed before the server acknowledged it"),
        ),
    };
    let js = js_sys::Error::new(&message);
    // `set` rather than `Error::set_name`: the same assignment, one binding fewer.
    set(&js, "name", &JsValue::from_str("PublishError"));
    set(&js, "code", &JsValue::from_str(code));
    match error {
        PublishError::TooLarge { size, max } => {
            set(&js, "size", &JsValue::from_f64(*size as f64));
            set(&js, "max", &JsValue::from_f64(*max as f64));
        }
        PublishError::Rejected { code, .. } => {
            set(&js, "serverCode", &JsValue::from_f64(f64::from(*code)));
        }
        _ => {}
    }
    js.into()
}

/// An [`Error`] as a JavaScript `Error` with a `code`.
fn rust_error(error: &Error) -> JsValue {
    let (code, message) = match error {
        Error::InvalidArgument(message) => ("invalid_argument", message.clone()),
        Error::InvalidUrl(message) => {
            let mut text = String::from("invalid server URL: ");
            text.push_str(message);
            ("invalid_url", text)
        }
        Error::NoToken => (
            "no_token",
            String::from("ConnectOptions needs a token or a getToken function"),
        ),
    };
    let js = js_sys::Error::new(&message);
    set(&js, "code", &JsValue::from_str(code));
    js.into()
}

fn type_error(message: &str) -> JsValue {
    js_sys::TypeError::new(message).into()
}

/// `ConnectOptions` as a [`Config`], checking every field's type.
fn read_config(url: &str, options: &JsValue) -> Result<Config, JsValue> {
    if !options.is_object() {
        return Err(type_error(
            "ChorusClient.connect: options must be an object with a token or a getToken function",
        ));
    }
    let get = |key: &str| Reflect::get(options, &JsValue::from_str(key));
    let token = get("token")?;
    let token = if token.is_undefined() || token.is_null() {
        None
    } else {
        let token = token
            .as_string()
            .ok_or_else(|| type_error("ConnectOptions.token must be a string"))?;
        Some(token)
    };
    let get_token = get("getToken")?;
    let get_token = if get_token.is_undefined() || get_token.is_null() {
        None
    } else {
        let function = get_token
            .dyn_into::<Function>()
            .map_err(|_| type_error("ConnectOptions.getToken must be a function"))?;
        Some(token_fn(function))
    };

    let number = |key: &str| -> Result<Option<f64>, JsValue> {
        let value = get(key)?;
        if value.is_undefined() {
            return Ok(None);
        }
        match value.as_f64() {
            Some(n) if n.is_finite() && n >= 0.0 => Ok(Some(n)),
            _ => Err(type_error(&env::quoted(
                key,
                " in ConnectOptions must be a number, 0 or more",
            ))),
        }
    };
    let mut options = Options::default();
    // A loop rather than eight calls: one copy of the reading code in the wasm.
    for (key, field) in [
        ("initialBackoffMs", &mut options.initial_backoff),
        ("maxBackoffMs", &mut options.max_backoff),
        ("stableAfterMs", &mut options.stable_after),
        ("connectTimeoutMs", &mut options.connect_timeout),
        ("pongTimeoutMs", &mut options.pong_timeout),
        ("publishTimeoutMs", &mut options.publish_timeout),
        ("requestTimeoutMs", &mut options.request_timeout),
        ("typingIdleMs", &mut options.typing_idle),
    ] {
        if let Some(n) = number(key)? {
            *field = Duration::from_millis(n as u64);
        }
    }
    if let Some(n) = number("queueMaxMessages")? {
        options.queue_max_messages = n as usize;
    }
    if let Some(n) = number("queueMaxBytes")? {
        options.queue_max_bytes = n as usize;
    }
    Ok(Config {
        url: url.to_owned(),
        token,
        get_token,
        options,
    })
}

/// The app's `getToken` as a [`TokenFn`]: a string, or a Promise of one.
fn token_fn(get_token: Function) -> TokenFn {
    Rc::new(move || {
        let called = get_token.call0(&JsValue::UNDEFINED);
        Box::pin(async move {
            let value = match called {
                Ok(value) => JsFuture::from(Promise::resolve(&value)).await,
                Err(exception) => Err(exception),
            };
            match value {
                Ok(value) => value.as_string().ok_or_else(|| {
                    String::from("getToken resolved to something other than a string")
                }),
                Err(exception) => {
                    let mut message = String::from("getToken failed: ");
                    message.push_str(&exception_message(&exception));
                    Err(message)
                }
            }
        })
    })
}

/// A thrown value's message: an `Error`'s `message`, a string as is.
fn exception_message(exception: &JsValue) -> String {
    if let Some(error) = exception.dyn_ref::<js_sys::Error>() {
        return error.message().into();
    }
    exception
        .as_string()
        .unwrap_or_else(|| String::from("(not an Error)"))
}

/// A publish body: a string is text, a `Uint8Array` is bytes.
fn read_body(body: &JsValue) -> Result<Body, JsValue> {
    if let Some(text) = body.as_string() {
        return Ok(Body::Text(text));
    }
    match body.dyn_ref::<Uint8Array>() {
        Some(bytes) => Ok(Body::Binary(bytes.to_vec())),
        None => Err(type_error(
            "ChorusClient.publish: the body must be a string or a Uint8Array",
        )),
    }
}

/// `HistoryOptions` as a [`HistoryQuery`], checking every field's type.
fn read_history_options(options: &JsValue) -> Result<HistoryQuery, JsValue> {
    let mut query = HistoryQuery::default();
    if options.is_undefined() || options.is_null() {
        return Ok(query);
    }
    if !options.is_object() {
        return Err(type_error(
            "ChorusClient.history: options must be an object ({ before?, limit? })",
        ));
    }
    let get = |on: &JsValue, key: &str| Reflect::get(on, &JsValue::from_str(key));
    // A whole number from 0 to 2^53 - 1, as sequences, epochs and limits are.
    let whole = |value: &JsValue| {
        value
            .as_f64()
            .filter(|n| n.fract() == 0.0 && (0.0..=9_007_199_254_740_991.0).contains(n))
    };
    let limit = get(options, "limit")?;
    if !limit.is_undefined() {
        let n = whole(&limit)
            .ok_or_else(|| type_error("HistoryOptions.limit must be a whole number"))?;
        // Over u32::MAX, it saturates: the server caps the page far below anyway.
        query.limit = n as u32;
    }
    let before = get(options, "before")?;
    if !before.is_undefined() && !before.is_null() {
        let position = if before.is_object() {
            whole(&get(&before, "epoch")?).zip(whole(&get(&before, "seq")?))
        } else {
            None
        };
        let (epoch, seq) = position.ok_or_else(|| {
            type_error("HistoryOptions.before must be a position { epoch, seq } of whole numbers")
        })?;
        query.before = Some(Position {
            epoch: epoch as u64,
            seq: seq as u64,
        });
    }
    Ok(query)
}
