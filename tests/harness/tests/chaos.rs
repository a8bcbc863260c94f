//! Chaos: clients publish continuously in several rooms while their connections are cut
//! hundreds of times, by the server (token expiry), by TCP resets and by silence (heartbeat
//! loss). At the end, every member of every room has received exactly the room's messages,
//! each once, in sequence order, and every publish was acknowledged exactly once.
//!
//! The clients are the real client logic: `chorus_client::core::Core`, the sans-IO state
//! machine the browser client runs, driven here by tokio and tokio-tungstenite instead of
//! web-sys. The server is a real `chorus-server` on 127.0.0.1, and every client reaches it
//! through a [`Link`] of its own, a TCP relay that injects the network faults.
//!
//! `CHORUS_CHAOS_SECS` sets how long the clients publish under faults (default 30 s, which
//! keeps the test under a minute); a soak runs with, for example, `CHORUS_CHAOS_SECS=600
//! cargo test -p chorus-test-harness --release --test chaos -- --nocapture`. The summary
//! line is printed to stderr.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use chorus_client::core::{Action, Core, Event, Options, PublishError};
use chorus_protocol::{
    AUTH_SUBPROTOCOL_PREFIX, Body, ClientMessage, Position, Recovery, SUBPROTOCOL,
};
use chorus_server::auth::Auth;
use chorus_server::{Config, run};
use chorus_test_harness::link::{Fault, Link};
use futures_util::{SinkExt, StreamExt};
use rand::{Rng, RngExt, SeedableRng, rngs::StdRng};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const SECRET: &str = "chaos-secret-0123456789";
const CLIENTS: usize = 6;
const ROOMS: usize = 3;
/// Each client publishes to each of its rooms about this often.
const PUBLISH_EVERY: Duration = Duration::from_millis(120);
/// Tokens live this long (at least a second less, since `exp` is in whole seconds), so the
/// server itself closes every connection within a few seconds.
const TOKEN_TTL: Duration = Duration::from_secs(3);
/// After the faults stop, everything must settle within this.
const SETTLE: Duration = Duration::from_secs(30);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn room(index: usize) -> String {
    format!("chaos:{index}")
}

/// The rooms client `index` is in: two of the three, so rooms have different members.
fn rooms_of(index: usize) -> [String; 2] {
    [room(index % ROOMS), room((index + 1) % ROOMS)]
}

/// What one client saw, for the checks at the end.
#[derive(Debug, Default)]
struct Record {
    user: String,
    /// Per room, the sequence numbers of the messages delivered, in delivery order.
    delivered: BTreeMap<String, Vec<u64>>,
    /// Per room, (seq -> (sender, id)) of the messages delivered.
    contents: BTreeMap<String, HashMap<u64, (String, u64)>>,
    /// Per room, the position of the first join.
    first_join: BTreeMap<String, Position>,
    /// Publishes: id -> room.
    published: HashMap<u64, String>,
    /// Settlements: id -> how many times, and the last outcome.
    settled: HashMap<u64, (u32, Result<u64, PublishError>)>,
    /// Joins that could not recover everything.
    missed: u32,
    /// Rejoins that recovered.
    recovered: u32,
    /// Connections the server ended because the token expired.
    server_closes: u32,
    /// Connections the client declared dead (heartbeat loss).
    heartbeat_losses: u32,
    /// Welcomes (first connection and reconnections).
    connections: u32,
    /// Error events.
    errors: Vec<String>,
    /// How the sockets ended: close code -> count.
    close_codes: BTreeMap<u16, u32>,
    /// Connection attempts that failed before the socket opened.
    failed_opens: u32,
    /// Ids of the publishes sent so far, and how many were sent again.
    sent: std::collections::HashSet<u64>,
    resends: u32,
}

/// What the test asks of a client once publishing has stopped.
#[derive(Debug)]
enum Command {
    /// Answer, once every publish is settled, with the highest sequence acknowledged per
    /// room.
    Settle(oneshot::Sender<BTreeMap<String, u64>>),
    /// Answer once every room has delivered up to these sequences, then close and end.
    CatchUp(BTreeMap<String, u64>, oneshot::Sender<()>),
    /// Describe where the client is, for a failure message.
    Status(oneshot::Sender<String>),
}

/// Shared with every client.
struct World {
    auth: Auth,
    start: Instant,
    publishing: AtomicBool,
    /// First joins so far, over every client and room.
    joins: AtomicUsize,
}

impl World {
    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn token(&self, user: &str) -> String {
        self.auth
            .issue(user, TOKEN_TTL, vec!["chaos:*".into()], false)
            .expect("sign a token")
    }
}

/// One client: a `Core` and the socket it asks for, through its own link.
struct Driver {
    world: Arc<World>,
    core: Core,
    socket: Option<Socket>,
    url: String,
    record: Record,
    rooms: [String; 2],
    next_room: usize,
    settle: Option<oneshot::Sender<BTreeMap<String, u64>>>,
    catch_up: Option<(BTreeMap<String, u64>, oneshot::Sender<()>)>,
}

impl Driver {
    fn new(world: Arc<World>, index: usize, link_port: u16, seed: u64) -> Driver {
        let user = format!("user{index}");
        let options = Options {
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(300),
            stable_after: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(3),
            pong_timeout: Duration::from_millis(400),
            publish_timeout: Duration::from_secs(60),
            ..Options::default()
        };
        let token = world.token(&user);
        Driver {
            url: format!("ws://127.0.0.1:{link_port}/ws"),
            core: Core::new(options, Some(token), true, seed),
            world,
            socket: None,
            record: Record {
                user,
                ..Record::default()
            },
            rooms: rooms_of(index),
            next_room: 0,
            settle: None,
            catch_up: None,
        }
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) -> Record {
        let now = self.world.now();
        self.core.connect(now);
        for room in self.rooms.clone() {
            self.core.join(&room, now).expect("a valid room");
        }
        self.perform().await;
        let mut publish = tokio::time::interval(PUBLISH_EVERY / 2);
        loop {
            let deadline = self
                .core
                .next_deadline()
                .map(|at| self.world.start + Duration::from_millis(at));
            tokio::select! {
                frame = next_frame(&mut self.socket) => {
                    let now = self.world.now();
                    match frame {
                        Ok(bytes) => self.core.socket_frame(&bytes, now),
                        Err(code) => {
                            self.socket = None;
                            *self.record.close_codes.entry(code).or_default() += 1;
                            if code == 4002 {
                                self.record.server_closes += 1;
                            }
                            self.core.socket_closed(code, now);
                        }
                    }
                }
                () = sleep_until(deadline) => self.core.tick(self.world.now()),
                _ = publish.tick() => {
                    if self.world.publishing.load(Ordering::Relaxed) {
                        self.publish_one();
                    }
                }
                command = commands.recv() => match command {
                    Some(Command::Settle(reply)) => self.settle = Some(reply),
                    Some(Command::CatchUp(target, reply)) => self.catch_up = Some((target, reply)),
                    Some(Command::Status(reply)) => {
                        let _ = reply.send(self.status());
                    }
                    None => break,
                },
            }
            self.perform().await;
            if self.record.settled.len() == self.record.published.len()
                && let Some(reply) = self.settle.take()
            {
                let _ = reply.send(self.highest_acks());
            }
            if self.caught_up() {
                let now = self.world.now();
                self.core.close(now);
                self.perform().await;
                if let Some((_, reply)) = self.catch_up.take() {
                    let _ = reply.send(());
                }
                break;
            }
        }
        self.record
    }

    fn publish_one(&mut self) {
        let room = self.rooms[self.next_room].clone();
        self.next_room = (self.next_room + 1) % self.rooms.len();
        let now = self.world.now();
        let n = self.record.published.len();
        let body = Body::Text(format!("{} #{n}", self.record.user));
        let id = self.core.publish(&room, body, now);
        self.record.published.insert(id, room);
    }

    fn status(&self) -> String {
        let unsettled: Vec<_> = self
            .record
            .published
            .keys()
            .filter(|id| !self.record.settled.contains_key(id))
            .collect();
        let last: Vec<_> = self
            .record
            .delivered
            .iter()
            .map(|(room, seqs)| (room, seqs.last()))
            .collect();
        format!(
            "{}: {:?}, socket {}, {} published, {} unsettled, last delivered {:?}, \
             closes {:?}, {} failed opens, errors {:?}",
            self.record.user,
            self.core.state(),
            self.socket.is_some(),
            self.record.published.len(),
            unsettled.len(),
            last,
            self.record.close_codes,
            self.record.failed_opens,
            self.record.errors,
        )
    }

    /// The highest sequence acknowledged to this client, per room.
    fn highest_acks(&self) -> BTreeMap<String, u64> {
        let mut highest = BTreeMap::new();
        for (id, (_, result)) in &self.record.settled {
            if let (Ok(seq), Some(room)) = (result, self.record.published.get(id)) {
                let top = highest.entry(room.clone()).or_insert(0);
                *top = (*top).max(*seq);
            }
        }
        highest
    }

    /// Whether every room has delivered up to the catch-up target.
    fn caught_up(&self) -> bool {
        let Some((target, _)) = &self.catch_up else {
            return false;
        };
        self.rooms.iter().all(|room| {
            let last = self.record.delivered.get(room).and_then(|s| s.last());
            last.copied().unwrap_or(0) >= target.get(room).copied().unwrap_or(0)
        })
    }

    /// Carry out what the core asks for.
    async fn perform(&mut self) {
        while let Some(action) = self.core.poll_action() {
            let now = self.world.now();
            match action {
                Action::Open { token } => {
                    self.socket = None;
                    match connect(&self.url, &token).await {
                        Ok(socket) => {
                            self.socket = Some(socket);
                            self.core.socket_opened(self.world.now());
                        }
                        Err(()) => {
                            self.record.failed_opens += 1;
                            self.core.socket_closed(1006, self.world.now());
                        }
                    }
                }
                Action::Send(frame) => {
                    if let Ok(ClientMessage::Publish { id, .. }) =
                        ClientMessage::decode(&frame, usize::MAX)
                        && !self.record.sent.insert(id)
                    {
                        self.record.resends += 1;
                    }
                    if let Some(socket) = &mut self.socket {
                        // A failed send shows up as the socket's end on the next read.
                        let _ = socket.send(Message::binary(frame)).await;
                    }
                }
                Action::Close { code, .. } => {
                    if code == 4000 {
                        self.record.heartbeat_losses += 1;
                    }
                    if let Some(mut socket) = self.socket.take() {
                        let _ =
                            tokio::time::timeout(Duration::from_millis(100), socket.close(None))
                                .await;
                    }
                }
                Action::FetchToken => {
                    let token = self.world.token(&self.record.user);
                    self.core.token_fetched(Ok(token), now);
                }
                // The server would refuse the token exactly when it no longer verifies
                // (it expired while the client was away).
                Action::ProbeAuth { token } => {
                    let refused = self.world.auth.verify(&token).is_err();
                    self.core.auth_probed(refused, now);
                }
                Action::Emit(event) => self.on_event(event),
                Action::Settle { id, result } => {
                    let entry = self
                        .record
                        .settled
                        .entry(id)
                        .or_insert((0, Err(PublishError::Closed)));
                    entry.0 += 1;
                    entry.1 = result.map(|ack| ack.seq);
                }
                // Nothing else is asked of this client (it fetches no history).
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        let record = &mut self.record;
        match event {
            Event::Open { .. } => record.connections += 1,
            Event::Joined {
                room,
                position,
                recovery,
                ..
            } => {
                if let std::collections::btree_map::Entry::Vacant(first) =
                    record.first_join.entry(room)
                {
                    first.insert(position);
                    self.world.joins.fetch_add(1, Ordering::Relaxed);
                }
                match recovery {
                    Recovery::NotRequested => {}
                    Recovery::Recovered => record.recovered += 1,
                    Recovery::Missed => record.missed += 1,
                }
            }
            Event::Message {
                room,
                seq,
                id,
                sender,
                ..
            } => {
                record.delivered.entry(room.clone()).or_default().push(seq);
                record
                    .contents
                    .entry(room)
                    .or_default()
                    .insert(seq, (sender, id));
            }
            Event::Error { code, message, .. } => record.errors.push(format!("{code}: {message}")),
            _ => {}
        }
    }
}

/// Open a WebSocket as a browser would: subprotocols `chorus.v1` and `chorus.auth.<token>`.
async fn connect(url: &str, token: &str) -> Result<Socket, ()> {
    let mut request = url.into_client_request().map_err(|_| ())?;
    let protocols = format!("{SUBPROTOCOL}, {AUTH_SUBPROTOCOL_PREFIX}{token}");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(&protocols).map_err(|_| ())?,
    );
    let connecting = tokio_tungstenite::connect_async(request);
    match tokio::time::timeout(Duration::from_secs(3), connecting).await {
        Ok(Ok((socket, _))) => Ok(socket),
        _ => Err(()),
    }
}

/// The next binary frame, or the socket's close code (1006 when it just broke). Pends
/// forever without a socket.
async fn next_frame(socket: &mut Option<Socket>) -> Result<Vec<u8>, u16> {
    let Some(socket) = socket else {
        return std::future::pending().await;
    };
    loop {
        match socket.next().await {
            Some(Ok(Message::Binary(bytes))) => return Ok(bytes.to_vec()),
            Some(Ok(Message::Close(frame))) => {
                return Err(frame.map_or(1005, |f| u16::from(f.code)));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return Err(1006),
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn chaos_duration() -> Duration {
    let secs = std::env::var("CHORUS_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

#[derive(Debug, Default)]
struct Faults {
    resets: u32,
    stalls: u32,
    deafened: u32,
    closes: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_is_lost_or_duplicated_under_hundreds_of_cuts() {
    let config = Config {
        token_secret: SECRET.into(),
        heartbeat_interval: Duration::from_millis(200),
        heartbeat_timeout: Duration::from_millis(700),
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_port = listener.local_addr().unwrap().port();
    let (stop_server, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, config, async {
        let _ = stopped.await;
    }));

    let world = Arc::new(World {
        auth: Auth::new(SECRET),
        start: Instant::now(),
        publishing: AtomicBool::new(false),
        joins: AtomicUsize::new(0),
    });
    let seed: u64 = std::env::var("CHORUS_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("chaos: seed {seed} (set CHORUS_CHAOS_SEED to replay the same fault schedule)");
    let mut rng = StdRng::seed_from_u64(seed);

    let mut links = Vec::new();
    let mut clients = Vec::new();
    for index in 0..CLIENTS {
        let link = Link::open(index as u64, 0, server_port).await.unwrap();
        let driver = Driver::new(world.clone(), index, link.port, rng.next_u64());
        let (tx, rx) = mpsc::channel(1);
        clients.push((tx, tokio::spawn(driver.run(rx))));
        links.push(link);
    }
    // Publishing starts once every client is in its rooms, so each member must receive
    // every message of its rooms.
    let joined = async {
        while world.joins.load(Ordering::Relaxed) < CLIENTS * 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), joined)
        .await
        .expect("every client joins its rooms");
    world.publishing.store(true, Ordering::Relaxed);

    let mut faults = Faults::default();
    let until = Instant::now() + chaos_duration();
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(rng.random_range(40..160))).await;
        let link = &links[rng.random_range(0..links.len())];
        let fault = match rng.random_range(0..10) {
            0..3 => Fault::Reset,
            3..5 => Fault::Stall,
            5..8 => Fault::Deafen,
            _ => Fault::Close,
        };
        match fault {
            Fault::Reset => faults.resets += 1,
            Fault::Stall => faults.stalls += 1,
            Fault::Deafen => faults.deafened += 1,
            Fault::Close => faults.closes += 1,
        }
        link.fault(fault);
    }
    world.publishing.store(false, Ordering::Relaxed);

    // Every publish settles; then the last sequence of each room is the highest ack, and
    // every member must catch up to it.
    let finish_at = Instant::now();
    let mut targets: BTreeMap<String, u64> = BTreeMap::new();
    for (tx, _) in &clients {
        let (reply, highest) = oneshot::channel();
        tx.send(Command::Settle(reply))
            .await
            .expect("client running");
        let Ok(highest) = tokio::time::timeout(SETTLE, highest).await else {
            panic!(
                "publishes did not settle in time: {}",
                status(&clients).await
            );
        };
        let highest = highest.expect("client reports");
        for (room, seq) in highest {
            let top = targets.entry(room).or_insert(0);
            *top = (*top).max(seq);
        }
    }
    for (tx, _) in &clients {
        let (reply, done) = oneshot::channel();
        tx.send(Command::CatchUp(targets.clone(), reply))
            .await
            .expect("client running");
        let Ok(done) = tokio::time::timeout(SETTLE, done).await else {
            panic!(
                "members did not catch up in time: {}",
                status(&clients).await
            );
        };
        done.expect("client reports");
    }
    let mut records = Vec::new();
    for (_, handle) in clients {
        records.push(handle.await.expect("client task"));
    }
    let settle_time = finish_at.elapsed();
    drop(links);
    let _ = stop_server.send(());
    let _ = server.await;

    check(&records, &targets);
    let published: usize = records.iter().map(|r| r.published.len()).sum();
    let delivered: usize = records
        .iter()
        .flat_map(|r| r.delivered.values())
        .map(Vec::len)
        .sum();
    let server_closes: u32 = records.iter().map(|r| r.server_closes).sum();
    let heartbeat_losses: u32 = records.iter().map(|r| r.heartbeat_losses).sum();
    let connections: u32 = records.iter().map(|r| r.connections).sum();
    let recovered: u32 = records.iter().map(|r| r.recovered).sum();
    let resends: u32 = records.iter().map(|r| r.resends).sum();
    let cuts = faults.resets + faults.stalls + faults.deafened + faults.closes + server_closes;
    eprintln!(
        "chaos: {CLIENTS} clients, {ROOMS} rooms, {:?} of faults: {published} messages \
         published, {delivered} deliveries; {cuts} cuts ({} TCP resets, {} stalls, {} lost \
         answers, {} TCP closes, {server_closes} server closes on token expiry), {heartbeat_losses} \
         heartbeat losses seen by clients, {connections} connections, {recovered} rejoins \
         recovered, {resends} publishes sent again; lost 0, duplicated 0; settled in \
         {settle_time:?}",
        chaos_duration(),
        faults.resets,
        faults.stalls,
        faults.deafened,
        faults.closes,
    );
    assert!(cuts >= 100, "too few cuts to mean anything: {cuts}");
    assert!(
        server_closes > 0,
        "the server never closed a connection itself"
    );
    assert!(
        heartbeat_losses > 0,
        "no silent connection was found by heartbeats"
    );
}

/// Every client's status, one per line.
async fn status(clients: &[(mpsc::Sender<Command>, tokio::task::JoinHandle<Record>)]) -> String {
    let mut lines = String::new();
    for (tx, _) in clients {
        let (reply, answer) = oneshot::channel();
        if tx.try_send(Command::Status(reply)).is_ok()
            && let Ok(Ok(line)) = tokio::time::timeout(Duration::from_secs(1), answer).await
        {
            lines.push_str(&line);
        } else {
            lines.push_str("(no answer)");
        }
        lines.push('\n');
    }
    lines
}

/// The checks: for every client and room, the sequences delivered are exactly those after
/// its first join up to the room's last, each once, in order; each sequence carries one
/// publish, the same for every member; every publish was acknowledged exactly once, and
/// with the sequence its message was delivered with.
fn check(records: &[Record], targets: &BTreeMap<String, u64>) {
    // (room, seq) -> (sender, id), from the acks.
    let mut acked: HashMap<(String, u64), (String, u64)> = HashMap::new();
    for record in records {
        assert!(
            record.errors.is_empty(),
            "{}: errors {:?}",
            record.user,
            record.errors
        );
        assert_eq!(
            record.missed, 0,
            "{}: a rejoin missed messages",
            record.user
        );
        for (id, room) in &record.published {
            let (count, result) = record
                .settled
                .get(id)
                .unwrap_or_else(|| panic!("{}: publish {id} never settled", record.user));
            assert_eq!(
                *count, 1,
                "{}: publish {id} settled {count} times",
                record.user
            );
            let seq = *result
                .as_ref()
                .unwrap_or_else(|e| panic!("{}: publish {id} failed: {e:?}", record.user));
            let previous = acked.insert((room.clone(), seq), (record.user.clone(), *id));
            assert!(
                previous.is_none(),
                "{room} seq {seq} acknowledged to two publishes: {previous:?} and {} {id}",
                record.user
            );
        }
    }
    for (room, last) in targets {
        for seq in 1..=*last {
            assert!(
                acked.contains_key(&(room.clone(), seq)),
                "{room} seq {seq} was delivered but no publish was acknowledged with it \
                 (a duplicate, or a message from nowhere)"
            );
        }
    }
    for record in records {
        for (room, first) in &record.first_join {
            let last = targets.get(room).copied().unwrap_or(0);
            let expected: Vec<u64> = (first.seq + 1..=last).collect();
            let delivered = record.delivered.get(room).cloned().unwrap_or_default();
            if delivered != expected {
                let missing = expected.iter().filter(|s| !delivered.contains(s)).count();
                panic!(
                    "{} in {room}: {} delivered, {} expected ({missing} missing, or out of \
                     order, or duplicated)",
                    record.user,
                    delivered.len(),
                    expected.len()
                );
            }
            for (seq, content) in &record.contents[room] {
                assert_eq!(
                    acked.get(&(room.clone(), *seq)),
                    Some(content),
                    "{} in {room}: seq {seq} carries another publish than its ack says",
                    record.user
                );
            }
        }
    }
}
