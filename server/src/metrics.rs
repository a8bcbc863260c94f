//! Prometheus metrics, served as text at `GET /metrics`.
//!
//! Each server instance owns its own registry (rather than a process-global recorder), so
//! several servers in one process, as in the tests, count separately.

use chorus_protocol::{DisconnectReason, ErrorCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// What a history request can end in: a page, or one of these error codes.
const HISTORY_REFUSALS: [ErrorCode; 7] = [
    ErrorCode::InvalidRoom,
    ErrorCode::Forbidden,
    ErrorCode::RateLimited,
    ErrorCode::InvalidRequest,
    ErrorCode::EpochChanged,
    ErrorCode::Internal,
    ErrorCode::Unavailable,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// The server's counters and gauges.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Open WebSocket connections.
    pub connections: Gauge,
    /// Rooms with at least one local member.
    pub rooms: Gauge,
    /// Frames received from clients.
    pub messages_in: Counter,
    /// Frames sent to clients.
    pub messages_out: Counter,
    /// Bytes received from clients (frame payloads).
    pub bytes_in: Counter,
    /// Bytes sent to clients (frame payloads).
    pub bytes_out: Counter,
    /// Messages published (from clients and the HTTP API).
    pub publishes: Counter,
    /// Upgrade requests refused for a missing, bad or expired token.
    pub auth_failures: Counter,
    /// Room histories held in this process (by the in-memory broker), idle ones included
    /// until the sweep forgets them. Always 0 with Redis, which holds the histories.
    pub room_logs: Gauge,
    /// With Redis (see [`Metrics::with_redis`]): 1 while this instance is connected to Redis
    /// (subscriptions restored and commands answered), 0 while it is not.
    pub redis_up: Gauge,
    /// With Redis: commands and scripts that failed (unreachable, timed out, or an
    /// unexpected reply).
    pub redis_errors: Counter,
    /// With Redis: messages received on the room channels (messages, presence and typing
    /// events, epoch resets) from every instance, this one included.
    pub redis_pubsub_messages: Counter,
    /// With Redis: subscription connections established (the first one, then one after
    /// each loss).
    pub redis_connects: Counter,
    /// With Redis: publishes waiting for a call of the publish script, or in one.
    pub redis_publishes_pending: Gauge,
    /// With Redis: calls of the publish script, each carrying the publishes that waited
    /// for it; `chorus_publishes_total` over this is the publishes per call.
    pub redis_publish_calls: Counter,
    /// With Redis: times the members of a room on this instance were sent an unsolicited
    /// `Joined` because the room's history was lost (or could not be delivered in full).
    pub epoch_resets: Counter,
    /// With Redis: rooms this instance found behind what it had delivered in their epoch
    /// (a Redis that went back in time under the same process), each moved to a new epoch.
    pub epoch_regressions: Counter,
    errors: Family<CodeLabel, Counter>,
    history_requests: Family<OutcomeLabel, Counter>,
    disconnects: Family<ReasonLabel, Counter>,
    http_cuts: HttpCuts,
}

/// Why the HTTP front closed a plain HTTP connection itself (see `listen.rs`).
pub(crate) const HTTP_CUT_REASONS: [&str; 3] =
    ["handshake_timeout", "idle_timeout", "shutdown_deadline"];

/// The counter of plain HTTP connections the server closed itself, by reason (one of
/// [`HTTP_CUT_REASONS`]): a handle the HTTP front keeps.
#[derive(Debug, Clone, Default)]
pub(crate) struct HttpCuts(Family<ReasonLabel, Counter>);

impl HttpCuts {
    /// Count one connection closed for `reason`.
    pub(crate) fn count(&self, reason: &'static str) {
        self.0.get_or_create(&ReasonLabel { reason }).inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("chorus");
        let m = Metrics {
            registry: Registry::default(),
            connections: Gauge::default(),
            rooms: Gauge::default(),
            messages_in: Counter::default(),
            messages_out: Counter::default(),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            publishes: Counter::default(),
            auth_failures: Counter::default(),
            room_logs: Gauge::default(),
            redis_up: Gauge::default(),
            redis_errors: Counter::default(),
            redis_pubsub_messages: Counter::default(),
            redis_connects: Counter::default(),
            redis_publishes_pending: Gauge::default(),
            redis_publish_calls: Counter::default(),
            epoch_resets: Counter::default(),
            epoch_regressions: Counter::default(),
            errors: Family::default(),
            history_requests: Family::default(),
            disconnects: Family::default(),
            http_cuts: HttpCuts::default(),
        };
        registry.register(
            "connections",
            "Open WebSocket connections",
            m.connections.clone(),
        );
        registry.register(
            "rooms",
            "Rooms with at least one local member",
            m.rooms.clone(),
        );
        registry.register(
            "messages_in",
            "Frames received from clients",
            m.messages_in.clone(),
        );
        registry.register(
            "messages_out",
            "Frames sent to clients",
            m.messages_out.clone(),
        );
        registry.register(
            "bytes_in",
            "Bytes received from clients",
            m.bytes_in.clone(),
        );
        registry.register("bytes_out", "Bytes sent to clients", m.bytes_out.clone());
        registry.register("publishes", "Messages published", m.publishes.clone());
        registry.register(
            "auth_failures",
            "Upgrade requests refused for a missing, bad or expired token",
            m.auth_failures.clone(),
        );
        registry.register(
            "room_logs",
            "Room histories held in memory, idle ones included until swept",
            m.room_logs.clone(),
        );
        registry.register("errors", "Error replies by code", m.errors.clone());
        registry.register(
            "history_requests",
            "History requests by outcome: ok, or the error code's name",
            m.history_requests.clone(),
        );
        registry.register(
            "disconnects",
            "Connections closed by the server, by reason",
            m.disconnects.clone(),
        );
        registry.register(
            "http_connections_cut",
            "Plain HTTP connections the server closed itself, by reason: a request's head or \
             body not in within the handshake timeout, idle past the idle timeout, or still \
             open at the shutdown deadline",
            m.http_cuts.0.clone(),
        );
        // Make every label value visible from the start, so dashboards and alerts see zeros
        // rather than missing series.
        for code in ErrorCode::ALL {
            let _ = m.errors.get_or_create(&CodeLabel { code: code.name() });
        }
        let _ = m
            .history_requests
            .get_or_create(&OutcomeLabel { outcome: "ok" });
        for code in HISTORY_REFUSALS {
            let _ = m.history_requests.get_or_create(&OutcomeLabel {
                outcome: code.name(),
            });
        }
        for reason in DisconnectReason::ALL {
            let _ = m.disconnects.get_or_create(&ReasonLabel {
                reason: reason.name(),
            });
        }
        for reason in HTTP_CUT_REASONS {
            let _ = m.http_cuts.0.get_or_create(&ReasonLabel { reason });
        }
        Metrics { registry, ..m }
    }

    /// A registry that also exports the Redis metrics (`chorus_redis_*` and
    /// `chorus_epoch_resets_total`), for an instance that uses Redis. Without Redis they
    /// would only ever read 0.
    pub fn with_redis() -> Metrics {
        let mut m = Metrics::new();
        m.registry.register(
            "redis_up",
            "1 while this instance is connected to Redis, 0 while it is not",
            m.redis_up.clone(),
        );
        m.registry.register(
            "redis_errors",
            "Redis commands and scripts that failed",
            m.redis_errors.clone(),
        );
        m.registry.register(
            "redis_pubsub_messages",
            "Messages received on Redis room channels",
            m.redis_pubsub_messages.clone(),
        );
        m.registry.register(
            "redis_connects",
            "Redis subscription connections established",
            m.redis_connects.clone(),
        );
        m.registry.register(
            "redis_publishes_pending",
            "Publishes waiting for a call of the Redis publish script, or in one",
            m.redis_publishes_pending.clone(),
        );
        m.registry.register(
            "redis_publish_calls",
            "Calls of the Redis publish script, each carrying the publishes that waited for it",
            m.redis_publish_calls.clone(),
        );
        m.registry.register(
            "epoch_resets",
            "Unsolicited Joined sent to a room's local members because its history was lost",
            m.epoch_resets.clone(),
        );
        m.registry.register(
            "epoch_regressions",
            "Rooms found behind what this instance delivered in their epoch, moved to a new epoch",
            m.epoch_regressions.clone(),
        );
        m
    }

    /// Count an error reply.
    pub fn error(&self, code: ErrorCode) {
        self.errors
            .get_or_create(&CodeLabel { code: code.name() })
            .inc();
    }

    /// Count a history request: answered with a page (`None`) or refused with `code`.
    pub fn history_request(&self, refused: Option<ErrorCode>) {
        let outcome = refused.map_or("ok", ErrorCode::name);
        self.history_requests
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// Count a server-side disconnect.
    pub fn disconnect(&self, reason: DisconnectReason) {
        self.disconnects
            .get_or_create(&ReasonLabel {
                reason: reason.name(),
            })
            .inc();
    }

    /// The counter the HTTP front counts the connections it closes in.
    pub(crate) fn http_cuts(&self) -> HttpCuts {
        self.http_cuts.clone()
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
