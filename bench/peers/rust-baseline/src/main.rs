//! The `chorus-bench-baseline` binary: `chorus-bench-baseline [PORT]`.
//!
//! Listens on `127.0.0.1`, on the port given as the first argument, else `PORT`, else a free
//! one (0), prints `LISTENING <port>` once it accepts connections, and exits with status 0
//! on SIGTERM or SIGINT. `BASELINE_QUEUE_FRAMES` sets the per-connection queue bound
//! (default 1024 frames).

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use chorus_bench_baseline::{Config, Result, run};
use tokio::net::TcpSocket;
use tokio::signal::unix::{SignalKind, signal};

/// Listen backlog: a reconnect storm of thousands of clients must not overflow the accept
/// queue (the kernel caps it at `net.core.somaxconn`).
const BACKLOG: u32 = 4096;

#[tokio::main]
async fn main() -> ExitCode {
    match serve().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chorus-bench-baseline: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> Result<()> {
    let port = parse_var(std::env::args().nth(1), "port")
        .or_else(|| parse_var(std::env::var("PORT").ok(), "PORT"))
        .unwrap_or(0);
    let mut config = Config::default();
    if let Some(frames) = parse_var(std::env::var("BASELINE_QUEUE_FRAMES").ok(), "queue") {
        config.queue_frames = frames;
    }

    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    let listener = socket.listen(BACKLOG)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "LISTENING {}", listener.local_addr()?.port())?;
    stdout.flush()?;
    drop(stdout);

    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    run(listener, config, async {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
    .await
}

/// Parses an optional number; exits with status 2 when it is not one.
fn parse_var<T: std::str::FromStr>(value: Option<String>, what: &str) -> Option<T> {
    let value = value?;
    match value.parse() {
        Ok(n) => Some(n),
        Err(_) => {
            eprintln!("chorus-bench-baseline: {what} must be a number, not {value:?}");
            std::process::exit(2)
        }
    }
}
