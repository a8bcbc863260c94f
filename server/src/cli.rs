//! The `chorus-server` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::auth::Auth;
use crate::config::{HumanDuration, LogFormat, Settings};
use crate::{Config, Error, Result};

/// Chorus real-time messaging server.
#[derive(Debug, Parser)]
#[command(
    name = "chorus-server",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do; `serve` if omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `serve` options, when the subcommand is omitted.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
// Parsed once per process, so the size of the `Serve` variant costs nothing worth a `Box`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Print a signed token for a user.
    Token(TokenArgs),
}

/// Options of `chorus-server serve`.
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// TOML config file; flags and CHORUS_* variables override it.
    #[arg(long, env = "CHORUS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Development mode: a random secret unless one is given, POST /api/dev/token, and
    /// localhost origins allowed.
    #[arg(long, env = "CHORUS_DEV")]
    pub dev: bool,
    /// Every other setting.
    #[command(flatten)]
    pub settings: Settings,
}

impl ServeArgs {
    /// Merge flags and environment over the config file, apply defaults, validate.
    pub fn resolve(self) -> Result<Config> {
        let file = match &self.config {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        Config::resolve(self.settings.or(file), self.dev)
    }
}

/// Options of `chorus-server token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user name (the token's subject).
    #[arg(long)]
    pub user: String,
    /// How long the token is valid. Default: 1h.
    #[arg(long, default_value = "1h")]
    pub ttl: HumanDuration,
    /// Room patterns the user may join and publish to (`*` is a wildcard). Repeatable.
    /// Default: `*`.
    #[arg(long = "rooms", num_args = 1.., default_value = "*")]
    pub rooms: Vec<String>,
    /// Allow the token to use the HTTP publish API.
    #[arg(long)]
    pub admin: bool,
    /// The signing secret.
    #[arg(long, env = "CHORUS_TOKEN_SECRET")]
    pub token_secret: Option<String>,
    /// Read the secret from this config file if not given otherwise.
    #[arg(long, env = "CHORUS_CONFIG")]
    pub config: Option<PathBuf>,
}

impl TokenArgs {
    /// Sign the token.
    pub fn token(self) -> Result<String> {
        if let Err(e) = chorus_protocol::validate::user(&self.user) {
            return Err(Error::Config(format!("invalid user name: {e}")));
        }
        let secret = match (self.token_secret, &self.config) {
            (Some(secret), _) => secret,
            (None, Some(path)) => Settings::from_file(path)?
                .token_secret
                .ok_or_else(|| Error::Config(format!("{} sets no token_secret", path.display())))?,
            (None, None) => {
                return Err(Error::Config(
                    "a token secret is required: --token-secret or CHORUS_TOKEN_SECRET".into(),
                ));
            }
        };
        let ttl: Duration = self.ttl.0;
        Auth::new(&secret).issue(&self.user, ttl, self.rooms, self.admin)
    }
}

/// The whole `chorus-server` program: parse the command line, set up logging, run until
/// SIGINT or SIGTERM. The binary is this one call; test harnesses build their own binary
/// around it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Token(args) => args.token().map(|token| println!("{token}")),
        Command::Serve(args) => serve(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chorus-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> Result<()> {
    let config = args.resolve()?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // redis-rs's cluster client logs every failed reconnection as an error, several a
        // second while a Cluster is unreachable; the broker reports that state itself, once
        // (RUST_LOG=redis=debug brings them back).
        EnvFilter::new("info,redis::cluster_handling=off")
    });
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = listen(config.bind)?;
        let address = listener.local_addr()?;
        tracing::info!(%address, dev = config.dev, "chorus-server listening on http://{address}/");
        crate::run(listener, config, shutdown_signal()).await
    })
}

/// Connections the kernel holds for the server once accepting pauses (at
/// `--max-handshakes`), rather than tokio's default of 128; the kernel caps it at
/// `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 1024;

/// A listener on `address`, with [`LISTEN_BACKLOG`].
fn listen(address: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted server may bind while old connections linger.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
