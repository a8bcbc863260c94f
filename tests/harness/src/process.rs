//! One `chorus-server` child process: spawned on a port of its own, stopped, killed, frozen,
//! thawed and started again on the same port.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use crate::token::TokenSecret;
use crate::{Error, Result};

/// How long a server may take to answer `GET /healthz` after it is spawned.
const HEALTHY_WITHIN: Duration = Duration::from_secs(10);
/// How often `GET /healthz` is tried while waiting (the server gives no other signal).
const HEALTH_POLL: Duration = Duration::from_millis(20);
/// How long a stop waits for a graceful exit before it kills.
const STOP_WITHIN: Duration = Duration::from_secs(20);
/// Spawn attempts on fresh ports when a newly chosen port turns out to be taken.
const SPAWN_ATTEMPTS: usize = 3;

/// Where a server process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Running and answering.
    Running,
    /// Stopped with SIGSTOP: its sockets stay open but nothing is read or written.
    Frozen,
    /// Not running (stopped, killed, or exited by itself).
    Stopped,
}

/// A `chorus-server` the controller started.
#[derive(Debug)]
pub struct ServerProcess {
    /// The controller's id for it.
    pub id: u64,
    /// Its port on 127.0.0.1, kept across restarts.
    pub port: u16,
    /// The token secret it was started with.
    pub secret: String,
    binary: PathBuf,
    extra_args: Vec<String>,
    child: Option<Child>,
    frozen: bool,
    http: reqwest::Client,
}

impl ServerProcess {
    /// Spawn a server on a free port with a fresh token secret and `extra_args` after the
    /// harness's own flags, and wait until it is healthy.
    pub async fn spawn(
        id: u64,
        binary: PathBuf,
        extra_args: Vec<String>,
        http: reqwest::Client,
    ) -> Result<ServerProcess> {
        ServerProcess::spawn_with_secret(id, binary, random_hex(), extra_args, http).await
    }

    /// [`ServerProcess::spawn`] with a given token secret: instances that act as one (over
    /// a shared Redis) must accept each other's tokens.
    pub async fn spawn_with_secret(
        id: u64,
        binary: PathBuf,
        secret: String,
        extra_args: Vec<String>,
        http: reqwest::Client,
    ) -> Result<ServerProcess> {
        let mut last_error = None;
        for _ in 0..SPAWN_ATTEMPTS {
            let mut server = ServerProcess {
                id,
                port: free_port()?,
                secret: secret.clone(),
                binary: binary.clone(),
                extra_args: extra_args.clone(),
                child: None,
                frozen: false,
                http: http.clone(),
            };
            match server.start().await {
                Ok(()) => return Ok(server),
                // Another process may have taken the port between our probe and the
                // server's bind; anything else (a bad flag) fails the same way each time.
                Err(Error::Exited(status)) => last_error = Some(Error::Exited(status)),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `ws://127.0.0.1:PORT/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// Where the process is; notices a process that exited by itself.
    pub fn state(&mut self) -> RunState {
        if let Some(child) = &mut self.child
            && !matches!(child.try_wait(), Ok(None))
        {
            self.child = None;
            self.frozen = false;
        }
        match (&self.child, self.frozen) {
            (None, _) => RunState::Stopped,
            (Some(_), true) => RunState::Frozen,
            (Some(_), false) => RunState::Running,
        }
    }

    /// Start the server on its port and wait until `GET /healthz` answers.
    pub async fn start(&mut self) -> Result<()> {
        if self.state() != RunState::Stopped {
            return Err(Error::Conflict(format!("server {} is running", self.id)));
        }
        let log_filter = std::env::var("CHORUS_TEST_SERVER_LOG").unwrap_or_else(|_| "info".into());
        let mut child = Command::new(&self.binary)
            .args(["serve", "--dev", "--bind"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["--allowed-origin", "*", "--token-secret", &self.secret])
            .args(&self.extra_args)
            .env("RUST_LOG", log_filter)
            // The output goes to a log file, not a terminal.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("{}: {e}", self.binary.display()))
            })?;
        let prefix = format!("[server {} :{}]", self.id, self.port);
        if let Some(out) = child.stdout.take() {
            tokio::spawn(forward_lines(out, prefix.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward_lines(err, prefix));
        }
        self.child = Some(child);
        self.frozen = false;
        if let Err(e) = self.wait_healthy().await {
            self.kill().await?;
            return Err(e);
        }
        Ok(())
    }

    async fn wait_healthy(&mut self) -> Result<()> {
        let url = format!("{}/healthz", self.http_url());
        let deadline = tokio::time::Instant::now() + HEALTHY_WITHIN;
        loop {
            if let Some(child) = &mut self.child
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                return Err(Error::Exited(status));
            }
            let answer = self
                .http
                .get(&url)
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            // The port was free when it was chosen, but another process may have taken it
            // since and be the one answering (our child then exits, unable to bind, and the
            // next round sees it).
            if answer.is_ok_and(|r| r.status().is_success()) && self.answers_for_us().await {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Unhealthy(HEALTHY_WITHIN));
            }
            tokio::time::sleep(HEALTH_POLL).await;
        }
    }

    /// Whether the server on our port is ours: a dev token it signs (the harness always
    /// starts servers with `--dev`) verifies with our secret.
    async fn answers_for_us(&self) -> bool {
        let answer = self
            .http
            .post(format!("{}/api/dev/token", self.http_url()))
            .json(&serde_json::json!({ "user": "chorus-test-harness" }))
            .timeout(Duration::from_secs(1))
            .send()
            .await;
        let Ok(answer) = answer else {
            return false;
        };
        let Ok(body) = answer.json::<serde_json::Value>().await else {
            return false;
        };
        body["token"]
            .as_str()
            .is_some_and(|token| TokenSecret::new(&self.secret).verify(token).is_ok())
    }

    /// SIGTERM (after SIGCONT if frozen) and wait for the exit; SIGKILL if it takes longer
    /// than [`STOP_WITHIN`]. Stopping a stopped server does nothing.
    pub async fn stop(&mut self) -> Result<()> {
        if self.state() == RunState::Stopped {
            return Ok(());
        }
        if self.frozen {
            // A stopped process holds SIGTERM pending until it continues.
            self.signal("CONT").await?;
            self.frozen = false;
        }
        self.signal("TERM").await?;
        let child = self.child.as_mut().expect("running");
        match tokio::time::timeout(STOP_WITHIN, child.wait()).await {
            Ok(status) => {
                status?;
                self.child = None;
                Ok(())
            }
            Err(_) => {
                eprintln!("chorus-test-harness: server {} ignored SIGTERM", self.id);
                self.kill().await
            }
        }
    }

    /// SIGKILL and wait for the exit. Killing a stopped server does nothing.
    pub async fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        self.frozen = false;
        Ok(())
    }

    /// SIGSTOP: the process keeps its sockets but stops reading, writing and timing.
    pub async fn freeze(&mut self) -> Result<()> {
        match self.state() {
            RunState::Running => {
                self.signal("STOP").await?;
                self.frozen = true;
                Ok(())
            }
            RunState::Frozen => Ok(()),
            RunState::Stopped => Err(Error::Conflict(format!("server {} is stopped", self.id))),
        }
    }

    /// SIGCONT after [`ServerProcess::freeze`].
    pub async fn thaw(&mut self) -> Result<()> {
        match self.state() {
            RunState::Frozen => {
                self.signal("CONT").await?;
                self.frozen = false;
                Ok(())
            }
            RunState::Running => Ok(()),
            RunState::Stopped => Err(Error::Conflict(format!("server {} is stopped", self.id))),
        }
    }

    /// `GET /metrics`, parsed into sample name (with labels) → value.
    pub async fn metrics(&self) -> Result<serde_json::Map<String, serde_json::Value>> {
        let text = self
            .http
            .get(format!("{}/metrics", self.http_url()))
            .timeout(Duration::from_secs(5))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(parse_metrics(&text))
    }

    /// `GET /healthz`: the server's status and JSON (`{"status": "ok"}` when all is well).
    pub async fn health(&self) -> Result<(reqwest::StatusCode, serde_json::Value)> {
        let answer = self
            .http
            .get(format!("{}/healthz", self.http_url()))
            .timeout(Duration::from_secs(5))
            .send()
            .await?;
        let status = answer.status();
        Ok((status, answer.json().await?))
    }

    /// `POST /api/publish` with the server's secret; answers the server's status and JSON.
    pub async fn publish(
        &self,
        request: &serde_json::Value,
    ) -> Result<(reqwest::StatusCode, serde_json::Value)> {
        let answer = self
            .http
            .post(format!("{}/api/publish", self.http_url()))
            .bearer_auth(&self.secret)
            .json(request)
            .timeout(Duration::from_secs(5))
            .send()
            .await?;
        let status = answer.status();
        Ok((status, answer.json().await?))
    }

    /// Send a signal with the `kill` command, which keeps this crate free of `unsafe`.
    async fn signal(&self, name: &str) -> Result<()> {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .ok_or_else(|| Error::Conflict(format!("server {} is not running", self.id)))?;
        let status = Command::new("kill")
            .args(["-s", name, &pid.to_string()])
            .status()
            .await?;
        if !status.success() {
            return Err(Error::Io(std::io::Error::other(format!(
                "kill -s {name} {pid}: {status}"
            ))));
        }
        Ok(())
    }
}

/// Copy a child's output to our stderr, line by line, so it stays readable next to other
/// servers' output and never reaches our stdout (where the control URL is announced).
async fn forward_lines(stream: impl AsyncRead + Unpin, prefix: String) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("{prefix} {line}");
    }
}

/// A port on 127.0.0.1 that was free a moment ago. The process binds it itself, so a race
/// is possible; [`ServerProcess::spawn`] and [`crate::redis::RedisServer::start`] retry on
/// another port when the process cannot bind.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A directory of a test's own under the system temp dir (mode 0700), removed with
/// everything in it on drop: where a test's processes may write files.
#[derive(Debug)]
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    /// Create `<temp dir>/<prefix>-<random>`.
    pub(crate) fn new(prefix: &str) -> Result<TempDir> {
        use std::os::unix::fs::DirBuilderExt;
        let path = std::env::temp_dir().join(format!("{prefix}-{}", &random_hex()[..16]));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(TempDir(path))
    }

    /// Its path.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// 32 random bytes in hex: a fresh token secret.
pub fn random_hex() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Prometheus/OpenMetrics text → `{"name{labels}": value}`; comments and unparsable lines
/// are skipped.
fn parse_metrics(text: &str) -> serde_json::Map<String, serde_json::Value> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            let value: f64 = value.parse().ok()?;
            Some((name.trim().to_owned(), serde_json::json!(value)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text_becomes_a_map() {
        let map = parse_metrics(
            "# TYPE chorus_connections gauge\nchorus_connections 2\n\
             chorus_errors_total{code=\"rate_limited\"} 3\n# EOF\n",
        );
        assert_eq!(map["chorus_connections"], 2.0);
        assert_eq!(map["chorus_errors_total{code=\"rate_limited\"}"], 3.0);
        assert_eq!(map.len(), 2);
    }
}
