//! A native Chorus client for tests: `chorus_client::core::Core`, the sans-IO state machine
//! the browser client runs, driven by tokio and tokio-tungstenite instead of web-sys, with a
//! [`Record`] of everything it saw for the checks at the end of a test.
//!
//! Each [`Client`] is a task of its own. It connects, joins its rooms, reconnects and
//! resumes as the browser client would, publishes on request (or on its own while the
//! [`World`] says so), and answers commands: read its record, wait until the record shows
//! something, settle, catch up, close. [`check_exactly_once`] is the end-of-test check of
//! the delivery guarantees.
//!
//! ```no_run
//! # async fn example() -> chorus_test_harness::Result<()> {
//! use std::time::Duration;
//! use chorus_test_harness::driver::{Client, ClientSpec, World};
//!
//! let world = World::new("a secret of at least 16 bytes", Duration::from_secs(600), &["*"]);
//! let spec = ClientSpec::new("alice", "ws://127.0.0.1:8080/ws", &["lobby"]);
//! let alice = Client::spawn(world.clone(), spec);
//! alice.wait_for("joined", Duration::from_secs(5), |r| r.first_join.contains_key("lobby")).await?;
//! let id = alice.publish("lobby", "hello").await?;
//! alice.wait_for("acked", Duration::from_secs(5), move |r| r.settled.contains_key(&id)).await?;
//! let record = alice.close().await?;
//! assert_eq!(record.delivered["lobby"].len(), 1);
//! # Ok(())
//! # }
//! ```

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chorus_client::core::{Action, Core, Event, Millis, Options, Probe, PublishError, State};
use chorus_protocol::{
    AUTH_SUBPROTOCOL_PREFIX, Body, ClientMessage, Position, Recovery, SUBPROTOCOL,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Interval};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::token::TokenSecret;
use crate::{Error, Result};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a socket may take to open (TCP and the WebSocket handshake).
const OPEN_WITHIN: Duration = Duration::from_secs(3);
/// How long a status answer is awaited for a failure message.
const STATUS_WITHIN: Duration = Duration::from_secs(1);

/// What every client of a test shares: the token secret, the clock, and whether clients
/// publish on their own.
#[derive(Debug)]
pub struct World {
    /// Signs tokens and answers the client's auth probes as the server would.
    pub auth: TokenSecret,
    token_ttl: Duration,
    token_rooms: Vec<String>,
    start: Instant,
    publishing: AtomicBool,
    /// First joins so far, over every client and room.
    joins: watch::Sender<usize>,
}

impl World {
    /// A world whose tokens are signed with `secret`, live `token_ttl` (at least a second
    /// less, since `exp` is in whole seconds) and permit the room patterns `token_rooms`.
    pub fn new(secret: &str, token_ttl: Duration, token_rooms: &[&str]) -> Arc<World> {
        Arc::new(World {
            auth: TokenSecret::new(secret),
            token_ttl,
            token_rooms: token_rooms.iter().map(|&r| r.to_owned()).collect(),
            start: Instant::now(),
            publishing: AtomicBool::new(false),
            joins: watch::Sender::new(0),
        })
    }

    /// Milliseconds since the world began: the clients' clock.
    pub fn now(&self) -> Millis {
        self.start.elapsed().as_millis() as Millis
    }

    /// When `at` (a [`World::now`] reading) was.
    pub fn instant(&self, at: Millis) -> Instant {
        self.start + Duration::from_millis(at)
    }

    /// A fresh token for `user`.
    pub fn token(&self, user: &str) -> String {
        self.auth
            .issue(user, self.token_ttl, self.token_rooms.clone(), false)
            .expect("sign a token")
    }

    /// Whether clients with a `publish_every` publish on their own.
    pub fn set_publishing(&self, on: bool) {
        self.publishing.store(on, Ordering::Relaxed);
    }

    /// Whether clients publish on their own.
    pub fn is_publishing(&self) -> bool {
        self.publishing.load(Ordering::Relaxed)
    }

    /// Rooms joined for the first time so far, over every client.
    pub fn first_joins(&self) -> usize {
        *self.joins.borrow()
    }

    /// Wait until at least `count` first joins happened, over every client.
    pub async fn wait_first_joins(&self, count: usize, within: Duration) -> Result<()> {
        let mut joins = self.joins.subscribe();
        let waited = tokio::time::timeout(within, joins.wait_for(|&n| n >= count)).await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::Stalled(format!(
                "{} of {count} first joins within {within:?}",
                self.first_joins()
            ))),
        }
    }
}

/// The client's options for tests: quick reconnects, quick detection of a dead
/// connection, and publishes that wait long for their ack rather than time out.
pub fn test_options() -> Options {
    Options {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(300),
        stable_after: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(3),
        pong_timeout: Duration::from_millis(400),
        publish_timeout: Duration::from_secs(60),
        ..Options::default()
    }
}

/// How to start a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientSpec {
    /// The user (the token's subject).
    pub user: String,
    /// The WebSocket URL, `ws://127.0.0.1:PORT/ws`.
    pub url: String,
    /// Rooms joined from the start.
    pub rooms: Vec<String>,
    /// The client's options. Default: [`test_options`].
    pub options: Options,
    /// Seeds the client's jitter and message ids. Default: random.
    pub seed: u64,
    /// While [`World::is_publishing`], publish one message this often, to each room in
    /// turn. Default: `None` (only on [`Client::publish`]).
    pub publish_every: Option<Duration>,
}

impl ClientSpec {
    /// `user` at `url`, joining `rooms`, with the defaults.
    pub fn new(user: &str, url: &str, rooms: &[&str]) -> ClientSpec {
        ClientSpec {
            user: user.to_owned(),
            url: url.to_owned(),
            rooms: rooms.iter().map(|&r| r.to_owned()).collect(),
            options: test_options(),
            seed: rand::random(),
            publish_every: None,
        }
    }
}

/// A `Joined` the client saw (first join, rejoin, or a fresh `Joined` the server sent on its
/// own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRecord {
    /// Room name.
    pub room: String,
    /// Users present, as listed.
    pub members: Vec<String>,
    /// The room's position.
    pub position: Position,
    /// What became of the resume request.
    pub recovery: Recovery,
    /// How many messages of the room were delivered before it: it came between
    /// `delivered[room][..delivered_before]` and the rest.
    pub delivered_before: usize,
    /// How many presence changes (of any room) were recorded before it.
    pub presence_before: usize,
    /// When, on the world's clock.
    pub at: Millis,
}

/// A `MemberJoined` or `MemberLeft` the client saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceChange {
    /// Room name.
    pub room: String,
    /// The user.
    pub user: String,
    /// `MemberJoined` (true) or `MemberLeft` (false).
    pub joined: bool,
    /// When, on the world's clock.
    pub at: Millis,
}

/// What one client saw.
#[derive(Debug, Default, Clone)]
pub struct Record {
    /// The user.
    pub user: String,
    /// The rooms the client wants to be in now.
    pub rooms: BTreeSet<String>,
    /// Per room, the sequence numbers of the messages delivered, in delivery order.
    pub delivered: BTreeMap<String, Vec<u64>>,
    /// Per room, seq → (sender, id) of the messages delivered (the latest epoch's, when a
    /// sequence number was delivered in two epochs).
    pub contents: BTreeMap<String, HashMap<u64, (String, u64)>>,
    /// Per room, the position of the first join.
    pub first_join: BTreeMap<String, Position>,
    /// Every `Joined`, in order.
    pub joins: Vec<JoinRecord>,
    /// Every `MemberJoined` and `MemberLeft`, in order.
    pub presence: Vec<PresenceChange>,
    /// Every change of who is typing: (room, users typing).
    pub typing: Vec<(String, Vec<String>)>,
    /// Publishes: id → room.
    pub published: HashMap<u64, String>,
    /// Settlements: id → how many times, and the last outcome (the sequence, or why not).
    pub settled: HashMap<u64, (u32, Result<u64, PublishError>)>,
    /// Joins that could not recover everything.
    pub missed: u32,
    /// Rejoins that recovered.
    pub recovered: u32,
    /// Connections the server ended because the token expired (close code 4002).
    pub server_closes: u32,
    /// Connections the client declared dead (heartbeat loss).
    pub heartbeat_losses: u32,
    /// Welcomes (first connection and reconnections).
    pub connections: u32,
    /// Error events: "code: message".
    pub errors: Vec<String>,
    /// How the sockets ended: close code → count.
    pub close_codes: BTreeMap<u16, u32>,
    /// Connection attempts that failed before the socket opened.
    pub failed_opens: u32,
    /// Ids of the publishes sent so far.
    pub sent: HashSet<u64>,
    /// Publish frames sent again (after a reconnect).
    pub resends: u32,
    /// The local address of the current socket, if one is open: how a
    /// [`crate::balancer::Balancer`] knows the connection.
    pub local_addr: Option<SocketAddr>,
    /// The client's state after the last step.
    pub state: Option<State>,
}

impl Record {
    /// The highest sequence acknowledged to this client, per room.
    pub fn highest_acks(&self) -> BTreeMap<String, u64> {
        let mut highest = BTreeMap::new();
        for (id, (_, result)) in &self.settled {
            if let (Ok(seq), Some(room)) = (result, self.published.get(id)) {
                let top = highest.entry(room.clone()).or_insert(0);
                *top = (*top).max(*seq);
            }
        }
        highest
    }

    /// Whether every publish is settled.
    pub fn all_settled(&self) -> bool {
        self.published
            .keys()
            .all(|id| self.settled.contains_key(id))
    }

    /// Whether every room the client is in has delivered up to `targets[room]` (by the last
    /// sequence delivered).
    pub fn caught_up(&self, targets: &BTreeMap<String, u64>) -> bool {
        self.rooms.iter().all(|room| {
            let last = self.delivered.get(room).and_then(|s| s.last());
            last.copied().unwrap_or(0) >= targets.get(room).copied().unwrap_or(0)
        })
    }

    /// How many `MemberJoined` (`joined`) or `MemberLeft` of `user` in `room` it saw.
    pub fn presence_count(&self, room: &str, user: &str, joined: bool) -> usize {
        self.presence
            .iter()
            .filter(|c| c.room == room && c.user == user && c.joined == joined)
            .count()
    }

    /// Who the client believes is in `room`: the members of the last `Joined`, then the
    /// presence changes after it.
    pub fn presence_view(&self, room: &str) -> BTreeSet<String> {
        let Some(last) = self.joins.iter().rev().find(|j| j.room == room) else {
            return BTreeSet::new();
        };
        let mut view: BTreeSet<String> = last.members.iter().cloned().collect();
        let after = self.presence[last.presence_before..]
            .iter()
            .filter(|c| c.room == room);
        for change in after {
            if change.joined {
                view.insert(change.user.clone());
            } else {
                view.remove(&change.user);
            }
        }
        view
    }

    /// One line on where the client is, for a failure message.
    pub fn status(&self) -> String {
        let unsettled = self
            .published
            .keys()
            .filter(|id| !self.settled.contains_key(id))
            .count();
        let last: Vec<_> = self
            .delivered
            .iter()
            .map(|(room, seqs)| (room, seqs.last()))
            .collect();
        format!(
            "{}: {:?}, at {:?}, {} connections, {} published, {unsettled} unsettled, last \
             delivered {last:?}, closes {:?}, {} failed opens, errors {:?}",
            self.user,
            self.state,
            self.local_addr,
            self.connections,
            self.published.len(),
            self.close_codes,
            self.failed_opens,
            self.errors,
        )
    }
}
/// A predicate over a record, waited on by [`Client::wait_for`].
type Until = Box<dyn FnMut(&Record) -> bool + Send>;

/// What a test asks of a client.
enum Command {
    Join(String),
    Leave(String),
    Typing(String),
    Publish {
        room: String,
        body: Body,
        reply: oneshot::Sender<u64>,
    },
    /// Answer once `until` holds (checked now, and after every step of the client).
    Watch {
        until: Until,
        reply: oneshot::Sender<()>,
    },
    /// Run a function of the record now.
    Read(Box<dyn FnOnce(&Record) + Send>),
    /// Close the client for good and end its task.
    Close,
}

/// A running client: a handle to its task.
#[derive(Debug)]
pub struct Client {
    /// The user.
    pub user: String,
    commands: mpsc::UnboundedSender<Command>,
    task: JoinHandle<Record>,
}

impl Client {
    /// Start a client: it connects and joins `spec.rooms` at once.
    pub fn spawn(world: Arc<World>, spec: ClientSpec) -> Client {
        let (commands, receiver) = mpsc::unbounded_channel();
        let user = spec.user.clone();
        let driver = Driver::new(world, spec);
        Client {
            user,
            commands,
            task: tokio::spawn(driver.run(receiver)),
        }
    }

    fn send(&self, command: Command) -> Result<()> {
        self.commands
            .send(command)
            .map_err(|_| Error::Stalled(format!("{}: the client's task ended", self.user)))
    }

    /// Join `room` (rejoined after every reconnect).
    pub fn join(&self, room: &str) -> Result<()> {
        self.send(Command::Join(room.to_owned()))
    }

    /// Leave `room`.
    pub fn leave(&self, room: &str) -> Result<()> {
        self.send(Command::Leave(room.to_owned()))
    }

    /// A keystroke in `room`: "typing" goes out, throttled as in the browser.
    pub fn typing(&self, room: &str) -> Result<()> {
        self.send(Command::Typing(room.to_owned()))
    }

    /// Publish `text` to `room`; answers the message id. The outcome shows up in
    /// [`Record::settled`].
    pub async fn publish(&self, room: &str, text: &str) -> Result<u64> {
        let (reply, id) = oneshot::channel();
        self.send(Command::Publish {
            room: room.to_owned(),
            body: Body::Text(text.to_owned()),
            reply,
        })?;
        id.await
            .map_err(|_| Error::Stalled(format!("{}: the client's task ended", self.user)))
    }

    /// A function of the client's record, now.
    pub async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Record) -> T + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Read(Box::new(move |record| {
            let _ = reply.send(read(record));
        })))?;
        answer
            .await
            .map_err(|_| Error::Stalled(format!("{}: the client's task ended", self.user)))
    }

    /// Wait until `until` holds of the client's record; fail with `what` and the client's
    /// status after `within`.
    pub async fn wait_for(
        &self,
        what: &str,
        within: Duration,
        until: impl FnMut(&Record) -> bool + Send + 'static,
    ) -> Result<()> {
        let (reply, done) = oneshot::channel();
        self.send(Command::Watch {
            until: Box::new(until),
            reply,
        })?;
        match tokio::time::timeout(within, done).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Error::Stalled(format!(
                "{}: the client's task ended before {what}",
                self.user
            ))),
            Err(_) => Err(Error::Stalled(format!(
                "{}: not {what} within {within:?}; {}",
                self.user,
                self.status().await
            ))),
        }
    }

    /// One line on where the client is (or that it does not answer).
    pub async fn status(&self) -> String {
        let status = tokio::time::timeout(STATUS_WITHIN, self.read(Record::status)).await;
        match status {
            Ok(Ok(line)) => line,
            _ => format!("{}: (no answer)", self.user),
        }
    }

    /// Wait until every publish is settled; answer the highest sequence acknowledged per
    /// room.
    pub async fn settle(&self, within: Duration) -> Result<BTreeMap<String, u64>> {
        self.wait_for("settled", within, Record::all_settled)
            .await?;
        self.read(Record::highest_acks).await
    }

    /// Wait until every room the client is in has delivered up to `targets[room]`.
    pub async fn catch_up(&self, targets: &BTreeMap<String, u64>, within: Duration) -> Result<()> {
        let targets = targets.clone();
        let what = format!("caught up to {targets:?}");
        self.wait_for(&what, within, move |r| r.caught_up(&targets))
            .await
    }

    /// Close the client for good; answer its record.
    pub async fn close(self) -> Result<Record> {
        // The task may have ended already; its record is what matters.
        let _ = self.commands.send(Command::Close);
        self.task
            .await
            .map_err(|e| Error::Stalled(format!("{}: the client's task failed: {e}", self.user)))
    }
}

/// Every client's status, one per line.
pub async fn status_of(clients: &[Client]) -> String {
    let mut lines = String::new();
    for client in clients {
        lines.push_str(&client.status().await);
        lines.push('\n');
    }
    lines
}

/// Wait until every client's publishes are settled; answer the highest sequence acknowledged
/// per room, over every client: the room's last sequence, once publishing has stopped.
pub async fn settle_all(clients: &[Client], within: Duration) -> Result<BTreeMap<String, u64>> {
    let deadline = Instant::now() + within;
    let mut targets: BTreeMap<String, u64> = BTreeMap::new();
    for client in clients {
        let left = deadline.saturating_duration_since(Instant::now());
        let highest = match client.settle(left).await {
            Ok(highest) => highest,
            Err(e) => {
                return Err(Error::Stalled(format!(
                    "publishes did not settle in time ({e}):\n{}",
                    status_of(clients).await
                )));
            }
        };
        for (room, seq) in highest {
            let top = targets.entry(room).or_insert(0);
            *top = (*top).max(seq);
        }
    }
    Ok(targets)
}

/// Wait until every client has delivered up to `targets` in each of its rooms.
pub async fn catch_up_all(
    clients: &[Client],
    targets: &BTreeMap<String, u64>,
    within: Duration,
) -> Result<()> {
    let deadline = Instant::now() + within;
    for client in clients {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Err(e) = client.catch_up(targets, left).await {
            return Err(Error::Stalled(format!(
                "members did not catch up in time ({e}):\n{}",
                status_of(clients).await
            )));
        }
    }
    Ok(())
}

/// Close every client; answer their records, in order.
pub async fn close_all(clients: Vec<Client>) -> Result<Vec<Record>> {
    let mut records = Vec::with_capacity(clients.len());
    for client in clients {
        records.push(client.close().await?);
    }
    Ok(records)
}

/// The delivery checks, as panics with a message that says what broke: for every client and
/// room, the sequences delivered are exactly those after its first join up to the room's
/// last (`targets`), each once, in order; each sequence carries one publish, the same for
/// every member; every publish was acknowledged exactly once, and with the sequence its
/// message was delivered with; no client saw an error or a join that missed messages.
///
/// `external` holds publishes acknowledged outside these clients (over HTTP): (room, seq) →
/// (sender, id).
pub fn check_exactly_once(
    records: &[Record],
    targets: &BTreeMap<String, u64>,
    external: &HashMap<(String, u64), (String, u64)>,
) {
    let mut acked = external.clone();
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
            for (seq, content) in record.contents.get(room).into_iter().flatten() {
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

/// One client: a `Core` and the socket it asks for.
struct Driver {
    world: Arc<World>,
    core: Core,
    socket: Option<Socket>,
    url: String,
    record: Record,
    publish_every: Option<Duration>,
    next_room: usize,
    watchers: Vec<(Until, oneshot::Sender<()>)>,
}

impl Driver {
    fn new(world: Arc<World>, spec: ClientSpec) -> Driver {
        let token = world.token(&spec.user);
        Driver {
            core: Core::new(spec.options, Some(token), true, spec.seed),
            world,
            socket: None,
            url: spec.url,
            record: Record {
                user: spec.user,
                rooms: spec.rooms.into_iter().collect(),
                ..Record::default()
            },
            publish_every: spec.publish_every,
            next_room: 0,
            watchers: Vec::new(),
        }
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) -> Record {
        let now = self.world.now();
        self.core.connect(now);
        for room in self.record.rooms.clone() {
            self.core.join(&room, None, now).expect("a valid room");
        }
        self.perform().await;
        let mut publish = self.publish_every.map(tokio::time::interval);
        loop {
            let deadline = self.core.next_deadline().map(|at| self.world.instant(at));
            let mut closing = false;
            tokio::select! {
                frame = next_frame(&mut self.socket) => {
                    let now = self.world.now();
                    match frame {
                        Ok(bytes) => self.core.socket_frame(&bytes, now),
                        Err(code) => {
                            self.socket = None;
                            self.record.local_addr = None;
                            *self.record.close_codes.entry(code).or_default() += 1;
                            if code == 4002 {
                                self.record.server_closes += 1;
                            }
                            self.core.socket_closed(code, now);
                        }
                    }
                }
                () = sleep_until(deadline) => self.core.tick(self.world.now()),
                () = tick(&mut publish) => {
                    if self.world.is_publishing() {
                        self.publish_next();
                    }
                }
                command = commands.recv() => match command {
                    Some(Command::Close) | None => closing = true,
                    Some(command) => self.command(command),
                },
            }
            if closing {
                self.core.close(self.world.now());
            }
            self.perform().await;
            self.record.state = Some(self.core.state());
            answer_watchers(&mut self.watchers, &self.record);
            if closing {
                break;
            }
        }
        self.record
    }

    fn command(&mut self, command: Command) {
        let now = self.world.now();
        match command {
            Command::Join(room) => {
                self.core.join(&room, None, now).expect("a valid room");
                self.record.rooms.insert(room);
            }
            Command::Leave(room) => {
                self.core.leave(&room, now);
                self.record.rooms.remove(&room);
            }
            Command::Typing(room) => self.core.typing(&room, now),
            Command::Publish { room, body, reply } => {
                let id = self.core.publish(&room, body, None, now);
                self.record.published.insert(id, room);
                let _ = reply.send(id);
            }
            Command::Watch { until, reply } => self.watchers.push((until, reply)),
            Command::Read(read) => read(&self.record),
            Command::Close => {}
        }
    }

    /// Publish the next automatic message, to each room in turn.
    fn publish_next(&mut self) {
        let rooms: Vec<_> = self.record.rooms.iter().cloned().collect();
        if rooms.is_empty() {
            return;
        }
        let room = rooms[self.next_room % rooms.len()].clone();
        self.next_room = (self.next_room + 1) % rooms.len();
        let now = self.world.now();
        let n = self.record.published.len();
        let body = Body::Text(format!("{} #{n}", self.record.user));
        let id = self.core.publish(&room, body, None, now);
        self.record.published.insert(id, room);
    }

    /// Carry out what the core asks for.
    async fn perform(&mut self) {
        while let Some(action) = self.core.poll_action() {
            let now = self.world.now();
            match action {
                Action::Open { token } => {
                    self.socket = None;
                    self.record.local_addr = None;
                    match connect(&self.url, &token).await {
                        Ok(socket) => {
                            self.record.local_addr = local_addr(&socket);
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
                    self.record.local_addr = None;
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
                // The server would refuse the token exactly when it no longer verifies (it
                // expired while the client was away). Whether the server is up shows when
                // the socket opens, or fails to.
                Action::ProbeAuth { token } => {
                    let outcome = if self.world.auth.verify(&token).is_err() {
                        Probe::Refused
                    } else {
                        Probe::Accepted
                    };
                    self.core.auth_probed(outcome, now);
                }
                Action::Emit(event) => self.on_event(event, now),
                Action::Settle { id, result } => {
                    let entry = self
                        .record
                        .settled
                        .entry(id)
                        .or_insert((0, Err(PublishError::Closed)));
                    entry.0 += 1;
                    entry.1 = result.map(|ack| ack.seq);
                }
                // This client asks for no history.
                Action::HistoryDone { .. } => {}
            }
        }
    }

    fn on_event(&mut self, event: Event, now: Millis) {
        let record = &mut self.record;
        match event {
            Event::Open { .. } => record.connections += 1,
            Event::Joined {
                room,
                members,
                position,
                recovery,
            } => {
                if let Entry::Vacant(first) = record.first_join.entry(room.clone()) {
                    first.insert(position);
                    self.world.joins.send_modify(|n| *n += 1);
                }
                match recovery {
                    Recovery::NotRequested => {}
                    Recovery::Recovered => record.recovered += 1,
                    Recovery::Missed => record.missed += 1,
                }
                let delivered_before = record.delivered.get(&room).map_or(0, Vec::len);
                record.joins.push(JoinRecord {
                    room,
                    members,
                    position,
                    recovery,
                    delivered_before,
                    presence_before: record.presence.len(),
                    at: now,
                });
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
            Event::MemberJoined { room, user } => record.presence.push(PresenceChange {
                room,
                user,
                joined: true,
                at: now,
            }),
            Event::MemberLeft { room, user } => record.presence.push(PresenceChange {
                room,
                user,
                joined: false,
                at: now,
            }),
            Event::Typing { room, users } => record.typing.push((room, users)),
            Event::Error { code, message, .. } => record.errors.push(format!("{code}: {message}")),
            Event::Close { .. }
            | Event::Reconnecting { .. }
            | Event::State { .. }
            | Event::Left { .. } => {}
        }
    }
}

/// Answer (and forget) the watchers whose predicate holds now; forget those no longer
/// awaited (their wait timed out).
fn answer_watchers(watchers: &mut Vec<(Until, oneshot::Sender<()>)>, record: &Record) {
    let mut i = 0;
    while i < watchers.len() {
        let (until, reply) = &mut watchers[i];
        if reply.is_closed() {
            drop(watchers.swap_remove(i));
        } else if until(record) {
            let (_, reply) = watchers.swap_remove(i);
            let _ = reply.send(());
        } else {
            i += 1;
        }
    }
}

/// The local address of a socket's TCP connection.
fn local_addr(socket: &Socket) -> Option<SocketAddr> {
    match socket.get_ref() {
        MaybeTlsStream::Plain(tcp) => tcp.local_addr().ok(),
        _ => None,
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
    match tokio::time::timeout(OPEN_WITHIN, connecting).await {
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

async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}
