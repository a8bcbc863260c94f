//! Chaos: clients publish continuously in several rooms while their connections are cut
//! hundreds of times, by the server (token expiry), by TCP resets and by silence (heartbeat
//! loss). At the end, every member of every room has received exactly the room's messages,
//! each once, in sequence order, and every publish was acknowledged exactly once.
//!
//! The clients are the real client logic: `chorus_client::core::Core`, the sans-IO state
//! machine the browser client runs, driven here by tokio and tokio-tungstenite instead of
//! web-sys ([`chorus_test_harness::driver`]). The server is a real `chorus-server` on 127.0.0.1, and every client reaches it
//! through a [`Link`] of its own, a TCP relay that injects the network faults.
//!
//! `CHORUS_CHAOS_SECS` sets how long the clients publish under faults (default 30 s, which
//! keeps the test under a minute); a soak runs with, for example, `CHORUS_CHAOS_SECS=600
//! cargo test -p chorus-test-harness --release --test chaos -- --nocapture`. The summary
//! line is printed to stderr.

use std::collections::HashMap;
use std::time::Duration;

use chorus_server::{Config, run};
use chorus_test_harness::driver::{
    Client, ClientSpec, World, catch_up_all, check_exactly_once, close_all, settle_all,
};
use chorus_test_harness::link::{Fault, Link};
use rand::{Rng, RngExt, SeedableRng, rngs::StdRng};
use tokio::sync::oneshot;
use tokio::time::Instant;

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

fn room(index: usize) -> String {
    format!("chaos:{index}")
}

/// The rooms client `index` is in: two of the three, so rooms have different members.
fn rooms_of(index: usize) -> [String; 2] {
    [room(index % ROOMS), room((index + 1) % ROOMS)]
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

    let world = World::new(SECRET, TOKEN_TTL, &["chaos:*"]);
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
        let url = format!("ws://127.0.0.1:{}/ws", link.port);
        let rooms = rooms_of(index);
        let mut spec = ClientSpec::new(&format!("user{index}"), &url, &[&rooms[0], &rooms[1]]);
        spec.seed = rng.next_u64();
        // Each room gets a publish every PUBLISH_EVERY, the client's rooms taking turns.
        spec.publish_every = Some(PUBLISH_EVERY / 2);
        clients.push(Client::spawn(world.clone(), spec));
        links.push(link);
    }
    // Publishing starts once every client is in its rooms, so each member must receive
    // every message of its rooms.
    world
        .wait_first_joins(CLIENTS * 2, Duration::from_secs(10))
        .await
        .expect("every client joins its rooms");
    world.set_publishing(true);

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
    world.set_publishing(false);

    // Every publish settles; then the last sequence of each room is the highest ack, and
    // every member must catch up to it.
    let finish_at = Instant::now();
    let targets = settle_all(&clients, SETTLE)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    catch_up_all(&clients, &targets, SETTLE)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let records = close_all(clients).await.expect("client records");
    let settle_time = finish_at.elapsed();
    drop(links);
    let _ = stop_server.send(());
    let _ = server.await;

    check_exactly_once(&records, &targets, &HashMap::new());
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
