//! Helpers shared by the browser tests (`tests/browser_*.rs`): the test controller
//! (`chorus-test-harness`), which starts and signals real `chorus-server` processes, a raw
//! WebSocket for plumbing checks, and waits with failure deadlines.
//!
//! `scripts/test-browser.sh` starts the controller and compiles its URL into the tests as
//! `CHORUS_TEST_CONTROL`. Every wait here is for an event; a time limit is only the point
//! at which the test fails, never a pause that "should be enough".

// Each test file uses a different subset.
#![allow(dead_code, unreachable_pub)]

use std::cell::RefCell;
use std::fmt::Debug;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

use futures_channel::mpsc;
use futures_util::future::{Either, select};
use futures_util::{FutureExt, Stream, StreamExt};
use gloo_timers::future::TimeoutFuture;
use js_sys::{Array, JSON, Reflect, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{BinaryType, CloseEvent, MessageEvent, Request, RequestInit, Response, WebSocket};

use chorus_client::{Body, Client, Config, Event, EventStream, Options};

/// How long a test waits for something that should happen promptly before it fails.
pub const WAIT: Duration = Duration::from_secs(5);

/// The controller's URL, compiled in by `scripts/test-browser.sh`.
pub fn control_url() -> &'static str {
    // `option_env!`, not `env!`: the tests must still compile without it (for clippy).
    match option_env!("CHORUS_TEST_CONTROL") {
        Some(url) => url,
        None => panic!(
            "CHORUS_TEST_CONTROL was not set when the tests were compiled; \
             run them with scripts/test-browser.sh"
        ),
    }
}

/// Wall-clock milliseconds, for measuring how long something took.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// `fetch(url)`: the status and the body text.
pub async fn fetch_text(method: &str, url: &str, body: Option<&str>) -> (u16, String) {
    let init = RequestInit::new();
    init.set_method(method);
    if let Some(body) = body {
        // A plain string body keeps the request "simple" (text/plain): no CORS preflight.
        init.set_body(&JsValue::from_str(body));
    }
    let request = Request::new_with_str_and_init(url, &init).expect("a valid request");
    let window = web_sys::window().expect("a window");
    let response: Response = JsFuture::from(window.fetch_with_request(&request))
        .await
        .unwrap_or_else(|e| panic!("{method} {url} failed: {e:?}"))
        .dyn_into()
        .expect("a Response");
    let text = JsFuture::from(response.text().expect("a body"))
        .await
        .expect("the body text")
        .as_string()
        .expect("a string");
    (response.status(), text)
}

/// Call the controller; panics with its error unless it answers 2xx. Answers parsed JSON.
pub async fn control(method: &str, path: &str, body: Option<&str>) -> JsValue {
    let url = format!("{}{path}", control_url());
    let (status, text) = fetch_text(method, &url, body).await;
    assert!(
        (200..300).contains(&status),
        "controller: {method} {path} answered {status}: {text}"
    );
    JSON::parse(&text).unwrap_or_else(|_| panic!("controller: {method} {path}: not JSON: {text}"))
}

/// `value[key]` as a string.
pub fn get_str(value: &JsValue, key: &str) -> String {
    Reflect::get(value, &key.into())
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_else(|| panic!("no string {key:?} in {value:?}"))
}

/// `value[key]` as a number, if present.
pub fn get_f64(value: &JsValue, key: &str) -> Option<f64> {
    Reflect::get(value, &key.into())
        .ok()
        .and_then(|v| v.as_f64())
}

/// A `chorus-server` process the controller started for one test; removed (killed) when
/// dropped.
#[derive(Debug)]
pub struct TestServer {
    /// The controller's id.
    pub id: u64,
    /// `ws://127.0.0.1:PORT/ws`: the same across restarts.
    pub ws: String,
    /// `http://127.0.0.1:PORT`.
    pub http: String,
}

impl TestServer {
    /// Start a server with these extra `chorus-server serve` flags; returns once it is
    /// healthy.
    pub async fn start(args: &[&str]) -> TestServer {
        let body = js_sys::Object::new();
        let list: Array = args.iter().map(|a| JsValue::from_str(a)).collect();
        Reflect::set(&body, &"args".into(), &list).expect("set args");
        let body = JSON::stringify(&body)
            .expect("JSON")
            .as_string()
            .expect("a string");
        let answer = control("POST", "/servers", Some(&body)).await;
        TestServer {
            id: get_f64(&answer, "id").expect("an id") as u64,
            ws: get_str(&answer, "ws"),
            http: get_str(&answer, "http"),
        }
    }

    async fn action(&self, action: &str) {
        control("POST", &format!("/servers/{}/{action}", self.id), None).await;
    }

    /// SIGTERM: the server says goodbye (1001) to every client and exits; returns after the
    /// exit.
    pub async fn stop(&self) {
        self.action("stop").await;
    }

    /// SIGKILL; returns after the exit.
    pub async fn kill(&self) {
        self.action("kill").await;
    }

    /// Start again on the same port; returns once healthy.
    pub async fn start_again(&self) {
        self.action("start").await;
    }

    /// Stop, then start on the same port.
    pub async fn restart(&self) {
        self.action("restart").await;
    }

    /// SIGSTOP: sockets stay open, nothing is answered.
    pub async fn freeze(&self) {
        self.action("freeze").await;
    }

    /// SIGCONT.
    pub async fn thaw(&self) {
        self.action("thaw").await;
    }

    /// A token for `user`, valid for an hour, for every room.
    pub async fn token(&self, user: &str) -> String {
        let answer = control(
            "GET",
            &format!("/servers/{}/token?user={user}", self.id),
            None,
        )
        .await;
        get_str(&answer, "token")
    }

    /// A well-formed token signed with another secret.
    pub async fn bad_token(&self) -> String {
        let answer = control("GET", &format!("/servers/{}/bad-token", self.id), None).await;
        get_str(&answer, "token")
    }

    /// A metric sample, e.g. `chorus_auth_failures_total` or
    /// `chorus_disconnects_total{reason="heartbeat_timeout"}`; 0 if absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        let metrics = control("GET", &format!("/servers/{}/metrics", self.id), None).await;
        get_f64(&metrics, sample).unwrap_or(0.0)
    }

    /// Publish text to `room` from the backend (`POST /api/publish` with the secret, as
    /// sender `server`); answers the room's new sequence number.
    pub async fn publish(&self, room: &str, text: &str) -> u64 {
        let body = js_sys::Object::new();
        Reflect::set(&body, &"room".into(), &room.into()).expect("set room");
        Reflect::set(&body, &"text".into(), &text.into()).expect("set text");
        let body = JSON::stringify(&body)
            .expect("JSON")
            .as_string()
            .expect("a string");
        let answer = control(
            "POST",
            &format!("/servers/{}/publish", self.id),
            Some(&body),
        )
        .await;
        get_f64(&answer, "seq").expect("a seq") as u64
    }
}

/// A TCP relay to a server on a port of its own (see the controller's `link` module). A
/// client connected through it loses the server when the link is cut, while others keep
/// it. Stopped when dropped.
#[derive(Debug)]
pub struct Link {
    /// The controller's id.
    pub id: u64,
    /// `ws://127.0.0.1:LINK_PORT/ws`.
    pub ws: String,
}

impl TestServer {
    /// A new link to this server.
    pub async fn link(&self) -> Link {
        let answer = control("POST", &format!("/servers/{}/links", self.id), None).await;
        Link {
            id: get_f64(&answer, "id").expect("an id") as u64,
            ws: get_str(&answer, "ws"),
        }
    }
}

impl Link {
    /// Sever every connection through the link; new ones fail at once until restored.
    pub async fn cut(&self) {
        control("POST", &format!("/links/{}/cut", self.id), None).await;
    }

    /// Relay new connections again.
    pub async fn restore(&self) {
        control("POST", &format!("/links/{}/restore", self.id), None).await;
    }

    /// End the connections through the link now, while relaying new ones: `"close"` (TCP
    /// close), `"reset"` (TCP reset) or `"stall"` (silence, both sockets held open).
    pub async fn fault(&self, fault: &str) {
        control("POST", &format!("/links/{}/{fault}", self.id), None).await;
    }

    /// Drop the next room message the server sends on each connection through the link
    /// (the client sees a sequence gap); everything else is relayed.
    pub async fn drop_message(&self) {
        control("POST", &format!("/links/{}/drop-message", self.id), None).await;
    }

    /// Room messages dropped so far by [`Link::drop_message`].
    pub async fn dropped(&self) -> u64 {
        let link = control("GET", &format!("/links/{}", self.id), None).await;
        get_f64(&link, "dropped").expect("a count") as u64
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let url = format!("{}/links/{}", control_url(), self.id);
        wasm_bindgen_futures::spawn_local(async move {
            let _ = fetch_text("DELETE", &url, None).await;
        });
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let url = format!("{}/servers/{}", control_url(), self.id);
        wasm_bindgen_futures::spawn_local(async move {
            // The controller kills whatever is left when it exits, so a failure here only
            // costs a process until then.
            let _ = fetch_text("DELETE", &url, None).await;
        });
    }
}

/// Fail unless `future` completes within `limit`. The limit is a deadline for the failure
/// message, not a pause.
pub async fn within<F: Future>(limit: Duration, what: &str, future: F) -> F::Output {
    let started = now_ms();
    match select(pin!(future), pin!(timeout(limit))).await {
        Either::Left((output, _)) => output,
        Either::Right(_) => panic!(
            "timed out after {:.0} ms waiting for {what}",
            now_ms() - started
        ),
    }
}

fn timeout(limit: Duration) -> TimeoutFuture {
    TimeoutFuture::new(u32::try_from(limit.as_millis()).unwrap_or(u32::MAX))
}

/// The next item of `events` for which `matches` holds, skipping others; fails if none
/// comes within `limit` or the stream ends, listing what was skipped.
pub async fn next_event_matching<S, T>(
    events: &mut S,
    what: &str,
    limit: Duration,
    mut matches: impl FnMut(&T) -> bool,
) -> T
where
    S: Stream<Item = T> + Unpin,
    T: Debug,
{
    let started = now_ms();
    let mut skipped = Vec::new();
    let found = {
        let search = pin!(async {
            while let Some(event) = events.next().await {
                if matches(&event) {
                    return Some(event);
                }
                skipped.push(format!("{event:?}"));
            }
            None
        });
        match select(search, pin!(timeout(limit))).await {
            Either::Left((found, _)) => Ok(found),
            Either::Right(_) => Err(()),
        }
    };
    let elapsed = now_ms() - started;
    match found {
        Ok(Some(event)) => event,
        Ok(None) => panic!(
            "the event stream ended after {elapsed:.0} ms, before {what}; skipped: {skipped:#?}"
        ),
        Err(()) => {
            panic!("timed out after {elapsed:.0} ms waiting for {what}; skipped: {skipped:#?}")
        }
    }
}

/// Everything `events` yields at once, without waiting: what is already queued.
pub fn drain_ready<S, T>(events: &mut S) -> (Vec<T>, bool)
where
    S: Stream<Item = T> + Unpin,
{
    let mut items = Vec::new();
    loop {
        match events.next().now_or_never() {
            Some(Some(item)) => items.push(item),
            Some(None) => return (items, true),
            None => return (items, false),
        }
    }
}

/// How long a test waits for a reconnect: the server's `RetryAfter` on shutdown is up to
/// 3 s (plus jitter), then the client's backoff and handshake.
pub const RECONNECT_WAIT: Duration = Duration::from_secs(10);

/// Client tuning for tests: quick retries and quick failure detection.
pub fn fast_options() -> Options {
    Options {
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        ..Options::default()
    }
}

/// A client connecting to `url` with `token`, and its event stream (subscribed before
/// anything can arrive).
pub fn connect(url: &str, token: String, options: Options) -> (Client, EventStream) {
    let client = Client::connect(Config::new(url).token(token).options(options))
        .expect("a valid URL and token");
    let events = client.events();
    (client, events)
}

/// A client of `server` as `user`, once it is open.
pub async fn open_as(server: &TestServer, user: &str, options: Options) -> (Client, EventStream) {
    let (client, mut events) = connect(&server.ws, server.token(user).await, options);
    wait_open(&mut events, user, WAIT).await;
    (client, events)
}

/// Wait for `Open` as `user`.
pub async fn wait_open(events: &mut EventStream, user: &str, limit: Duration) {
    match next_event_matching(events, "Open", limit, is_open_or_close).await {
        Event::Open { user: opened, .. } => assert_eq!(opened, user, "the user of Open"),
        other => panic!("closed instead of opening: {other:?}"),
    }
}

fn is_open_or_close(event: &Event) -> bool {
    matches!(event, Event::Open { .. } | Event::Close { .. })
}

/// Join `room` and wait for `Joined`.
pub async fn join_room(client: &Client, events: &mut EventStream, room: &str) -> Event {
    client.join(room).expect("a valid room name");
    wait_joined(events, room, WAIT).await
}

/// Wait for `Joined` of `room`.
pub async fn wait_joined(events: &mut EventStream, room: &str, limit: Duration) -> Event {
    let what = format!("Joined {room}");
    next_event_matching(
        events,
        &what,
        limit,
        |e| matches!(e, Event::Joined { room: r, .. } if r == room),
    )
    .await
}

/// Wait for a text message `text` in `room`; returns the event.
pub async fn wait_text(events: &mut EventStream, room: &str, text: &str, limit: Duration) -> Event {
    let what = format!("the message {text:?} in {room}");
    next_event_matching(events, &what, limit, |e| {
        matches!(e, Event::Message { room: r, body: Body::Text(t), .. } if r == room && t == text)
    })
    .await
}

/// What a [`RawSocket`] saw.
#[derive(Debug, Clone, PartialEq)]
pub enum RawEvent {
    /// `open`.
    Open,
    /// A binary message.
    Binary(Vec<u8>),
    /// A text message.
    Text(String),
    /// `error` (which precedes a close the browser could not explain).
    Error,
    /// `close`, with its code.
    Close(u16),
}

/// A browser WebSocket with its events in a stream, for tests of the plumbing that do not
/// involve the client.
pub struct RawSocket {
    /// The socket.
    pub ws: WebSocket,
    events: mpsc::UnboundedReceiver<RawEvent>,
    _on_open: Closure<dyn FnMut(web_sys::Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(web_sys::Event)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl RawSocket {
    /// Open `url` offering `protocols`.
    pub fn open(url: &str, protocols: &[&str]) -> RawSocket {
        let offered: Array = protocols.iter().map(|p| JsValue::from_str(p)).collect();
        let ws = WebSocket::new_with_str_sequence(url, &offered).expect("a WebSocket");
        ws.set_binary_type(BinaryType::Arraybuffer);
        let (tx, events) = mpsc::unbounded();
        let tx = Rc::new(RefCell::new(tx));
        let send = move |tx: &Rc<RefCell<mpsc::UnboundedSender<RawEvent>>>, event| {
            let _ = tx.borrow_mut().unbounded_send(event);
        };
        let t = tx.clone();
        let on_open = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| send(&t, RawEvent::Open));
        let t = tx.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            let data = e.data();
            let event = match data.as_string() {
                Some(text) => RawEvent::Text(text),
                None => RawEvent::Binary(Uint8Array::new(&data).to_vec()),
            };
            send(&t, event);
        });
        let t = tx.clone();
        let on_error =
            Closure::<dyn FnMut(web_sys::Event)>::new(move |_| send(&t, RawEvent::Error));
        let t = tx;
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
            send(&t, RawEvent::Close(e.code()));
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        RawSocket {
            ws,
            events,
            _on_open: on_open,
            _on_message: on_message,
            _on_error: on_error,
            _on_close: on_close,
        }
    }

    /// The next event matching `matches` within `limit`.
    pub async fn next_matching(
        &mut self,
        what: &str,
        limit: Duration,
        matches: impl FnMut(&RawEvent) -> bool,
    ) -> RawEvent {
        next_event_matching(&mut self.events, what, limit, matches).await
    }

    /// The next event, whatever it is, within `limit`.
    pub async fn next(&mut self, limit: Duration) -> RawEvent {
        self.next_matching("any socket event", limit, |_| true)
            .await
    }

    /// Send a binary frame.
    pub fn send(&self, frame: &[u8]) {
        self.ws.send_with_u8_array(frame).expect("send");
    }
}

impl Drop for RawSocket {
    fn drop(&mut self) {
        // Unhook before the closures are freed, so a late event cannot call into them.
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onerror(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
    }
}
