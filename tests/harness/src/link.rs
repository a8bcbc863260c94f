//! A link: a TCP relay on a port of its own to one server's port, which a test can cut and
//! restore. A client connected through a link loses the server while other clients keep
//! it, so a test can decide who reconnects first.
//!
//! Besides [`Link::cut`] (sever and refuse until restored), a link can end the connections
//! through it in the ways networks do, while still relaying new ones: [`Fault::Close`] (an
//! orderly TCP close to both ends), [`Fault::Reset`] (a TCP reset to both ends) and
//! [`Fault::Stall`] (bytes stop flowing but both sockets stay open, as when a NAT entry or a
//! Wi-Fi link dies: only heartbeats can tell) and [`Fault::Deafen`] (only the server's side
//! is lost, so requests arrive and their answers do not).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, copy_bidirectional};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Result;

/// How [`Link::fault`] ends the connections through a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Close both sockets normally (FIN).
    Close,
    /// Reset both sockets (RST): the ends see "connection reset".
    Reset,
    /// Stop relaying, keep both sockets open and discard what arrives, until both ends give
    /// up, the link is dropped, or [`STALL_LIMIT`] passes.
    Stall,
    /// Keep relaying what the client sends, but discard what the server sends: requests
    /// arrive and their answers are lost, until the client gives up.
    Deafen,
}

/// Longest a stalled connection is held open.
pub const STALL_LIMIT: Duration = Duration::from_secs(120);

/// What relays watch: whether the link is cut, and the faults injected so far.
#[derive(Debug, Clone, Copy, Default)]
struct Control {
    cut: bool,
    /// Counts faults, so each relay sees every new one once.
    faults: u64,
    fault: Option<Fault>,
}

/// A relay from its own port to a server's port.
#[derive(Debug)]
pub struct Link {
    /// The controller's id for it.
    pub id: u64,
    /// The server it leads to.
    pub server: u64,
    /// Its port on 127.0.0.1.
    pub port: u16,
    control: Arc<watch::Sender<Control>>,
    accept: JoinHandle<()>,
}

impl Link {
    /// Start relaying `127.0.0.1:<new port>` to `127.0.0.1:<server_port>`.
    pub async fn open(id: u64, server: u64, server_port: u16) -> Result<Link> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let control = Arc::new(watch::Sender::new(Control::default()));
        let accept = tokio::spawn(accept_loop(listener, server_port, control.clone()));
        Ok(Link {
            id,
            server,
            port,
            control,
            accept,
        })
    }

    /// Whether the link is cut.
    pub fn is_cut(&self) -> bool {
        self.control.borrow().cut
    }

    /// Sever every connection through the link, and close new ones at once (a client sees
    /// a connection that fails before any answer) until [`Link::restore`].
    pub fn cut(&self) {
        self.control.send_modify(|c| c.cut = true);
    }

    /// Relay new connections again.
    pub fn restore(&self) {
        self.control.send_modify(|c| c.cut = false);
    }

    /// End every connection through the link now, the way `fault` says; new connections
    /// are relayed as before.
    pub fn fault(&self, fault: Fault) {
        self.control.send_modify(|c| {
            c.faults += 1;
            c.fault = Some(fault);
        });
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.control.send_modify(|c| c.cut = true);
        self.accept.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    server_port: u16,
    control: Arc<watch::Sender<Control>>,
) {
    while let Ok((client, _)) = listener.accept().await {
        if control.borrow().cut {
            drop(client);
            continue;
        }
        tokio::spawn(relay(client, server_port, control.subscribe()));
    }
}

/// Relay one connection until either side closes, the link is cut or a fault ends it.
async fn relay(mut client: TcpStream, server_port: u16, mut control: watch::Receiver<Control>) {
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", server_port)).await else {
        // The server is down: the client sees its connection fail, as it would directly.
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let seen = control.borrow_and_update().faults;
    let fault = tokio::select! {
        _ = copy_bidirectional(&mut client, &mut server) => return,
        changed = control.wait_for(|c| c.cut || c.faults != seen) => match changed {
            Ok(c) if !c.cut => c.fault.unwrap_or(Fault::Close),
            _ => Fault::Close,
        },
    };
    match fault {
        Fault::Close => {}
        Fault::Reset => {
            // Dropping a socket with a zero linger time sends RST instead of FIN.
            let _ = client.set_zero_linger();
            let _ = server.set_zero_linger();
        }
        Fault::Stall => {
            let hold = async {
                tokio::join!(discard(&mut client), discard(&mut server));
            };
            // Not even a cut ends the silence: only the ends giving up, or the link going.
            tokio::select! {
                _ = tokio::time::timeout(STALL_LIMIT, hold) => {}
                _ = control.wait_for(|_| false) => {}
            }
        }
        Fault::Deafen => {
            let (mut from_client, _) = client.split();
            let (mut from_server, mut to_server) = server.split();
            let upstream = async {
                let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
            };
            tokio::select! {
                _ = tokio::time::timeout(STALL_LIMIT, upstream) => {}
                _ = discard(&mut from_server) => {}
                _ = control.wait_for(|_| false) => {}
            }
        }
    }
}

/// Read and drop bytes until the peer closes the socket or it fails.
async fn discard(socket: &mut (impl AsyncRead + Unpin)) {
    let mut buf = [0u8; 4096];
    while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
}
