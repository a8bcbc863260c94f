//! # chorus-bench
//!
//! A load generator for Chorus. `chorus-bench fanout` measures room fan-out: subscribers
//! spread over one or more chorus-server instances (round robin over `--url`), publishers
//! keeping a window of unacknowledged publishes in flight (closed loop, so the result is the
//! throughput the servers sustain), and every delivery's latency from publish to receipt in
//! an HDR histogram.
//!
//! ```text
//! chorus-bench fanout --url ws://127.0.0.1:8080/ws --url ws://127.0.0.1:8081/ws \
//!     --secret SECRET --rooms 4 --subscribers 100 --publishers 2 --duration 10
//! ```
//!
//! The servers must share the token secret, and allow the publish rate (for example
//! `--publish-rate 1000000 --publish-burst 1000000`). `bench/redis-scale.sh` runs the
//! comparison of one embedded instance against three instances over Redis.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chorus_protocol::{
    AUTH_SUBPROTOCOL_PREFIX, Body, ClientMessage, DEFAULT_MAX_FRAME, SUBPROTOCOL, ServerMessage,
};
use chorus_server::auth::Auth;
use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Error = Box<dyn std::error::Error + Send + Sync>;

/// Load generator for Chorus.
#[derive(Debug, Parser)]
#[command(name = "chorus-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Room fan-out: publishers in each room, subscribers receiving every message.
    Fanout(Fanout),
}

#[derive(Debug, Clone, clap::Args)]
struct Fanout {
    /// WebSocket URL of a server; repeat for several instances (clients go round robin).
    #[arg(long = "url", required = true)]
    urls: Vec<String>,
    /// The servers' token secret.
    #[arg(long)]
    secret: String,
    /// Rooms.
    #[arg(long, default_value_t = 4)]
    rooms: usize,
    /// Subscribers per room.
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Publishers per room.
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Unacknowledged publishes each publisher keeps in flight.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Body size in bytes (at least 8: the send time).
    #[arg(long, default_value_t = 64)]
    body: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Shared by every task.
struct Run {
    start: Instant,
    /// Whether deliveries count (after the warm-up).
    measuring: AtomicBool,
    /// Whether publishers go on.
    publishing: AtomicBool,
    errors: AtomicU64,
}

impl Run {
    fn nanos(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// What a subscriber saw while measuring.
struct Seen {
    deliveries: u64,
    latency: Histogram<u64>,
}

fn main() -> Result<(), Error> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Fanout(args) => runtime.block_on(fanout(args)),
    }
}

async fn fanout(args: Fanout) -> Result<(), Error> {
    let auth = Auth::new(&args.secret);
    let run = Arc::new(Run {
        start: Instant::now(),
        measuring: AtomicBool::new(false),
        publishing: AtomicBool::new(true),
        errors: AtomicU64::new(0),
    });
    let mut next_url = args.urls.iter().cycle();
    let (stop, stop_rx) = watch::channel(false);

    let mut subscribers = Vec::new();
    for i in 0..args.rooms * args.subscribers {
        let room = format!("bench:{}", i % args.rooms);
        let url = next_url.next().expect("at least one URL");
        let socket = joined(url, &auth, &format!("sub-{i}"), &room).await?;
        subscribers.push(tokio::spawn(subscribe(
            socket,
            run.clone(),
            stop_rx.clone(),
        )));
    }
    let mut publishers = Vec::new();
    for i in 0..args.rooms * args.publishers {
        let room = format!("bench:{}", i % args.rooms);
        let url = next_url.next().expect("at least one URL");
        let socket = joined(url, &auth, &format!("pub-{i}"), &room).await?;
        publishers.push(tokio::spawn(publish(
            socket,
            room,
            args.clone(),
            run.clone(),
        )));
    }

    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    run.measuring.store(true, Ordering::Relaxed);
    let measured_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    run.measuring.store(false, Ordering::Relaxed);
    let measured = measured_from.elapsed().as_secs_f64();
    run.publishing.store(false, Ordering::Relaxed);

    let mut acked = 0;
    for publisher in publishers {
        acked += publisher.await??;
    }
    let mut deliveries = 0;
    let mut latency = Histogram::<u64>::new(3)?;
    stop.send_replace(true);
    for subscriber in subscribers {
        let seen = subscriber.await?;
        deliveries += seen.deliveries;
        latency.add(&seen.latency)?;
    }
    report(&args, acked, deliveries, &latency, measured, &run);
    Ok(())
}

fn report(
    args: &Fanout,
    acked: u64,
    deliveries: u64,
    latency: &Histogram<u64>,
    seconds: f64,
    run: &Run,
) {
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1e6;
    let errors = run.errors.load(Ordering::Relaxed);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "instances": args.urls.len(),
                "rooms": args.rooms,
                "subscribers_per_room": args.subscribers,
                "publishers_per_room": args.publishers,
                "window": args.window,
                "body": args.body,
                "seconds": seconds,
                "publishes_per_second": acked as f64 / seconds,
                "deliveries_per_second": deliveries as f64 / seconds,
                "p50_ms": ms(0.5),
                "p99_ms": ms(0.99),
                "p999_ms": ms(0.999),
                "max_ms": latency.max() as f64 / 1e6,
                "errors": errors,
            })
        );
    } else {
        println!(
            "{} instance(s), {} rooms x {} subscribers, {} publishers/room (window {}), {} B: \
             {:.0} publishes/s, {:.0} deliveries/s, latency p50 {:.2} ms, p99 {:.2} ms, \
             p99.9 {:.2} ms, max {:.2} ms, {errors} errors",
            args.urls.len(),
            args.rooms,
            args.subscribers,
            args.publishers,
            args.window,
            args.body,
            acked as f64 / seconds,
            deliveries as f64 / seconds,
            ms(0.5),
            ms(0.99),
            ms(0.999),
            latency.max() as f64 / 1e6,
        );
    }
}

/// Connect as `user` and join `room`; returns once `Joined` arrived.
async fn joined(url: &str, auth: &Auth, user: &str, room: &str) -> Result<Socket, Error> {
    let token = auth.issue(
        user,
        Duration::from_secs(3600),
        vec!["bench:*".into()],
        false,
    )?;
    let mut request = url.into_client_request()?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(&format!("{SUBPROTOCOL}, {AUTH_SUBPROTOCOL_PREFIX}{token}"))?,
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    let join = ClientMessage::Join {
        room: room.to_owned(),
        since: None,
    };
    socket
        .send(Message::binary(join.encode(DEFAULT_MAX_FRAME)?))
        .await?;
    loop {
        match next_message(&mut socket).await? {
            ServerMessage::Joined { .. } => return Ok(socket),
            ServerMessage::Error { code, message, .. } => {
                return Err(format!("{user} could not join {room}: {code} {message}").into());
            }
            _ => {}
        }
    }
}

async fn next_message(socket: &mut Socket) -> Result<ServerMessage, Error> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Binary(frame))) => {
                return Ok(ServerMessage::decode(&frame, usize::MAX)?);
            }
            Some(Ok(Message::Close(frame))) => return Err(format!("closed: {frame:?}").into()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Err("connection ended".into()),
        }
    }
}

/// Receive until `stop`, counting deliveries and their latency while measuring.
async fn subscribe(mut socket: Socket, run: Arc<Run>, mut stop: watch::Receiver<bool>) -> Seen {
    let mut seen = Seen {
        deliveries: 0,
        latency: Histogram::new(3).expect("3 significant digits"),
    };
    loop {
        let frame = tokio::select! {
            frame = socket.next() => frame,
            _ = stop.wait_for(|stop| *stop) => return seen,
        };
        let frame = match frame {
            Some(Ok(Message::Binary(frame))) => frame,
            // Pings are answered by tungstenite.
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => {
                run.errors.fetch_add(1, Ordering::Relaxed);
                return seen;
            }
        };
        let Ok(ServerMessage::Message {
            body: Body::Binary(body),
            ..
        }) = ServerMessage::decode(&frame, usize::MAX)
        else {
            continue;
        };
        if !run.measuring.load(Ordering::Relaxed) {
            continue;
        }
        if let Some(sent) = body.get(..8) {
            let sent = u64::from_le_bytes(sent.try_into().expect("8 bytes"));
            let _ = seen.latency.record(run.nanos().saturating_sub(sent));
        }
        seen.deliveries += 1;
    }
}

/// Publish with `window` publishes in flight until told to stop; returns the publishes
/// acknowledged while measuring.
async fn publish(
    mut socket: Socket,
    room: String,
    args: Fanout,
    run: Arc<Run>,
) -> Result<u64, Error> {
    let mut next_id = 0u64;
    let mut in_flight = 0usize;
    let mut acked = 0u64;
    let mut body = vec![0u8; args.body.max(8)];
    loop {
        while in_flight < args.window && run.publishing.load(Ordering::Relaxed) {
            body[..8].copy_from_slice(&run.nanos().to_le_bytes());
            let publish = ClientMessage::Publish {
                room: room.clone(),
                id: next_id,
                body: Body::Binary(body.clone()),
            };
            next_id += 1;
            in_flight += 1;
            socket
                .send(Message::binary(publish.encode(DEFAULT_MAX_FRAME)?))
                .await?;
        }
        if in_flight == 0 {
            return Ok(acked);
        }
        match tokio::time::timeout(Duration::from_secs(10), next_message(&mut socket)).await {
            Ok(Ok(ServerMessage::PublishAck { .. })) => {
                in_flight -= 1;
                if run.measuring.load(Ordering::Relaxed) {
                    acked += 1;
                }
            }
            Ok(Ok(ServerMessage::Error { .. })) => {
                in_flight -= 1;
                run.errors.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("no ack within 10 s".into()),
        }
    }
}
