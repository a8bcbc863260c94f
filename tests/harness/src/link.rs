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
//!
//! It can also lose a single frame on a connection that otherwise works:
//! [`Link::drop_message`] drops the next room message (`ServerMessage::Message`) the server
//! sends on each connection, which is how a test makes a client see a sequence gap. For
//! that the relay reads the server's side as WebSocket frames (after the HTTP upgrade) and
//! passes each one on whole; a stream that is not a WebSocket upgrade (tests relay Redis
//! too) passes as it comes.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chorus_framing::Opcode;
use chorus_protocol::ServerMessage;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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
    /// Counts [`Link::drop_message`] calls: each relay drops that many room messages, less
    /// the calls made before it started.
    drops: u64,
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
    /// Room messages dropped so far, over every connection.
    dropped: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl Link {
    /// Start relaying `127.0.0.1:<new port>` to `127.0.0.1:<server_port>`.
    pub async fn open(id: u64, server: u64, server_port: u16) -> Result<Link> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let control = Arc::new(watch::Sender::new(Control::default()));
        let dropped = Arc::new(AtomicU64::new(0));
        let accept = tokio::spawn(accept_loop(
            listener,
            server_port,
            control.clone(),
            dropped.clone(),
        ));
        Ok(Link {
            id,
            server,
            port,
            control,
            dropped,
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

    /// Drop the next room message (`ServerMessage::Message`) the server sends on each
    /// connection open through the link now; everything else, before and after it, is
    /// relayed.
    pub fn drop_message(&self) {
        self.control.send_modify(|c| c.drops += 1);
    }

    /// Room messages dropped so far by [`Link::drop_message`], over every connection.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
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
    dropped: Arc<AtomicU64>,
) {
    while let Ok((client, _)) = listener.accept().await {
        if control.borrow().cut {
            drop(client);
            continue;
        }
        tokio::spawn(relay(
            client,
            server_port,
            control.subscribe(),
            dropped.clone(),
        ));
    }
}

/// Relay one connection until either side closes, the link is cut or a fault ends it.
async fn relay(
    mut client: TcpStream,
    server_port: u16,
    mut control: watch::Receiver<Control>,
    dropped: Arc<AtomicU64>,
) {
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", server_port)).await else {
        // The server is down: the client sees its connection fail, as it would directly.
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (seen, drops) = {
        let c = control.borrow_and_update();
        (c.faults, c.drops)
    };
    let fault = {
        let (mut from_client, mut to_client) = client.split();
        let (mut from_server, mut to_server) = server.split();
        let upstream = async {
            tokio::io::copy(&mut from_client, &mut to_server).await?;
            to_server.shutdown().await
        };
        let frames = Frames {
            control: control.clone(),
            drops,
            dropped: &dropped,
        };
        let downstream = frames.relay(&mut from_server, &mut to_client);
        tokio::select! {
            _ = async { tokio::try_join!(upstream, downstream) } => return,
            changed = control.wait_for(|c| c.cut || c.faults != seen) => match changed {
                Ok(c) if !c.cut => c.fault.unwrap_or(Fault::Close),
                _ => Fault::Close,
            },
        }
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

/// The server's side of one connection, relayed frame by frame so that a room message can
/// be dropped whole.
struct Frames<'a> {
    control: watch::Receiver<Control>,
    /// [`Control::drops`] already served: drop a room message while the link asks for more.
    drops: u64,
    dropped: &'a AtomicU64,
}

impl Frames<'_> {
    /// Copy the HTTP response, then each WebSocket frame once it is complete (dropping the
    /// room messages asked for), until the server closes its side; then close the client's.
    /// A stream that is not a WebSocket upgrade is copied as it comes.
    async fn relay(
        mut self,
        from: &mut (impl AsyncRead + Unpin),
        to: &mut (impl AsyncWrite + Unpin),
    ) -> io::Result<()> {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let mut mode = Mode::Http;
        loop {
            let n = from.read(&mut chunk).await?;
            if n == 0 {
                to.write_all(&buf).await?;
                return to.shutdown().await;
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut out = Vec::new();
            let mut start = 0;
            if mode == Mode::Http {
                const HTTP: &[u8] = b"HTTP/";
                let seen = buf.len().min(HTTP.len());
                if buf[..seen] != HTTP[..seen] {
                    mode = Mode::Bytes;
                } else if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    start = end + 4;
                    out.extend_from_slice(&buf[..start]);
                    mode = if buf.starts_with(b"HTTP/1.1 101") {
                        Mode::Frames
                    } else {
                        Mode::Bytes
                    };
                } else {
                    continue;
                }
            }
            if mode == Mode::Frames {
                while let Some(len) = frame_len(&buf[start..]) {
                    let frame = &buf[start..start + len];
                    if self.wants_drop() && is_room_message(frame) {
                        self.drops += 1;
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    } else {
                        out.extend_from_slice(frame);
                    }
                    start += len;
                }
            } else {
                out.extend_from_slice(&buf[start..]);
                start = buf.len();
            }
            buf.drain(..start);
            to.write_all(&out).await?;
        }
    }

    fn wants_drop(&self) -> bool {
        self.control.borrow().drops > self.drops
    }
}

/// What the server's side of a connection carries, as far as the relay has read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The HTTP response to the upgrade, until its blank line.
    Http,
    /// WebSocket frames, after a `101 Switching Protocols`.
    Frames,
    /// Anything else (another HTTP answer, or another protocol: tests relay Redis too),
    /// passed on as it comes.
    Bytes,
}

/// The length of the WebSocket frame at the start of `bytes`, once all of it is there. No
/// rule is checked: the relay passes frames on as they are.
fn frame_len(bytes: &[u8]) -> Option<usize> {
    chorus_framing::frame_len(bytes).filter(|len| *len <= bytes.len())
}

/// Whether `frame` (complete, from the server, so unmasked) is a binary frame holding a
/// room message.
fn is_room_message(frame: &[u8]) -> bool {
    match chorus_framing::parse_server_header(frame, usize::MAX) {
        Ok(Some(header)) if header.opcode == Opcode::Binary => matches!(
            ServerMessage::decode(&frame[header.len..], usize::MAX),
            Ok(ServerMessage::Message { .. })
        ),
        _ => false,
    }
}

/// Read and drop bytes until the peer closes the socket or it fails.
async fn discard(socket: &mut (impl AsyncRead + Unpin)) {
    let mut buf = [0u8; 4096];
    while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
}

#[cfg(test)]
mod tests {
    use chorus_protocol::{Body, ServerMessage};

    use super::*;

    /// A server frame (unmasked, final, binary) around `payload`.
    fn binary(payload: &[u8]) -> Vec<u8> {
        chorus_framing::server_frame(Opcode::Binary, payload).to_vec()
    }

    #[test]
    fn a_frame_is_complete_once_its_header_and_payload_are_there() {
        for len in [0, 125, 126, 65_535, 65_536] {
            let frame = binary(&vec![7; len]);
            assert_eq!(frame_len(&frame), Some(frame.len()), "{len} bytes");
            let mut longer = frame.clone();
            longer.extend_from_slice(&[0x82, 0]);
            assert_eq!(
                frame_len(&longer),
                Some(frame.len()),
                "{len} bytes, then more"
            );
            for cut in [0, 1, frame.len() - 1] {
                assert_eq!(frame_len(&frame[..cut]), None, "{len} bytes cut at {cut}");
            }
        }
    }

    #[test]
    fn only_room_messages_are_room_messages() {
        let message = ServerMessage::Message {
            room: "lobby".into(),
            seq: 1,
            id: 2,
            sender: "bob".into(),
            ts: 3,
            body: Body::Text("x".repeat(200)),
        };
        assert!(is_room_message(&binary(
            &message.encode(usize::MAX).unwrap()
        )));
        let pong = ServerMessage::Pong { nonce: 1 };
        assert!(!is_room_message(&binary(&pong.encode(usize::MAX).unwrap())));
        // The same bytes in a text frame are not a message.
        let mut text = binary(&message.encode(usize::MAX).unwrap());
        text[0] = 0x81;
        assert!(!is_room_message(&text));
    }
}
