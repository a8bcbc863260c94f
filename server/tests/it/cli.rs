//! The `chorus-server` binary: `token` prints a verifiable JWT, `serve` refuses a bad
//! configuration with a clear message, and a dev server starts, serves and stops on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::{SECRET, WAIT};
use chorus_protocol::ServerMessage;
use chorus_server::auth::Auth;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_chorus-server");

/// The binary with `args` and an empty environment, so no `CHORUS_*` variable of the
/// machine running the tests leaks in.
fn chorus(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_clear()
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Run to completion; a process still running after [`WAIT`] (a server that should have
/// refused to start) is killed and the test fails.
fn run(mut command: Command) -> Output {
    let mut child = command.spawn().expect("spawn chorus-server");
    let deadline = Instant::now() + WAIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            kill(&mut child);
            panic!("chorus-server did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A file in the temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> TempFile {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "chorus-cli-test-{}-{nanos}-{name}",
            std::process::id()
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn token_prints_a_jwt_for_the_user_rooms_and_ttl() {
    let output = run(chorus(&[
        "token",
        "--user",
        "alice",
        "--token-secret",
        SECRET,
        "--rooms",
        "chat:*",
        "--ttl",
        "10m",
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let claims = Auth::new(SECRET)
        .verify(stdout.trim())
        .expect("the token verifies with the secret");
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.rooms, ["chat:*"]);
    assert!(!claims.admin);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now + 590..=now + 600).contains(&claims.exp),
        "exp {} is not ten minutes from now ({now})",
        claims.exp
    );
    assert!(
        Auth::new("some-other-secret-012345")
            .verify(stdout.trim())
            .is_err()
    );
}

#[test]
fn token_without_a_secret_fails_and_says_so() {
    let output = run(chorus(&["token", "--user", "alice"]));
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    assert!(
        stderr(&output).contains("token secret is required"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn serve_without_a_secret_fails_and_says_so() {
    let output = run(chorus(&["serve", "--bind", "127.0.0.1:0"]));
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("token secret is required"), "{message}");
    assert!(
        message.contains("--dev"),
        "the message names the way out: {message}"
    );
}

#[test]
fn a_config_file_with_an_unknown_key_is_rejected() {
    let file = TempFile::new(
        "unknown-key.toml",
        &format!("token_secret = \"{SECRET}\"\nmax_frames = 4096\n"),
    );
    let output = run(chorus(&[
        "serve",
        "--config",
        file.path(),
        "--bind",
        "127.0.0.1:0",
    ]));
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("unknown field") && message.contains("max_frames"),
        "{message}"
    );
}

#[test]
fn a_config_file_supplies_the_token_secret() {
    let file = TempFile::new("secret.toml", &format!("token_secret = \"{SECRET}\"\n"));
    let output = run(chorus(&[
        "token",
        "--user",
        "alice",
        "--config",
        file.path(),
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(Auth::new(SECRET).verify(stdout.trim()).is_ok());
}

/// A `serve` child, killed on drop if the test fails before it stops it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        kill(&mut self.0);
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_dev_server_serves_dev_tokens_and_stops_cleanly_on_sigterm() {
    let mut server = Server(
        chorus(&["serve", "--dev", "--bind", "127.0.0.1:0"])
            .spawn()
            .unwrap(),
    );
    // The port is the kernel's choice; the server logs it.
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

    let http = reqwest::Client::new();
    let health = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert!(health.status().is_success());
    let answer: serde_json::Value = http
        .post(format!("http://{addr}/api/dev/token"))
        .json(&serde_json::json!({ "user": "alice" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = answer["token"].as_str().expect("a token");

    // The token opens a connection, as alice.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token={token}"))
        .await
        .unwrap();
    let welcome = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Message::Binary(frame) = welcome else {
        panic!("expected a binary welcome, got {welcome:?}")
    };
    assert!(matches!(
        ServerMessage::decode(&frame, usize::MAX).unwrap(),
        ServerMessage::Welcome { user, .. } if user == "alice"
    ));

    let terminated = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(status.success(), "{status}");
}

#[test]
fn settings_come_from_the_environment_and_json_logs_are_json() {
    let mut command = chorus(&["serve"]);
    command
        .env("CHORUS_TOKEN_SECRET", SECRET)
        .env("CHORUS_BIND", "127.0.0.1:0")
        .env("CHORUS_LOG_FORMAT", "json");
    let mut server = Server(command.spawn().unwrap());
    let stdout = server.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        if let Some(Ok(line)) = BufReader::new(stdout).lines().next() {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(WAIT).expect("no log line");
    let record: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(record["level"], "INFO", "{record}");
    let address = record["fields"]["address"].as_str().expect("address field");
    assert!(address.starts_with("127.0.0.1:"), "{address}");
}
