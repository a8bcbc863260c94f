//! Shutdown ends within the shutdown timeout (plus a small margin) whatever HTTP clients do:
//! a half-sent request or a request body that never finishes is cut at the deadline, in
//! `run` and in the `chorus-server` process on SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::{SECRET, WAIT, test_config};
use chorus_server::{Config, run};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How much longer than the shutdown timeout shutdown may take.
const MARGIN: Duration = Duration::from_secs(1);

/// A server started with `run`, and the sender of its shutdown signal.
struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    handle: JoinHandle<chorus_server::Result<()>>,
}

async fn start(config: Config) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(run(listener, config, async {
        let _ = stopped.await;
    }));
    Running { addr, stop, handle }
}

impl Running {
    /// Signal shutdown and wait for `run` to return; panics unless it returns `Ok` within
    /// the shutdown timeout plus [`MARGIN`].
    async fn shutdown_within(self, shutdown_timeout: Duration) -> Duration {
        let started = Instant::now();
        let _ = self.stop.send(());
        let result = tokio::time::timeout(shutdown_timeout + MARGIN, self.handle)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "run still running {:?} after shutdown",
                    shutdown_timeout + MARGIN
                )
            });
        result.expect("run panicked").expect("run returns Ok");
        started.elapsed()
    }
}

/// A complete request on a connection of its own. The server has read what earlier
/// connections sent by the time it answers: a barrier before shutdown.
async fn healthz(addr: impl tokio::net::ToSocketAddrs) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: chorus\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let response = closed(&mut stream).await;
    assert!(
        response.starts_with(b"HTTP/1.1 200 "),
        "{}",
        String::from_utf8_lossy(&response)
    );
}

/// Read until the server closes the connection; return what it sent.
async fn closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("the server kept the connection open");
    received
}

#[tokio::test]
async fn shutdown_ends_within_the_deadline_while_a_client_holds_a_half_sent_request() {
    let shutdown_timeout = Duration::from_millis(300);
    let server = start(Config {
        shutdown_timeout,
        ..test_config()
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"GET /healthz HT").await.unwrap();
    healthz(server.addr).await;

    server.shutdown_within(shutdown_timeout).await;
    let received = closed(&mut stream).await;
    assert!(
        received.is_empty(),
        "{}",
        String::from_utf8_lossy(&received)
    );
}

#[tokio::test]
async fn shutdown_cuts_a_request_whose_body_never_finishes_at_the_deadline() {
    let shutdown_timeout = Duration::from_millis(300);
    let server = start(Config {
        shutdown_timeout,
        ..test_config()
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /api/publish HTTP/1.1\r\nHost: chorus\r\nAuthorization: Bearer {SECRET}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"room\":"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    healthz(server.addr).await;

    let took = server.shutdown_within(shutdown_timeout).await;
    assert!(
        took >= shutdown_timeout.mul_f64(0.9),
        "the request in flight was cut after {took:?}, before the {shutdown_timeout:?} deadline"
    );
    closed(&mut stream).await;
}

/// A `chorus-server serve` child, killed on drop if the test fails before it exits.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(unix)]
#[tokio::test]
async fn the_process_exits_within_the_shutdown_timeout_of_sigterm_despite_a_half_sent_request() {
    let mut server = Child(
        Command::new(env!("CARGO_BIN_EXE_chorus-server"))
            .args(["serve", "--dev", "--bind", "127.0.0.1:0"])
            .args(["--shutdown-timeout", "1s"])
            .env_clear()
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = server.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let addr = loop {
        let line = rx.recv_timeout(WAIT).expect("no address logged");
        if let Some((_, rest)) = line.split_once("listening on http://") {
            break rest.split('/').next().unwrap().to_owned();
        }
    };

    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream.write_all(b"GET /healthz HT").await.unwrap();
    healthz(addr.as_str()).await;

    let started = Instant::now();
    let terminated = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let limit = Duration::from_secs(1) + MARGIN;
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < limit,
            "still running {limit:?} after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(status.success(), "{status}");
    closed(&mut stream).await;
}
