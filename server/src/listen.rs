//! The HTTP front: the accept loop, and one task per HTTP connection (hyper's HTTP/1.1)
//! until it closes or is upgraded to a WebSocket. It keeps slow and silent clients from
//! holding the server's memory, and ends on time at shutdown whatever clients do:
//!
//! - **Handshake timeout.** A new connection must send its first request's headers within
//!   `handshake_timeout` of the accept, however it trickles them. Each later request on a
//!   keep-alive connection gets the same time from its first byte, and a request's body the
//!   same time from its headers (the server reads small bodies only: `/api/publish` takes
//!   at most `max_frame` bytes).
//! - **Idle timeout.** A keep-alive connection with no request in flight is closed after
//!   `idle_timeout`.
//! - **Slots.** A connection waiting for a request or its body (a new one, or a keep-alive
//!   one between requests) holds one of `max_handshakes` slots. With every slot taken the
//!   loop stops accepting: new connections wait in the kernel's listen backlog, not in this
//!   process, and their handshake timeout starts when they are accepted. Idle keep-alive
//!   connections are then closed to make room, since a client reopens one cheaply; so is
//!   one that finishes a request while no slot is free. A request being answered holds no
//!   slot. Pausing protects best: memory stays bounded, and a burst of honest clients (a
//!   reconnect storm) waits a moment in the backlog instead of being refused.
//! - **Shutdown.** The loop stops accepting and drops the listener; every connection is told
//!   (idle ones close at once, a request in flight may finish) and whatever is still open
//!   `shutdown_timeout` later is cut.
//!
//! A connection leaves all of this when it upgrades: the WebSocket's task is the
//! connection module's, with its heartbeat, and shutdown waits for it through `Node::tasks`.
//!
//! hyper's own `header_read_timeout` is off. Its timer starts whenever the connection waits
//! for a request head, so on a keep-alive connection it also bounds the idle time between
//! requests, with the same duration; here the two differ (10 s and 60 s by default).

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Config;
use crate::metrics::HttpCuts;

/// Largest request head (request line and headers). hyper's default is its whole read
/// buffer, about 400 KiB, which `max_handshakes` slow clients could each fill; 64 KiB holds
/// any real browser's cookies and an identity provider's token in a WebSocket subprotocol.
/// Larger heads are answered 431.
const MAX_HEADER_SIZE: usize = 64 * 1024;

/// First wait after a failed accept (out of file descriptors, say); it doubles up to
/// [`MAX_ACCEPT_BACKOFF`] while accepts keep failing.
const MIN_ACCEPT_BACKOFF: Duration = Duration::from_millis(5);
/// Longest wait between failed accepts.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// What every connection task shares.
struct Front {
    router: Router,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    shutdown_timeout: Duration,
    /// One permit per connection waiting for a request.
    slots: Arc<Semaphore>,
    /// Whether a new connection waits for a slot: idle keep-alive connections then close.
    starved: AtomicBool,
    /// Wakes idle keep-alive connections when `starved` is set.
    reclaim: Notify,
    shutdown: CancellationToken,
    /// Connections closed by a deadline, by reason (one of
    /// [`HTTP_CUT_REASONS`](crate::metrics::HTTP_CUT_REASONS)).
    cuts: HttpCuts,
}

impl Front {
    /// A slot for the next connection, waiting (after asking idle keep-alive connections to
    /// give theirs up) if every one is taken.
    async fn slot(&self) -> OwnedSemaphorePermit {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return permit;
        }
        self.starved.store(true, Ordering::SeqCst);
        self.reclaim.notify_waiters();
        let permit = self.slots.clone().acquire_owned().await;
        self.starved.store(false, Ordering::SeqCst);
        permit.expect("the slot semaphore is never closed")
    }
}

/// Serve `router` on `listener` until `shutdown` is cancelled, then return once every
/// HTTP connection has ended (cut `config.shutdown_timeout` after the cancellation).
/// Upgraded connections are not waited for.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    config: &Config,
    shutdown: CancellationToken,
    cuts: HttpCuts,
) {
    let front = Arc::new(Front {
        router,
        handshake_timeout: config.handshake_timeout,
        idle_timeout: config.idle_timeout,
        shutdown_timeout: config.shutdown_timeout,
        slots: Arc::new(Semaphore::new(config.max_handshakes)),
        starved: AtomicBool::new(false),
        reclaim: Notify::new(),
        shutdown,
        cuts,
    });
    let connections = TaskTracker::new();
    let mut backoff = MIN_ACCEPT_BACKOFF;
    loop {
        // The slot comes first: while none is free, nothing is accepted.
        let slot = tokio::select! {
            biased;
            () = front.shutdown.cancelled() => break,
            slot = front.slot() => slot,
        };
        let accepted = tokio::select! {
            biased;
            () = front.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, _peer)) => {
                backoff = MIN_ACCEPT_BACKOFF;
                // Chat frames are small and latency matters more than packet count.
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                }
                connections.spawn(connection(front.clone(), tcp, slot));
            }
            // The client gave up before the accept: nothing to do.
            Err(e) if is_connection_error(&e) => {}
            // Out of file descriptors or memory: retrying at once would spin, and the
            // condition may pass as connections close.
            Err(e) => {
                tracing::error!(error = %e, retry_in = ?backoff, "cannot accept a connection");
                tokio::select! {
                    biased;
                    () = front.shutdown.cancelled() => break,
                    () = sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
            }
        }
    }
    // New connections are refused from here on, not left in the backlog.
    drop(listener);
    connections.close();
    connections.wait().await;
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// How a connection's task ended.
enum Ended {
    /// hyper is done: the client closed, the connection was upgraded, or it failed.
    Served(hyper::Result<()>),
    /// A deadline passed; the connection is dropped, which closes the socket.
    Cut(&'static str),
}

/// Serve one HTTP connection, holding `slot` while it waits for a request.
async fn connection(front: Arc<Front>, tcp: TcpStream, slot: OwnedSemaphorePermit) {
    let activity = Arc::new(Activity::default());
    let io = TokioIo::new(Watched {
        tcp,
        activity: activity.clone(),
    });
    let service = Tracked {
        router: TowerToHyperService::new(front.router.clone()),
        activity: activity.clone(),
    };
    let mut conn = pin!(
        http1::Builder::new()
            .header_read_timeout(None)
            .max_header_size(MAX_HEADER_SIZE)
            .serve_connection(io, service)
            .with_upgrades()
    );
    let mut watch = Watch {
        seen: activity.load(),
        deadline: Some(Instant::now() + front.handshake_timeout),
        slot: Some(slot),
        cut: None,
    };
    let mut timer = pin!(sleep_until(Instant::now() + front.handshake_timeout));
    let mut shutdown = pin!(front.shutdown.cancelled());
    let mut reclaim = pin!(front.reclaim.notified());

    // Every change of `activity` happens while hyper's connection is polled (the service,
    // the response body and the socket are all driven from it), so the deadline is checked
    // after each poll.
    let ended = poll_fn(|cx| {
        loop {
            if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                return Poll::Ready(Ended::Served(result));
            }
            if watch.cut.is_none() && shutdown.as_mut().poll(cx).is_ready() {
                watch.cut = Some(Instant::now() + front.shutdown_timeout);
                conn.as_mut().graceful_shutdown();
                continue;
            }
            let now = activity.load();
            if now != watch.seen {
                let phase = Activity::phase(now);
                watch.seen = now;
                watch.deadline = match phase {
                    Phase::Handshake => watch.deadline,
                    Phase::Reading | Phase::Body => Some(Instant::now() + front.handshake_timeout),
                    Phase::Idle => Some(Instant::now() + front.idle_timeout),
                    Phase::Busy | Phase::Upgraded => None,
                };
                let mut give_up = false;
                if phase == Phase::Idle {
                    // Armed before `starved` is read: a new connection that starts waiting
                    // after the read is sure to wake this one.
                    reclaim.set(front.reclaim.notified());
                    reclaim.as_mut().enable();
                    give_up = front.starved.load(Ordering::SeqCst);
                }
                if give_up || !watch.hold_slot(phase, &front.slots) {
                    conn.as_mut().graceful_shutdown();
                    continue;
                }
            }
            if Activity::phase(watch.seen) == Phase::Idle && reclaim.as_mut().poll(cx).is_ready() {
                reclaim.set(front.reclaim.notified());
                conn.as_mut().graceful_shutdown();
                continue;
            }
            if let Some((deadline, reason)) = watch.next_deadline() {
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Ended::Cut(reason));
                }
            }
            return Poll::Pending;
        }
    })
    .await;
    match ended {
        Ended::Served(Ok(())) => {}
        Ended::Served(Err(e)) => tracing::debug!(error = %e, "HTTP connection failed"),
        Ended::Cut(reason) => {
            front.cuts.count(reason);
            tracing::debug!(reason, "HTTP connection closed");
        }
    }
}

/// A connection's deadlines and slot, as its task last saw its [`Activity`].
struct Watch {
    /// The last value of the connection's [`Activity`] acted on.
    seen: u32,
    /// When the current phase must end: none while a request is in flight.
    deadline: Option<Instant>,
    /// Held while the connection waits for a request.
    slot: Option<OwnedSemaphorePermit>,
    /// When shutdown cuts the connection, once it has begun.
    cut: Option<Instant>,
}

impl Watch {
    /// Take or give back the slot for `phase`; false if one is needed and none is free.
    fn hold_slot(&mut self, phase: Phase, slots: &Arc<Semaphore>) -> bool {
        match phase {
            Phase::Handshake | Phase::Reading | Phase::Body | Phase::Idle => {
                if self.slot.is_none() {
                    self.slot = slots.clone().try_acquire_owned().ok();
                }
                self.slot.is_some()
            }
            Phase::Busy | Phase::Upgraded => {
                self.slot = None;
                true
            }
        }
    }

    /// The earlier of the phase's deadline and the shutdown cut, and why it would close
    /// the connection.
    fn next_deadline(&self) -> Option<(Instant, &'static str)> {
        let phase = match Activity::phase(self.seen) {
            Phase::Idle => "idle_timeout",
            _ => "handshake_timeout",
        };
        match (self.deadline, self.cut) {
            (Some(deadline), Some(cut)) if deadline < cut => Some((deadline, phase)),
            (_, Some(cut)) => Some((cut, "shutdown_deadline")),
            (Some(deadline), None) => Some((deadline, phase)),
            (None, None) => None,
        }
    }
}

/// What an HTTP connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepted; the first request's headers are not all in.
    Handshake = 0,
    /// A request's headers and body are in (or the handler gave up on the body) and its
    /// response is not yet sent.
    Busy = 1,
    /// Kept alive between requests.
    Idle = 2,
    /// Kept alive, and the next request's first bytes are in, not yet all its headers.
    Reading = 3,
    /// Answered `101 Switching Protocols`: a WebSocket from now on.
    Upgraded = 4,
    /// A request's headers are in, not yet all its body.
    Body = 5,
}

const PHASES: [Phase; 6] = [
    Phase::Handshake,
    Phase::Busy,
    Phase::Idle,
    Phase::Reading,
    Phase::Upgraded,
    Phase::Body,
];

/// A connection's [`Phase`], set by its service (headers in, body in, response sent,
/// upgraded) and its socket (bytes on an idle connection), and read by its task after each
/// poll. The low
/// three bits are the phase; the rest count the changes, so the task also notices a request
/// that came and went within one poll (Idle, Reading, Busy and Idle again).
#[derive(Debug, Default)]
struct Activity(AtomicU32);

impl Activity {
    fn load(&self) -> u32 {
        self.0.load(Ordering::Acquire)
    }

    fn phase(value: u32) -> Phase {
        PHASES[(value & 7) as usize]
    }

    fn next(value: u32, phase: Phase) -> u32 {
        (value & !7).wrapping_add(8) | phase as u32
    }

    fn set(&self, phase: Phase) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(Activity::next(v, phase))
            });
    }

    /// Move from `from` to `to`, if the connection is still in `from`.
    fn replace(&self, from: Phase, to: Phase) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                (Activity::phase(v) == from).then(|| Activity::next(v, to))
            });
    }

    /// Bytes arrived: on an idle keep-alive connection, the next request has begun.
    fn bytes_in(&self) {
        // A load first: this runs on every read, a WebSocket's included.
        if Activity::phase(self.load()) == Phase::Idle {
            self.replace(Phase::Idle, Phase::Reading);
        }
    }
}

/// The router as hyper's service, recording when a request's headers are in (the service
/// is called), when its body is (see [`Received`]), when its response is sent (see
/// [`Sent`]) and when it upgrades.
struct Tracked {
    router: TowerToHyperService<Router>,
    activity: Arc<Activity>,
}

impl Service<Request<Incoming>> for Tracked {
    type Response = Response<Sent>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Sent>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let activity = if request.body().is_end_stream() {
            self.activity.set(Phase::Busy);
            None
        } else {
            self.activity.set(Phase::Body);
            Some(self.activity.clone())
        };
        let response = self
            .router
            .call(request.map(|body| Received { body, activity }));
        let activity = self.activity.clone();
        Box::pin(async move {
            let response = response.await?;
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                activity.set(Phase::Upgraded);
                return Ok(response.map(|body| Sent {
                    body,
                    activity: None,
                }));
            }
            Ok(response.map(|body| Sent {
                body,
                activity: Some(activity),
            }))
        })
    }
}

/// A request body that marks its connection busy (answering) once it is all in, or the
/// handler drops it.
struct Received {
    body: Incoming,
    activity: Option<Arc<Activity>>,
}

impl Received {
    fn done(&mut self) {
        if let Some(activity) = self.activity.take() {
            activity.replace(Phase::Body, Phase::Busy);
        }
    }
}

impl HttpBody for Received {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let poll = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(poll, Poll::Ready(None | Some(Err(_)))) {
            self.done();
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Received {
    fn drop(&mut self) {
        self.done();
    }
}

/// A response body that marks its connection idle when hyper is done with it: sent, or
/// dropped with the connection.
struct Sent {
    body: Body,
    activity: Option<Arc<Activity>>,
}

impl HttpBody for Sent {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Sent {
    fn drop(&mut self) {
        if let Some(activity) = self.activity.take() {
            activity.set(Phase::Idle);
        }
    }
}

/// The socket, recording when bytes arrive. It stays under the WebSocket after an upgrade,
/// where that costs one atomic load per read.
struct Watched {
    tcp: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.bytes_in();
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_of_phase_is_a_new_value_even_back_to_the_same_phase() {
        let activity = Activity::default();
        let start = activity.load();
        assert_eq!(Activity::phase(start), Phase::Handshake);
        activity.set(Phase::Busy);
        activity.set(Phase::Idle);
        let idle = activity.load();
        assert_eq!(Activity::phase(idle), Phase::Idle);
        activity.bytes_in();
        assert_eq!(Activity::phase(activity.load()), Phase::Reading);
        activity.set(Phase::Busy);
        activity.set(Phase::Idle);
        assert_eq!(Activity::phase(activity.load()), Phase::Idle);
        assert_ne!(activity.load(), idle);
        // Bytes in any other phase change nothing.
        activity.set(Phase::Busy);
        let busy = activity.load();
        activity.bytes_in();
        assert_eq!(activity.load(), busy);
    }
}
