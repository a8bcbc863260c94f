//! Scale-out: several `chorus-server` processes sharing one Redis act as one server.
//!
//! Every test starts a `redis-server` of its own and three real server processes on it
//! (`--redis-url`), with a short presence TTL and short heartbeats. The clients are the real
//! client logic ([`chorus_test_harness::driver`]), connected straight to an instance or
//! through a round-robin [`Balancer`]:
//!
//! - one room spans the instances: client and HTTP publishes on every instance reach every
//!   member exactly once, in one order;
//! - presence and typing span the instances, and presence counts users, not connections;
//! - an instance killed with SIGKILL loses nothing: its clients resume on a survivor, and its
//!   members that do not come back leave everyone's presence within the presence TTL;
//! - a Redis restart (empty) is survived without restarting an instance: publishes are
//!   refused with 503 and `/healthz` says `degraded` meanwhile, clients stay connected, and
//!   afterwards every member learns that the room's history started again.
//!
//! Each test prints a one-line summary to stderr (`--nocapture` to see it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chorus_client::core::{PublishError, State};
use chorus_protocol::Recovery;
use chorus_test_harness::balancer::Balancer;
use chorus_test_harness::driver::{
    Client, ClientSpec, Record, World, catch_up_all, check_exactly_once, close_all, settle_all,
};
use chorus_test_harness::link::Link;
use chorus_test_harness::process::{RunState, ServerProcess, random_hex};
use chorus_test_harness::redis::RedisServer;
use futures_util::future::try_join_all;
use serde_json::{Value, json};
use tokio::time::Instant;

/// The server program, built from this workspace with the tests.
const SERVER: &str = env!("CARGO_BIN_EXE_chorus-test-server");
/// Members of a crashed instance vanish from presence within this.
const PRESENCE_TTL: Duration = Duration::from_secs(2);
/// What a crashed instance's members may take beyond the TTL to be reported gone.
const PRESENCE_MARGIN: Duration = Duration::from_secs(3);
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(200);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(700);
/// How long a step that should take a moment may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);
/// After publishing stops, everything must settle within this.
const SETTLE: Duration = Duration::from_secs(20);

/// (room, seq) → (sender, id) of publishes acknowledged over HTTP.
type HttpAcks = HashMap<(String, u64), (String, u64)>;

/// A Redis and server instances sharing it, with one token secret.
struct Cluster {
    redis: RedisServer,
    servers: Vec<ServerProcess>,
    world: Arc<World>,
}

impl Cluster {
    async fn start(instances: usize) -> Cluster {
        let redis = RedisServer::start()
            .await
            .expect("redis-server starts (scripts/setup.sh installs it)");
        let secret = random_hex();
        let args: Vec<String> = [
            "--redis-url",
            &redis.url(),
            "--presence-ttl",
            &format!("{}ms", PRESENCE_TTL.as_millis()),
            "--heartbeat-interval",
            &format!("{}ms", HEARTBEAT_INTERVAL.as_millis()),
            "--heartbeat-timeout",
            &format!("{}ms", HEARTBEAT_TIMEOUT.as_millis()),
        ]
        .iter()
        .map(|&a| a.to_owned())
        .collect();
        let http = reqwest::Client::new();
        let servers = try_join_all((0..instances).map(|id| {
            ServerProcess::spawn_with_secret(
                id as u64,
                PathBuf::from(SERVER),
                secret.clone(),
                args.clone(),
                http.clone(),
            )
        }))
        .await
        .unwrap_or_else(|e| panic!("a chorus-server instance on Redis did not start: {e}"));
        let world = World::new(&secret, Duration::from_secs(600), &["scale:*"]);
        Cluster {
            redis,
            servers,
            world,
        }
    }

    /// A client of `user` connected straight to instance `instance`, in `rooms`.
    fn client(&self, user: &str, instance: usize, rooms: &[&str]) -> Client {
        let spec = ClientSpec::new(user, &self.servers[instance].ws_url(), rooms);
        Client::spawn(self.world.clone(), spec)
    }

    /// `POST /api/publish` on instance `instance`: the status and the answer.
    async fn http_publish(&self, instance: usize, room: &str, id: u64) -> (u16, Value) {
        let request = json!({ "room": room, "text": format!("http #{id}"), "id": id });
        let (status, answer) = self.servers[instance]
            .publish(&request)
            .await
            .unwrap_or_else(|e| panic!("POST /api/publish on instance {instance}: {e}"));
        (status.as_u16(), answer)
    }

    /// An HTTP publish that must succeed; records its ack. Answers its sequence.
    async fn http_publish_ok(
        &self,
        instance: usize,
        room: &str,
        id: u64,
        acks: &mut HttpAcks,
    ) -> u64 {
        let (status, answer) = self.http_publish(instance, room, id).await;
        assert_eq!(status, 200, "HTTP publish on instance {instance}: {answer}");
        let seq = answer["seq"]
            .as_u64()
            .unwrap_or_else(|| panic!("HTTP publish answer without a seq: {answer}"));
        acks.insert((room.to_owned(), seq), ("server".to_owned(), id));
        seq
    }

    /// Wait until every instance's `/healthz` says `{"status": want}`.
    async fn wait_health(&self, want: &str, within: Duration) {
        for server in &self.servers {
            wait_health(server, want, within).await;
        }
    }
}

/// Wait until `server`'s `/healthz` answers `{"status": want, ...}`.
async fn wait_health(server: &ServerProcess, want: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let last = match server.health().await {
            Ok((_, body)) if body["status"] == want => return body,
            Ok((status, body)) => format!("{status} {body}"),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            panic!(
                "instance {}: /healthz did not say {want:?} within {within:?}; last answer: {last}",
                server.id
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until `server`'s metric `name` has the value `want`.
async fn wait_metric(server: &ServerProcess, name: &str, want: f64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let value = server
            .metrics()
            .await
            .ok()
            .and_then(|m| m.get(name).and_then(Value::as_f64));
        if value == Some(want) {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "instance {}: {name} is {value:?}, not {want}, after {within:?}",
                server.id
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait until every client is in each of its rooms.
async fn joined<'a>(clients: impl IntoIterator<Item = &'a Client>) {
    for client in clients {
        client
            .wait_for("in its rooms", WAIT, |r| {
                r.rooms.iter().all(|room| r.first_join.contains_key(room))
            })
            .await
            .unwrap_or_else(|e| fail(e));
    }
}

/// Whether `record` delivered the message that `(sender, id)` published in `room`.
fn has_message(record: &Record, room: &str, sender: &str, id: u64) -> bool {
    record
        .contents
        .get(room)
        .is_some_and(|c| c.values().any(|(s, i)| s == sender && *i == id))
}

fn set(users: &[&str]) -> BTreeSet<String> {
    users.iter().map(|&u| u.to_owned()).collect()
}

fn fail(e: chorus_test_harness::Error) -> ! {
    panic!("{e}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_room_over_three_instances_delivers_every_message_once_in_one_order() {
    const ROUNDS: u64 = 6;
    let cluster = Cluster::start(3).await;
    let room = "scale:lobby";
    let clients: Vec<Client> = (0..6)
        .map(|i| cluster.client(&format!("member{i}"), i % 3, &[room]))
        .collect();
    joined(&clients).await;

    // Every round, every client publishes (two on each instance) and one instance publishes
    // over HTTP, all at once: the instances compete for the room's sequence numbers.
    let mut http_acks = HttpAcks::new();
    for round in 0..ROUNDS {
        for client in &clients {
            client
                .publish(room, &format!("{} #{round}", client.user))
                .await
                .unwrap_or_else(|e| fail(e));
        }
        let instance = (round % 3) as usize;
        cluster
            .http_publish_ok(instance, room, 1000 + round, &mut http_acks)
            .await;
    }
    let targets = settle_all(&clients, SETTLE)
        .await
        .unwrap_or_else(|e| fail(e));
    let total = ROUNDS * (clients.len() as u64 + 1);
    assert_eq!(
        targets
            .get(room)
            .copied()
            .max(http_acks.keys().map(|(_, s)| *s).max()),
        Some(total),
        "{total} publishes must take sequences 1..={total}"
    );
    let targets = BTreeMap::from([(room.to_owned(), total)]);
    catch_up_all(&clients, &targets, SETTLE)
        .await
        .unwrap_or_else(|e| fail(e));
    let records = close_all(clients).await.expect("client records");

    check_exactly_once(&records, &targets, &http_acks);
    // Everyone was in the room before the first publish: every member saw every message,
    // all in the same order.
    let order: Vec<u64> = (1..=total).collect();
    for record in &records {
        assert_eq!(
            record.first_join[room].seq, 0,
            "{} joined late",
            record.user
        );
        assert_eq!(record.delivered[room], order, "{}'s order", record.user);
        assert_eq!(
            record.contents[room], records[0].contents[room],
            "{} and {} saw different messages under the same sequences",
            record.user, records[0].user
        );
    }
    let epochs: BTreeSet<u64> = records.iter().map(|r| r.first_join[room].epoch).collect();
    assert_eq!(
        epochs.len(),
        1,
        "the instances disagree on the room's epoch: {epochs:?}"
    );
    let deliveries: usize = records.iter().map(|r| r.delivered[room].len()).sum();
    eprintln!(
        "scale_out: one room on 3 instances: {} members, {} client and {} HTTP publishes \
         (on every instance), {deliveries} deliveries; lost 0, duplicated 0, one order",
        records.len(),
        ROUNDS * records.len() as u64,
        http_acks.len(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_typing_span_instances_and_count_users_not_connections() {
    let cluster = Cluster::start(3).await;
    let room = "scale:presence";
    let users = ["alice", "bob", "carol"];

    // One user per instance, joining one after the other; then "dual" joins twice, on
    // instances 0 and 1.
    let mut clients: Vec<Client> = Vec::new();
    for (instance, user) in users.iter().enumerate() {
        let client = cluster.client(user, instance, &[room]);
        client
            .wait_for("joined", WAIT, move |r| r.first_join.contains_key(room))
            .await
            .unwrap_or_else(|e| fail(e));
        clients.push(client);
    }
    let dual_0 = cluster.client("dual", 0, &[room]);
    dual_0
        .wait_for("joined", WAIT, move |r| r.first_join.contains_key(room))
        .await
        .unwrap_or_else(|e| fail(e));
    let dual_1 = cluster.client("dual", 1, &[room]);
    dual_1
        .wait_for("joined", WAIT, move |r| r.first_join.contains_key(room))
        .await
        .unwrap_or_else(|e| fail(e));

    // Each user sees those who came later join, on whatever instance.
    for (i, client) in clients.iter().enumerate() {
        let later: Vec<String> = users[i + 1..]
            .iter()
            .map(|&u| u.to_owned())
            .chain(["dual".to_owned()])
            .collect();
        let what = format!("told that {later:?} joined");
        client
            .wait_for(&what, WAIT, move |r| {
                later.iter().all(|u| r.presence_count(room, u, true) >= 1)
            })
            .await
            .unwrap_or_else(|e| fail(e));
    }
    // ...and finds those who came earlier listed, each once.
    for (i, client) in clients.iter().enumerate() {
        let members = client
            .read(move |r| r.joins[0].members.clone())
            .await
            .unwrap_or_else(|e| fail(e));
        let sorted: BTreeSet<String> = members.iter().cloned().collect();
        assert_eq!(sorted.len(), members.len(), "{}: {members:?}", client.user);
        assert_eq!(
            sorted,
            set(&users[..=i]),
            "{}'s Joined members",
            client.user
        );
    }
    for dual in [&dual_0, &dual_1] {
        let members = dual
            .read(move |r| r.joins[0].members.clone())
            .await
            .unwrap_or_else(|e| fail(e));
        let mut expected: Vec<String> = users.iter().map(|&u| u.to_owned()).collect();
        expected.push("dual".to_owned());
        expected.sort();
        let mut sorted = members.clone();
        sorted.sort();
        assert_eq!(sorted, expected, "dual's Joined members (each user once)");
    }

    // Typing on one instance reaches members on the others.
    let mut typing_seen = 0;
    for (from, to) in [(0, [1, 2]), (2, [0, 1])] {
        let typist = users[from];
        clients[from].typing(room).unwrap_or_else(|e| fail(e));
        for &watcher in &to {
            let what = format!("told that {typist} is typing");
            clients[watcher]
                .wait_for(&what, WAIT, move |r| {
                    r.typing
                        .iter()
                        .any(|(rm, users)| rm == room && users.iter().any(|u| u == typist))
                })
                .await
                .unwrap_or_else(|e| fail(e));
            typing_seen += 1;
        }
    }
    dual_1
        .wait_for("told that alice is typing", WAIT, move |r| {
            r.typing
                .iter()
                .any(|(rm, users)| rm == room && users.iter().any(|u| u == "alice"))
        })
        .await
        .unwrap_or_else(|e| fail(e));

    // One of dual's connections closes: dual is still present, so nobody hears of it. The
    // marker, published on the same instance after the server let the connection go, shows
    // that nothing came before it.
    let dual_0 = dual_0.close().await.expect("dual's record");
    wait_metric(&cluster.servers[0], "chorus_connections", 1.0, WAIT).await;
    let mut http_acks = HttpAcks::new();
    cluster.http_publish_ok(0, room, 1, &mut http_acks).await;
    for client in clients.iter().chain([&dual_1]) {
        client
            .wait_for("given the marker", WAIT, move |r| {
                has_message(r, room, "server", 1)
            })
            .await
            .unwrap_or_else(|e| fail(e));
        let left = client
            .read(move |r| r.presence_count(room, "dual", false))
            .await
            .unwrap_or_else(|e| fail(e));
        assert_eq!(
            left, 0,
            "{} was told dual left while dual was present",
            client.user
        );
    }

    // The other closes: dual has left, and everyone hears it once.
    let dual_1 = dual_1.close().await.expect("dual's record");
    for client in &clients {
        client
            .wait_for("told that dual left", WAIT, move |r| {
                r.presence_count(room, "dual", false) >= 1
            })
            .await
            .unwrap_or_else(|e| fail(e));
    }
    // A last marker from dual's last instance: whatever was sent about dual came before it.
    cluster.http_publish_ok(1, room, 2, &mut http_acks).await;
    for client in &clients {
        client
            .wait_for("given the last marker", WAIT, move |r| {
                has_message(r, room, "server", 2)
            })
            .await
            .unwrap_or_else(|e| fail(e));
    }

    // Every user's arrival was told once to each user already there, and dual's departure
    // once to everyone; nobody else left.
    let mut records = Vec::new();
    for client in &clients {
        records.push(client.read(Record::clone).await.unwrap_or_else(|e| fail(e)));
    }
    let mut joined_events = 0;
    for (i, record) in records.iter().enumerate() {
        for (j, user) in users.iter().enumerate() {
            let expected = usize::from(j > i);
            let count = record.presence_count(room, user, true);
            assert_eq!(
                count, expected,
                "{} was told {count} times that {user} joined",
                record.user
            );
            joined_events += count;
        }
        let count = record.presence_count(room, "dual", true);
        assert_eq!(
            count, 1,
            "{} was told {count} times that dual joined (twice, on two instances)",
            record.user
        );
        joined_events += count;
        let lefts: Vec<_> = record.presence.iter().filter(|c| !c.joined).collect();
        assert!(
            lefts.len() == 1 && lefts[0].user == "dual",
            "{}: told of departures {lefts:?}, expected dual's once",
            record.user
        );
        assert_eq!(
            record.presence_view(room),
            set(&users),
            "{}'s view of the room",
            record.user
        );
        assert!(
            record.errors.is_empty(),
            "{}: errors {:?}",
            record.user,
            record.errors
        );
    }
    for record in [&dual_0, &dual_1] {
        assert!(record.errors.is_empty(), "dual: errors {:?}", record.errors);
    }
    close_all(clients).await.expect("client records");
    let left_events: usize = records
        .iter()
        .map(|r| r.presence.iter().filter(|c| !c.joined).count())
        .sum();
    eprintln!(
        "scale_out: presence on 3 instances: {} users and one with 2 connections on 2 \
         instances: {joined_events} member-joined events, {left_events} member-left events, \
         each once; typing crossed instances {typing_seen} times",
        users.len(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_loses_nothing_and_its_members_leave_within_the_presence_ttl() {
    const MOVERS: usize = 6;
    const GHOSTS: usize = 2;
    let mut cluster = Cluster::start(3).await;
    let world = cluster.world.clone();
    let ports: Vec<u16> = cluster.servers.iter().map(|s| s.port).collect();
    let balancer = Balancer::open(ports.clone()).await.expect("a balancer");
    let victim = 1;
    let victim_port = ports[victim];
    let rooms = ["scale:r0", "scale:r1", "scale:r2"];
    let rooms_of = |i: usize| [rooms[i % 3], rooms[(i + 1) % 3]];

    // Ghosts: on the doomed instance directly, in every room; when it dies they cannot come
    // back, so they must leave everyone's presence.
    let ghost_names: Vec<String> = (0..GHOSTS).map(|i| format!("ghost{i}")).collect();
    let ghosts: Vec<Client> = ghost_names
        .iter()
        .map(|name| cluster.client(name, victim, &rooms))
        .collect();
    joined(&ghosts).await;
    // Movers: through the balancer, two rooms each, publishing all along.
    let movers: Vec<Client> = (0..MOVERS)
        .map(|i| {
            let mut spec = ClientSpec::new(&format!("mover{i}"), &balancer.ws_url(), &rooms_of(i));
            spec.publish_every = Some(Duration::from_millis(60));
            Client::spawn(world.clone(), spec)
        })
        .collect();
    joined(&movers).await;
    world.set_publishing(true);
    for mover in &movers {
        mover
            .wait_for("publishing", WAIT, |r| {
                r.highest_acks().len() == 2 && r.settled.len() >= 6
            })
            .await
            .unwrap_or_else(|e| fail(e));
    }

    // Who is on the victim.
    let mut on_victim = Vec::new();
    for (i, mover) in movers.iter().enumerate() {
        let address = mover
            .read(|r| r.local_addr)
            .await
            .unwrap_or_else(|e| fail(e));
        let backend = address.and_then(|a| balancer.backend_of(a));
        assert!(
            backend.is_some(),
            "{} is not connected through the balancer",
            mover.user
        );
        if backend == Some(victim_port) {
            on_victim.push(i);
        }
    }
    assert!(
        !on_victim.is_empty(),
        "the balancer put no mover on instance {victim}"
    );

    // A kill rarely lands while a publish is on its way, so freeze the instance first until
    // each of its movers has publishes sent and unanswered. Those the instance never read
    // must be sent again to a survivor; those it handled before the freeze show up in the
    // resume's replay. Either way, each must be acknowledged once.
    let in_flight = |r: &Record| {
        r.sent
            .iter()
            .filter(|id| !r.settled.contains_key(id))
            .count()
    };
    cluster.servers[victim].freeze().await.expect("SIGSTOP");
    let mut lost_in_flight = 0;
    for &i in &on_victim {
        movers[i]
            .wait_for("publishing into the frozen instance", WAIT, move |r| {
                in_flight(r) >= 2
            })
            .await
            .unwrap_or_else(|e| fail(e));
        lost_in_flight += movers[i].read(in_flight).await.unwrap_or_else(|e| fail(e));
    }
    cluster.servers[victim].kill().await.expect("kill -9");
    let killed_at = world.now();

    // Its movers come back through the balancer, on survivors, and resume both rooms.
    for &i in &on_victim {
        movers[i]
            .wait_for("resumed on a survivor", WAIT, |r| {
                r.connections >= 2 && r.state == Some(State::Open) && r.joins.len() >= 4
            })
            .await
            .unwrap_or_else(|e| fail(e));
        let address = movers[i]
            .read(|r| r.local_addr)
            .await
            .unwrap_or_else(|e| fail(e));
        let backend = address.and_then(|a| balancer.backend_of(a));
        assert!(
            backend.is_some_and(|port| port != victim_port),
            "{} is not on a survivor: {backend:?}",
            movers[i].user
        );
    }
    let reconnected_in = world.now() - killed_at;

    // The ghosts leave the presence of every room, within the TTL.
    let gone_by = world.instant(killed_at) + PRESENCE_TTL + PRESENCE_MARGIN;
    for (i, mover) in movers.iter().enumerate() {
        let rooms = rooms_of(i);
        let ghosts = ghost_names.clone();
        let within = gone_by.saturating_duration_since(Instant::now());
        mover
            .wait_for(
                "told the ghosts left, within the presence TTL",
                within,
                move |r| {
                    rooms.iter().all(|room| {
                        let view = r.presence_view(room);
                        ghosts.iter().all(|g| !view.contains(g))
                    })
                },
            )
            .await
            .unwrap_or_else(|e| fail(e));
    }
    let gone_in = world.now() - killed_at;
    // A newcomer on a survivor finds exactly the movers.
    let probe = cluster.client("probe", 0, &rooms);
    probe
        .wait_for("joined", WAIT, move |r| r.joins.len() >= 3)
        .await
        .unwrap_or_else(|e| fail(e));
    let probe_joins = probe
        .read(|r| r.joins.clone())
        .await
        .unwrap_or_else(|e| fail(e));
    for join in &probe_joins {
        let mut expected: BTreeSet<String> = (0..MOVERS)
            .filter(|&i| rooms_of(i).contains(&join.room.as_str()))
            .map(|i| format!("mover{i}"))
            .collect();
        expected.insert("probe".to_owned());
        let listed: BTreeSet<String> = join.members.iter().cloned().collect();
        assert_eq!(
            listed.len(),
            join.members.len(),
            "{}: {:?}",
            join.room,
            join.members
        );
        assert_eq!(listed, expected, "members of {} after the crash", join.room);
    }

    // Publishing goes on over the survivors for a while.
    for &i in &on_victim {
        let now_settled = movers[i]
            .read(|r| r.settled.len())
            .await
            .unwrap_or_else(|e| fail(e));
        movers[i]
            .wait_for("publishing again", WAIT, move |r| {
                r.settled.len() >= now_settled + 10
            })
            .await
            .unwrap_or_else(|e| fail(e));
    }
    world.set_publishing(false);
    let targets = settle_all(&movers, SETTLE)
        .await
        .unwrap_or_else(|e| fail(e));
    catch_up_all(&movers, &targets, SETTLE)
        .await
        .unwrap_or_else(|e| fail(e));

    // Presence as the movers see it, before anyone leaves.
    let mut views = Vec::new();
    for mover in &movers {
        views.push(mover.read(Record::clone).await.unwrap_or_else(|e| fail(e)));
    }
    close_all(vec![probe]).await.expect("probe's record");
    close_all(ghosts).await.expect("ghosts' records");
    let records = close_all(movers).await.expect("movers' records");
    drop(balancer);

    check_exactly_once(&records, &targets, &HashMap::new());
    let mut ghost_lefts = 0;
    for (i, record) in views.iter().enumerate() {
        let stayed = !on_victim.contains(&i);
        if !stayed {
            assert!(
                record.recovered >= 2,
                "{}: both rooms should have resumed with Recovered",
                record.user
            );
        }
        for room in rooms_of(i) {
            for ghost in &ghost_names {
                let count = record.presence_count(room, ghost, false);
                // A mover that reconnected may have found the ghost gone already.
                if stayed {
                    assert_eq!(
                        count, 1,
                        "{} was told {count} times that {ghost} left {room}",
                        record.user
                    );
                } else {
                    assert!(
                        count <= 1,
                        "{} was told {count} times that {ghost} left {room}",
                        record.user
                    );
                }
                ghost_lefts += count;
            }
            for other in 0..MOVERS {
                let user = format!("mover{other}");
                let count = record.presence_count(room, &user, false);
                assert_eq!(
                    count, 0,
                    "{} was told {user} left {room}, though it never was away longer than the \
                     presence TTL",
                    record.user
                );
            }
            // The probe is still there too.
            let expected: BTreeSet<String> = (0..MOVERS)
                .filter(|&m| rooms_of(m).contains(&room))
                .map(|m| format!("mover{m}"))
                .chain(["probe".to_owned()])
                .collect();
            assert_eq!(
                record.presence_view(room),
                expected,
                "{}'s view of {room}",
                record.user
            );
        }
    }
    let published: usize = records.iter().map(|r| r.published.len()).sum();
    let delivered: usize = records
        .iter()
        .flat_map(|r| r.delivered.values())
        .map(Vec::len)
        .sum();
    let resends: u32 = records.iter().map(|r| r.resends).sum();
    eprintln!(
        "scale_out: kill -9 of 1 of 3 instances under load (frozen first, publishes in flight): {MOVERS} movers ({} on it), \
         {published} messages published, {delivered} deliveries, {lost_in_flight} publishes \
         unanswered when it died ({resends} sent again, the rest proved delivered by the \
         resume's replay); lost 0, duplicated 0, no Missed; its movers resumed on survivors in \
         {reconnected_in} ms; {GHOSTS} stranded members gone from presence in {gone_in} ms \
         (TTL {PRESENCE_TTL:?}), {ghost_lefts} member-left events, each once",
        on_victim.len(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_is_survived_without_restarting_an_instance() {
    let mut cluster = Cluster::start(3).await;
    let room = "scale:outage";
    let stayers: Vec<Client> = (0..3)
        .map(|i| cluster.client(&format!("stayer{i}"), i, &[room]))
        .collect();
    let link = Link::open(0, 2, cluster.servers[2].port)
        .await
        .expect("a link");
    let resumer = Client::spawn(
        cluster.world.clone(),
        ClientSpec::new(
            "resumer",
            &format!("ws://127.0.0.1:{}/ws", link.port),
            &[room],
        ),
    );
    let mut everyone: Vec<&Client> = stayers.iter().collect();
    everyone.push(&resumer);
    joined(everyone.iter().copied()).await;

    // Before: messages from every instance, in one epoch that every instance agrees on.
    let mut http_acks = HttpAcks::new();
    for (i, stayer) in stayers.iter().enumerate() {
        stayer
            .publish(room, "before")
            .await
            .unwrap_or_else(|e| fail(e));
        cluster
            .http_publish_ok(i, room, 100 + i as u64, &mut http_acks)
            .await;
    }
    let targets = settle_all(&stayers, SETTLE)
        .await
        .unwrap_or_else(|e| fail(e));
    let old_last = targets[room].max(http_acks.keys().map(|(_, s)| *s).max().unwrap_or(0));
    assert_eq!(old_last, 6, "six publishes, sequences 1..=6");
    let old_targets = BTreeMap::from([(room.to_owned(), old_last)]);
    for client in &everyone {
        client
            .catch_up(&old_targets, WAIT)
            .await
            .unwrap_or_else(|e| fail(e));
    }
    let mut epochs = BTreeSet::new();
    for client in &everyone {
        epochs.insert(
            client
                .read(move |r| r.first_join.get(room).map(|p| p.epoch))
                .await
                .unwrap_or_else(|e| fail(e)),
        );
    }
    assert_eq!(
        epochs.len(),
        1,
        "the instances disagree on the room's epoch: {epochs:?}"
    );
    let old_epoch = epochs
        .into_iter()
        .next()
        .flatten()
        .expect("the room's epoch");

    // A resume while Redis is up recovers what was missed.
    link.cut();
    resumer
        .wait_for("disconnected", WAIT, |r| r.state != Some(State::Open))
        .await
        .unwrap_or_else(|e| fail(e));
    cluster.http_publish_ok(0, room, 200, &mut http_acks).await;
    link.restore();
    resumer
        .wait_for("resumed", WAIT, move |r| {
            r.joins.len() >= 2 && r.caught_up(&BTreeMap::from([(room.to_owned(), old_last + 1)]))
        })
        .await
        .unwrap_or_else(|e| fail(e));
    let resumed = resumer
        .read(|r| r.joins[1].recovery)
        .await
        .unwrap_or_else(|e| fail(e));
    assert_eq!(resumed, Recovery::Recovered, "a resume with Redis up");
    let old_last = old_last + 1;
    let old_targets = BTreeMap::from([(room.to_owned(), old_last)]);
    for client in &stayers {
        client
            .catch_up(&old_targets, WAIT)
            .await
            .unwrap_or_else(|e| fail(e));
    }

    // The resumer goes away for the outage; the stayers stay.
    link.cut();
    resumer
        .wait_for("disconnected", WAIT, |r| r.state != Some(State::Open))
        .await
        .unwrap_or_else(|e| fail(e));
    let mut before = Vec::new();
    for client in &everyone {
        before.push(client.read(Record::clone).await.unwrap_or_else(|e| fail(e)));
    }

    cluster.redis.kill().await.expect("kill redis");
    let outage_at = Instant::now();
    // Every instance says it is degraded...
    let mut degraded = Value::Null;
    for server in &cluster.servers {
        degraded = wait_health(server, "degraded", WAIT).await;
    }
    // ...and refuses publishes with 503, on the socket and over HTTP.
    let refused = stayers[0]
        .publish(room, "during the outage")
        .await
        .unwrap_or_else(|e| fail(e));
    stayers[0]
        .wait_for("answered during the outage", WAIT, move |r| {
            r.settled.contains_key(&refused)
        })
        .await
        .unwrap_or_else(|e| fail(e));
    let outcome = stayers[0]
        .read(move |r| r.settled.get(&refused).map(|s| s.1.clone()))
        .await
        .unwrap_or_else(|e| fail(e));
    assert!(
        matches!(outcome, Some(Err(PublishError::Rejected { code: 503, .. }))),
        "a publish during the outage: {outcome:?}, expected error 503"
    );
    let (status, answer) = cluster.http_publish(1, room, 300).await;
    assert_eq!(status, 503, "HTTP publish during the outage: {answer}");
    assert_eq!(
        answer["code"], 503,
        "HTTP publish during the outage: {answer}"
    );
    // The connections outlive several heartbeat timeouts without Redis.
    tokio::time::sleep_until(outage_at + HEARTBEAT_TIMEOUT * 3).await;
    for (i, client) in stayers.iter().enumerate() {
        let now = client.read(Record::clone).await.unwrap_or_else(|e| fail(e));
        assert_eq!(
            now.state,
            Some(State::Open),
            "{} during the outage",
            client.user
        );
        assert_eq!(
            (now.connections, &now.close_codes),
            (before[i].connections, &before[i].close_codes),
            "{} lost its connection during the Redis outage",
            client.user
        );
    }
    let outage = outage_at.elapsed();

    // Redis comes back, empty. The instances recover on their own.
    cluster.redis.start_again().await.expect("restart redis");
    let back_at = Instant::now();
    cluster.wait_health("ok", WAIT * 2).await;
    let healthy_in = back_at.elapsed();
    for server in &mut cluster.servers {
        assert_eq!(
            server.state(),
            RunState::Running,
            "instance {} restarted",
            server.id
        );
    }
    let mut new_acks = HttpAcks::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, answer) = cluster.http_publish(0, room, 400).await;
        if status == 200 {
            let seq = answer["seq"].as_u64().expect("a seq");
            new_acks.insert((room.to_owned(), seq), ("server".to_owned(), 400));
            break;
        }
        assert!(
            status == 503 && Instant::now() < deadline,
            "HTTP publish after Redis returned: {status} {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut new_ids = Vec::new();
    for stayer in &stayers[1..] {
        new_ids.push(
            stayer
                .publish(room, "after")
                .await
                .unwrap_or_else(|e| fail(e)),
        );
    }
    let mut new_last = new_acks.keys().map(|(_, s)| *s).max().unwrap_or(0);
    for (stayer, &id) in stayers[1..].iter().zip(&new_ids) {
        stayer
            .wait_for("acknowledged after the outage", WAIT, move |r| {
                r.settled.contains_key(&id)
            })
            .await
            .unwrap_or_else(|e| fail(e));
        let (count, outcome) = stayer
            .read(move |r| r.settled.get(&id).cloned())
            .await
            .unwrap_or_else(|e| fail(e))
            .expect("settled");
        let seq = outcome
            .unwrap_or_else(|e| panic!("{}: a publish after Redis returned: {e:?}", stayer.user));
        assert_eq!(count, 1, "{}: publish settled {count} times", stayer.user);
        new_acks.insert((room.to_owned(), seq), (stayer.user.clone(), id));
        new_last = new_last.max(seq);
    }
    assert_eq!(
        new_last, 3,
        "the history started again: three publishes, sequences 1..=3"
    );

    // The stayers were told that the history started again (a fresh Joined, Missed, in a
    // new epoch) before its messages, and got each of those once, in order. The resumer,
    // back now, resumes from a position in the lost history: Missed, then the new history.
    link.restore();
    let new_order: Vec<u64> = (1..=new_last).collect();
    let mut new_epochs = BTreeSet::new();
    for (i, client) in everyone.iter().enumerate() {
        let seen_joins = before[i].joins.len();
        let order = new_order.clone();
        client
            .wait_for(
                "told the history started again, and given it",
                WAIT,
                move |r| {
                    r.joins[seen_joins..].iter().any(|j| {
                        j.room == room
                            && j.recovery == Recovery::Missed
                            && j.position.epoch != old_epoch
                            && r.delivered
                                .get(room)
                                .and_then(|d| d.get(j.delivered_before..))
                                == Some(&order[..])
                    })
                },
            )
            .await
            .unwrap_or_else(|e| fail(e));
        let record = client.read(Record::clone).await.unwrap_or_else(|e| fail(e));
        let fresh: Vec<_> = record.joins[seen_joins..].iter().collect();
        let first = fresh[0];
        assert_eq!(
            first.recovery,
            Recovery::Missed,
            "{}: the first Joined after the outage: {first:?}",
            record.user
        );
        assert_ne!(
            first.position.epoch, old_epoch,
            "{}: {first:?}",
            record.user
        );
        assert_eq!(
            record.delivered[room][..first.delivered_before],
            before[i].delivered[room][..],
            "{}: messages came between the outage and the news of the new history",
            record.user
        );
        assert_eq!(
            record.delivered[room][first.delivered_before..],
            new_order[..],
            "{}: the new history's messages",
            record.user
        );
        for (&(_, seq), content) in &new_acks {
            assert_eq!(
                record.contents[room].get(&seq),
                Some(content),
                "{}: seq {seq} of the new history",
                record.user
            );
        }
        let errors: Vec<_> = record
            .errors
            .iter()
            .filter(|e| !e.starts_with("503:"))
            .collect();
        assert!(errors.is_empty(), "{}: errors {errors:?}", record.user);
        new_epochs.insert(first.position.epoch);
    }
    assert_eq!(
        new_epochs.len(),
        1,
        "the instances disagree on the new epoch: {new_epochs:?}"
    );

    let records = close_all(stayers).await.expect("records");
    let resumer = resumer.close().await.expect("the resumer's record");
    drop(link);
    for record in records.iter().chain([&resumer]) {
        for (id, (count, _)) in &record.settled {
            assert_eq!(
                *count, 1,
                "{}: publish {id} settled {count} times",
                record.user
            );
        }
    }
    eprintln!(
        "scale_out: Redis restart under 3 instances: {old_last} messages before, a {outage:.1?} \
         outage (/healthz {degraded}, publishes refused with 503 on the socket and over HTTP, \
         {} connections kept), healthy again {healthy_in:.1?} after Redis returned; {} members \
         told of the new epoch before its {new_last} messages, the resumer got Recovered before \
         and Missed after",
        records.len(),
        records.len(),
    );
}
