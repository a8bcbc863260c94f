//! The generator's own ceiling: how many room messages one core of it can take in.
//!
//! A blaster thread plays a server that does nothing but write one protocol's room
//! messages (pre-framed) into loopback sockets as fast as it can. The receiving side runs
//! exactly what a subscriber runs (read, parse the frame, classify the message, find its
//! stamp, record its latency in a histogram) on one thread of its own, and the result is
//! frames per CPU-second of that thread: the most one core of the generator parses,
//! whatever the blaster manages.
//!
//! Two regimes bound it. One connection with 256 KiB per write is the best case: many
//! frames per `read`, the cost is parsing. Many connections with one frame per write
//! (`--connections 1000 --frames-per-write 1`) is a large room's fan-out at a low rate:
//! one `read`, and the kernel's TCP receive path, per frame. With `--receiver
//! tungstenite` the receiver is tokio-tungstenite instead of [`crate::ws`], for comparison.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::clock::now_ns;
use crate::protocol::{Incoming, Protocol, Stamp, handle};
use crate::report::Report;
use crate::stats::{CpuUsage, Recorder, round3};
use crate::ws::{self, Opcode, Outbox, Upgrade};
use crate::{Error, Result};

/// Which receiver to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Receiver {
    /// This crate's reader ([`crate::ws::Reader`]).
    Hand,
    /// tokio-tungstenite.
    Tungstenite,
}

/// Ceiling arguments.
#[derive(Debug, Clone)]
pub struct Ceiling {
    /// Body size of the messages.
    pub body: usize,
    /// How long to receive.
    pub duration: Duration,
    /// The receivers to measure, one report each.
    pub receivers: Vec<Receiver>,
    /// Connections the blaster writes to, in turn.
    pub connections: usize,
    /// Frames per write to one connection; `None`: about 256 KiB.
    pub frames_per_write: Option<usize>,
}

/// Measure each receiver; one report each.
pub fn run(protocol: Arc<dyn Protocol>, args: &Ceiling, quick: bool) -> Result<Vec<Report>> {
    args.receivers
        .iter()
        .map(|receiver| one(protocol.clone(), args, *receiver, quick))
        .collect()
}

fn one(
    protocol: Arc<dyn Protocol>,
    args: &Ceiling,
    receiver: Receiver,
    quick: bool,
) -> Result<Report> {
    let (text, message) = protocol.broadcast_example(
        "bench:fanout",
        Stamp {
            sent_ns: now_ns(),
            sender: 1,
        },
        args.body,
    );
    let opcode = if text { Opcode::Text } else { Opcode::Binary };
    let frame = chorus_framing::frame(true, opcode, &message, None);
    let copies = args
        .frames_per_write
        .unwrap_or(256 * 1024 / frame.len())
        .max(1);
    let blob: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(frame.len() * copies)
        .collect();

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let connections = args.connections.max(1);
    let blaster = {
        let stop = stop.clone();
        std::thread::spawn(move || blast(listener, connections, &blob, &stop))
    };
    let duration = args.duration;
    let protocol_name = protocol.name();
    let measured = std::thread::spawn(move || -> Result<(u64, f64, f64)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(receive(receiver, addr, protocol, connections, duration))
    });
    let outcome = measured.join().expect("the receiver does not panic");
    if let Err(e) = &outcome {
        eprintln!("ceiling: the receiver failed: {e}");
    }
    stop.store(true, Ordering::Relaxed);
    if outcome.is_ok() {
        // (After a failed connect it may still wait in `accept`: leave it.)
        if let Ok(Err(e)) = blaster.join() {
            eprintln!("ceiling: the blaster failed: {e}");
        }
    }
    let (frames, wall, thread_cpu) = outcome?;
    let per_cpu_second = frames as f64 / thread_cpu.max(1e-9);
    let name = match receiver {
        Receiver::Hand => "hand",
        Receiver::Tungstenite => "tungstenite",
    };
    let frame_bytes = frame.len();
    Ok(Report {
        workload: "ceiling",
        protocol: protocol_name,
        servers: Vec::new(),
        quick,
        params: json!({
            "receiver": name,
            "connections": connections,
            "frames_per_write": copies,
            "body": args.body,
            "frame_bytes": frame_bytes,
            "duration_s": duration.as_secs_f64(),
        }),
        results: json!({
            "frames": frames,
            "frames_per_second": round3(frames as f64 / wall),
            "frames_per_cpu_second": round3(per_cpu_second),
            "receiver_cpu_percent": round3(100.0 * thread_cpu / wall),
            "megabytes_per_cpu_second": round3(per_cpu_second * frame_bytes as f64 / 1e6),
        }),
        generator: CpuUsage {
            wall,
            cpu: thread_cpu,
            user: 0.0,
            system: 0.0,
            server: None,
        },
        threads: 1,
        text: format!(
            "{name} receiver, {connections} connection(s), {frame_bytes} B frames, {copies} per \
             write: {:.0} frames/s on the wire, {per_cpu_second:.0} frames per CPU-second of \
             the receiving thread ({:.0}% busy)",
            frames as f64 / wall,
            100.0 * thread_cpu / wall,
        ),
    })
}

/// CPU time of the calling thread, in seconds.
fn thread_cpu() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// Accept `connections` clients, answer their upgrades, then write `blob` to each in turn
/// until told to stop or a client goes.
fn blast(listener: TcpListener, connections: usize, blob: &[u8], stop: &AtomicBool) -> Result<()> {
    let mut streams = Vec::new();
    for _ in 0..connections {
        let (mut stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        accept_upgrade(&mut stream)?;
        streams.push(stream);
    }
    while !stop.load(Ordering::Relaxed) {
        for stream in &mut streams {
            if stream.write_all(blob).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Read an upgrade request and answer 101.
fn accept_upgrade(stream: &mut std::net::TcpStream) -> Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let key = loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(Error::Eof);
        }
        request.extend_from_slice(&buf[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(_)) = parsed.parse(&request) {
            break parsed
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))
                .map(|h| h.value.to_vec())
                .ok_or_else(|| Error::Handshake("no key".into()))?;
        }
    };
    let accept = tungstenite::handshake::derive_accept_key(&key);
    write!(
        stream,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )?;
    Ok(())
}

/// Connect `connections` receivers, then receive on all of them for `duration`; returns
/// (frames, wall s, CPU s of this thread, which runs them all).
async fn receive(
    receiver: Receiver,
    addr: std::net::SocketAddr,
    protocol: Arc<dyn Protocol>,
    connections: usize,
    duration: Duration,
) -> Result<(u64, f64, f64)> {
    let frames = Arc::new(AtomicU64::new(0));
    let recorder = Arc::new(Recorder::new(16));
    let mut tasks = Vec::new();
    match receiver {
        Receiver::Hand => {
            let upgrade = Upgrade {
                path: "/".into(),
                headers: Vec::new(),
            };
            let mut conns = Vec::new();
            for _ in 0..connections {
                conns.push(
                    ws::connect(addr, "127.0.0.1", None, &upgrade, ws::Options::default()).await?,
                );
            }
            let deadline = tokio::time::Instant::now() + duration;
            for (i, (reader, writer)) in conns.into_iter().enumerate() {
                let receive = receive_hand(
                    i,
                    reader,
                    writer,
                    protocol.clone(),
                    recorder.clone(),
                    frames.clone(),
                );
                tasks.push(tokio::spawn(until(deadline, receive)));
            }
        }
        Receiver::Tungstenite => {
            let mut sockets = Vec::new();
            for _ in 0..connections {
                let stream = tokio::net::TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                let (socket, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), stream)
                    .await
                    .map_err(|e| Error::Handshake(e.to_string()))?;
                sockets.push(socket);
            }
            let deadline = tokio::time::Instant::now() + duration;
            for (i, socket) in sockets.into_iter().enumerate() {
                let receive = receive_tungstenite(
                    i,
                    socket,
                    protocol.clone(),
                    recorder.clone(),
                    frames.clone(),
                );
                tasks.push(tokio::spawn(until(deadline, receive)));
            }
        }
    }
    let started = Instant::now();
    let cpu = thread_cpu();
    for task in tasks {
        task.await.expect("receivers do not panic")?;
    }
    Ok((
        frames.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        thread_cpu() - cpu,
    ))
}

/// Run `receive` until `deadline`. The first receiver to stop closes its socket, which
/// stops the blaster, which ends the others' connections: an error at the deadline is the
/// end of the run, not a failure.
async fn until(
    deadline: tokio::time::Instant,
    receive: impl Future<Output = Result<()>>,
) -> Result<()> {
    match tokio::time::timeout_at(deadline, receive).await {
        Ok(Err(e)) if tokio::time::Instant::now() + Duration::from_millis(50) < deadline => Err(e),
        _ => Ok(()),
    }
}

/// What a subscriber does, with this crate's reader, until cancelled.
async fn receive_hand(
    index: usize,
    mut reader: ws::Reader<tokio::net::tcp::OwnedReadHalf>,
    mut writer: ws::Writer<tokio::net::tcp::OwnedWriteHalf>,
    protocol: Arc<dyn Protocol>,
    recorder: Arc<Recorder>,
    frames: Arc<AtomicU64>,
) -> Result<()> {
    loop {
        reader.fill().await?;
        let now = now_ns();
        let mut shard = recorder.shard(index);
        let mut n = 0;
        while let Some(frame) = reader.next()? {
            if let Incoming::Message(stamp) = handle(&*protocol, frame, &mut writer)? {
                shard.record(now.saturating_sub(stamp.sent_ns));
                n += 1;
            }
        }
        frames.fetch_add(n, Ordering::Relaxed);
    }
}

/// The same with tokio-tungstenite, until cancelled.
async fn receive_tungstenite(
    index: usize,
    mut socket: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    protocol: Arc<dyn Protocol>,
    recorder: Arc<Recorder>,
    frames: Arc<AtomicU64>,
) -> Result<()> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    let mut outbox = Outbox::default();
    loop {
        let message = match socket.next().await {
            Some(Ok(message)) => message,
            Some(Err(e)) => return Err(Error::Framing(e.to_string())),
            None => return Err(Error::Eof),
        };
        let now = now_ns();
        let incoming = match &message {
            Message::Binary(bytes) => protocol.receive(bytes, false, &mut outbox),
            Message::Text(text) => protocol.receive(text.as_bytes(), true, &mut outbox),
            _ => Incoming::Other,
        };
        if let Incoming::Message(stamp) = incoming {
            // A lock per message: tungstenite hands out one message per poll.
            recorder
                .shard(index)
                .record(now.saturating_sub(stamp.sent_ns));
            frames.fetch_add(1, Ordering::Relaxed);
        }
    }
}
