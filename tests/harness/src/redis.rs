//! A `redis-server` of a test's own: started on a free port of 127.0.0.1, saving nothing,
//! and killed, restarted (empty, as after a crash) or stopped when the test says so.
//!
//! Tests never rely on a Redis already running: `scripts/setup.sh` installs `redis-server`,
//! and each test starts its own.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::process::free_port;
use crate::{Error, Result};

/// How long `redis-server` may take to answer after it is spawned.
const READY_WITHIN: Duration = Duration::from_secs(10);
/// Spawn attempts on fresh ports when a newly chosen port turns out to be taken.
const SPAWN_ATTEMPTS: usize = 3;

/// A running (or stopped) `redis-server` child process.
#[derive(Debug)]
pub struct RedisServer {
    /// Its port on 127.0.0.1, kept across restarts.
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Start `redis-server` (from `PATH`, or `CHORUS_REDIS_SERVER`) on a free port and wait
    /// until it answers (itself, not another Redis that took the port meanwhile: the answer's
    /// `process_id` is the child's, so `CHORUS_REDIS_SERVER` must be the server or `exec` it).
    pub async fn start() -> Result<RedisServer> {
        let mut last_error = None;
        for _ in 0..SPAWN_ATTEMPTS {
            let mut redis = RedisServer {
                port: free_port()?,
                child: None,
            };
            match redis.start_again().await {
                Ok(()) => return Ok(redis),
                // The port may have been taken between our probe and Redis's bind.
                Err(e @ Error::Exited(_)) => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Start again on the same port, empty (nothing is saved), after a [`RedisServer::kill`].
    pub async fn start_again(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Err(Error::Conflict("redis-server is running".into()));
        }
        let binary =
            std::env::var("CHORUS_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
        let child = Command::new(&binary)
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            // Nothing on disk: a restart starts empty, like a crash without persistence.
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(std::env::temp_dir())
            .args(["--protected-mode", "no", "--loglevel", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("{binary}: {e}")))?;
        self.child = Some(child);
        if let Err(e) = self.wait_ready().await {
            self.kill().await?;
            return Err(e);
        }
        Ok(())
    }

    /// SIGKILL and wait for the exit: what Redis held is gone.
    pub async fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// Kill, then start again on the same port, empty.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill().await?;
        self.start_again().await
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + READY_WITHIN;
        loop {
            if let Some(child) = &mut self.child
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                return Err(Error::Exited(status));
            }
            // The port was free when it was chosen, but another Redis (another test's) may
            // have taken it since and be the one answering; ours then exits, unable to bind.
            let pid = self.child.as_ref().and_then(Child::id);
            if pid.is_some() && answering_pid(self.port).await == pid {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Unhealthy(READY_WITHIN));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The process id of the Redis answering on `port` (from `INFO server`), if one answers.
async fn answering_pid(port: u16) -> Option<u32> {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(b"INFO server\r\n").await.ok()?;
        // A bulk string: `$<length>\r\n<text>\r\n`; read until the pid's line is complete.
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            answer.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&answer);
            if let Some((_, rest)) = text.split_once("\r\nprocess_id:")
                && let Some((pid, _)) = rest.split_once("\r\n")
            {
                return pid.trim().parse().ok();
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(1), attempt)
        .await
        .ok()
        .flatten()
}
