//! One benchmark connection: where it connects from and to, its greeting and its joins.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::protocol::{Incoming, Protocol, handle};
use crate::ws::{self, Reader, Url, Writer};
use crate::{Error, Result};

/// Where connections go: a protocol, one or more servers (taken round robin), and the
/// source addresses connections are spread over.
#[derive(Debug, Clone)]
pub struct Target {
    protocol: Arc<dyn Protocol>,
    endpoints: Vec<(SocketAddr, Url)>,
    sources: Vec<IpAddr>,
    /// Buffer sizes of each connection.
    pub options: ws::Options,
    /// Longest a connect, greeting or join may take.
    pub timeout: Duration,
}

impl Target {
    /// Resolve `urls`. With `source_ips` above zero and loopback servers, connection `i`
    /// binds to 127.0.0.(2 + i mod `source_ips`) before connecting: each source address
    /// has its own ~28 000 ephemeral ports.
    pub async fn new(
        protocol: Arc<dyn Protocol>,
        urls: &[String],
        source_ips: u8,
        timeout: Duration,
    ) -> Result<Target> {
        if urls.is_empty() {
            return Err(Error::Usage("at least one --url is needed".into()));
        }
        let mut endpoints = Vec::new();
        for url in urls {
            let url: Url = url.parse()?;
            let addr = tokio::net::lookup_host((url.host.as_str(), url.port))
                .await?
                .next()
                .ok_or_else(|| Error::Usage(format!("{}: no address", url.host)))?;
            endpoints.push((addr, url));
        }
        let loopback = endpoints
            .iter()
            .all(|(addr, _)| matches!(addr.ip(), IpAddr::V4(ip) if ip.is_loopback()));
        let sources = if loopback {
            (0..source_ips.min(250))
                .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i)))
                .collect()
        } else {
            Vec::new()
        };
        Ok(Target {
            protocol,
            endpoints,
            sources,
            options: ws::Options::default(),
            timeout,
        })
    }

    /// The protocol spoken.
    pub fn protocol(&self) -> &Arc<dyn Protocol> {
        &self.protocol
    }

    /// The servers' URLs.
    pub fn urls(&self) -> Vec<String> {
        self.endpoints
            .iter()
            .map(|(_, url)| format!("ws://{}:{}{}", url.host, url.port, url.path))
            .collect()
    }

    /// Open connection `index` (user `bench-<index>`) and wait for the protocol's greeting.
    pub async fn connect(&self, index: u32) -> Result<Conn> {
        tokio::time::timeout(self.timeout, self.connect_inner(index))
            .await
            .map_err(|_| Error::Timeout("connect"))?
    }

    /// Open connection `index` and join `room`.
    pub async fn connect_joined(&self, index: u32, room: &str) -> Result<Conn> {
        tokio::time::timeout(self.timeout, async {
            let mut conn = self.connect_inner(index).await?;
            conn.join(room).await?;
            Ok(conn)
        })
        .await
        .map_err(|_| Error::Timeout("connect and join"))?
    }

    async fn connect_inner(&self, index: u32) -> Result<Conn> {
        let (addr, url) = &self.endpoints[index as usize % self.endpoints.len()];
        let source =
            (!self.sources.is_empty()).then(|| self.sources[index as usize % self.sources.len()]);
        let upgrade = self
            .protocol
            .upgrade(&url.path, &format!("bench-{index}"))?;
        let (reader, writer) =
            ws::connect(*addr, &url.host, source, &upgrade, self.options).await?;
        let mut conn = Conn {
            index,
            reader,
            writer,
            protocol: self.protocol.clone(),
        };
        if self.protocol.greets() {
            conn.wait_for("the greeting", |m| *m == Incoming::Ready)
                .await?;
        }
        Ok(conn)
    }
}

/// Where a connection's publish ids start. Chorus answers a publish whose (user, id) it
/// saw within its dedupe window (minutes) with the old ack and publishes nothing; users
/// (`bench-<index>`) recur across runs, so ids start at a random point of 2^62.
pub fn first_publish_id() -> u64 {
    crate::ws::seed() >> 2
}

/// An open connection.
#[derive(Debug)]
pub struct Conn {
    /// Its index among the workload's connections (also its user name and stamp sender).
    pub index: u32,
    /// What it receives.
    pub reader: Reader<OwnedReadHalf>,
    /// What it sends.
    pub writer: Writer<OwnedWriteHalf>,
    protocol: Arc<dyn Protocol>,
}

impl Conn {
    /// The protocol spoken (a handle to keep while the connection is borrowed).
    pub fn protocol_arc(&self) -> Arc<dyn Protocol> {
        self.protocol.clone()
    }

    /// Join `room`, waiting for the answer where the protocol gives one.
    pub async fn join(&mut self, room: &str) -> Result<()> {
        self.protocol.join(room, &mut self.writer);
        self.writer.flush().await?;
        if self.protocol.joins_acknowledged() {
            self.wait_for("a join", |m| *m == Incoming::Joined).await?;
        }
        Ok(())
    }

    /// Receive until a message `want`s; what arrives before is dropped (answering pings).
    /// A refusal or goodbye is an error.
    pub async fn wait_for(
        &mut self,
        what: &'static str,
        mut want: impl FnMut(&Incoming) -> bool,
    ) -> Result<()> {
        loop {
            let mut found = false;
            while let Some(frame) = self.reader.next()? {
                match handle(&*self.protocol, frame, &mut self.writer)? {
                    Incoming::Refused(why) => {
                        return Err(Error::Protocol(format!("waiting for {what}: {why}")));
                    }
                    Incoming::Closing(why) => {
                        return Err(Error::Closed(format!("waiting for {what}: {why}")));
                    }
                    incoming => {
                        if want(&incoming) {
                            found = true;
                            break;
                        }
                    }
                }
            }
            self.writer.flush().await?;
            if found {
                return Ok(());
            }
            self.reader.fill().await?;
        }
    }

    /// Stay connected, answering pings, until the connection ends (an error says how).
    pub async fn hold(&mut self) -> Result<()> {
        loop {
            self.reader.fill().await?;
            while let Some(frame) = self.reader.next()? {
                if let Incoming::Closing(why) = handle(&*self.protocol, frame, &mut self.writer)? {
                    return Err(Error::Closed(why));
                }
            }
            self.writer.flush().await?;
        }
    }

    /// Close abruptly: a TCP reset, no close frame and no FIN (what a crashed client or a
    /// cut link looks like to the server).
    pub fn reset(self) {
        let Conn { reader, writer, .. } = self;
        let write = writer.into_inner();
        let stream: &tokio::net::TcpStream = write.as_ref();
        let _ = stream.set_zero_linger();
        // Dropping the write half would shut it down (a FIN) first; forgotten, the socket
        // closes with the read half, with SO_LINGER 0: a RST.
        write.forget();
        drop(reader);
    }
}
