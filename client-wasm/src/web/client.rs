//! The Rust API, for Yew and other Rust front ends.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::prelude::rust_2024::*;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};

use chorus_protocol::{Body, Position};
use futures_channel::{mpsc, oneshot};
use futures_core::{FusedStream, Stream};

use super::env::Endpoint;
use super::shell::{self, Inner, Outcome, Shared, Subscriber, TokenFn};
use super::{Error, Result};
use crate::core::{Ack, Event, HistoryError, HistoryPage, Options, PublishError, State};

/// How to connect: a token or a way to get one (or both), and tuning.
///
/// ```no_run
/// use chorus_client::web::Config;
///
/// // A fixed token.
/// let config = Config::new("wss://chat.example/ws").token("eyJhbGciOi...");
///
/// // A token fetched from the app's backend, again whenever the server refuses the last one.
/// let config = Config::new("wss://chat.example/ws")
///     .get_token(|| async { token_from_backend().await });
/// # async fn token_from_backend() -> Result<String, String> { Err("not in this example".into()) }
/// ```
#[derive(Clone, Default)]
pub struct Config {
    /// The server's WebSocket URL (`wss://host/ws`; `ws:`, `http:`, `https:` and a URL
    /// relative to the page work too).
    pub url: String,
    /// The token to connect with first. Default: none.
    pub token: Option<String>,
    /// Called when a token is needed: at the start when `token` is `None`, and whenever
    /// the server refuses or expires the current one. `Err` carries a message for the
    /// app's `Error` event. Default: none.
    pub get_token: Option<TokenFn>,
    /// Tuning; see [`Options`] for each default.
    pub options: Options,
}

impl Config {
    /// A config for the server at `url`, with default options; give it a token source
    /// with [`Config::token`] or [`Config::get_token`].
    pub fn new(url: impl Into<String>) -> Config {
        Config {
            url: url.into(),
            ..Config::default()
        }
    }

    /// Set the token to connect with first.
    pub fn token(mut self, token: impl Into<String>) -> Config {
        self.token = Some(token.into());
        self
    }

    /// Set the token source (see [`Config::get_token`](field@Config::get_token)).
    pub fn get_token<F, Fut>(mut self, get_token: F) -> Config
    where
        F: Fn() -> Fut + 'static,
        Fut: Future<Output = Result<String, String>> + 'static,
    {
        self.get_token = Some(Rc::new(move || Box::pin(get_token())));
        self
    }

    /// Set the tuning.
    pub fn options(mut self, options: Options) -> Config {
        self.options = options;
        self
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("get_token", &self.get_token.as_ref().map(|_| "<fn>"))
            .field("options", &self.options)
            .finish()
    }
}

/// A connection to a Chorus server that reconnects by itself: heartbeat, backoff, rejoining
/// rooms with recovery, an offline publish queue, history and typing indicators.
///
/// Cheap to clone (all clones are the same client). The client closes when [`close`]
/// is called or the last clone is dropped. Events arrive through [`events`] (a stream) or
/// [`on_event`] (a callback).
///
/// [`close`]: Client::close
/// [`events`]: Client::events
/// [`on_event`]: Client::on_event
///
/// # Example
///
/// ```no_run
/// use chorus_client::web::{Client, Config};
/// use chorus_client::Event;
///
/// let config = Config::new("wss://chat.example/ws").token("eyJhbGciOi...");
/// let client = Client::connect(config).expect("a valid URL and token");
/// client.join("lobby").expect("a valid room name");
///
/// let subscription = client.on_event(|event| match event {
///     Event::Message { room, sender, body, .. } => { /* show it */ }
///     Event::Typing { room, users } => { /* "Ada is typing..." */ }
///     _ => {}
/// });
///
/// let publish = client.publish("lobby", "hello");
/// wasm_bindgen_futures::spawn_local(async move {
///     match publish.await {
///         Ok(ack) => { /* stored as ack.seq */ }
///         Err(error) => { /* queue full, timed out, rejected... */ }
///     }
/// });
/// // Later: `drop(subscription)` stops the callback; `client.close()` ends it all.
/// ```
#[derive(Clone)]
pub struct Client {
    handle: Rc<Handle>,
}

/// The shared part of every clone: closes the client when the last clone goes.
struct Handle {
    shared: Shared,
}

impl Drop for Handle {
    fn drop(&mut self) {
        close(&self.shared);
    }
}

impl Client {
    /// Connect to `config.url` and keep the connection up until [`Client::close`].
    ///
    /// # Errors
    /// A bad URL, a config with neither a token nor a `get_token`, or a token that is not a
    /// valid subprotocol string.
    pub fn connect(config: Config) -> Result<Client> {
        let endpoint = Endpoint::parse(&config.url)?;
        match &config.token {
            Some(token) => check_token(token)?,
            None if config.get_token.is_none() => return Err(Error::NoToken),
            None => {}
        }
        let shared = shell::start(endpoint, config.token, config.get_token, config.options);
        Ok(Client {
            handle: Rc::new(Handle { shared }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// Join `room` now, or as soon as connected; the client rejoins it after every
    /// reconnect, asking the server to replay what it missed. The outcome arrives as
    /// [`Event::Joined`] or [`Event::Error`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `room` breaks the naming rules.
    pub fn join(&self, room: &str) -> Result<()> {
        shell::input(self.shared(), |inner, now| inner.core.join(room, None, now))?;
        Ok(())
    }

    /// Join `room` as [`Client::join`] does, resuming from `since`: a position the app kept
    /// (the `position` of [`Event::Joined`] advanced by each [`Event::Message`]'s `seq`,
    /// stored across a page reload, say). The server replays what came after it, and no
    /// message at or before it is delivered. When `room` is already joined (or being
    /// joined), `since` is ignored.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `room` breaks the naming rules.
    pub fn join_since(&self, room: &str, since: Position) -> Result<()> {
        shell::input(self.shared(), |inner, now| {
            inner.core.join(room, Some(since), now)
        })?;
        Ok(())
    }

    /// Leave `room` (and stop rejoining it).
    pub fn leave(&self, room: &str) {
        shell::input(self.shared(), |inner, now| inner.core.leave(room, now));
    }

    /// Publish `body` (a `&str`/`String` for text, a `Vec<u8>`/`&[u8]` for binary) to
    /// `room`. While disconnected the message waits in the offline queue and goes out after
    /// the reconnect.
    ///
    /// The future resolves with the server's [`Ack`], or a [`PublishError`]: the queue is
    /// full, no ack came within `publish_timeout`, the body is too large, the server
    /// refused it, or the client closed first. Dropping the future does not cancel the
    /// publish.
    pub fn publish(&self, room: &str, body: impl Into<Body>) -> PublishFuture {
        self.publish_as(room, body.into(), None)
    }

    /// Publish as [`Client::publish`] does, with the app's own message id, an idempotency
    /// key: the server delivers a user's message once per id, so a message published again
    /// with the same id (after a page reload, say) reaches the room once. The id must be
    /// at most 2^53 - 1, else the future fails at once with [`PublishError::Rejected`]
    /// code 602 (`InvalidArgument`).
    pub fn publish_with_id(&self, room: &str, body: impl Into<Body>, id: u64) -> PublishFuture {
        self.publish_as(room, body.into(), Some(id))
    }

    fn publish_as(&self, room: &str, body: Body, id: Option<u64>) -> PublishFuture {
        let (settler, outcome) = oneshot::channel();
        shell::input(self.shared(), move |inner, now| {
            // After the teardown nothing would settle it; the dropped settler says `Closed`.
            if !inner.is_finished() {
                let id = inner.core.publish(room, body, id, now);
                inner.add_pending(id, settler);
            }
        });
        PublishFuture { outcome }
    }

    /// Publishes waiting: queued offline, or sent and awaiting their ack.
    pub fn pending(&self) -> usize {
        self.shared().borrow().core.pending()
    }

    /// Connect now. When open, the socket is closed (code 1000, "reconnect requested") and
    /// a new one opens at once, rejoining every room; while waiting to reconnect, the
    /// attempt goes at once, unless the server asked for the wait; while connecting,
    /// nothing. Once closed, a `Client` stays closed: connect a new one.
    pub fn reconnect(&self) {
        shell::input(self.shared(), |inner, now| {
            if !inner.is_finished() {
                inner.core.reconnect(now);
            }
        });
    }

    /// Ask for a page of `room`'s history: the newest messages, or with
    /// [`HistoryQuery::before`] the ones before a position. The room need not be joined.
    /// While disconnected the request waits, and it is sent again when a connection is
    /// lost before the answer.
    ///
    /// The future resolves with the [`HistoryPage`], or a [`HistoryError`]: too many
    /// requests pending, no answer within `request_timeout`, refused (an invalid room
    /// name, a limit of 0, forbidden, rate limited, an epoch that is gone...), or the
    /// client closed first. Dropping the future does not cancel the request.
    ///
    /// ```no_run
    /// # async fn example(client: chorus_client::Client) -> Result<(), chorus_client::HistoryError> {
    /// use chorus_client::HistoryQuery;
    ///
    /// // The last 50 messages, then older pages while there are more.
    /// let mut page = client.history("lobby", HistoryQuery::default()).await?;
    /// while let Some(before) = page.older() {
    ///     page = client.history("lobby", HistoryQuery { before: Some(before), limit: 50 }).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn history(&self, room: &str, query: HistoryQuery) -> HistoryFuture {
        let (settler, outcome) = oneshot::channel();
        shell::input(self.shared(), move |inner, now| {
            // After the teardown nothing would settle it; the dropped settler says `Closed`.
            if !inner.is_finished() {
                let id = inner.core.history(room, query.before, query.limit, now);
                inner.add_pending(id, settler);
            }
        });
        HistoryFuture { outcome }
    }

    /// The user typed in `room`: call on every keystroke. The client throttles what it
    /// sends and says "stopped" after `typing_idle` without a keystroke.
    pub fn typing(&self, room: &str) {
        shell::input(self.shared(), |inner, now| inner.core.typing(room, now));
    }

    /// Close for good: pending publishes fail with [`PublishError::Closed`] and pending
    /// history requests with [`HistoryError::Closed`], the last event is [`Event::Close`],
    /// and no socket, timer or listener is left. Calling it again does nothing.
    ///
    /// The `Close` event is delivered before this returns; when `close` is called from an
    /// event callback, right after that callback returns (and no other event comes
    /// between).
    pub fn close(&self) {
        close(self.shared());
    }

    /// Where the connection is.
    pub fn state(&self) -> State {
        self.shared().borrow().core.state()
    }

    /// A stream of every event from now on; each call makes its own stream. It ends after
    /// [`Event::Close`]. Dropping it unsubscribes.
    pub fn events(&self) -> EventStream {
        let (sender, receiver) = mpsc::unbounded();
        // After the close the sender is dropped at once, and the stream ends.
        let _ = self
            .shared()
            .borrow_mut()
            .subscribe(Subscriber::Stream(sender));
        EventStream { receiver }
    }

    /// Call `callback` with every event from now on, until the [`Subscription`] is dropped
    /// or the client closes. The callback may call back into the client (join a room in an
    /// `Open` handler, say). A callback that holds a clone of this client keeps it alive:
    /// close it explicitly then.
    pub fn on_event(&self, callback: impl Fn(&Event) + 'static) -> Subscription {
        let id = self
            .shared()
            .borrow_mut()
            .subscribe(Subscriber::Callback(Rc::new(callback)));
        Subscription {
            shared: Rc::downgrade(self.shared()),
            id,
        }
    }
}

fn close(shared: &Shared) {
    shell::input(shared, |inner, now| {
        if inner.core.state() != State::Closed {
            inner.drop_queued_work();
            inner.core.close(now);
        }
    });
}

/// A token travels as a WebSocket subprotocol, so it must be a non-empty HTTP token
/// (RFC 9110 `tchar`s): a JWT always is.
fn check_token(token: &str) -> Result<()> {
    let valid = !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidArgument(String::from(
            "the token must be a non-empty string of URL-safe characters (a JWT)",
        )))
    }
}

impl PartialEq for Client {
    /// Whether both are handles to the same client (for Yew props).
    fn eq(&self, other: &Client) -> bool {
        Rc::ptr_eq(&self.handle, &other.handle)
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared().try_borrow().map(|inner| inner.core.state());
        f.debug_struct("Client")
            .field("state", &state.ok())
            .finish()
    }
}

/// The outcome of [`Client::publish`].
#[derive(Debug)]
pub struct PublishFuture {
    pub(crate) outcome: oneshot::Receiver<Outcome>,
}

impl Future for PublishFuture {
    type Output = Result<Ack, PublishError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.outcome)
            .poll(cx)
            .map(|outcome| match outcome {
                Ok(Outcome::Publish(result)) => result,
                _ => Err(PublishError::Closed),
            })
    }
}

/// What [`Client::history`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only messages before this position ([`HistoryPage::older`] gives the one that pages
    /// back); `None` for the newest. A position from another epoch is refused with
    /// `EpochChanged` (112): ask again without it. Default: `None`.
    pub before: Option<Position>,
    /// Most messages wanted; the server may answer fewer (its page limit, 100 by default,
    /// or its frame size) and then says `more`. Must be 1 or more. Default: 50.
    pub limit: u32,
}

impl Default for HistoryQuery {
    fn default() -> Self {
        HistoryQuery {
            before: None,
            limit: 50,
        }
    }
}

/// The outcome of [`Client::history`].
#[derive(Debug)]
pub struct HistoryFuture {
    pub(crate) outcome: oneshot::Receiver<Outcome>,
}

impl Future for HistoryFuture {
    type Output = Result<HistoryPage, HistoryError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.outcome)
            .poll(cx)
            .map(|outcome| match outcome {
                Ok(Outcome::History(result)) => result,
                _ => Err(HistoryError::Closed),
            })
    }
}

/// The stream of [`Client::events`].
#[derive(Debug)]
#[must_use = "a stream does nothing unless polled"]
pub struct EventStream {
    receiver: mpsc::UnboundedReceiver<Event>,
}

impl Stream for EventStream {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        Pin::new(&mut self.receiver).poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.receiver.size_hint()
    }
}

impl FusedStream for EventStream {
    fn is_terminated(&self) -> bool {
        self.receiver.is_terminated()
    }
}

/// A callback registered with [`Client::on_event`]; dropping it unsubscribes.
#[must_use = "dropping a Subscription unsubscribes its callback at once"]
pub struct Subscription {
    shared: Weak<std::cell::RefCell<Inner>>,
    /// `None` when the client was already closed.
    id: Option<u64>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .finish()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let (Some(shared), Some(id)) = (self.shared.upgrade(), self.id) else {
            return;
        };
        let removed = shared.borrow_mut().unsubscribe(id);
        // Dropped with the borrow released: the callback may own things whose drop calls
        // into the client.
        drop(removed);
    }
}
