//! Every workload, in quick mode, against a real chorus-server started in this process on
//! 127.0.0.1:0. No timing is asserted: only that each workload runs to its end over real
//! sockets and counts what it should.

use std::net::SocketAddr;

use chorus_bench::cli::{Cli, execute};
use chorus_bench::report::Report;
use chorus_server::Config;
use clap::Parser;
use serde_json::Value;
use tokio::sync::oneshot;

const SECRET: &str = "a benchmark secret of enough bytes";

/// A server that allows any publish rate, and a handle that stops it.
async fn server() -> (SocketAddr, oneshot::Sender<()>) {
    server_with(|_| {}).await
}

/// The same, with `adjust` applied to its configuration.
async fn server_with(adjust: impl FnOnce(&mut Config)) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = Config {
        token_secret: SECRET.into(),
        publish_rate: 1_000_000,
        publish_burst: 1_000_000,
        ..Config::default()
    };
    adjust(&mut config);
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(chorus_server::run(listener, config, async {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// Run `chorus-bench --quick <args>` against `addr`; its results as JSON.
async fn bench(addr: SocketAddr, args: &[&str]) -> Vec<Value> {
    let url = format!("ws://{addr}/ws");
    let mut argv = vec![
        "chorus-bench",
        "--quick",
        "--protocol",
        "chorus",
        "--url",
        &url,
        "--secret",
        SECRET,
    ];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).unwrap();
    let mut reports = Vec::new();
    execute(cli, 2, &mut |r: &Report| reports.push(r.json()))
        .await
        .unwrap();
    for report in &reports {
        println!("{report}");
    }
    reports
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_round_trips_come_back_for_every_size_and_count() {
    let (addr, _stop) = server().await;
    let reports = bench(addr, &["echo"]).await;
    // Quick: 1 and 10 connections, 32 B and 1 KiB.
    assert_eq!(reports.len(), 4);
    for r in &reports {
        assert_eq!(r["workload"], "echo");
        assert_eq!(r["protocol"], "chorus");
        assert!(r["results"]["round_trips"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(r["results"]["errors"], 0, "{r}");
        assert!(r["generator"]["cpu_s"].as_f64().is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_ramp_delivers_to_every_subscriber() {
    let (addr, _stop) = server().await;
    let reports = bench(addr, &["ramp", "--subscribers", "50"]).await;
    assert_eq!(reports.len(), 1);
    let steps = reports[0]["results"]["steps"].as_array().unwrap();
    assert!(!steps.is_empty());
    for step in steps {
        assert!(step["delivered"].as_u64().unwrap() > 0, "{step}");
        // Every publish reaches the 50 subscribers (the run is far below any limit).
        assert!(step["expected"].as_u64().unwrap() >= step["sent"].as_u64().unwrap() * 50);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_rooms_deliver_to_every_other_member() {
    let (addr, _stop) = server().await;
    let reports = bench(addr, &["chat", "--members", "4,8", "--rooms", "2"]).await;
    assert_eq!(reports.len(), 2);
    for r in &reports {
        assert_eq!(r["workload"], "chat");
        let steps = r["results"]["steps"].as_array().unwrap();
        assert!(
            steps.iter().all(|s| s["delivered"].as_u64().unwrap() > 0),
            "{r}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_fanout_acknowledges_and_delivers() {
    let (addr, _stop) = server().await;
    let reports = bench(
        addr,
        &[
            "fanout",
            "--rooms",
            "2",
            "--subscribers",
            "10",
            "--duration",
            "0.5",
        ],
    )
    .await;
    let results = &reports[0]["results"];
    assert!(
        results["publishes_per_second"].as_f64().unwrap() > 0.0,
        "{results}"
    );
    assert!(
        results["deliveries_per_second"].as_f64().unwrap() > 0.0,
        "{results}"
    );
    assert_eq!(results["errors"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_stay_open_and_the_server_rss_is_read() {
    let (addr, _stop) = server().await;
    let pid = std::process::id().to_string();
    let reports = bench(
        addr,
        &["idle", "--connections", "100,300", "--server-pid", &pid],
    )
    .await;
    assert_eq!(reports.len(), 2);
    for (r, total) in reports.iter().zip([100, 300]) {
        assert_eq!(r["results"]["open"], total, "{r}");
        assert_eq!(r["results"]["failed"], 0, "{r}");
        // The server is this process: its RSS is readable.
        assert!(r["results"]["server_rss_after_bytes"].as_u64().unwrap() > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_answer_heartbeats_and_are_not_dropped() {
    // The server pings every 100 ms and drops a connection silent for 300 ms; held for a
    // second, the idle connections must all survive on their pongs alone.
    let (addr, _stop) = server_with(|config| {
        config.heartbeat_interval = std::time::Duration::from_millis(100);
        config.heartbeat_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let reports = bench(addr, &["idle", "--connections", "50", "--hold", "1"]).await;
    let results = &reports[0]["results"];
    assert_eq!(results["open"], 50, "{results}");
    assert_eq!(results["lost_while_held"], 0, "{results}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_clients_reset_all_come_back() {
    let (addr, _stop) = server().await;
    let reports = bench(addr, &["storm", "--clients", "300", "--room-size", "50"]).await;
    let results = &reports[0]["results"];
    assert_eq!(results["back"], 300, "{results}");
    assert_eq!(results["failures"], 0, "{results}");
    assert!(results["all_back_s"].as_f64().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_survives_a_server_restart() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let start = move || {
        let config = Config {
            token_secret: SECRET.into(),
            shutdown_timeout: std::time::Duration::from_millis(100),
            ..Config::default()
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
            chorus_server::run(listener, config, async {
                let _ = stopped.await;
            })
            .await
        });
        (stop, handle)
    };
    let (stop, first) = start();
    let dir = std::env::temp_dir().join(format!("chorus-bench-storm-{}", std::process::id()));
    let ready = dir.with_extension("ready");
    let _ = std::fs::remove_file(&ready);
    let restart = {
        let ready = ready.clone();
        tokio::spawn(async move {
            while !ready.exists() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            stop.send(()).unwrap();
            first.await.unwrap().unwrap();
            start()
        })
    };
    let reports = bench(
        addr,
        &[
            "storm",
            "--clients",
            "100",
            "--trigger",
            "server",
            "--ready-file",
            ready.to_str().unwrap(),
        ],
    )
    .await;
    let (_stop_second, _second) = restart.await.unwrap();
    let _ = std::fs::remove_file(&ready);
    let results = &reports[0]["results"];
    assert_eq!(results["dropped"], 100, "{results}");
    assert_eq!(results["back"], 100, "{results}");
    assert_eq!(results["failures"], 0, "{results}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ceiling_measures_both_receivers() {
    // No server and no secret: the ceiling plays the server itself.
    let cli =
        Cli::try_parse_from(["chorus-bench", "--quick", "ceiling", "--duration", "0.2"]).unwrap();
    let mut reports = Vec::new();
    execute(cli, 2, &mut |r: &Report| reports.push(r.json()))
        .await
        .unwrap();
    assert_eq!(reports.len(), 2);
    for r in &reports {
        assert!(r["results"]["frames"].as_u64().unwrap() > 0, "{r}");
    }
}
