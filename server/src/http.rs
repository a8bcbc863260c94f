//! HTTP routes: the WebSocket handshake (with auth and origin checks before the upgrade),
//! health, metrics, the publish API, the dev token endpoint and static files.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use chorus_protocol::{AUTH_SUBPROTOCOL_PREFIX, Body, ErrorCode, SUBPROTOCOL, validate};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{AuthError, Claims};
use crate::connection;
use crate::node::{Node, Refusal};
use crate::static_files;
use crate::ws::{NotUpgrade, Upgrade};

/// The server's routes.
pub(crate) fn router(node: Arc<Node>) -> Router {
    let mut app = Router::new()
        .route("/ws", get(websocket))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/publish", post(publish));
    if node.config.dev {
        app = app.route("/api/dev/token", post(dev_token));
    }
    if let Some(dir) = &node.config.pkg_dir {
        app = app.nest_service("/pkg", static_files::serve(dir, "/pkg"));
    }
    if let Some(dir) = &node.config.static_dir {
        app = app.fallback_service(static_files::serve(dir, ""));
    }
    app.with_state(node)
}

/// An HTTP error with a JSON body: `{"code": <ErrorCode or 0>, "error": "..."}`.
fn error(status: StatusCode, code: Option<ErrorCode>, message: &str) -> Response {
    let code = code.map_or(0, ErrorCode::as_u16);
    (
        status,
        axum::Json(json!({ "code": code, "error": message })),
    )
        .into_response()
}

fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Forbidden | ErrorCode::PublishDisabled => StatusCode::FORBIDDEN,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(status_for(self.code), Some(self.code), &self.message)
    }
}

/// The subprotocols a client offered, in order.
fn offered_protocols(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// Whether a browser at `origin` may connect. Requests without an Origin header come from
/// non-browser clients, which the token alone governs.
fn origin_allowed(node: &Node, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let origin = origin.trim_end_matches('/');
    let allowed = &node.config.allowed_origins;
    if allowed
        .iter()
        .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    if allowed.is_empty() && same_origin(origin, headers) {
        return true;
    }
    let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    if node.config.dev {
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        return matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    }
    false
}

/// Whether `origin` is the origin of the request itself: same scheme, host and port, the
/// ports a scheme implies written out (`http://h` is `http://h:80`). The server speaks plain
/// HTTP, so the request's scheme is `http`, unless a TLS-terminating proxy in front says
/// `X-Forwarded-Proto: https`. (A browser cannot add that header to a WebSocket handshake,
/// and a client that is not a browser can send any Origin anyway.)
fn same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let behind_tls = text("x-forwarded-proto")
        .and_then(|v| v.split(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    let (scheme, default_port) = if behind_tls {
        ("https", 443)
    } else {
        ("http", 80)
    };
    let Some((origin_scheme, origin_authority)) = origin.split_once("://") else {
        return false;
    };
    let Some(host) = text(header::HOST.as_str()) else {
        return false;
    };
    origin_scheme.eq_ignore_ascii_case(scheme)
        && match (
            host_and_port(origin_authority, default_port),
            host_and_port(host, default_port),
        ) {
            (Some((a, a_port)), Some((b, b_port))) => a.eq_ignore_ascii_case(b) && a_port == b_port,
            _ => false,
        }
}

/// `host[:port]` (the host a name, an IPv4 address or a bracketed IPv6 address) split into
/// host and port, `default_port` when none is written; `None` when it is not of that form.
fn host_and_port(authority: &str, default_port: u16) -> Option<(&str, u16)> {
    let (host, port) = match authority.rsplit_once(':') {
        // A colon inside the brackets of an IPv6 address is not a port's.
        Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
            (host, port.parse().ok()?)
        }
        Some(_) if authority.ends_with(']') => (authority, default_port),
        Some(_) => return None,
        None => (authority, default_port),
    };
    (!host.is_empty() && !host.contains(['/', '@'])).then_some((host, port))
}

async fn websocket(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    upgrade: Result<Upgrade, NotUpgrade>,
) -> Response {
    if !origin_allowed(&node, &headers) {
        return error(StatusCode::FORBIDDEN, None, "origin not allowed");
    }
    let probe = upgrade.is_err() && query.get("probe").is_some_and(|p| p == "1");
    let mut response = if probe {
        token_probe(&node, &query).await
    } else {
        handshake(node, &headers, &query, upgrade).await
    };
    // A browser cannot read why an upgrade failed; the client asks with a plain GET
    // (`/ws?token=...&probe=1`, see `token_probe`). Let allowed origins read the answer.
    if let Some(origin) = headers.get(header::ORIGIN) {
        let answer = response.headers_mut();
        answer.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        answer.append(header::VARY, header::HeaderValue::from_static("origin"));
    }
    response
}

/// The client's token probe, a plain `GET /ws?token=<token>&probe=1`: `200
/// {"token":"accepted"}`, or `200 {"token":"refused","reason":"..."}`. A 200 either way:
/// browsers log every failed request (and every 4xx) to the console, and a client asks this
/// after each socket that failed before opening, a refused token being one answer it
/// expects. Not counted as an auth failure: the refused upgrade before it was.
async fn token_probe(node: &Node, query: &HashMap<String, String>) -> Response {
    let verified = match query.get("token") {
        Some(token) => node.auth.authenticate(token).await,
        None => Err(AuthError::Missing),
    };
    let answer = match verified {
        Ok(_) => json!({ "token": "accepted" }),
        Err(e) => json!({ "token": "refused", "reason": e.to_string() }),
    };
    // An answer about one token at one moment: no cache may keep it.
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(answer)).into_response()
}

/// Check the subprotocols and the token, then upgrade.
async fn handshake(
    node: Arc<Node>,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    upgrade: Result<Upgrade, NotUpgrade>,
) -> Response {
    let offered = offered_protocols(headers);
    if !offered.is_empty() && !offered.contains(&SUBPROTOCOL) {
        return error(
            StatusCode::BAD_REQUEST,
            None,
            &format!("unsupported subprotocol; offer {SUBPROTOCOL}"),
        );
    }
    // The token is checked before the upgrade: a refused client gets 401 and no socket.
    let token = offered
        .iter()
        .find_map(|p| p.strip_prefix(AUTH_SUBPROTOCOL_PREFIX))
        .or(query.get("token").map(String::as_str));
    let verified = match token {
        Some(token) => node.auth.authenticate(token).await,
        None => Err(AuthError::Missing),
    };
    let claims = match verified {
        Ok(claims) => claims,
        Err(e) => {
            // A plain GET is an older client's probe after a refused upgrade (already
            // counted).
            if upgrade.is_ok() {
                node.metrics.auth_failures.inc();
            }
            tracing::debug!(error = %e, "upgrade refused");
            return error(StatusCode::UNAUTHORIZED, None, &e.to_string());
        }
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    // Past the limits, the socket still opens, only to say why it closes at once: browsers
    // cannot read the status of a refused upgrade, but they can read a close code.
    let slot = node.reserve(&claims.sub);
    let protocol = (!offered.is_empty()).then_some(SUBPROTOCOL);
    let tasks = node.tasks.clone();
    upgrade.accept(&tasks, protocol, move |socket| {
        connection::serve(node, socket, claims, slot)
    })
}

/// `200 {"status":"ok"}`; with Redis also `"redis":"up"`, or, while Redis is unreachable,
/// `200 {"status":"degraded","redis":"down"}`. Degraded is still 200: every instance shares
/// the one Redis, so a load balancer that drained instances on it would drain them all at
/// once, for no instance that could serve better, and every client would reconnect in a
/// herd when Redis came back. Kept connected, clients get `unavailable` (503) answers while
/// Redis is down and carry on when it returns.
async fn healthz(State(node): State<Arc<Node>>) -> Response {
    let health = node.broker_health();
    let body = match (health.store, health.up) {
        ("memory", _) => json!({ "status": "ok" }),
        (store, true) => json!({ "status": "ok", store: "up" }),
        (store, false) => json!({ "status": "degraded", store: "down" }),
    };
    axum::Json(body).into_response()
}

async fn metrics(State(node): State<Arc<Node>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        node.metrics.render(),
    )
        .into_response()
}

/// Body of `POST /api/publish`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    room: String,
    /// A text body.
    text: Option<String>,
    /// A binary body, base64-encoded (standard alphabet, padded).
    binary: Option<String>,
    /// Message id; a random one if absent.
    id: Option<u64>,
    /// Sender name shown to clients. Default: the admin token's user, or "server".
    sender: Option<String>,
}

/// Who is calling the publish API.
enum Caller {
    /// The holder of the token secret: a trusted backend.
    Secret,
    /// The holder of an admin token: limited to its rooms, publishing as its user.
    Admin(Claims),
}

/// Who may use the publish API: the holder of the token secret (or of a previous one, during
/// a rotation), or of an admin token.
// The error is the finished response, returned once per refused request; boxing it would
// only add an allocation.
#[allow(clippy::result_large_err)]
async fn api_caller(node: &Node, headers: &HeaderMap) -> Result<Caller, Response> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let unauthorized = |message: &str| {
        node.metrics.auth_failures.inc();
        Err(error(StatusCode::UNAUTHORIZED, None, message))
    };
    let Some(bearer) = bearer else {
        return unauthorized("missing bearer token");
    };
    if node.auth.is_secret(bearer.as_bytes()) {
        return Ok(Caller::Secret);
    }
    match node.auth.authenticate(bearer).await {
        Ok(claims) if claims.admin => Ok(Caller::Admin(claims)),
        Ok(_) => Err(error(
            StatusCode::FORBIDDEN,
            Some(ErrorCode::Forbidden),
            "token is not an admin token",
        )),
        Err(e) => unauthorized(&e.to_string()),
    }
}

async fn publish(State(node): State<Arc<Node>>, headers: HeaderMap, body: Bytes) -> Response {
    let caller = match api_caller(&node, &headers).await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    match publish_request(&node, caller, &body).await {
        Ok(answer) => axum::Json(answer).into_response(),
        Err(refusal) => {
            node.metrics.error(refusal.code);
            refusal.into_response()
        }
    }
}

async fn publish_request(
    node: &Node,
    caller: Caller,
    body: &[u8],
) -> Result<serde_json::Value, Refusal> {
    let request: PublishRequest = serde_json::from_slice(body)
        .map_err(|e| Refusal::new(ErrorCode::InvalidRequest, format!("invalid JSON: {e}")))?;
    let room = request.room;
    validate::room(&room)
        .map_err(|e| Refusal::new(ErrorCode::InvalidRoom, format!("invalid room name: {e}")))?;
    let sender = match caller {
        Caller::Secret => request.sender.unwrap_or_else(|| "server".to_owned()),
        Caller::Admin(claims) => {
            if !claims.allows(&room) {
                return Err(Refusal::new(
                    ErrorCode::Forbidden,
                    format!("the token does not permit room {room:?}"),
                ));
            }
            if request.sender.as_ref().is_some_and(|s| *s != claims.sub) {
                return Err(Refusal::new(
                    ErrorCode::Forbidden,
                    "an admin token publishes as its own user; only the token secret may set sender",
                ));
            }
            claims.sub
        }
    };
    validate::user(&sender)
        .map_err(|e| Refusal::new(ErrorCode::InvalidRequest, format!("invalid sender: {e}")))?;
    let body = match (request.text, request.binary) {
        (Some(text), None) => Body::Text(text),
        (None, Some(encoded)) => Body::Binary(
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| {
                    Refusal::new(ErrorCode::InvalidRequest, format!("invalid base64: {e}"))
                })?,
        ),
        _ => {
            return Err(Refusal::new(
                ErrorCode::InvalidRequest,
                "give exactly one of \"text\" and \"binary\"",
            ));
        }
    };
    let id = request.id.unwrap_or_else(|| rand::random::<u64>() >> 11);
    let seq = node.publish(&room, &sender, id, body).await?;
    Ok(json!({ "room": room, "id": id, "seq": seq }))
}

/// Body of `POST /api/dev/token`.
#[derive(Debug, Deserialize)]
struct DevTokenRequest {
    user: String,
}

/// Lifetime of dev tokens.
const DEV_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

async fn dev_token(State(node): State<Arc<Node>>, body: Bytes) -> Response {
    let request: DevTokenRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                Some(ErrorCode::InvalidRequest),
                &format!("invalid JSON: {e}"),
            );
        }
    };
    if let Err(e) = validate::user(&request.user) {
        return error(
            StatusCode::BAD_REQUEST,
            Some(ErrorCode::InvalidRequest),
            &format!("invalid user name: {e}"),
        );
    }
    match node
        .auth
        .issue(&request.user, DEV_TOKEN_TTL, vec!["*".to_owned()], false)
    {
        Ok(token) => axum::Json(json!({
            "token": token,
            "user": request.user,
            "expires_in": DEV_TOKEN_TTL.as_secs(),
        }))
        .into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(ErrorCode::Internal),
            &e.to_string(),
        ),
    }
}
