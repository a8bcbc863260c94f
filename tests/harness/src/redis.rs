//! A `redis-server` of a test's own, on a free port of 127.0.0.1, and a way to talk to any
//! Redis.
//!
//! - [`RedisServer::start`]: saving nothing; a restart starts empty, as after a crash.
//! - [`RedisServer::start_persistent`]: an RDB snapshot taken only on `SAVE`; a restart
//!   loads the last one, so the data goes back in time.
//! - [`RedisServer::start_replica_of`]: a replica of another one, which
//!   [`RedisServer::promote`] turns into a primary (a manual failover).
//! - [`command`] and [`Connection`]: any command, over RESP2, answered as a [`Reply`].
//!
//! Each server writes only in a private temp dir ([`RedisServer::data_dir`]), removed when
//! it is dropped, and is killed when it is dropped.
//!
//! Tests never rely on a Redis already running: `scripts/setup.sh` installs `redis-server`,
//! and each test starts its own.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::process::{TempDir, free_port};
use crate::{Error, Result};

/// How long `redis-server` may take to answer after it is spawned.
const READY_WITHIN: Duration = Duration::from_secs(10);
/// How long a replica may take to be in sync with its primary (a full sync of test data).
const SYNCED_WITHIN: Duration = Duration::from_secs(10);
/// How often a condition is checked while waiting for it.
pub(crate) const POLL: Duration = Duration::from_millis(20);
/// Spawn attempts on fresh ports when a newly chosen port turns out to be taken.
const SPAWN_ATTEMPTS: usize = 3;
/// The snapshot's file name in the server's dir.
const RDB_FILE: &str = "dump.rdb";

/// A running (or stopped) `redis-server` child process.
#[derive(Debug)]
pub struct RedisServer {
    /// Its port on 127.0.0.1, kept across restarts.
    pub port: u16,
    child: Option<Child>,
    /// Whether a start loads the last snapshot (else it deletes it and starts empty).
    persistent: bool,
    /// The primary's port while this is a replica.
    replica_of: Option<u16>,
    /// Removed on drop, once the process is gone.
    dir: TempDir,
}

impl RedisServer {
    /// Start `redis-server` (from `PATH`, or `CHORUS_REDIS_SERVER`) on a free port and wait
    /// until it answers (itself, not another Redis that took the port meanwhile: the answer's
    /// `process_id` is the child's, so `CHORUS_REDIS_SERVER` must be the server or `exec` it).
    ///
    /// It saves nothing by itself; a [`RedisServer::start_again`] starts empty even after a
    /// `SAVE`.
    pub async fn start() -> Result<RedisServer> {
        RedisServer::spawn(false, None).await
    }

    /// [`RedisServer::start`] with a snapshot that survives restarts: `SAVE` writes
    /// `dump.rdb` in its [`RedisServer::data_dir`] (nothing saves automatically: `--save ""`,
    /// no AOF), and [`RedisServer::start_again`] loads it. So a test can write, `SAVE`, write
    /// more, [`RedisServer::kill`] and start again to see the state of the `SAVE`.
    pub async fn start_persistent() -> Result<RedisServer> {
        RedisServer::spawn(true, None).await
    }

    /// Start a replica of `primary` (`--replicaof 127.0.0.1 <port>`), saving nothing by
    /// itself, and wait until `INFO replication` says `master_link_status:up` (the first
    /// sync is done). It then follows the primary asynchronously, with a lag:
    /// [`RedisServer::wait_replicated`] waits for it to catch up.
    pub async fn start_replica_of(primary: &RedisServer) -> Result<RedisServer> {
        let replica = RedisServer::spawn(false, Some(primary.port)).await?;
        replica
            .wait_until(SYNCED_WITHIN, "its link to the primary up", |info| {
                info_field(info, "master_link_status") == Some("up")
            })
            .await?;
        Ok(replica)
    }

    async fn spawn(persistent: bool, replica_of: Option<u16>) -> Result<RedisServer> {
        let dir = TempDir::new("chorus-redis")?;
        let mut redis = RedisServer {
            port: 0,
            child: None,
            persistent,
            replica_of,
            dir,
        };
        let mut last_error = None;
        for _ in 0..SPAWN_ATTEMPTS {
            redis.port = free_port()?;
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

    /// The private dir it runs in (`--dir`), where `SAVE` writes `dump.rdb`; removed on
    /// drop.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Send one command to it and read the reply: [`command`] on its port.
    pub async fn command(&self, args: &[impl AsRef<[u8]>]) -> Result<Reply> {
        command(self.port, args).await
    }

    /// `INFO replication`, as text (read fields with [`info_field`]).
    pub async fn replication(&self) -> Result<String> {
        self.command(&["INFO", "replication"]).await?.into_text()
    }

    /// Start again on the same port after a [`RedisServer::kill`]: empty, unless it was
    /// started with [`RedisServer::start_persistent`] (then from the last `SAVE`); a replica
    /// not promoted since starts as a replica of the same primary again (without waiting for
    /// the sync).
    pub async fn start_again(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Err(Error::Conflict("redis-server is running".into()));
        }
        if !self.persistent {
            // A `SAVE` sent by a test (or a replica's full sync) wrote one: start empty
            // regardless, like a crash without persistence.
            match std::fs::remove_file(self.dir.path().join(RDB_FILE)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        let (binary, mut command) = test_server(self.port, self.dir.path(), RDB_FILE);
        if let Some(primary) = self.replica_of {
            command.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
        }
        let child = command
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("{binary}: {e}")))?;
        self.child = Some(child);
        if let Err(e) = self.wait_ready().await {
            self.kill().await?;
            return Err(e);
        }
        Ok(())
    }

    /// SIGKILL and wait for the exit: what Redis held and had not saved is gone.
    pub async fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// Kill, then start again on the same port (see [`RedisServer::start_again`]).
    pub async fn restart(&mut self) -> Result<()> {
        self.kill().await?;
        self.start_again().await
    }

    /// Make a replica a primary (`REPLICAOF NO ONE`): a manual failover. It keeps what it
    /// had replicated, accepts writes, and a later restart starts it as a primary.
    pub async fn promote(&mut self) -> Result<()> {
        self.command(&["REPLICAOF", "NO", "ONE"]).await?.ok()?;
        self.replica_of = None;
        self.wait_until(READY_WITHIN, "role:master", |info| {
            info_field(info, "role") == Some("master")
        })
        .await
    }

    /// Wait until this replica has processed everything `primary` had written when this
    /// was called (its `master_repl_offset` reaches the primary's).
    pub async fn wait_replicated(&self, primary: &RedisServer) -> Result<()> {
        let target = repl_offset(&primary.replication().await?)?;
        self.wait_until(
            SYNCED_WITHIN,
            &format!("replicated up to offset {target}"),
            |info| {
                info_field(info, "master_link_status") == Some("up")
                    && repl_offset(info).is_ok_and(|offset| offset >= target)
            },
        )
        .await
    }

    /// Poll `INFO replication` until `done` holds for it.
    async fn wait_until(
        &self,
        within: Duration,
        what: &str,
        done: impl Fn(&str) -> bool,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        let mut last = String::new();
        loop {
            if let Ok(Ok(info)) = tokio::time::timeout(POLL * 50, self.replication()).await {
                if done(&info) {
                    return Ok(());
                }
                last = info;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Redis(format!(
                    "redis on port {} did not get {what} within {within:?}; INFO replication:\n{last}",
                    self.port
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let child = self.child.as_mut().expect("spawned");
        let ready = wait_ready(child, self.port).await;
        if let Err(Error::Exited(_)) = ready {
            self.child = None;
        }
        ready
    }
}

/// Wait until the Redis `child` was spawned as answers on `port`, with its data loaded.
pub(crate) async fn wait_ready(child: &mut Child, port: u16) -> Result<()> {
    let deadline = tokio::time::Instant::now() + READY_WITHIN;
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(Error::Exited(status));
        }
        // The port was free when it was chosen, but another Redis (another test's) may
        // have taken it since and be the one answering; ours then exits, unable to bind.
        let pid = child.id();
        if pid.is_some() && answering_pid(port).await == pid && loaded(port).await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Unhealthy(READY_WITHIN));
        }
        tokio::time::sleep(POLL).await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            kill_and_reap(child);
        }
    }
}

/// SIGKILL `child` and wait (blocking, a few milliseconds) until it is gone, so that it
/// writes nothing more in the dir removed next.
pub(crate) fn kill_and_reap(child: &mut Child) {
    let _ = child.start_kill();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `redis-server` from `PATH`, or `CHORUS_REDIS_SERVER`.
pub(crate) fn redis_server_binary() -> String {
    std::env::var("CHORUS_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

/// The command of a test `redis-server` on `port` of 127.0.0.1: snapshots only on `SAVE`,
/// as `dbfilename` in `dir`; no AOF; quick full syncs; `DEBUG` allowed; killed on drop.
/// Answers the binary's name too, for errors.
pub(crate) fn test_server(port: u16, dir: &Path, dbfilename: &str) -> (String, Command) {
    let binary = redis_server_binary();
    let mut command = Command::new(&binary);
    command
        .args(["--bind", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--dbfilename",
            dbfilename,
        ])
        .arg("--dir")
        .arg(dir)
        // A primary otherwise waits 5 s for more replicas before a full sync starts.
        .args(["--repl-diskless-sync-delay", "0"])
        // `DEBUG SLEEP` and the like, for tests (Redis 7 refuses them by default).
        .args(["--enable-debug-command", "local"])
        .args(["--protected-mode", "no", "--loglevel", "warning"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    (binary, command)
}

/// `master_repl_offset` from `INFO replication`.
fn repl_offset(info: &str) -> Result<i64> {
    info_field(info, "master_repl_offset")
        .and_then(|offset| offset.parse().ok())
        .ok_or_else(|| Error::Redis(format!("no master_repl_offset in:\n{info}")))
}

/// The process id of the Redis answering on `port` (from `INFO server`), if one answers.
async fn answering_pid(port: u16) -> Option<u32> {
    let info = tokio::time::timeout(Duration::from_secs(1), command(port, &["INFO", "server"]))
        .await
        .ok()?
        .ok()?
        .into_text()
        .ok()?;
    info_field(&info, "process_id")?.parse().ok()
}

/// Whether the Redis on `port` has loaded its snapshot (it answers `INFO` while loading,
/// and `-LOADING` to most else).
async fn loaded(port: u16) -> bool {
    let info = tokio::time::timeout(
        Duration::from_secs(1),
        command(port, &["INFO", "persistence"]),
    );
    match info.await {
        Ok(Ok(reply)) => reply
            .into_text()
            .is_ok_and(|info| info_field(&info, "loading") == Some("0")),
        _ => false,
    }
}

/// The value of `field` in the text of an `INFO` reply (`field:value` lines), e.g.
/// `info_field(&info, "master_link_status") == Some("up")`.
pub fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name == field).then_some(value.trim_end())
    })
}

/// Open a connection to the Redis on 127.0.0.1:`port`, send one command (each argument one
/// bulk string, so empty and binary arguments pass as they are) and read its reply.
///
/// Each call is a connection of its own: what holds for a connection (`WAIT` for the writes
/// made on it, `MULTI`, `ASKING`, `READONLY`, `SSUBSCRIBE`) needs a [`Connection`].
///
/// An error reply (`-ERR ...`, `-MOVED ...`) is a [`Reply::Error`], not an `Err`:
/// [`Reply::ok`] turns it into one. There is no timeout (`DEBUG SLEEP 5` answers after 5 s):
/// wrap the call in `tokio::time::timeout` where one is needed.
///
/// ```no_run
/// # async fn example(port: u16) -> chorus_test_harness::Result<()> {
/// use chorus_test_harness::redis::command;
/// command(port, &["SET", "a", "1"]).await?.ok()?;
/// let info = command(port, &["INFO", "replication"]).await?.into_text()?;
/// let subscribers = command(port, &["PUBSUB", "SHARDNUMSUB", "ch"]).await?;
/// # Ok(())
/// # }
/// ```
pub async fn command(port: u16, args: &[impl AsRef<[u8]>]) -> Result<Reply> {
    Connection::open(port).await?.command(args).await
}

/// One answer of Redis, in RESP2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A simple string: `+OK`.
    Status(String),
    /// An error: `-ERR ...`, `-MOVED 866 127.0.0.1:7000`, `-READONLY ...` (without the `-`).
    Error(String),
    /// An integer: `:1`.
    Int(i64),
    /// A bulk string: `$1\r\n1`.
    Bulk(Vec<u8>),
    /// An array: `*2\r\n...`.
    Array(Vec<Reply>),
    /// A null bulk string or a null array: `$-1`, `*-1`.
    Nil,
}

impl Reply {
    /// `Err` for an error reply, the reply itself otherwise.
    pub fn ok(self) -> Result<Reply> {
        match self {
            Reply::Error(message) => Err(Error::Redis(message)),
            reply => Ok(reply),
        }
    }

    /// The text of a status or (UTF-8) bulk string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Reply::Status(text) => Some(text),
            Reply::Bulk(bytes) => std::str::from_utf8(bytes).ok(),
            _ => None,
        }
    }

    /// The integer of an integer reply.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Reply::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The elements of an array.
    pub fn as_array(&self) -> Option<&[Reply]> {
        match self {
            Reply::Array(items) => Some(items),
            _ => None,
        }
    }

    /// Whether it is a null.
    pub fn is_nil(&self) -> bool {
        *self == Reply::Nil
    }

    /// The text of a status or bulk string, or an error saying what came instead.
    pub fn into_text(self) -> Result<String> {
        match self {
            Reply::Status(text) => Ok(text),
            Reply::Bulk(bytes) => {
                String::from_utf8(bytes).map_err(|e| Error::Redis(format!("not UTF-8: {e}")))
            }
            other => Err(Error::Redis(format!("expected a string, got {other:?}"))),
        }
    }
}

/// A connection to one Redis: commands and their replies in order, and replies no command
/// asked for (what a `SUBSCRIBE`d or `SSUBSCRIBE`d connection receives) with
/// [`Connection::read`].
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    /// Bytes read and not parsed yet.
    unread: Vec<u8>,
}

impl Connection {
    /// Connect to the Redis on 127.0.0.1:`port`.
    pub async fn open(port: u16) -> Result<Connection> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            unread: Vec::new(),
        })
    }

    /// Send a command and read its reply.
    pub async fn command(&mut self, args: &[impl AsRef<[u8]>]) -> Result<Reply> {
        self.send(args).await?;
        self.read().await
    }

    /// Send a command without reading its reply (several can be pipelined).
    pub async fn send(&mut self, args: &[impl AsRef<[u8]>]) -> Result<()> {
        self.stream.write_all(&encode(args)).await?;
        Ok(())
    }

    /// Read the next reply.
    pub async fn read(&mut self) -> Result<Reply> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some((reply, used)) = parse(&self.unread)? {
                self.unread.drain(..used);
                return Ok(reply);
            }
            let n = self.stream.read(&mut buf).await?;
            if n == 0 {
                return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            self.unread.extend_from_slice(&buf[..n]);
        }
    }
}

/// A command as a RESP array of bulk strings.
fn encode(args: &[impl AsRef<[u8]>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        let arg = arg.as_ref();
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The first reply in `buf` and the bytes it takes, or `None` if it is not complete yet.
fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>> {
    let malformed = |what: &str| {
        Error::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "malformed RESP reply ({what}): {:?}",
                String::from_utf8_lossy(buf)
            ),
        ))
    };
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let Some((&kind, line)) = buf[..end].split_first() else {
        return Err(malformed("empty line"));
    };
    let line = std::str::from_utf8(line).map_err(|_| malformed("line not UTF-8"))?;
    let after = end + 2;
    let number = || line.parse::<i64>().map_err(|_| malformed("bad number"));
    match kind {
        b'+' => Ok(Some((Reply::Status(line.to_owned()), after))),
        b'-' => Ok(Some((Reply::Error(line.to_owned()), after))),
        b':' => Ok(Some((Reply::Int(number()?), after))),
        b'$' => {
            let Ok(len) = usize::try_from(number()?) else {
                return Ok(Some((Reply::Nil, after)));
            };
            if buf.len() < after + len + 2 {
                return Ok(None);
            }
            if &buf[after + len..after + len + 2] != b"\r\n" {
                return Err(malformed("bulk string not ended by CRLF"));
            }
            let bytes = buf[after..after + len].to_vec();
            Ok(Some((Reply::Bulk(bytes), after + len + 2)))
        }
        b'*' => {
            let Ok(count) = usize::try_from(number()?) else {
                return Ok(Some((Reply::Nil, after)));
            };
            let mut items = Vec::with_capacity(count.min(1024));
            let mut at = after;
            for _ in 0..count {
                let Some((item, used)) = parse(&buf[at..])? else {
                    return Ok(None);
                };
                items.push(item);
                at += used;
            }
            Ok(Some((Reply::Array(items), at)))
        }
        _ => Err(malformed("unknown type")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_of_each_kind_parse() {
        let cases: [(&[u8], Reply); 7] = [
            (b"+OK\r\n", Reply::Status("OK".into())),
            (b"-ERR no\r\n", Reply::Error("ERR no".into())),
            (b":-42\r\n", Reply::Int(-42)),
            (b"$3\r\na\r\n\r\n", Reply::Bulk(b"a\r\n".to_vec())),
            (b"$-1\r\n", Reply::Nil),
            (b"*-1\r\n", Reply::Nil),
            (
                b"*3\r\n$2\r\nch\r\n:1\r\n*0\r\n",
                Reply::Array(vec![
                    Reply::Bulk(b"ch".to_vec()),
                    Reply::Int(1),
                    Reply::Array(vec![]),
                ]),
            ),
        ];
        for (bytes, reply) in cases {
            assert_eq!(
                parse(bytes).unwrap(),
                Some((reply, bytes.len())),
                "{bytes:?}"
            );
            // Every proper prefix is incomplete, not an error.
            for cut in 0..bytes.len() {
                assert_eq!(parse(&bytes[..cut]).unwrap(), None, "{:?}", &bytes[..cut]);
            }
        }
        assert!(parse(b"?what\r\n").is_err());
        assert!(parse(b"$1\r\nab\r\n").is_err());
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        assert_eq!(
            encode(&["MIGRATE", ""]),
            b"*2\r\n$7\r\nMIGRATE\r\n$0\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn info_fields_are_found_by_name() {
        let info = "# Replication\r\nrole:slave\r\nmaster_link_status:up\r\n";
        assert_eq!(info_field(info, "role"), Some("slave"));
        assert_eq!(info_field(info, "master_link_status"), Some("up"));
        assert_eq!(info_field(info, "link_status"), None);
    }
}
