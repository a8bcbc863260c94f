//! The driver: moves browser events into the [`Core`] and carries out its [`Action`]s.
//!
//! Everything lives in one [`Inner`] behind `Rc<RefCell<..>>`: single-threaded, and shared
//! by the app's handles and the callbacks the browser calls (which hold it weakly, so that
//! dropping the last handle frees it).
//!
//! ## Re-entrancy
//! App code runs inside the dispatch (event handlers, `getToken`, dropped closures) and may
//! call straight back into the client: `join` in an `open` handler, `close` in a `message`
//! handler. So the `RefCell` is never borrowed while app code runs:
//! - every input ([`input`]) borrows, feeds the core, moves the core's actions onto the
//!   shell's queue and lets go;
//! - the outermost call then dispatches the queue one action at a time, borrowing only to
//!   take the next action and to touch the shell's own parts (the socket, the timer);
//!   events and `getToken` are called with no borrow held;
//! - an input made during the dispatch (from a handler) only queues its actions; the loop
//!   already running takes them in order, so the app sees events in the order the core
//!   produced them.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::prelude::rust_2024::*;
use std::rc::{Rc, Weak};

use futures_channel::{mpsc, oneshot};
use gloo_timers::callback::Timeout;
use wasm_bindgen::JsCast;
use web_sys::EventTarget;

use super::env::{self, Endpoint};
use super::listener::Listener;
use super::socket::{Socket, SocketEvent};
use crate::core::{
    Ack, Action, Core, Event, HistoryError, HistoryPage, Millis, Options, PublishError, State,
};

/// The app's token source: called when the core needs a fresh token.
pub type TokenFn = Rc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<String, String>>>>>;

/// The outcome of a publish or a history request. One type for both, so that one copy of
/// the channel code (and, in `js.rs`, of the Promise glue) serves both in the wasm.
#[derive(Debug)]
pub(crate) enum Outcome {
    Publish(Result<Ack, PublishError>),
    History(Result<HistoryPage, HistoryError>),
}

/// Settles one publish's or history request's future.
pub(crate) type Settler = oneshot::Sender<Outcome>;

/// An event subscriber.
#[derive(Clone)]
pub(crate) enum Subscriber {
    /// A stream from [`Client::events`](super::Client::events).
    Stream(mpsc::UnboundedSender<Event>),
    /// A callback from [`Client::on_event`](super::Client::on_event).
    Callback(Rc<dyn Fn(&Event)>),
}

pub(crate) type Shared = Rc<RefCell<Inner>>;

/// The shell's state. See the module docs for the borrowing rules.
pub(crate) struct Inner {
    pub(crate) core: Core,
    endpoint: Endpoint,
    get_token: Option<TokenFn>,
    socket: Option<Socket>,
    /// The armed timer and the deadline it is for.
    timer: Option<(Millis, Timeout)>,
    /// `online` on the global object, `visibilitychange` on the document.
    wake_listeners: Vec<Listener>,
    /// Actions taken from the core, not yet carried out.
    queue: VecDeque<Action>,
    /// A dispatch loop is running (further down the stack).
    dispatching: bool,
    /// Closed for good and torn down: no socket, timer or listener is left, and nothing
    /// reaches the app any more.
    finished: bool,
    /// Publishes awaiting their [`Action::Settle`] and history requests awaiting their
    /// [`Action::HistoryDone`], by id (one sequence for both). Few (bounded by the core),
    /// so a vector.
    pending: Vec<(u64, Settler)>,
    subscribers: Vec<(u64, Subscriber)>,
    next_subscriber: u64,
}

impl Inner {
    /// Move the core's actions onto the queue.
    fn collect(&mut self) {
        while let Some(action) = self.core.poll_action() {
            self.queue.push_back(action);
        }
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    pub(crate) fn add_pending(&mut self, id: u64, settler: Settler) {
        self.pending.push((id, settler));
    }

    pub(crate) fn subscribe(&mut self, subscriber: Subscriber) -> Option<u64> {
        if self.finished {
            return None;
        }
        let id = self.next_subscriber;
        self.next_subscriber += 1;
        self.subscribers.push((id, subscriber));
        Some(id)
    }

    /// Remove a subscriber; the caller drops it after letting go of the borrow (dropping
    /// a callback can run app code).
    pub(crate) fn unsubscribe(&mut self, id: u64) -> Option<Subscriber> {
        let index = self.subscribers.iter().position(|(i, _)| *i == id)?;
        Some(self.subscribers.remove(index).1)
    }

    /// What `close()` does to work not yet carried out: it is dropped, but for the
    /// outcomes of publishes and history requests, so that no event or socket activity
    /// follows the call.
    pub(crate) fn drop_queued_work(&mut self) {
        self.queue
            .retain(|action| matches!(action, Action::Settle { .. } | Action::HistoryDone { .. }));
    }

    /// Take out the settler of `id`.
    fn take_pending(&mut self, id: u64) -> Option<Settler> {
        let index = self.pending.iter().position(|(i, _)| *i == id)?;
        Some(self.pending.swap_remove(index).1)
    }
}

/// Create the shell and start connecting.
pub(crate) fn start(
    endpoint: Endpoint,
    token: Option<String>,
    get_token: Option<TokenFn>,
    options: Options,
) -> Shared {
    let core = Core::new(options, token, get_token.is_some(), env::random_seed());
    let shared = Rc::new(RefCell::new(Inner {
        core,
        endpoint,
        get_token,
        socket: None,
        timer: None,
        wake_listeners: Vec::new(),
        queue: VecDeque::new(),
        dispatching: false,
        finished: false,
        pending: Vec::new(),
        subscribers: Vec::new(),
        next_subscriber: 0,
    }));
    let listeners = wake_listeners(Rc::downgrade(&shared));
    shared.borrow_mut().wake_listeners = listeners;
    input(&shared, |inner, now| inner.core.connect(now));
    shared
}

/// Going online or becoming visible is a hint that a waiting reconnect can go at once (and
/// that timers throttled in a background tab may be late).
fn wake_listeners(weak: Weak<RefCell<Inner>>) -> Vec<Listener> {
    let wake = move || {
        if let Some(shared) = weak.upgrade() {
            input(&shared, |inner, now| inner.core.wake(now));
        }
    };
    let mut listeners = Vec::with_capacity(2);
    let global = js_sys::global();
    // A window or a worker is an EventTarget; some other runtimes' global object is not.
    let listenable = env::get(&global, "addEventListener").is_function();
    if listenable {
        let global = global.clone().unchecked_into::<EventTarget>();
        listeners.push(Listener::new(&global, "online", {
            let wake = wake.clone();
            move |_| wake()
        }));
    }
    // A page's global object is its window, with a `document`; a worker's has none. (Read
    // with `env::get` rather than through web-sys's `Window` and `Document`: see `env.rs`.)
    let document = env::get(&global, "document");
    if document.is_object() {
        let target = document.clone().unchecked_into::<EventTarget>();
        listeners.push(Listener::new(&target, "visibilitychange", move |_| {
            if env::get(&document, "visibilityState") == "visible" {
                wake();
            }
        }));
    }
    listeners
}

/// Make one input to the core (`f` gets the shell and the time), then carry out what
/// follows, unless a dispatch further down the stack will.
pub(crate) fn input<R>(shared: &Shared, f: impl FnOnce(&mut Inner, Millis) -> R) -> R {
    let result = f(&mut shared.borrow_mut(), env::now());
    dispatch(shared);
    result
}

/// Carry out queued actions until none is left, then re-arm the timer or tear down; unless
/// a dispatch further down the stack is doing that already. Not generic and not inlined:
/// every input shares this one copy.
#[inline(never)]
fn dispatch(shared: &Shared) {
    {
        let mut inner = shared.borrow_mut();
        if inner.dispatching {
            inner.collect();
            return;
        }
        inner.dispatching = true;
    }
    loop {
        let action = {
            let mut inner = shared.borrow_mut();
            inner.collect();
            match inner.queue.pop_front() {
                Some(action) => action,
                None => {
                    inner.dispatching = false;
                    break;
                }
            }
        };
        perform(shared, action);
    }
    let leftovers = settle(shared);
    drop(leftovers);
}

fn perform(shared: &Shared, action: Action) {
    match action {
        Action::Settle { id, result } => settle_one(shared, id, Outcome::Publish(result)),
        Action::HistoryDone { request, result } => {
            settle_one(shared, request, Outcome::History(result));
        }
        _ if shared.borrow().finished => {}
        Action::Open { token } => open(shared, &token),
        Action::Send(frame) => {
            if let Some(socket) = &shared.borrow().socket {
                socket.send(&frame);
            }
        }
        Action::Close { code, reason } => {
            let socket = shared.borrow_mut().socket.take();
            if let Some(socket) = socket {
                socket.close(code, &reason);
            }
        }
        Action::FetchToken => fetch_token(shared),
        Action::ProbeAuth { token } => {
            let url = shared.borrow().endpoint.probe_url(&token);
            let weak = Rc::downgrade(shared);
            wasm_bindgen_futures::spawn_local(async move {
                let outcome = env::probe(&url).await;
                if let Some(shared) = weak.upgrade() {
                    input(&shared, |inner, now| {
                        if !inner.finished {
                            inner.core.auth_probed(outcome, now);
                        }
                    });
                }
            });
        }
        Action::Emit(event) => emit(shared, &event),
    }
}

fn settle_one(shared: &Shared, id: u64, outcome: Outcome) {
    let settler = shared.borrow_mut().take_pending(id);
    if let Some(settler) = settler {
        // The receiver may be gone: nobody awaits this outcome any more.
        let _ = settler.send(outcome);
    }
}

fn open(shared: &Shared, token: &str) {
    let weak = Rc::downgrade(shared);
    let on_event = move |event: SocketEvent| {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        input(&shared, |inner, now| match event {
            SocketEvent::Opened => inner.core.socket_opened(now),
            SocketEvent::Frame(frame) => inner.core.socket_frame(&frame, now),
            SocketEvent::Closed(code) => {
                inner.socket = None;
                inner.core.socket_closed(code, now);
            }
        });
    };
    let opened = {
        let mut inner = shared.borrow_mut();
        // The core closes a socket before opening the next; should one be left, it goes
        // now, listeners first.
        if let Some(old) = inner.socket.take() {
            old.close(1000, "");
        }
        let opened = Socket::open(&inner.endpoint.socket, token, on_event);
        opened.map(|socket| inner.socket = Some(socket))
    };
    // The constructor throws for a URL or protocol the browser refuses (a `ws:` URL from
    // an `https:` page, for one): to the core, a socket that failed at once.
    if opened.is_err() {
        input(shared, |inner, now| inner.core.socket_closed(1006, now));
    }
}

fn fetch_token(shared: &Shared) {
    let get_token = shared.borrow().get_token.clone();
    let Some(get_token) = get_token else {
        // The core only asks when it was told a token source exists.
        input(shared, |inner, now| {
            inner
                .core
                .token_fetched(Err(String::from("no getToken was given")), now);
        });
        return;
    };
    let future = get_token();
    let weak = Rc::downgrade(shared);
    wasm_bindgen_futures::spawn_local(async move {
        let result = future.await;
        if let Some(shared) = weak.upgrade() {
            input(&shared, |inner, now| {
                if !inner.finished {
                    inner.core.token_fetched(result, now);
                }
            });
        }
    });
}

/// Tell every subscriber, in the order they subscribed. One that unsubscribes during the
/// dispatch (itself or another) hears nothing more, as with `removeEventListener`.
fn emit(shared: &Shared, event: &Event) {
    let ids: Vec<u64> = shared
        .borrow()
        .subscribers
        .iter()
        .map(|(id, _)| *id)
        .collect();
    for id in ids {
        let subscriber = {
            let inner = shared.borrow();
            if inner.finished {
                return;
            }
            let found = inner.subscribers.iter().find(|(i, _)| *i == id);
            found.map(|(_, subscriber)| subscriber.clone())
        };
        match subscriber {
            Some(Subscriber::Stream(sender)) => {
                let stream_dropped = sender.unbounded_send(event.clone()).is_err();
                if stream_dropped {
                    let gone = shared.borrow_mut().unsubscribe(id);
                    drop(gone);
                }
            }
            Some(Subscriber::Callback(callback)) => callback(event),
            None => {}
        }
    }
}

/// What a teardown removed: dropped by the caller once the borrow is released, because
/// dropping app closures can run app code.
type Leftovers = Option<(Vec<(u64, Subscriber)>, Option<TokenFn>, Vec<(u64, Settler)>)>;

/// After a dispatch: re-arm the timer for the core's next deadline, or, once the core is
/// closed for good, tear everything down.
fn settle(shared: &Shared) -> Leftovers {
    let mut inner = shared.borrow_mut();
    if inner.dispatching || inner.finished {
        return None;
    }
    if inner.core.state() == State::Closed {
        inner.finished = true;
        if let Some(socket) = inner.socket.take() {
            socket.close(1000, "");
        }
        inner.timer = None;
        inner.wake_listeners.clear();
        inner.queue.clear();
        // Dropping the senders ends the event streams and fails what is still pending
        // (the core settles every publish and request on close; this is the backstop).
        return Some((
            mem::take(&mut inner.subscribers),
            inner.get_token.take(),
            mem::take(&mut inner.pending),
        ));
    }
    let deadline = inner.core.next_deadline();
    match (deadline, &inner.timer) {
        (Some(deadline), Some((armed, _))) if *armed == deadline => {}
        (Some(deadline), _) => {
            let delay = deadline.saturating_sub(env::now());
            // setTimeout treats delays over 2^31 - 1 ms as 0; a timer that fires early
            // just re-arms.
            let delay = u32::try_from(delay)
                .unwrap_or(u32::MAX)
                .min(i32::MAX as u32);
            let weak = Rc::downgrade(shared);
            let timer = Timeout::new(delay, move || {
                if let Some(shared) = weak.upgrade() {
                    input(&shared, |inner, now| {
                        // This timer has fired: forget it, so the next deadline arms a new
                        // one even if it is the same instant.
                        inner.timer = None;
                        inner.core.tick(now);
                    });
                }
            });
            inner.timer = Some((deadline, timer));
        }
        (None, _) => inner.timer = None,
    }
    None
}
