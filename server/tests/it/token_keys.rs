//! Tokens from an identity provider, rotation of the token secret, and the expiry leeway.
//!
//! The keys are generated here (RSA 2048, EC P-256, Ed25519) and reach the server as PEM
//! files or through a JWKS served by the test itself on 127.0.0.1, which counts the fetches.
//! A refused token gets HTTP 401 and no socket, as any bad token does.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::{SECRET, TestServer, WAIT, assert_refused};
use axum::Json;
use axum::extract::State;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chorus_protocol::ServerMessage;
use chorus_server::Config;
use chorus_server::auth::{Auth, JWKS_REFETCH_INTERVAL};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::sync::watch;

const AUDIENCE: &str = "https://chat.example.com/api";
const ISSUER: &str = "https://tenant.example.com/";

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A key pair of one type: what signs tokens, and the public key as PEM and as a JWK.
struct KeyPair {
    alg: Algorithm,
    signing: EncodingKey,
    public_pem: String,
    /// The public JWK, without `kid`.
    jwk: Value,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl KeyPair {
    fn rsa() -> KeyPair {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::{EncodePublicKey, LineEnding};
        use rsa::traits::PublicKeyParts;
        // Generating a 2048-bit key takes seconds in a debug build: once per test binary.
        static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
        let private =
            KEY.get_or_init(|| rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap());
        let public = private.to_public_key();
        KeyPair {
            alg: Algorithm::RS256,
            signing: EncodingKey::from_rsa_der(private.to_pkcs1_der().unwrap().as_bytes()),
            public_pem: public.to_public_key_pem(LineEnding::LF).unwrap(),
            jwk: json!({
                "kty": "RSA",
                "use": "sig",
                "alg": "RS256",
                "n": b64(&public.n().to_bytes_be()),
                "e": b64(&public.e().to_bytes_be()),
            }),
        }
    }

    fn ec() -> KeyPair {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        let private = p256::SecretKey::random(&mut rsa::rand_core::OsRng);
        let public = private.public_key();
        let point = public.to_encoded_point(false);
        KeyPair {
            alg: Algorithm::ES256,
            signing: EncodingKey::from_ec_der(private.to_pkcs8_der().unwrap().as_bytes()),
            public_pem: public.to_public_key_pem(LineEnding::LF).unwrap(),
            jwk: json!({
                "kty": "EC",
                "crv": "P-256",
                "x": b64(point.x().unwrap()),
                "y": b64(point.y().unwrap()),
            }),
        }
    }

    fn ed25519() -> KeyPair {
        use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
        use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
        let private = ed25519_dalek::SigningKey::from_bytes(&rand::random());
        let public = private.verifying_key();
        KeyPair {
            alg: Algorithm::EdDSA,
            signing: EncodingKey::from_ed_der(private.to_pkcs8_der().unwrap().as_bytes()),
            public_pem: public.to_public_key_pem(LineEnding::LF).unwrap(),
            jwk: json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(public.as_bytes()) }),
        }
    }

    /// The public JWK with key id `kid`.
    fn jwk(&self, kid: &str) -> Value {
        let mut jwk = self.jwk.clone();
        jwk["kid"] = json!(kid);
        jwk
    }

    /// A token with `claims`, its header naming `kid` if given.
    fn sign(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.signing).unwrap()
    }
}

/// Claims of an identity provider's token for `user`, valid for an hour, with the test's
/// issuer and audience and the room patterns in `rooms`.
fn provider_claims(user: &str) -> Value {
    let now = unix_now();
    json!({
        "iss": ISSUER,
        "aud": [AUDIENCE, "https://tenant.example.com/userinfo"],
        "sub": user,
        "iat": now,
        "exp": now + 3600,
        "rooms": ["*"],
    })
}

/// A PEM file in the temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> TempFile {
        let name = format!("chorus-token-key-{:016x}.pem", rand::random::<u64>());
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A JWKS served on 127.0.0.1 that counts the times it was fetched.
struct JwksServer {
    url: String,
    state: Arc<JwksState>,
}

struct JwksState {
    keys: Mutex<Vec<Value>>,
    fetches: AtomicUsize,
    fetched: watch::Sender<usize>,
}

async fn serve_jwks(State(state): State<Arc<JwksState>>) -> Json<Value> {
    let keys = state.keys.lock().unwrap().clone();
    let count = state.fetches.fetch_add(1, Ordering::SeqCst) + 1;
    state.fetched.send_replace(count);
    Json(json!({ "keys": keys }))
}

impl JwksServer {
    async fn start(keys: Vec<Value>) -> JwksServer {
        let state = Arc::new(JwksState {
            keys: Mutex::new(keys),
            fetches: AtomicUsize::new(0),
            fetched: watch::Sender::new(0),
        });
        let app = axum::Router::new()
            .route("/.well-known/jwks.json", get(serve_jwks))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        JwksServer { url, state }
    }

    fn add(&self, key: Value) {
        self.state.keys.lock().unwrap().push(key);
    }

    fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    /// Wait until the JWKS has been fetched `n` times. The server holds its fetch lock
    /// from before the request until the keys are in use, so a token checked after this
    /// sees them (or waits for them) without fetching again.
    async fn wait_for_fetches(&self, n: usize) {
        let mut fetched = self.state.fetched.subscribe();
        tokio::time::timeout(WAIT, fetched.wait_for(|&count| count >= n))
            .await
            .expect("timed out waiting for the server to fetch the JWKS")
            .unwrap();
    }
}

/// A server that takes the provider's tokens with the test's issuer and audience.
async fn provider_server(adjust: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::start_with(|c| {
        c.token_issuer = Some(ISSUER.into());
        c.token_audience = Some(AUDIENCE.into());
        adjust(c);
    })
    .await
}

/// Connect with `token` and return the user the welcome names.
async fn welcomed_user(server: &TestServer, token: &str) -> String {
    let mut client = server
        .connect_with_token(token)
        .await
        .expect("the token must be accepted");
    match client.welcome().await {
        ServerMessage::Welcome { user, .. } => user,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_verify_with_pem_public_keys() {
    let pairs = [KeyPair::rsa(), KeyPair::ec(), KeyPair::ed25519()];
    let files: Vec<_> = pairs.iter().map(|p| TempFile::new(&p.public_pem)).collect();
    let paths = files.iter().map(|f| f.0.clone()).collect();
    let server = provider_server(|c| c.token_public_keys = paths).await;
    for (pair, user) in pairs.iter().zip(["rsa-user", "ec-user", "ed-user"]) {
        let token = pair.sign(None, &provider_claims(user));
        assert_eq!(welcomed_user(&server, &token).await, user, "{:?}", pair.alg);
    }
    // A key the server does not know signs nothing it accepts.
    let stranger = KeyPair::ec().sign(None, &provider_claims("mallory"));
    assert_refused(server.connect_with_token(&stranger).await, 401);
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_verify_with_a_jwks_by_kid() {
    let pairs = [KeyPair::rsa(), KeyPair::ec(), KeyPair::ed25519()];
    let kids = ["rsa-1", "ec-1", "ed-1"];
    let jwks = JwksServer::start(pairs.iter().zip(kids).map(|(p, k)| p.jwk(k)).collect()).await;
    let url = jwks.url.clone();
    let server = provider_server(|c| c.jwks_url = Some(url)).await;
    jwks.wait_for_fetches(1).await;
    for (pair, kid) in pairs.iter().zip(kids) {
        let token = pair.sign(Some(kid), &provider_claims(kid));
        assert_eq!(welcomed_user(&server, &token).await, kid, "{:?}", pair.alg);
    }
    // A known kid on a token of another key type: no key of that kid verifies it.
    let mismatched = pairs[1].sign(Some("rsa-1"), &provider_claims("mallory"));
    assert_refused(server.connect_with_token(&mismatched).await, 401);
    assert_eq!(jwks.fetches(), 1, "every key came with the first fetch");
}

#[tokio::test]
async fn a_token_with_a_new_kid_is_accepted_after_one_fetch_of_the_jwks() {
    let old = KeyPair::ec();
    let jwks = JwksServer::start(vec![old.jwk("2026-11")]).await;
    let url = jwks.url.clone();
    let server = provider_server(|c| c.jwks_url = Some(url)).await;
    jwks.wait_for_fetches(1).await;
    let token = old.sign(Some("2026-11"), &provider_claims("alice"));
    assert_eq!(welcomed_user(&server, &token).await, "alice");

    // The provider rotates its key: the first token naming the new kid fetches it.
    let new = KeyPair::ed25519();
    jwks.add(new.jwk("2026-12"));
    let token = new.sign(Some("2026-12"), &provider_claims("bob"));
    assert_eq!(welcomed_user(&server, &token).await, "bob");
    assert_eq!(jwks.fetches(), 2);
    // From then on it is held.
    let token = new.sign(Some("2026-12"), &provider_claims("carol"));
    assert_eq!(welcomed_user(&server, &token).await, "carol");
    assert_eq!(jwks.fetches(), 2);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_fetches_the_jwks_at_most_once_per_interval() {
    let pair = KeyPair::ec();
    let jwks = JwksServer::start(vec![pair.jwk("known")]).await;
    let url = jwks.url.clone();
    let server = provider_server(|c| c.jwks_url = Some(url)).await;
    jwks.wait_for_fetches(1).await;
    let started = std::time::Instant::now();

    // Forged tokens, each naming another made-up kid, all at once.
    let attempts = (0..40).map(|i| {
        let token = pair.sign(Some(&format!("made-up-{i}")), &provider_claims("mallory"));
        let server = &server;
        async move { server.connect_with_token(&token).await }
    });
    for result in futures_util::future::join_all(attempts).await {
        assert_refused(result, 401);
    }
    // One more, after the others.
    let token = pair.sign(Some("made-up-last"), &provider_claims("mallory"));
    assert_refused(server.connect_with_token(&token).await, 401);
    assert!(
        started.elapsed() < JWKS_REFETCH_INTERVAL,
        "the flood took longer than the refetch interval; the count below means nothing"
    );
    assert_eq!(
        jwks.fetches(),
        2,
        "the first fetch, then one for all the unknown kids"
    );
    // The known key still works, without a fetch.
    let token = pair.sign(Some("known"), &provider_claims("alice"));
    assert_eq!(welcomed_user(&server, &token).await, "alice");
    assert_eq!(jwks.fetches(), 2);
}

#[tokio::test]
async fn an_hs256_token_signed_with_a_public_key_as_its_secret_is_refused() {
    let pair = KeyPair::rsa();
    let file = TempFile::new(&pair.public_pem);
    let jwks = JwksServer::start(vec![pair.jwk("rsa-1")]).await;
    let (url, path) = (jwks.url.clone(), file.0.clone());
    let server = provider_server(|c| {
        c.jwks_url = Some(url);
        c.token_public_keys = vec![path];
    })
    .await;
    jwks.wait_for_fetches(1).await;
    // Claims as the provider writes them, and as Chorus's own tokens have them (no issuer
    // or audience, which tokens signed with the secret need not carry).
    let claims = [
        provider_claims("mallory"),
        json!({ "sub": "mallory", "exp": unix_now() + 3600, "rooms": ["*"] }),
    ];
    // The public key's bytes as everyone can get them: the PEM, the DER in it, the modulus.
    let der = {
        use rsa::pkcs8::DecodePublicKey;
        use rsa::pkcs8::EncodePublicKey;
        rsa::RsaPublicKey::from_public_key_pem(&pair.public_pem)
            .unwrap()
            .to_public_key_der()
            .unwrap()
            .as_bytes()
            .to_vec()
    };
    let modulus = URL_SAFE_NO_PAD
        .decode(pair.jwk["n"].as_str().unwrap())
        .unwrap();
    for secret in [pair.public_pem.as_bytes(), &der, &modulus] {
        for kid in [None, Some("rsa-1")] {
            for claims in &claims {
                let mut header = Header::new(Algorithm::HS256);
                header.kid = kid.map(str::to_owned);
                let key = EncodingKey::from_secret(secret);
                let forged = jsonwebtoken::encode(&header, claims, &key).unwrap();
                assert_refused(server.connect_with_token(&forged).await, 401);
            }
        }
    }
    // The key itself verifies its own RS256 tokens.
    let token = pair.sign(Some("rsa-1"), &provider_claims("alice"));
    assert_eq!(welcomed_user(&server, &token).await, "alice");
}

#[tokio::test]
async fn alg_none_is_refused() {
    let pair = KeyPair::ec();
    let jwks = JwksServer::start(vec![pair.jwk("ec-1")]).await;
    let url = jwks.url.clone();
    let server = provider_server(|c| c.jwks_url = Some(url)).await;
    jwks.wait_for_fetches(1).await;
    let payload = URL_SAFE_NO_PAD.encode(provider_claims("mallory").to_string());
    let chorus_payload = server
        .token("mallory")
        .split('.')
        .nth(1)
        .unwrap()
        .to_owned();
    for header in [
        json!({ "alg": "none", "typ": "JWT" }),
        json!({ "alg": "none", "kid": "ec-1" }),
        json!({ "alg": "None" }),
        json!({ "alg": "NONE" }),
    ] {
        let header = URL_SAFE_NO_PAD.encode(header.to_string());
        for payload in [&payload, &chorus_payload] {
            for signature in ["", "e30"] {
                let forged = format!("{header}.{payload}.{signature}");
                assert_refused(server.connect_with_token(&forged).await, 401);
            }
        }
    }
}

#[tokio::test]
async fn a_previous_secret_still_verifies_and_an_unknown_one_does_not() {
    const PREVIOUS: &str = "previous-secret-0123456789";
    let server = TestServer::start_with(|c| c.token_previous_secrets = vec![PREVIOUS.into()]).await;
    let old = Auth::new(PREVIOUS)
        .issue("alice", Duration::from_secs(3600), vec!["*".into()], false)
        .unwrap();
    assert_eq!(welcomed_user(&server, &old).await, "alice");
    let unknown = Auth::new("unknown-secret-0123456789")
        .issue(
            "mallory",
            Duration::from_secs(3600),
            vec!["*".into()],
            false,
        )
        .unwrap();
    assert_refused(server.connect_with_token(&unknown).await, 401);
    // Backends still holding the previous secret may use the publish API during the
    // rotation; the current secret signs the dev tokens and keeps working.
    for bearer in [PREVIOUS, SECRET] {
        let status = reqwest::Client::new()
            .post(server.http_url("/api/publish"))
            .bearer_auth(bearer)
            .json(&json!({ "room": "chat:lobby", "text": "hi" }))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "bearer {bearer}");
    }
    let status = reqwest::Client::new()
        .post(server.http_url("/api/publish"))
        .bearer_auth("unknown-secret-0123456789")
        .json(&json!({ "room": "chat:lobby", "text": "hi" }))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_wrong_or_missing_issuer_or_audience_is_refused() {
    let pair = KeyPair::ed25519();
    let file = TempFile::new(&pair.public_pem);
    let path = file.0.clone();
    let server = provider_server(|c| c.token_public_keys = vec![path]).await;
    let token = pair.sign(None, &provider_claims("alice"));
    assert_eq!(welcomed_user(&server, &token).await, "alice");
    let edits: [(&str, Option<Value>); 5] = [
        ("aud", Some(json!("https://other-api.example.com"))),
        ("aud", Some(json!(["https://other-api.example.com"]))),
        ("aud", None),
        ("iss", Some(json!("https://evil.example.com/"))),
        ("iss", None),
    ];
    for (claim, value) in edits {
        let mut claims = provider_claims("mallory");
        match value {
            Some(value) => claims[claim] = value,
            None => {
                claims.as_object_mut().unwrap().remove(claim);
            }
        }
        let token = pair.sign(None, &claims);
        let result = server.connect_with_token(&token).await;
        assert!(
            result.is_err(),
            "{claim} = {:?} was accepted",
            claims[claim]
        );
        assert_refused(result, 401);
    }
}

#[tokio::test]
async fn room_patterns_and_admin_come_from_the_configured_claims() {
    const ROOMS: &str = "https://chat.example.com/rooms";
    const ADMIN: &str = "https://chat.example.com/admin";
    let pair = KeyPair::rsa();
    let file = TempFile::new(&pair.public_pem);
    let path = file.0.clone();
    let server = provider_server(|c| {
        c.token_public_keys = vec![path];
        c.token_rooms_claim = ROOMS.into();
        c.token_admin_claim = ADMIN.into();
    })
    .await;
    let mut claims = provider_claims("alice");
    // An Auth0 token: namespaced custom claims. The plain `rooms` is no grant here.
    claims[ROOMS] = json!(["chat:*"]);
    claims["rooms"] = json!(["*"]);
    claims[ADMIN] = json!(true);
    let token = pair.sign(None, &claims);
    let mut alice = server.connect_with_token(&token).await.unwrap();
    alice.welcome().await;
    alice.join("chat:lobby").await;
    alice
        .send(chorus_protocol::ClientMessage::Join {
            room: "news:tech".into(),
            since: None,
        })
        .await;
    let (code, _, room) = alice.error().await;
    assert_eq!(
        (code, room.as_deref()),
        (
            chorus_protocol::ErrorCode::Forbidden.as_u16(),
            Some("news:tech")
        )
    );
    // The admin claim opens the publish API, within the rooms.
    let publish = |room: &str| {
        reqwest::Client::new()
            .post(server.http_url("/api/publish"))
            .bearer_auth(&token)
            .json(&json!({ "room": room, "text": "hi" }))
            .send()
    };
    assert_eq!(publish("chat:lobby").await.unwrap().status(), 200);
    assert_eq!(publish("news:tech").await.unwrap().status(), 403);

    // Without the configured claim, the token grants nothing and is refused.
    let mut claims = provider_claims("bob");
    claims["rooms"] = json!(["*"]);
    assert_refused(
        server.connect_with_token(&pair.sign(None, &claims)).await,
        401,
    );
}

#[tokio::test]
async fn a_token_expired_within_the_leeway_is_accepted_and_past_it_refused() {
    let now = unix_now();
    let claims = chorus_server::auth::Claims {
        sub: "alice".into(),
        exp: now - 2,
        iat: now - 3600,
        rooms: vec!["*".into()],
        admin: false,
    };
    let token = Auth::new(SECRET).sign(&claims).unwrap();
    let lenient = TestServer::start_with(|c| c.token_leeway = Duration::from_secs(5)).await;
    assert_eq!(welcomed_user(&lenient, &token).await, "alice");
    let strict = TestServer::start_with(|c| c.token_leeway = Duration::ZERO).await;
    assert_refused(strict.connect_with_token(&token).await, 401);
    // The same for a provider's token.
    let pair = KeyPair::ec();
    let file = TempFile::new(&pair.public_pem);
    let mut claims = provider_claims("bob");
    claims["exp"] = json!(now - 2);
    let token = pair.sign(None, &claims);
    for (leeway, accepted) in [(5, true), (0, false)] {
        let path = file.0.clone();
        let server = provider_server(|c| {
            c.token_public_keys = vec![path];
            c.token_leeway = Duration::from_secs(leeway);
        })
        .await;
        let result = server.connect_with_token(&token).await;
        if accepted {
            result.expect("expired 2s ago, within a 5s leeway");
        } else {
            assert_refused(result, 401);
        }
    }
}

#[tokio::test]
async fn a_jwks_that_cannot_be_fetched_is_a_clear_error_at_start() {
    // Nothing listens there once the listener is dropped.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", closed.local_addr().unwrap());
    drop(closed);
    let config = Config {
        token_secret: SECRET.into(),
        jwks_url: Some(url.clone()),
        ..Config::default()
    };
    let auth = Auth::from_config(&config).unwrap();
    let error = auth.ready().await.unwrap_err().to_string();
    assert!(error.contains(&url), "{error}");

    // One that answers, but with no usable key.
    let jwks = JwksServer::start(vec![json!({ "kty": "oct", "kid": "s", "k": "c2VjcmV0" })]).await;
    let config = Config {
        jwks_url: Some(jwks.url.clone()),
        ..config
    };
    let error = Auth::from_config(&config)
        .unwrap()
        .ready()
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("no usable signing key"), "{error}");

    // A bad PEM file fails at once.
    let file = TempFile::new("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
    let config = Config {
        jwks_url: None,
        token_public_keys: vec![file.0.clone()],
        ..config
    };
    assert!(Auth::from_config(&config).is_err());
    let private = TempFile::new("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    let config = Config {
        token_public_keys: vec![private.0.clone()],
        ..config
    };
    let error = Auth::from_config(&config).unwrap_err().to_string();
    assert!(error.contains("private key"), "{error}");
}
