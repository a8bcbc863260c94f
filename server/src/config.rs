//! Configuration: every setting comes from a flag, a `CHORUS_*` environment variable or the
//! TOML file given with `--config`, in that order of precedence, then a default.
//!
//! [`Settings`] is what flags, environment and file may set (all optional); [`Config`] is the
//! resolved, validated configuration the server runs with. Namespace policies
//! ([`NamespacePolicy`]) come from the file only.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chorus_protocol::{DEFAULT_MAX_FRAME, validate};
use serde::{Deserialize, Deserializer};

use crate::history::HistoryPolicy;
use crate::{Error, Result};

/// A duration written the human way: `250ms`, `25s`, `5m`, `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = humantime::DurationError;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        humantime::parse_duration(s).map(HumanDuration)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Declares [`Settings`] once for clap (flags and environment) and serde (the TOML file),
/// and the field-by-field merge, so the three sources cannot drift apart.
macro_rules! settings {
    ($( $(#[$doc:meta])* $field:ident : $ty:ty, $env:literal; )*) => {
        /// Settings of `chorus-server serve`, each optional: flags, `CHORUS_*` variables and
        /// the config file fill them, and [`Config::resolve`] applies the defaults.
        #[derive(Debug, Clone, Default, clap::Args, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Settings {
            $(
                $(#[$doc])*
                #[arg(long, env = $env)]
                #[serde(default)]
                pub $field: Option<$ty>,
            )*
            /// Namespace policies (config file only): `[namespaces.NAME]` tables, and
            /// `[namespaces.default]` for rooms without a configured namespace.
            #[arg(skip)]
            #[serde(default)]
            pub namespaces: HashMap<String, NamespacePolicy>,
        }

        impl Settings {
            /// Fill every field not set in `self` from `lower`.
            pub fn or(self, lower: Settings) -> Settings {
                let mut namespaces = lower.namespaces;
                namespaces.extend(self.namespaces);
                Settings {
                    $( $field: self.$field.or(lower.$field), )*
                    namespaces,
                }
            }
        }
    };
}

settings! {
    /// Address to listen on. Default: 127.0.0.1:8080.
    bind: SocketAddr, "CHORUS_BIND";
    /// Secret that signs tokens (HMAC-SHA256) and verifies them; also the bearer credential
    /// of the HTTP publish API. Required unless --dev, or unless --token-public-key or
    /// --jwks-url is given (then a random one: only the identity provider's tokens work).
    token_secret: String, "CHORUS_TOKEN_SECRET";
    /// A secret replaced by --token-secret: tokens it signed are still accepted (and it is
    /// still a publish API credential), but it signs nothing. For rotation; remove it once
    /// its tokens have expired. Repeatable; in the environment, comma-separated.
    #[arg(value_delimiter = ',')]
    token_previous_secret: Vec<String>, "CHORUS_TOKEN_PREVIOUS_SECRET";
    /// PEM file holding an identity provider's public key (RSA, EC P-256/P-384 or Ed25519):
    /// tokens signed with it (RS*, PS*, ES256/ES384, EdDSA) are accepted. Set
    /// --token-audience too. Repeatable; in the environment, comma-separated.
    #[arg(value_delimiter = ',')]
    token_public_key: Vec<PathBuf>, "CHORUS_TOKEN_PUBLIC_KEY";
    /// URL of an identity provider's JWKS, e.g.
    /// https://TENANT.auth0.com/.well-known/jwks.json: fetched at start (the server does not
    /// start without it), refreshed as its Cache-Control max-age says (1m to 1h; 10m
    /// without one), and at most every 10s when a token names a key id it does not hold.
    /// HTTPS only (plain HTTP for loopback addresses). Set --token-audience too.
    /// Default: none.
    jwks_url: String, "CHORUS_JWKS_URL";
    /// The `iss` that tokens verified with a public key must carry, e.g.
    /// https://TENANT.auth0.com/. Default: not checked.
    token_issuer: String, "CHORUS_TOKEN_ISSUER";
    /// An `aud` that tokens verified with a public key must carry (the API identifier of
    /// the provider). Default: not checked, with a warning at start when public keys are
    /// configured: any token the provider signs for any of its applications would do.
    token_audience: String, "CHORUS_TOKEN_AUDIENCE";
    /// Claim of a token verified with a public key that holds its room patterns (an array
    /// of strings, or one string of space-separated patterns), e.g.
    /// https://chat.example.com/rooms. Tokens signed with the secret always use `rooms`.
    /// Default: rooms.
    token_rooms_claim: String, "CHORUS_TOKEN_ROOMS_CLAIM";
    /// Claim of a token verified with a public key that, when `true`, makes it an admin
    /// token (HTTP publish API). Tokens signed with the secret always use `admin`.
    /// Default: admin.
    token_admin_claim: String, "CHORUS_TOKEN_ADMIN_CLAIM";
    /// Clock skew allowed when checking a token's `exp` and `nbf`, in whole seconds; a
    /// connection whose token expires is closed this much after its `exp`. At most 5m.
    /// Default: 5s.
    token_leeway: HumanDuration, "CHORUS_TOKEN_LEEWAY";
    /// Origins allowed to open a WebSocket, e.g. https://chat.example.com; `*` allows any.
    /// Default: the server's own origin (plus localhost with --dev). Repeatable; in the
    /// environment, comma-separated.
    #[arg(value_delimiter = ',')]
    allowed_origin: Vec<String>, "CHORUS_ALLOWED_ORIGIN";
    /// Log format. Default: text.
    #[arg(value_enum)]
    log_format: LogFormat, "CHORUS_LOG_FORMAT";
    /// How often the server pings each connection (and tells clients to ping). Default: 25s.
    heartbeat_interval: HumanDuration, "CHORUS_HEARTBEAT_INTERVAL";
    /// A connection silent this long is closed (code 4000). Default: 60s.
    heartbeat_timeout: HumanDuration, "CHORUS_HEARTBEAT_TIMEOUT";
    /// Largest frame accepted, in bytes; bodies may use this minus 1024. Default: 65536.
    max_frame: usize, "CHORUS_MAX_FRAME";
    /// Most rooms one connection may be in. Default: 64.
    max_rooms_per_connection: usize, "CHORUS_MAX_ROOMS_PER_CONNECTION";
    /// Most connections on this server. Default: 100000.
    max_connections: usize, "CHORUS_MAX_CONNECTIONS";
    /// Most connections of one user on this server. Default: 32.
    max_connections_per_user: usize, "CHORUS_MAX_CONNECTIONS_PER_USER";
    /// Most frames waiting to be sent to one connection before it is dropped as a slow
    /// consumer. Default: 1024.
    queue_max_messages: usize, "CHORUS_QUEUE_MAX_MESSAGES";
    /// Most bytes waiting to be sent to one connection; a join's replay streams out within
    /// it as the socket takes it. Default: 4194304 (4 MiB).
    queue_max_bytes: usize, "CHORUS_QUEUE_MAX_BYTES";
    /// A write to a socket that takes longer than this drops it as a slow consumer.
    /// Default: 10s.
    write_timeout: HumanDuration, "CHORUS_WRITE_TIMEOUT";
    /// Publishes per second per connection, sustained. Default: 50.
    publish_rate: u32, "CHORUS_PUBLISH_RATE";
    /// Publishes per connection in a burst. Default: 100.
    publish_burst: u32, "CHORUS_PUBLISH_BURST";
    /// Typing events per second per connection, sustained. Default: 5.
    typing_rate: u32, "CHORUS_TYPING_RATE";
    /// Typing events per connection in a burst. Default: 10.
    typing_burst: u32, "CHORUS_TYPING_BURST";
    /// Joins per second per connection, sustained (a Leave is never refused: each of the
    /// room's `MemberLeft` follows one of its `MemberJoined`, so this bounds both). An app
    /// switching rooms joins a few a second at most; a join/leave loop that makes a whole
    /// room hear it come and go is held to this. Default: 10.
    membership_rate: u32, "CHORUS_MEMBERSHIP_RATE";
    /// Joins per connection in a burst. Default: `--max-rooms-per-connection` (64): a
    /// client that reconnects rejoins all its rooms at once, and must not be refused.
    membership_burst: u32, "CHORUS_MEMBERSHIP_BURST";
    /// Rejected requests (over a rate, or undecodable) tolerated in a burst before the
    /// connection is closed for abuse (code 4003); they are forgiven at one per second.
    /// Default: 30.
    abuse_burst: u32, "CHORUS_ABUSE_BURST";
    /// The server relays at most one "typing started" per user and room in this window.
    /// Default: 1s.
    typing_throttle: HumanDuration, "CHORUS_TYPING_THROTTLE";
    /// A typing state not refreshed within this time expires. Default: 5s.
    typing_ttl: HumanDuration, "CHORUS_TYPING_TTL";
    /// How long shutdown waits for queues to drain. Default: 10s.
    shutdown_timeout: HumanDuration, "CHORUS_SHUTDOWN_TIMEOUT";
    /// A new connection must send its first request's headers within this time of being
    /// accepted, and a keep-alive connection each later request's within this time of its
    /// first byte, or it is closed. Default: 10s.
    handshake_timeout: HumanDuration, "CHORUS_HANDSHAKE_TIMEOUT";
    /// A plain-HTTP keep-alive connection with no request in flight is closed after this
    /// long (an upgraded WebSocket has its heartbeat instead). Default: 60s.
    idle_timeout: HumanDuration, "CHORUS_IDLE_TIMEOUT";
    /// Most HTTP connections waiting for a request at once: new ones before their first
    /// request's headers are in, and keep-alive ones between requests. At the bound the
    /// server stops accepting (new connections wait in the listen backlog) and closes idle
    /// keep-alive connections to make room. Default: 1024.
    max_handshakes: usize, "CHORUS_MAX_HANDSHAKES";
    /// How long a publish's (user, id) is remembered: a resend within it is answered with
    /// the original ack instead of publishing twice. Default: 2m.
    dedupe_window: HumanDuration, "CHORUS_DEDUPE_WINDOW";
    /// Most messages in one history page; a request for more gets this many. Default: 100.
    history_page_max: usize, "CHORUS_HISTORY_PAGE_MAX";
    /// History requests per second per connection, sustained. Default: 10.
    history_per_second: u32, "CHORUS_HISTORY_PER_SECOND";
    /// History requests per connection in a burst. Default: 20.
    history_burst: u32, "CHORUS_HISTORY_BURST";
    /// How often the server forgets idle room histories: no member here, every message past
    /// the history ttl, every publish id past the dedupe window. The room's next use starts
    /// a new epoch. Default: 30s.
    history_sweep_interval: HumanDuration, "CHORUS_HISTORY_SWEEP_INTERVAL";
    /// Share rooms, presence, history and deduplication with every other instance using
    /// this Redis (7.0 or later), e.g. redis://redis.internal:6379/0. Default: none, this
    /// process only.
    redis_url: String, "CHORUS_REDIS_URL";
    /// The Redis is a Redis Cluster (7.0 or later): --redis-url lists seed nodes,
    /// comma-separated (e.g. redis://10.0.0.1:6379,redis://10.0.0.2:6379); messages travel
    /// sharded pub/sub (SPUBLISH), each instance subscribing on the shard of each room it
    /// serves. Default: false.
    #[arg(num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    redis_cluster: bool, "CHORUS_REDIS_CLUSTER";
    /// Acknowledge a publish only once this many replicas of the room's Redis primary have
    /// it (Redis WAIT), so a failover cannot lose it; a publish they do not confirm within
    /// --redis-wait-timeout is answered 503 `unavailable` (it may still have been delivered:
    /// a resend with the same id is deduplicated). Default: 0, acknowledge at once.
    redis_wait_replicas: u32, "CHORUS_REDIS_WAIT_REPLICAS";
    /// How long a publish waits for --redis-wait-replicas. Default: 1s.
    redis_wait_timeout: HumanDuration, "CHORUS_REDIS_WAIT_TIMEOUT";
    /// Multiplexed Redis connections for commands (subscriptions use one more). Default: 4.
    redis_pool_size: usize, "CHORUS_REDIS_POOL_SIZE";
    /// Prefix of every Redis key and channel, so deployments can share one Redis.
    /// Default: chorus.
    redis_prefix: String, "CHORUS_REDIS_PREFIX";
    /// With Redis: an instance that stops refreshing its members' presence (it crashed, or
    /// lost Redis) has them removed after this long; refreshed every third of it.
    /// Default: 30s.
    presence_ttl: HumanDuration, "CHORUS_PRESENCE_TTL";
    /// Directory of static files served at / (the demo page). Default: none.
    static_dir: PathBuf, "CHORUS_STATIC_DIR";
    /// Directory of the built npm package, served at /pkg/. Default: none.
    pkg_dir: PathBuf, "CHORUS_PKG_DIR";
}

impl Settings {
    /// Read settings from a TOML file.
    pub fn from_file(path: &Path) -> Result<Settings> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigFile {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }
}

/// Policy for the rooms of one namespace (the part of a room name before the first `:`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NamespacePolicy {
    /// Whether clients may publish. When false, only the HTTP publish API can. Default: true.
    pub client_publish: bool,
    /// Whether members see who is present. Default: true.
    pub presence: bool,
    /// Whether typing indicators are relayed. Default: true.
    pub typing: bool,
    /// Most members (users) in one room; 0 means no limit. Default: 0.
    pub max_members: usize,
    /// Messages kept per room for resume and history. Default: 1000.
    pub history_size: usize,
    /// How long messages are kept. Default: 5m.
    #[serde(deserialize_with = "duration_from_str")]
    pub history_ttl: Duration,
}

fn duration_from_str<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
    HumanDuration::deserialize(d).map(|h| h.0)
}

impl Default for NamespacePolicy {
    fn default() -> Self {
        NamespacePolicy {
            client_publish: true,
            presence: true,
            typing: true,
            max_members: 0,
            history_size: 1000,
            history_ttl: Duration::from_secs(300),
        }
    }
}

/// The resolved configuration the server runs with. Construct it with [`Config::resolve`],
/// or start from [`Config::default`] in tests and adjust fields.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the binary listens on (the library takes a bound listener instead).
    pub bind: SocketAddr,
    /// Secret that signs and verifies tokens.
    pub token_secret: String,
    /// Earlier secrets, still accepted for verification (rotation), never used to sign.
    pub token_previous_secrets: Vec<String>,
    /// PEM files of identity providers' public keys.
    pub token_public_keys: Vec<PathBuf>,
    /// An identity provider's JWKS.
    pub jwks_url: Option<String>,
    /// Required `iss` of tokens verified with a public key.
    pub token_issuer: Option<String>,
    /// Required `aud` of tokens verified with a public key.
    pub token_audience: Option<String>,
    /// Claim holding the room patterns of tokens verified with a public key.
    pub token_rooms_claim: String,
    /// Claim making a token verified with a public key an admin token.
    pub token_admin_claim: String,
    /// Clock skew allowed on `exp` and `nbf`.
    pub token_leeway: Duration,
    /// Development mode: enables `POST /api/dev/token` and allows localhost origins.
    pub dev: bool,
    /// Allowed browser origins; empty means the server's own origin only. `*` allows any.
    pub allowed_origins: Vec<String>,
    /// Log format (used by the binary).
    pub log_format: LogFormat,
    /// Server ping interval; also the client's.
    pub heartbeat_interval: Duration,
    /// Silence after which a connection is closed.
    pub heartbeat_timeout: Duration,
    /// Largest frame accepted.
    pub max_frame: usize,
    /// Most rooms per connection.
    pub max_rooms_per_connection: usize,
    /// Most connections on this server.
    pub max_connections: usize,
    /// Most connections per user.
    pub max_connections_per_user: usize,
    /// Outbound queue bound, in frames.
    pub queue_max_messages: usize,
    /// Outbound queue bound, in bytes.
    pub queue_max_bytes: usize,
    /// Longest a single socket write may take.
    pub write_timeout: Duration,
    /// Publish token bucket: sustained rate per second.
    pub publish_rate: u32,
    /// Publish token bucket: burst.
    pub publish_burst: u32,
    /// Typing token bucket: sustained rate per second.
    pub typing_rate: u32,
    /// Typing token bucket: burst.
    pub typing_burst: u32,
    /// Join token bucket: sustained rate per second.
    pub membership_rate: u32,
    /// Join token bucket: burst.
    pub membership_burst: u32,
    /// Rejections tolerated in a burst before an abuse disconnect.
    pub abuse_burst: u32,
    /// Typing relay throttle per user and room.
    pub typing_throttle: Duration,
    /// Typing state expiry.
    pub typing_ttl: Duration,
    /// Deadline for draining queues at shutdown.
    pub shutdown_timeout: Duration,
    /// Longest wait for a request's headers: from accept for the first request, from its
    /// first byte for a later one on a keep-alive connection.
    pub handshake_timeout: Duration,
    /// Longest a plain-HTTP keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Most HTTP connections waiting for a request at once.
    pub max_handshakes: usize,
    /// How long publish ids are remembered for deduplication.
    pub dedupe_window: Duration,
    /// Most messages in one history page.
    pub history_page_max: usize,
    /// History token bucket: sustained rate per second.
    pub history_per_second: u32,
    /// History token bucket: burst.
    pub history_burst: u32,
    /// Interval between sweeps of idle room histories.
    pub history_sweep_interval: Duration,
    /// The Redis shared by every instance; `None` keeps everything in this process.
    pub redis_url: Option<String>,
    /// `redis_url` lists the seed nodes of a Redis Cluster.
    pub redis_cluster: bool,
    /// Replicas that must have a publish before it is acknowledged (0: none).
    pub redis_wait_replicas: u32,
    /// How long a publish waits for them.
    pub redis_wait_timeout: Duration,
    /// Multiplexed Redis connections for commands.
    pub redis_pool_size: usize,
    /// Prefix of Redis keys and channels.
    pub redis_prefix: String,
    /// How long a member's presence outlives its instance's last refresh (Redis only).
    pub presence_ttl: Duration,
    /// Static files served at `/`.
    pub static_dir: Option<PathBuf>,
    /// The npm package served at `/pkg/`.
    pub pkg_dir: Option<PathBuf>,
    /// Namespace policies by name; rooms without a namespace, or with one not listed, use
    /// `default_namespace`.
    pub namespaces: HashMap<String, NamespacePolicy>,
    /// Policy for rooms whose namespace is not configured.
    pub default_namespace: NamespacePolicy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token_secret: String::new(),
            token_previous_secrets: Vec::new(),
            token_public_keys: Vec::new(),
            jwks_url: None,
            token_issuer: None,
            token_audience: None,
            token_rooms_claim: "rooms".to_owned(),
            token_admin_claim: "admin".to_owned(),
            token_leeway: Duration::from_secs(5),
            dev: false,
            allowed_origins: Vec::new(),
            log_format: LogFormat::Text,
            heartbeat_interval: Duration::from_secs(25),
            heartbeat_timeout: Duration::from_secs(60),
            max_frame: DEFAULT_MAX_FRAME,
            max_rooms_per_connection: 64,
            max_connections: 100_000,
            max_connections_per_user: 32,
            queue_max_messages: 1024,
            queue_max_bytes: 4 * 1024 * 1024,
            write_timeout: Duration::from_secs(10),
            publish_rate: 50,
            publish_burst: 100,
            typing_rate: 5,
            typing_burst: 10,
            membership_rate: 10,
            membership_burst: 64,
            abuse_burst: 30,
            typing_throttle: Duration::from_secs(1),
            typing_ttl: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_handshakes: 1024,
            dedupe_window: Duration::from_secs(120),
            history_page_max: 100,
            history_per_second: 10,
            history_burst: 20,
            history_sweep_interval: Duration::from_secs(30),
            redis_url: None,
            redis_cluster: false,
            redis_wait_replicas: 0,
            redis_wait_timeout: Duration::from_secs(1),
            redis_pool_size: 4,
            redis_prefix: "chorus".to_owned(),
            presence_ttl: Duration::from_secs(30),
            static_dir: None,
            pkg_dir: None,
            namespaces: HashMap::new(),
            default_namespace: NamespacePolicy::default(),
        }
    }
}

impl Config {
    /// Apply defaults to `settings` and check the result. With `dev` and no secret, a random
    /// secret is generated.
    pub fn resolve(settings: Settings, dev: bool) -> Result<Config> {
        let d = Config::default();
        let mut namespaces = settings.namespaces;
        let default_namespace = namespaces.remove("default").unwrap_or_default();
        // An empty CHORUS_* variable means none, as an unset one does.
        let set = |v: Option<String>| v.filter(|v| !v.is_empty());
        let jwks_url = set(settings.jwks_url);
        let token_public_keys = settings.token_public_key.unwrap_or_default();
        let public_keys = jwks_url.is_some() || !token_public_keys.is_empty();
        let token_secret = match settings.token_secret {
            Some(secret) => secret,
            // With public keys, a secret nobody knows: only the provider's tokens verify.
            None if dev || public_keys => random_secret(),
            None => {
                return Err(Error::Config(
                    "a token secret is required: --token-secret or CHORUS_TOKEN_SECRET \
                     (or --dev for a random one, or an identity provider's keys with \
                     --token-public-key or --jwks-url)"
                        .into(),
                ));
            }
        };
        let dur = |v: Option<HumanDuration>, default: Duration| v.map_or(default, |h| h.0);
        let config = Config {
            bind: settings.bind.unwrap_or(d.bind),
            token_secret,
            token_previous_secrets: settings.token_previous_secret.unwrap_or_default(),
            token_public_keys,
            jwks_url,
            token_issuer: set(settings.token_issuer),
            token_audience: set(settings.token_audience),
            token_rooms_claim: settings.token_rooms_claim.unwrap_or(d.token_rooms_claim),
            token_admin_claim: settings.token_admin_claim.unwrap_or(d.token_admin_claim),
            token_leeway: dur(settings.token_leeway, d.token_leeway),
            dev,
            allowed_origins: settings.allowed_origin.unwrap_or_default(),
            log_format: settings.log_format.unwrap_or_default(),
            heartbeat_interval: dur(settings.heartbeat_interval, d.heartbeat_interval),
            heartbeat_timeout: dur(settings.heartbeat_timeout, d.heartbeat_timeout),
            max_frame: settings.max_frame.unwrap_or(d.max_frame),
            max_rooms_per_connection: settings
                .max_rooms_per_connection
                .unwrap_or(d.max_rooms_per_connection),
            max_connections: settings.max_connections.unwrap_or(d.max_connections),
            max_connections_per_user: settings
                .max_connections_per_user
                .unwrap_or(d.max_connections_per_user),
            queue_max_messages: settings.queue_max_messages.unwrap_or(d.queue_max_messages),
            queue_max_bytes: settings.queue_max_bytes.unwrap_or(d.queue_max_bytes),
            write_timeout: dur(settings.write_timeout, d.write_timeout),
            publish_rate: settings.publish_rate.unwrap_or(d.publish_rate),
            publish_burst: settings.publish_burst.unwrap_or(d.publish_burst),
            typing_rate: settings.typing_rate.unwrap_or(d.typing_rate),
            typing_burst: settings.typing_burst.unwrap_or(d.typing_burst),
            membership_rate: settings.membership_rate.unwrap_or(d.membership_rate),
            membership_burst: settings.membership_burst.unwrap_or_else(|| {
                settings
                    .max_rooms_per_connection
                    .map_or(d.membership_burst, |rooms| {
                        u32::try_from(rooms).unwrap_or(u32::MAX)
                    })
            }),
            abuse_burst: settings.abuse_burst.unwrap_or(d.abuse_burst),
            typing_throttle: dur(settings.typing_throttle, d.typing_throttle),
            typing_ttl: dur(settings.typing_ttl, d.typing_ttl),
            shutdown_timeout: dur(settings.shutdown_timeout, d.shutdown_timeout),
            handshake_timeout: dur(settings.handshake_timeout, d.handshake_timeout),
            idle_timeout: dur(settings.idle_timeout, d.idle_timeout),
            max_handshakes: settings.max_handshakes.unwrap_or(d.max_handshakes),
            dedupe_window: dur(settings.dedupe_window, d.dedupe_window),
            history_page_max: settings.history_page_max.unwrap_or(d.history_page_max),
            history_per_second: settings.history_per_second.unwrap_or(d.history_per_second),
            history_burst: settings.history_burst.unwrap_or(d.history_burst),
            history_sweep_interval: dur(settings.history_sweep_interval, d.history_sweep_interval),
            // An empty CHORUS_REDIS_URL means none, as an unset one does.
            redis_url: settings.redis_url.filter(|url| !url.is_empty()),
            redis_cluster: settings.redis_cluster.unwrap_or(d.redis_cluster),
            redis_wait_replicas: settings
                .redis_wait_replicas
                .unwrap_or(d.redis_wait_replicas),
            redis_wait_timeout: dur(settings.redis_wait_timeout, d.redis_wait_timeout),
            redis_pool_size: settings.redis_pool_size.unwrap_or(d.redis_pool_size),
            redis_prefix: settings.redis_prefix.unwrap_or(d.redis_prefix),
            presence_ttl: dur(settings.presence_ttl, d.presence_ttl),
            static_dir: settings.static_dir,
            pkg_dir: settings.pkg_dir,
            namespaces,
            default_namespace,
        };
        config.validate()?;
        Ok(config)
    }

    /// The Redis URLs in `url`: the seed nodes of a Cluster, comma-separated, or one Redis.
    pub fn redis_nodes<'a>(&self, url: &'a str) -> Vec<&'a str> {
        if self.redis_cluster {
            url.split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .collect()
        } else {
            vec![url]
        }
    }

    /// Check that the settings make sense together.
    pub fn validate(&self) -> Result<()> {
        let fail = |msg: &str| Err(Error::Config(msg.to_owned()));
        if self.token_secret.len() < 16 {
            return fail("the token secret must be at least 16 bytes");
        }
        if self.token_previous_secrets.iter().any(|s| s.len() < 16) {
            return fail("each previous token secret must be at least 16 bytes");
        }
        if let Some(url) = &self.jwks_url {
            crate::auth::check_jwks_url(url)
                .map_err(|e| Error::Config(format!("jwks_url: {e}")))?;
        }
        if self.token_rooms_claim.is_empty() || self.token_admin_claim.is_empty() {
            return fail("token_rooms_claim and token_admin_claim must not be empty");
        }
        if self.token_leeway > Duration::from_secs(300) {
            return fail("token_leeway must be at most 5m");
        }
        if self.max_frame < 2 * chorus_protocol::FRAME_OVERHEAD {
            return fail("max_frame must be at least 2048 bytes");
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_timeout <= self.heartbeat_interval {
            return fail("heartbeat_timeout must be longer than a non-zero heartbeat_interval");
        }
        let positive = [
            ("max_rooms_per_connection", self.max_rooms_per_connection),
            ("max_connections", self.max_connections),
            ("max_connections_per_user", self.max_connections_per_user),
            ("queue_max_messages", self.queue_max_messages),
            ("publish_rate", self.publish_rate as usize),
            ("publish_burst", self.publish_burst as usize),
            ("typing_rate", self.typing_rate as usize),
            ("typing_burst", self.typing_burst as usize),
            ("membership_rate", self.membership_rate as usize),
            ("membership_burst", self.membership_burst as usize),
            ("abuse_burst", self.abuse_burst as usize),
            ("history_page_max", self.history_page_max),
            ("history_per_second", self.history_per_second as usize),
            ("history_burst", self.history_burst as usize),
            ("redis_pool_size", self.redis_pool_size),
            ("max_handshakes", self.max_handshakes),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(Error::Config(format!("{name} must be greater than 0")));
        }
        if self.queue_max_bytes < self.max_frame {
            return fail("queue_max_bytes must be at least max_frame");
        }
        if self.typing_ttl.is_zero() {
            return fail("typing_ttl must be greater than 0");
        }
        if self.history_sweep_interval.is_zero() {
            return fail("history_sweep_interval must be greater than 0");
        }
        if self.handshake_timeout.is_zero() || self.idle_timeout.is_zero() {
            return fail("handshake_timeout and idle_timeout must be greater than 0");
        }
        if self.max_handshakes > tokio::sync::Semaphore::MAX_PERMITS {
            return fail("max_handshakes is too large");
        }
        if self.presence_ttl < Duration::from_millis(30) {
            return fail("presence_ttl must be at least 30ms");
        }
        // The prefix sits outside the `{room}` hash tag of every key; a brace in it would
        // become the tag and put every room in one Redis Cluster slot.
        if self.redis_prefix.is_empty() || self.redis_prefix.contains(['{', '}']) {
            return fail("redis_prefix must be non-empty and contain no braces");
        }
        // Parsed here, so a bad URL fails at startup; an unreachable Redis does not.
        if let Some(url) = &self.redis_url {
            if self.redis_nodes(url).is_empty() {
                return fail("redis_url lists no Redis Cluster node");
            }
            for node in self.redis_nodes(url) {
                if let Err(e) = redis::Client::open(node) {
                    return Err(Error::Config(format!("invalid redis_url: {e}")));
                }
            }
        }
        if self.redis_wait_replicas > 0 && self.redis_wait_timeout.is_zero() {
            return fail("redis_wait_timeout must be greater than 0");
        }
        for name in self.namespaces.keys() {
            if validate::room(name).is_err() || name.contains(':') {
                return Err(Error::Config(format!("invalid namespace name {name:?}")));
            }
        }
        Ok(())
    }

    /// The policy for a room, by its namespace.
    pub fn policy(&self, room: &str) -> &NamespacePolicy {
        validate::namespace(room)
            .and_then(|ns| self.namespaces.get(ns))
            .unwrap_or(&self.default_namespace)
    }

    /// What a room's history keeps, by its namespace.
    pub fn history_policy(&self, room: &str) -> HistoryPolicy {
        let policy = self.policy(room);
        HistoryPolicy {
            size: policy.history_size,
            ttl: policy.history_ttl,
            dedupe_window: self.dedupe_window,
        }
    }

    /// The largest publish body.
    pub fn max_body(&self) -> usize {
        validate::max_body(self.max_frame)
    }
}

fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_file_overrides_defaults() {
        let file: Settings = toml::from_str(
            r#"
            token_secret = "file-secret-0123456789"
            max_frame = 4096
            heartbeat_interval = "5s"
            history_page_max = 25
            history_sweep_interval = "2s"
            redis_url = "redis://127.0.0.1:6379/2"
            redis_prefix = "chat-eu"
            presence_ttl = "12s"
            [namespaces.news]
            client_publish = false
            history_ttl = "1m"
            [namespaces.default]
            typing = false
            "#,
        )
        .unwrap();
        let flags = Settings {
            max_frame: Some(8192),
            ..Settings::default()
        };
        let config = Config::resolve(flags.or(file), false).unwrap();
        assert_eq!(config.max_frame, 8192);
        assert_eq!(config.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(config.history_page_max, 25);
        assert_eq!(config.history_sweep_interval, Duration::from_secs(2));
        assert_eq!(
            (config.history_per_second, config.history_burst),
            (10, 20),
            "defaults"
        );
        assert_eq!(config.token_secret, "file-secret-0123456789");
        assert_eq!(
            config.redis_url.as_deref(),
            Some("redis://127.0.0.1:6379/2")
        );
        assert_eq!(config.redis_prefix, "chat-eu");
        assert_eq!(config.presence_ttl, Duration::from_secs(12));
        assert_eq!(config.redis_pool_size, 4, "default");
        assert!(!config.policy("news:tech").client_publish);
        assert_eq!(
            config.policy("news:tech").history_ttl,
            Duration::from_secs(60)
        );
        assert!(!config.policy("lobby").typing);
        assert!(config.policy("other:x").client_publish);
    }

    #[test]
    fn unknown_keys_in_the_file_are_rejected() {
        assert!(toml::from_str::<Settings>("max_frames = 1").is_err());
    }

    #[test]
    fn a_secret_is_required_outside_dev() {
        assert!(Config::resolve(Settings::default(), false).is_err());
        let dev = Config::resolve(Settings::default(), true).unwrap();
        assert_eq!(dev.token_secret.len(), 64);
    }

    #[test]
    fn the_join_burst_covers_a_rejoin_of_every_room_unless_set() {
        let base = Settings {
            token_secret: Some("0123456789abcdef".into()),
            ..Settings::default()
        };
        let config = Config::resolve(base.clone(), false).unwrap();
        assert_eq!(
            config.membership_burst as usize,
            config.max_rooms_per_connection
        );
        let more_rooms = Settings {
            max_rooms_per_connection: Some(200),
            ..base.clone()
        };
        assert_eq!(
            Config::resolve(more_rooms, false).unwrap().membership_burst,
            200
        );
        let set = Settings {
            max_rooms_per_connection: Some(200),
            membership_burst: Some(5),
            ..base.clone()
        };
        assert_eq!(Config::resolve(set, false).unwrap().membership_burst, 5);
        let zero = Settings {
            membership_rate: Some(0),
            ..base
        };
        assert!(Config::resolve(zero, false).is_err());
    }

    #[test]
    fn the_http_timeouts_and_the_handshake_bound_must_be_positive() {
        let base = Settings {
            token_secret: Some("0123456789abcdef".into()),
            ..Settings::default()
        };
        let config = Config::resolve(base.clone(), false).unwrap();
        assert_eq!(
            (
                config.handshake_timeout,
                config.idle_timeout,
                config.max_handshakes
            ),
            (Duration::from_secs(10), Duration::from_secs(60), 1024),
            "defaults"
        );
        for bad in [
            Settings {
                handshake_timeout: Some(HumanDuration(Duration::ZERO)),
                ..base.clone()
            },
            Settings {
                idle_timeout: Some(HumanDuration(Duration::ZERO)),
                ..base.clone()
            },
            Settings {
                max_handshakes: Some(0),
                ..base.clone()
            },
        ] {
            assert!(Config::resolve(bad, false).is_err());
        }
    }

    #[test]
    fn inconsistent_settings_are_rejected() {
        let base = Settings {
            token_secret: Some("0123456789abcdef".into()),
            ..Settings::default()
        };
        let bad = Settings {
            heartbeat_timeout: Some(HumanDuration(Duration::from_secs(1))),
            ..base.clone()
        };
        assert!(Config::resolve(bad, false).is_err());
        let bad = Settings {
            publish_rate: Some(0),
            ..base.clone()
        };
        assert!(Config::resolve(bad, false).is_err());
        let bad = Settings {
            history_page_max: Some(0),
            ..base.clone()
        };
        assert!(Config::resolve(bad, false).is_err());
        let bad = Settings {
            history_sweep_interval: Some(HumanDuration(Duration::ZERO)),
            ..base.clone()
        };
        assert!(Config::resolve(bad, false).is_err());
        let bad = Settings {
            redis_prefix: Some("chorus{eu}".into()),
            ..base.clone()
        };
        assert!(Config::resolve(bad, false).is_err());
        let bad = Settings {
            redis_pool_size: Some(0),
            ..base.clone()
        };
        assert!(Config::resolve(bad, false).is_err());
        let bad = Settings {
            redis_url: Some("http://localhost".into()),
            ..base.clone()
        };
        assert!(Config::resolve(bad, false).is_err());
        let unset = Settings {
            redis_url: Some(String::new()),
            ..base.clone()
        };
        assert_eq!(Config::resolve(unset, false).unwrap().redis_url, None);
        // A Cluster's seeds, each checked.
        let cluster = |url: &str| Settings {
            redis_url: Some(url.into()),
            redis_cluster: Some(true),
            ..base.clone()
        };
        let config = Config::resolve(cluster("redis://a:7000, redis://b:7001,"), false).unwrap();
        assert!(config.redis_cluster);
        let url = config.redis_url.clone().unwrap();
        assert_eq!(
            config.redis_nodes(&url),
            ["redis://a:7000", "redis://b:7001"]
        );
        assert!(Config::resolve(cluster("redis://a:7000,http://b"), false).is_err());
        assert!(Config::resolve(cluster(" , "), false).is_err());
        let waiting = Settings {
            redis_wait_replicas: Some(1),
            redis_wait_timeout: Some(HumanDuration(Duration::ZERO)),
            ..base.clone()
        };
        assert!(Config::resolve(waiting, false).is_err());
        assert!(Config::resolve(base, false).is_ok());
    }

    #[test]
    fn token_keys_settings_are_read_and_checked() {
        let file: Settings = toml::from_str(
            r#"
            jwks_url = "https://tenant.example.com/.well-known/jwks.json"
            token_previous_secret = ["previous-secret-0123456789"]
            token_audience = "https://chat.example.com/api"
            token_rooms_claim = "https://chat.example.com/rooms"
            token_leeway = "2s"
            "#,
        )
        .unwrap();
        // With an identity provider's keys, no secret is needed: a random one signs nothing
        // anyone holds.
        let config = Config::resolve(file.clone(), false).unwrap();
        assert_eq!(config.token_secret.len(), 64);
        assert_eq!(
            config.token_previous_secrets,
            ["previous-secret-0123456789"]
        );
        assert_eq!(
            config.token_audience.as_deref(),
            Some("https://chat.example.com/api")
        );
        assert_eq!(config.token_issuer, None);
        assert_eq!(config.token_rooms_claim, "https://chat.example.com/rooms");
        assert_eq!(config.token_admin_claim, "admin", "default");
        assert_eq!(config.token_leeway, Duration::from_secs(2));
        assert_eq!(Config::default().token_leeway, Duration::from_secs(5));
        let bad = [
            Settings {
                jwks_url: Some("http://idp.example.com/jwks.json".into()),
                ..file.clone()
            },
            Settings {
                token_previous_secret: Some(vec!["short".into()]),
                ..file.clone()
            },
            Settings {
                token_leeway: Some(HumanDuration(Duration::from_secs(3600))),
                ..file.clone()
            },
        ];
        for settings in bad {
            assert!(Config::resolve(settings, false).is_err());
        }
    }
}
