//! A link: a TCP relay on a port of its own to one server's port, which a test can cut and
//! restore. A client connected through a link loses the server while other clients keep
//! it, so a test can decide who reconnects first.

use std::sync::Arc;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Result;

/// A relay from its own port to a server's port.
#[derive(Debug)]
pub struct Link {
    /// The controller's id for it.
    pub id: u64,
    /// The server it leads to.
    pub server: u64,
    /// Its port on 127.0.0.1.
    pub port: u16,
    cut: Arc<watch::Sender<bool>>,
    accept: JoinHandle<()>,
}

impl Link {
    /// Start relaying `127.0.0.1:<new port>` to `127.0.0.1:<server_port>`.
    pub async fn open(id: u64, server: u64, server_port: u16) -> Result<Link> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let cut = Arc::new(watch::Sender::new(false));
        let accept = tokio::spawn(accept_loop(listener, server_port, cut.clone()));
        Ok(Link {
            id,
            server,
            port,
            cut,
            accept,
        })
    }

    /// Whether the link is cut.
    pub fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }

    /// Sever every connection through the link, and close new ones at once (a client sees
    /// a connection that fails before any answer) until [`Link::restore`].
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Relay new connections again.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.cut.send_replace(true);
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, server_port: u16, cut: Arc<watch::Sender<bool>>) {
    while let Ok((client, _)) = listener.accept().await {
        if *cut.borrow() {
            drop(client);
            continue;
        }
        tokio::spawn(relay(client, server_port, cut.subscribe()));
    }
}

/// Relay one connection until either side closes or the link is cut.
async fn relay(mut client: TcpStream, server_port: u16, mut cut: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", server_port)).await else {
        // The server is down: the client sees its connection fail, as it would directly.
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    tokio::select! {
        _ = copy_bidirectional(&mut client, &mut server) => {}
        _ = cut.wait_for(|cut| *cut) => {}
    }
}
