//! A load balancer for tests, as HAProxy or nginx would run in front of several server
//! instances with health checks by connect: it listens on a port of its own and relays each
//! new TCP connection to the next backend, round robin, that accepts a connection, skipping
//! those that refuse. Clients that connect through it land on different instances; after an
//! instance dies, they reconnect through it and land on a survivor.
//!
//! It records which backend each live connection went to, by the client's address, so a
//! test can tell where a client is ([`Balancer::backend_of`]).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Result;

/// How long a backend may take to accept a connection before the next one is tried (a
/// frozen process still accepts: the kernel completes the handshake).
const CONNECT_WITHIN: Duration = Duration::from_secs(1);

/// Where connections went.
#[derive(Debug, Default)]
struct Routes {
    /// Live connections: the client's address → the backend's port.
    live: HashMap<SocketAddr, u16>,
    /// Connections relayed so far, per backend port.
    relayed: BTreeMap<u16, u64>,
    /// Connections refused because no backend accepted.
    refused: u64,
}

/// What the accept loop and the relays share.
#[derive(Debug)]
struct Shared {
    // A std Mutex, as `routes`.
    backends: Mutex<Vec<u16>>,
    /// Where the next connection starts looking: advanced once per connection, so that
    /// connections spread round robin over the backends that accept.
    next: AtomicUsize,
    // A std Mutex: held for a map update or a lookup, never across an await.
    routes: Mutex<Routes>,
}

impl Shared {
    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A round-robin TCP relay from its own port on 127.0.0.1 to backends on 127.0.0.1.
#[derive(Debug)]
pub struct Balancer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    shared: Arc<Shared>,
    /// Set to true when the balancer is dropped: every relay ends.
    closed: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl Balancer {
    /// Start relaying `127.0.0.1:<new port>` to the backends on these ports.
    pub async fn open(backends: Vec<u16>) -> Result<Balancer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            backends: Mutex::new(backends),
            next: AtomicUsize::new(0),
            routes: Mutex::new(Routes::default()),
        });
        let closed = watch::Sender::new(false);
        let accept = tokio::spawn(accept_loop(listener, shared.clone(), closed.clone()));
        Ok(Balancer {
            port,
            shared,
            closed,
            accept,
        })
    }

    /// `ws://127.0.0.1:PORT/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The backend port of the live connection from `client` (the client's local address),
    /// if there is one.
    pub fn backend_of(&self, client: SocketAddr) -> Option<u16> {
        self.shared.routes().live.get(&client).copied()
    }

    /// Relay new connections to these backends from now on (a failover to another server);
    /// connections already relayed stay where they are.
    pub fn set_backends(&self, backends: Vec<u16>) {
        *self
            .shared
            .backends
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = backends;
    }

    /// Connections relayed so far, per backend port.
    pub fn relayed(&self) -> BTreeMap<u16, u64> {
        self.shared.routes().relayed.clone()
    }

    /// Connections closed at once because no backend accepted them.
    pub fn refused(&self) -> u64 {
        self.shared.routes().refused
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.closed.send_replace(true);
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, closed: watch::Sender<bool>) {
    while let Ok((client, address)) = listener.accept().await {
        // The pick happens in the connection's task: a backend slow to accept must not hold
        // up the others' connections.
        let start = shared.next.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(relay(
            client,
            address,
            start,
            shared.clone(),
            closed.subscribe(),
        ));
    }
}

/// Connect to the first backend that accepts, trying them in order from `start`.
async fn pick(shared: &Shared, start: usize) -> Option<(u16, TcpStream)> {
    let backends = shared
        .backends
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let count = backends.len();
    for offset in 0..count {
        let port = backends[(start + offset) % count];
        let connecting = TcpStream::connect(("127.0.0.1", port));
        if let Ok(Ok(stream)) = tokio::time::timeout(CONNECT_WITHIN, connecting).await
            && !connected_to_itself(&stream)
        {
            return Some((port, stream));
        }
    }
    None
}

/// Whether a connection to a port nobody listens on went to itself: on loopback, Linux may
/// pick that very port as the connection's own (it is in the ephemeral range, as every port
/// bound to 0 is), and the two ends then meet (a TCP simultaneous open).
fn connected_to_itself(stream: &TcpStream) -> bool {
    matches!((stream.local_addr(), stream.peer_addr()), (Ok(local), Ok(peer)) if local == peer)
}

/// Relay one connection until either side closes or the balancer goes.
async fn relay(
    mut client: TcpStream,
    address: SocketAddr,
    start: usize,
    shared: Arc<Shared>,
    mut closed: watch::Receiver<bool>,
) {
    let Some((port, mut backend)) = pick(&shared, start).await else {
        // Every backend is down: the client sees its connection close before any answer.
        shared.routes().refused += 1;
        return;
    };
    {
        let mut routes = shared.routes();
        routes.live.insert(address, port);
        *routes.relayed.entry(port).or_default() += 1;
    }
    let _ = client.set_nodelay(true);
    let _ = backend.set_nodelay(true);
    tokio::select! {
        _ = copy_bidirectional(&mut client, &mut backend) => {}
        _ = closed.wait_for(|closed| *closed) => {}
    }
    shared.routes().live.remove(&address);
}
