//! The control API's routes. Every answer is JSON; CORS is wide open because the test page
//! is served from another port (by wasm-bindgen-test-runner).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tower_http::cors::CorsLayer;

use crate::link::{Fault, Link};
use crate::process::{ServerProcess, random_hex};
use crate::token::{Claims, TokenSecret};
use crate::{Error, Result};

/// One server, locked while an operation on it runs (a stop waits for the process to exit,
/// so this is an async mutex: it is held across `.await`).
type Slot = Arc<tokio::sync::Mutex<ServerProcess>>;

/// The controller's state.
pub(crate) struct Controller {
    binary: PathBuf,
    next_id: AtomicU64,
    // A std mutex: it is only held to look up, insert or remove a slot, never across an
    // `.await`; operations on one server lock that server's slot instead.
    servers: Mutex<HashMap<u64, Slot>>,
    // A std mutex for the same reason: cutting and restoring a link do not wait.
    links: Mutex<HashMap<u64, Link>>,
    http: reqwest::Client,
}

impl Controller {
    pub(crate) fn new(binary: PathBuf) -> Arc<Controller> {
        Arc::new(Controller {
            binary,
            next_id: AtomicU64::new(1),
            servers: Mutex::new(HashMap::new()),
            links: Mutex::new(HashMap::new()),
            http: reqwest::Client::new(),
        })
    }

    fn slot(&self, id: u64) -> Result<Slot> {
        self.servers
            .lock()
            .expect("servers lock")
            .get(&id)
            .cloned()
            .ok_or(Error::NotFound("server", id))
    }

    /// Kill every server (when the controller exits).
    pub(crate) async fn kill_all(&self) {
        self.links.lock().expect("links lock").clear();
        let slots: Vec<Slot> = self
            .servers
            .lock()
            .expect("servers lock")
            .drain()
            .map(|(_, slot)| slot)
            .collect();
        for slot in slots {
            let mut server = slot.lock().await;
            if let Err(e) = server.kill().await {
                eprintln!("chorus-test-harness: killing server {}: {e}", server.id);
            }
        }
    }
}

/// The routes.
pub(crate) fn router(controller: Arc<Controller>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({ "status": "ok" })) }),
        )
        .route("/servers", post(create))
        .route("/servers/{id}", get(describe))
        .route("/servers/{id}", delete(remove))
        .route("/servers/{id}/{action}", post(lifecycle))
        .route("/servers/{id}/token", get(token))
        .route("/servers/{id}/bad-token", get(bad_token))
        .route("/servers/{id}/metrics", get(metrics))
        .route("/servers/{id}/publish", post(publish))
        .route("/servers/{id}/links", post(create_link))
        .route("/links/{id}", get(get_link))
        .route("/links/{id}", delete(remove_link))
        .route("/links/{id}/{action}", post(link_action))
        .layer(CorsLayer::very_permissive())
        .with_state(controller)
}

fn describe_server(server: &mut ServerProcess) -> Value {
    json!({
        "id": server.id,
        "port": server.port,
        "ws": server.ws_url(),
        "http": server.http_url(),
        "state": server.state(),
    })
}

/// Body of `POST /servers`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    /// Extra `chorus-server serve` flags, e.g. `["--heartbeat-interval", "200ms"]`.
    #[serde(default)]
    args: Vec<String>,
}

async fn create(State(controller): State<Arc<Controller>>, body: Bytes) -> Result<Response> {
    let request: CreateRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CreateRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            Error::BadRequest(format!("expected {{\"args\": [\"--flag\", ...]}}: {e}"))
        })?
    };
    let id = controller.next_id.fetch_add(1, Ordering::Relaxed);
    let mut server = ServerProcess::spawn(
        id,
        controller.binary.clone(),
        request.args,
        controller.http.clone(),
    )
    .await?;
    let answer = describe_server(&mut server);
    controller
        .servers
        .lock()
        .expect("servers lock")
        .insert(id, Arc::new(tokio::sync::Mutex::new(server)));
    Ok(axum::Json(answer).into_response())
}

async fn describe(
    State(controller): State<Arc<Controller>>,
    Path(id): Path<u64>,
) -> Result<Response> {
    let slot = controller.slot(id)?;
    let mut server = slot.lock().await;
    Ok(axum::Json(describe_server(&mut server)).into_response())
}

async fn remove(
    State(controller): State<Arc<Controller>>,
    Path(id): Path<u64>,
) -> Result<Response> {
    let slot = controller
        .servers
        .lock()
        .expect("servers lock")
        .remove(&id)
        .ok_or(Error::NotFound("server", id))?;
    // Dropping a link stops it.
    let links: Vec<Link> = {
        let mut links = controller.links.lock().expect("links lock");
        let ids: Vec<u64> = links
            .values()
            .filter(|l| l.server == id)
            .map(|l| l.id)
            .collect();
        ids.iter().filter_map(|id| links.remove(id)).collect()
    };
    drop(links);
    slot.lock().await.kill().await?;
    Ok(axum::Json(json!({ "id": id, "state": "removed" })).into_response())
}

async fn lifecycle(
    State(controller): State<Arc<Controller>>,
    Path((id, action)): Path<(u64, String)>,
) -> Result<Response> {
    let slot = controller.slot(id)?;
    let mut server = slot.lock().await;
    match action.as_str() {
        "stop" => server.stop().await?,
        "kill" => server.kill().await?,
        "freeze" => server.freeze().await?,
        "thaw" => server.thaw().await?,
        "start" => server.start().await?,
        "restart" => {
            server.stop().await?;
            server.start().await?;
        }
        other => {
            return Err(Error::BadRequest(format!(
                "unknown action {other:?}; use stop, kill, freeze, thaw, start or restart"
            )));
        }
    }
    Ok(axum::Json(describe_server(&mut server)).into_response())
}

/// Query of `GET /servers/{id}/token`.
#[derive(Debug, Deserialize)]
struct TokenQuery {
    user: String,
    /// Lifetime in milliseconds; the expiry is written in whole seconds (rounded down), as
    /// JWTs have it. Default: one hour.
    ttl_ms: Option<u64>,
    /// Comma-separated room patterns. Default: `*`.
    rooms: Option<String>,
    /// Whether the token may use the publish API. Default: false.
    #[serde(default)]
    admin: bool,
}

async fn token(
    State(controller): State<Arc<Controller>>,
    Path(id): Path<u64>,
    Query(query): Query<TokenQuery>,
) -> Result<Response> {
    let secret = controller.slot(id)?.lock().await.secret.clone();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let ttl = Duration::from_millis(query.ttl_ms.unwrap_or(3_600_000));
    let rooms = query.rooms.as_deref().unwrap_or("*");
    let claims = Claims {
        sub: query.user,
        exp: (now + ttl).as_secs(),
        iat: now.as_secs(),
        rooms: rooms.split(',').map(str::to_owned).collect(),
        admin: query.admin,
    };
    let token = TokenSecret::new(&secret).sign(&claims)?;
    Ok(axum::Json(json!({ "token": token })).into_response())
}

/// Query of `GET /servers/{id}/bad-token`.
#[derive(Debug, Deserialize)]
struct BadTokenQuery {
    user: Option<String>,
}

async fn bad_token(
    State(controller): State<Arc<Controller>>,
    Path(id): Path<u64>,
    Query(query): Query<BadTokenQuery>,
) -> Result<Response> {
    controller.slot(id)?;
    let user = query.user.as_deref().unwrap_or("mallory");
    // Well-formed and unexpired, but signed with a secret the server does not know.
    let token = TokenSecret::new(&random_hex()).issue(
        user,
        Duration::from_secs(3600),
        vec!["*".to_owned()],
        false,
    )?;
    Ok(axum::Json(json!({ "token": token })).into_response())
}

async fn metrics(
    State(controller): State<Arc<Controller>>,
    Path(id): Path<u64>,
) -> Result<Response> {
    let slot = controller.slot(id)?;
    let server = slot.lock().await;
    Ok(axum::Json(server.metrics().await?).into_response())
}

async fn publish(
    State(controller): State<Arc<Controller>>,
    Path(id): Path<u64>,
    body: Bytes,
) -> Result<Response> {
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| Error::BadRequest(format!("expected a JSON publish request: {e}")))?;
    let slot = controller.slot(id)?;
    let server = slot.lock().await;
    let (status, answer) = server.publish(&request).await?;
    let status = axum::http::StatusCode::from_u16(status.as_u16())
        .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
    Ok((status, axum::Json(answer)).into_response())
}

fn describe_link(link: &Link) -> Value {
    json!({
        "id": link.id,
        "server": link.server,
        "port": link.port,
        "ws": format!("ws://127.0.0.1:{}/ws", link.port),
        "http": format!("http://127.0.0.1:{}", link.port),
        "cut": link.is_cut(),
        "dropped": link.dropped(),
    })
}

async fn create_link(
    State(controller): State<Arc<Controller>>,
    Path(server): Path<u64>,
) -> Result<Response> {
    let port = controller.slot(server)?.lock().await.port;
    let id = controller.next_id.fetch_add(1, Ordering::Relaxed);
    let link = Link::open(id, server, port).await?;
    let answer = describe_link(&link);
    controller
        .links
        .lock()
        .expect("links lock")
        .insert(id, link);
    Ok(axum::Json(answer).into_response())
}

async fn get_link(
    State(controller): State<Arc<Controller>>,
    Path(id): Path<u64>,
) -> Result<Response> {
    let links = controller.links.lock().expect("links lock");
    let link = links.get(&id).ok_or(Error::NotFound("link", id))?;
    Ok(axum::Json(describe_link(link)).into_response())
}

async fn remove_link(
    State(controller): State<Arc<Controller>>,
    Path(id): Path<u64>,
) -> Result<Response> {
    let link = controller.links.lock().expect("links lock").remove(&id);
    match link {
        Some(_) => Ok(axum::Json(json!({ "id": id, "state": "removed" })).into_response()),
        None => Err(Error::NotFound("link", id)),
    }
}

async fn link_action(
    State(controller): State<Arc<Controller>>,
    Path((id, action)): Path<(u64, String)>,
) -> Result<Response> {
    let links = controller.links.lock().expect("links lock");
    let link = links.get(&id).ok_or(Error::NotFound("link", id))?;
    match action.as_str() {
        "cut" => link.cut(),
        "restore" => link.restore(),
        "close" => link.fault(Fault::Close),
        "reset" => link.fault(Fault::Reset),
        "stall" => link.fault(Fault::Stall),
        "deafen" => link.fault(Fault::Deafen),
        "drop-message" => link.drop_message(),
        other => {
            return Err(Error::BadRequest(format!(
                "unknown action {other:?}; use cut, restore, close, reset, stall, deafen or \
                 drop-message"
            )));
        }
    }
    Ok(axum::Json(describe_link(link)).into_response())
}
