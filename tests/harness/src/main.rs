//! The `chorus-test-harness` binary: bind the control API on a free port, announce it on
//! the first line of stdout, serve until SIGINT, SIGTERM or the end of stdin.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: chorus-test-harness [--ignore-stdin]

Prints CHORUS_TEST_CONTROL=http://127.0.0.1:PORT on the first line of stdout, then serves
the control API until SIGINT, SIGTERM or the end of stdin (unless --ignore-stdin), and kills
every chorus-server it started. The server binary is $CHORUS_SERVER_BIN, else chorus-server
next to this binary, else target/debug/chorus-server in the workspace.";

fn main() -> ExitCode {
    let mut watch_stdin = true;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--ignore-stdin" => watch_stdin = false,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::FAILURE;
            }
        }
    }
    match serve(watch_stdin) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chorus-test-harness: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(watch_stdin: bool) -> chorus_test_harness::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "CHORUS_TEST_CONTROL=http://{address}")?;
        stdout.flush()?;
        drop(stdout);
        chorus_test_harness::run(listener, server_binary(), shutdown_signal(watch_stdin)).await
    })
}

/// `$CHORUS_SERVER_BIN`, else `chorus-server` beside this executable (the same target
/// directory), else `target/debug/chorus-server` in the workspace.
fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CHORUS_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("chorus-server")))
        .filter(|path| path.is_file());
    sibling.unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/chorus-server")
    })
}

/// SIGINT, SIGTERM, or (when watched) the end of stdin: a parent that dies, however it
/// dies, closes our stdin, so its servers do not outlive it.
async fn shutdown_signal(watch_stdin: bool) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    let (closed, stdin_closed) = tokio::sync::oneshot::channel::<()>();
    // Kept (unsent) while stdin is not watched, so that `stdin_closed` never completes.
    let _unwatched = if watch_stdin {
        // A plain thread, not tokio's stdin: a blocking read cannot be cancelled, and the
        // runtime would wait for it on shutdown, while this thread simply ends with the
        // process.
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while matches!(std::io::stdin().read(&mut buf), Ok(n) if n > 0) {}
            let _ = closed.send(());
        });
        None
    } else {
        Some(closed)
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
        _ = stdin_closed => {}
    }
}
