//! Tokens: JWTs that name the user and the rooms they may use.
//!
//! A token is checked before the WebSocket upgrade; a missing, bad or expired one gets
//! HTTP 401 and no socket. Browsers carry it in the `chorus.auth.<token>` subprotocol, other
//! clients may use `?token=`.
//!
//! Two kinds of signer are accepted side by side:
//! - **The token secret** (HS256): Chorus's own tokens, signed by `chorus-server token`,
//!   the dev endpoint or the application's backend, with the claims of [`Claims`]. Secrets
//!   replaced in a rotation still verify (`--token-previous-secret`) but sign nothing.
//! - **An identity provider's public keys** (RS256/384/512, PS256/384/512, ES256, ES384,
//!   EdDSA): PEM files (`--token-public-key`) and a JWKS (`--jwks-url`) whose keys are
//!   chosen by `kid`. Their tokens must carry the configured issuer and audience, and may
//!   hold the room patterns in a claim of another name (`--token-rooms-claim`).
//!
//! A token's `alg` must belong to the key that verifies it: an HS256 token is only ever
//! checked against the secrets, an RS256 one against RSA keys, and so on, so a public key
//! never serves as an HMAC secret. `alg: none` is never accepted.
//!
//! `exp` and `nbf` are checked with a leeway for clock skew (`--token-leeway`), and a
//! connection ends when its token does, leeway included ([`Auth::remaining`]).

use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use chorus_protocol::validate;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::config::Config;
use crate::{Error, Result};

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user name.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issue time, seconds since the Unix epoch.
    #[serde(default)]
    pub iat: u64,
    /// Room patterns the user may join and publish to; `*` matches any run of characters
    /// (`chat:*`, `user:alice`, `*`).
    pub rooms: Vec<String>,
    /// Whether the token may use the HTTP publish API.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
}

impl Claims {
    /// Whether the token permits `room`.
    pub fn allows(&self, room: &str) -> bool {
        self.rooms.iter().any(|pattern| glob_match(pattern, room))
    }

    /// Time left before `exp` (zero if already past), without the leeway: see
    /// [`Auth::remaining`] for the time a server keeps the token.
    pub fn remaining(&self) -> Duration {
        Duration::from_secs(self.exp).saturating_sub(unix_now())
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token was presented.
    #[error("missing token")]
    Missing,
    /// The token is past its expiry.
    #[error("token expired")]
    Expired,
    /// The signature, format or claims are wrong.
    #[error("invalid token")]
    Invalid,
}

/// Clock skew allowed on `exp` and `nbf` unless configured otherwise.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);

impl Claims {
    /// Claims for `user`, issued now and valid for `ttl` (at least a second: `exp` is in
    /// whole seconds), for the room `rooms` patterns.
    pub fn new(user: &str, ttl: Duration, rooms: Vec<String>, admin: bool) -> Claims {
        let now = unix_now().as_secs();
        Claims {
            sub: user.to_owned(),
            exp: now + ttl.as_secs().max(1),
            iat: now,
            rooms,
            admin,
        }
    }
}

/// The one HMAC algorithm the token secrets verify.
const SECRET_ALGORITHM: Algorithm = Algorithm::HS256;

const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// Every algorithm a public key may verify.
const PUBLIC_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Signs tokens with the token secret, and verifies them with the secrets and the
/// identity providers' public keys. Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    /// The current secret, the only one that signs.
    signing: EncodingKey,
    /// The current secret first, then the previous ones.
    secrets: Vec<Secret>,
    /// Keys from `--token-public-key` files.
    public_keys: Vec<PublicKey>,
    jwks: Option<Arc<Jwks>>,
    leeway: Duration,
    secret_validation: Validation,
    /// One per algorithm of [`PUBLIC_ALGORITHMS`], with the issuer and audience rules.
    public_validation: Vec<(Algorithm, Validation)>,
    rooms_claim: String,
    admin_claim: String,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(jwks) = &self.jwks {
            jwks.refresher.abort();
        }
    }
}

struct Secret {
    bytes: Vec<u8>,
    key: DecodingKey,
}

/// A public key and what it may verify.
struct PublicKey {
    /// The JWKS key id; `None` for PEM files (tried for every token of a fitting `alg`).
    kid: Option<String>,
    /// The algorithms the key may verify: its family's, or the one its JWK names.
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth { .. }")
    }
}

/// Where a token's claims come from, which decides the claim names.
#[derive(Debug, Clone, Copy)]
enum Signer {
    Secret,
    PublicKey,
}

/// What verifying with the keys at hand found.
enum Checked {
    Done(Result<Claims, AuthError>),
    /// Signed by an algorithm of public keys, naming a `kid` the JWKS does not hold (yet).
    UnknownKid(String),
}

/// What one key made of a token.
enum Attempt {
    /// The key did not verify the signature (or does not fit the algorithm): try another.
    WrongKey,
    /// The signature is good; the claims were checked.
    Verified(Result<Map<String, Value>, AuthError>),
}

impl Auth {
    /// Keys from a shared secret only, with the default leeway.
    pub fn new(secret: &str) -> Auth {
        Auth {
            inner: Arc::new(Inner::new(secret, &[], DEFAULT_LEEWAY)),
        }
    }

    /// Everything `config` sets: the secret and previous secrets, the public keys of the
    /// `--token-public-key` files (read here: a missing or bad file is an error), the JWKS
    /// of `--jwks-url`, issuer, audience, claim names and leeway.
    ///
    /// With a JWKS URL this must be called within a tokio runtime: the first fetch starts
    /// at once in a task, which then keeps the keys fresh. [`Auth::ready`] waits for that
    /// first fetch; until it succeeds, tokens that need its keys are refused.
    pub fn from_config(config: &Config) -> Result<Auth> {
        let mut inner = Inner::new(
            &config.token_secret,
            &config.token_previous_secrets,
            config.token_leeway,
        );
        for path in &config.token_public_keys {
            let key = PublicKey::from_pem_file(path)
                .map_err(|e| Error::Config(format!("token public key {}: {e}", path.display())))?;
            inner.public_keys.push(key);
        }
        for (_, validation) in &mut inner.public_validation {
            if let Some(issuer) = &config.token_issuer {
                validation.set_issuer(&[issuer]);
                validation.required_spec_claims.insert("iss".to_owned());
            }
            match &config.token_audience {
                Some(audience) => {
                    validation.set_audience(&[audience]);
                    validation.required_spec_claims.insert("aud".to_owned());
                }
                // A provider's tokens all name some audience; with none to compare, none
                // can be refused for it.
                None => validation.validate_aud = false,
            }
        }
        inner.rooms_claim.clone_from(&config.token_rooms_claim);
        inner.admin_claim.clone_from(&config.token_admin_claim);
        if let Some(url) = &config.jwks_url {
            let uri = check_jwks_url(url).map_err(|e| Error::Config(format!("jwks_url: {e}")))?;
            inner.jwks =
                Some(Jwks::start(uri).map_err(|e| Error::Config(format!("jwks_url {url}: {e}")))?);
        }
        let public = !inner.public_keys.is_empty() || inner.jwks.is_some();
        if public && config.token_audience.is_none() {
            tracing::warn!(
                "token public keys are configured without --token-audience: any token the \
                 identity provider signs, for any of its applications, is accepted"
            );
        }
        Ok(Auth {
            inner: Arc::new(inner),
        })
    }

    /// Wait for the first fetch of the JWKS (at once without one), and fail if it did not
    /// bring usable keys. Later failures keep the keys already fetched.
    pub async fn ready(&self) -> Result<()> {
        let Some(jwks) = &self.inner.jwks else {
            return Ok(());
        };
        let mut loaded = jwks.loaded.subscribe();
        let outcome = loaded
            .wait_for(Option::is_some)
            .await
            .map(|outcome| outcome.clone())
            .unwrap_or_else(|_| Some(Err("the key refresher stopped".to_owned())));
        match outcome {
            Some(Err(e)) => Err(Error::Config(format!("jwks_url {}: {e}", jwks.uri))),
            _ => Ok(()),
        }
    }

    /// Sign a token for `user`, valid for `ttl`, for the room `patterns`.
    pub fn issue(
        &self,
        user: &str,
        ttl: Duration,
        rooms: Vec<String>,
        admin: bool,
    ) -> Result<String> {
        self.sign(&Claims::new(user, ttl, rooms, admin))
    }

    /// Sign arbitrary claims with the current secret (tests use this for expired tokens).
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        Ok(jsonwebtoken::encode(
            &Header::new(SECRET_ALGORITHM),
            claims,
            &self.inner.signing,
        )?)
    }

    /// Check a token's signature, expiry and user name with the keys at hand: a token
    /// naming a key id the JWKS does not hold is refused without fetching it again (see
    /// [`Auth::authenticate`]).
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        match self.check(token) {
            Checked::Done(verified) => verified,
            Checked::UnknownKid(_) => Err(AuthError::Invalid),
        }
    }

    /// [`Auth::verify`], except that a token naming a key id the JWKS does not hold makes
    /// it fetch the JWKS again, once, and retry: the provider may have rotated its keys.
    /// Such fetches are one at a time, and at most one per [`JWKS_REFETCH_INTERVAL`]: a
    /// flood of made-up key ids costs the provider nothing more.
    pub async fn authenticate(&self, token: &str) -> Result<Claims, AuthError> {
        match self.check(token) {
            Checked::Done(verified) => verified,
            Checked::UnknownKid(kid) => {
                let Some(jwks) = &self.inner.jwks else {
                    return Err(AuthError::Invalid);
                };
                if !jwks.refetch_for(&kid).await {
                    tracing::debug!(kid, "token signed with a key the JWKS does not hold");
                    return Err(AuthError::Invalid);
                }
                self.verify(token)
            }
        }
    }

    /// How long a connection may use `claims`: until its `exp`, plus the leeway (zero if
    /// that is past). The server closes a connection with 4002 then.
    pub fn remaining(&self, claims: &Claims) -> Duration {
        (Duration::from_secs(claims.exp) + self.inner.leeway).saturating_sub(unix_now())
    }

    /// Whether `bearer` is the token secret or a previous one: the publish API's credential
    /// for trusted backends. Compared in constant time.
    pub fn is_secret(&self, bearer: &[u8]) -> bool {
        self.inner.secrets.iter().fold(false, |found, secret| {
            found | constant_time_eq(bearer, &secret.bytes)
        })
    }

    fn check(&self, token: &str) -> Checked {
        let inner = &*self.inner;
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return Checked::Done(Err(AuthError::Invalid));
        };
        let alg = header.alg;
        if alg.family() == AlgorithmFamily::Hmac {
            // HS384 and HS512 are refused: nothing Chorus signs uses them.
            if alg == SECRET_ALGORITHM {
                for secret in &inner.secrets {
                    if let Attempt::Verified(claims) =
                        attempt(token, &secret.key, &inner.secret_validation)
                    {
                        return Checked::Done(claims.and_then(|c| self.claims(c, Signer::Secret)));
                    }
                }
            }
            return Checked::Done(Err(AuthError::Invalid));
        }
        let Some((_, validation)) = inner.public_validation.iter().find(|(a, _)| *a == alg) else {
            return Checked::Done(Err(AuthError::Invalid));
        };
        let jwks_keys = inner.jwks.as_ref().map(|jwks| jwks.keys());
        let from_jwks = jwks_keys
            .iter()
            .flat_map(|keys| keys.iter())
            .filter(|key| header.kid.is_none() || key.kid == header.kid);
        let candidates = inner
            .public_keys
            .iter()
            .chain(from_jwks)
            .filter(|key| key.algorithms.contains(&alg));
        for key in candidates {
            if let Attempt::Verified(claims) = attempt(token, &key.key, validation) {
                return Checked::Done(claims.and_then(|c| self.claims(c, Signer::PublicKey)));
            }
        }
        match (header.kid, jwks_keys) {
            (Some(kid), Some(keys)) if !keys.iter().any(|k| k.kid.as_deref() == Some(&kid)) => {
                Checked::UnknownKid(kid)
            }
            _ => Checked::Done(Err(AuthError::Invalid)),
        }
    }

    /// The grant of a token whose signature and registered claims are good.
    fn claims(&self, mut claims: Map<String, Value>, signer: Signer) -> Result<Claims, AuthError> {
        let (rooms_claim, admin_claim) = match signer {
            Signer::Secret => ("rooms", "admin"),
            Signer::PublicKey => (
                self.inner.rooms_claim.as_str(),
                self.inner.admin_claim.as_str(),
            ),
        };
        let invalid = |why: &str| {
            tracing::debug!(why, "token refused");
            AuthError::Invalid
        };
        let rooms = match claims.remove(rooms_claim) {
            Some(Value::Array(patterns)) => patterns
                .into_iter()
                .map(|pattern| match pattern {
                    Value::String(pattern) => Ok(pattern),
                    _ => Err(invalid("a room pattern is not a string")),
                })
                .collect::<Result<Vec<_>, _>>()?,
            // The OAuth `scope` form.
            Some(Value::String(patterns)) => {
                patterns.split_whitespace().map(str::to_owned).collect()
            }
            _ => return Err(invalid("no room patterns in the rooms claim")),
        };
        let admin = match claims.get(admin_claim) {
            None => false,
            Some(Value::Bool(admin)) => *admin,
            Some(_) => return Err(invalid("the admin claim is not a boolean")),
        };
        let sub = match claims.remove("sub") {
            Some(Value::String(sub)) if validate::user(&sub).is_ok() => sub,
            _ => return Err(invalid("sub is not a valid user name")),
        };
        let exp = claims
            .get("exp")
            .and_then(seconds)
            .ok_or_else(|| invalid("no exp"))?;
        let iat = match claims.get("iat") {
            None => 0,
            Some(iat) => seconds(iat).ok_or_else(|| invalid("iat is not a time"))?,
        };
        let claims = Claims {
            sub,
            exp,
            iat,
            rooms,
            admin,
        };
        // jsonwebtoken compares whole seconds; a token expiring this very second (leeway
        // included) is expired.
        if self.remaining(&claims).is_zero() {
            return Err(AuthError::Expired);
        }
        Ok(claims)
    }
}

impl Inner {
    fn new(secret: &str, previous: &[String], leeway: Duration) -> Inner {
        let secrets = std::iter::once(secret)
            .chain(previous.iter().map(String::as_str))
            .map(|secret| Secret {
                bytes: secret.as_bytes().to_vec(),
                key: DecodingKey::from_secret(secret.as_bytes()),
            })
            .collect();
        let base = |alg| {
            let mut validation = Validation::new(alg);
            validation.leeway = leeway.as_secs();
            validation.validate_nbf = true;
            validation.set_required_spec_claims(&["exp", "sub"]);
            validation
        };
        Inner {
            signing: EncodingKey::from_secret(secret.as_bytes()),
            secrets,
            public_keys: Vec::new(),
            jwks: None,
            leeway,
            secret_validation: base(SECRET_ALGORITHM),
            public_validation: PUBLIC_ALGORITHMS
                .iter()
                .map(|&alg| (alg, base(alg)))
                .collect(),
            rooms_claim: "rooms".to_owned(),
            admin_claim: "admin".to_owned(),
        }
    }
}

/// Verify `token` with one key.
fn attempt(token: &str, key: &DecodingKey, validation: &Validation) -> Attempt {
    match jsonwebtoken::decode::<Map<String, Value>>(token, key, validation) {
        Ok(data) => Attempt::Verified(Ok(data.claims)),
        // jsonwebtoken checks the claims only once the signature is good.
        Err(e) => match e.kind() {
            ErrorKind::ExpiredSignature => Attempt::Verified(Err(AuthError::Expired)),
            ErrorKind::ImmatureSignature
            | ErrorKind::InvalidIssuer
            | ErrorKind::InvalidAudience
            | ErrorKind::InvalidSubject
            | ErrorKind::MissingRequiredClaim(_)
            | ErrorKind::InvalidClaimFormat(_)
            | ErrorKind::Json(_)
            | ErrorKind::Utf8(_) => {
                tracing::debug!(error = %e, "token refused");
                Attempt::Verified(Err(AuthError::Invalid))
            }
            _ => Attempt::WrongKey,
        },
    }
}

/// A NumericDate: whole seconds, or fractional ones (rounded down).
fn seconds(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| s as u64)
    })
}

impl PublicKey {
    /// A PEM file holding one public key: `PUBLIC KEY` (RSA, EC or Ed25519) or
    /// `RSA PUBLIC KEY`.
    fn from_pem_file(path: &std::path::Path) -> Result<PublicKey, String> {
        let pem = std::fs::read(path).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&pem);
        if text.contains("PRIVATE KEY-----") {
            return Err("holds a private key; give the public key".into());
        }
        if !text.contains("-----BEGIN PUBLIC KEY-----")
            && !text.contains("-----BEGIN RSA PUBLIC KEY-----")
        {
            return Err("not a PEM public key (-----BEGIN PUBLIC KEY-----)".into());
        }
        let (key, algorithms) = if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
            (key, RSA_ALGORITHMS.to_vec())
        } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
            (key, vec![Algorithm::ES256, Algorithm::ES384])
        } else if let Ok(key) = DecodingKey::from_ed_pem(&pem) {
            (key, vec![Algorithm::EdDSA])
        } else {
            return Err("not an RSA, EC (P-256, P-384) or Ed25519 public key".into());
        };
        let mut key = PublicKey {
            kid: None,
            algorithms,
            key,
        };
        key.check()?;
        Ok(key)
    }

    /// A key of a JWKS; `None` for keys that verify no token here (encryption keys,
    /// secrets, unsupported curves or types).
    fn from_jwk(jwk: &Jwk) -> Result<Option<PublicKey>, String> {
        if matches!(
            jwk.common.public_key_use,
            Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
        ) {
            return Ok(None);
        }
        let fitting = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => RSA_ALGORITHMS.to_vec(),
            AlgorithmParameters::EllipticCurve(params) => match params.curve {
                EllipticCurve::P256 => vec![Algorithm::ES256],
                EllipticCurve::P384 => vec![Algorithm::ES384],
                _ => return Ok(None),
            },
            AlgorithmParameters::OctetKeyPair(params) => match params.curve {
                EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
                _ => return Ok(None),
            },
            // A secret (`oct`) has no place in a published key set; other types are unknown.
            _ => return Ok(None),
        };
        let algorithms = match jwk.common.key_algorithm {
            None => fitting,
            Some(named) => match Algorithm::try_from(named) {
                Ok(alg) if fitting.contains(&alg) => vec![alg],
                Ok(alg) => return Err(format!("alg {alg:?} does not fit the key's type")),
                // An encryption algorithm (RSA-OAEP, ...): not a signing key.
                Err(_) => return Ok(None),
            },
        };
        let mut key = PublicKey {
            kid: jwk.common.key_id.clone(),
            algorithms,
            key: DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?,
        };
        key.check()?;
        Ok(Some(key))
    }

    /// Parse the key now, as jsonwebtoken would only for each token, so that a bad key is
    /// reported at load rather than as every token refused; and keep only the algorithms it
    /// works with (an EC key from a PEM file is P-256 or P-384).
    fn check(&mut self) -> Result<(), String> {
        use jsonwebtoken::DecodingKeyKind;
        use rsa::pkcs1::DecodeRsaPublicKey;
        use rsa::traits::PublicKeyParts;

        if self.key.family() == AlgorithmFamily::Rsa {
            let key = match self.key.kind() {
                DecodingKeyKind::SecretOrDer(der) => rsa::RsaPublicKey::from_pkcs1_der(der)
                    .map_err(|e| format!("not a valid RSA public key: {e}"))?,
                DecodingKeyKind::RsaModulusExponent { n, e } => rsa::RsaPublicKey::new(
                    rsa::BigUint::from_bytes_be(n),
                    rsa::BigUint::from_bytes_be(e),
                )
                .map_err(|e| format!("not a valid RSA public key: {e}"))?,
            };
            if key.size() < 256 {
                return Err("RSA keys under 2048 bits are refused".into());
            }
            return Ok(());
        }
        // The EC and EdDSA verifiers parse the key before looking at the signature.
        let key = &self.key;
        self.algorithms
            .retain(|&alg| jsonwebtoken::crypto::verify("", b"", key, alg).is_ok());
        if self.algorithms.is_empty() {
            return Err("not a valid public key".into());
        }
        Ok(())
    }
}

/// Fetches of the JWKS started by a token naming an unknown key id are at most this often.
pub const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// How often the JWKS is fetched again when its answer gives no Cache-Control max-age.
const JWKS_REFRESH: Duration = Duration::from_secs(600);
/// The bounds put on the Cache-Control max-age of the JWKS: a provider saying `max-age=0`
/// is not fetched from more than once a minute, and a removed key stops being trusted
/// within the hour whatever it says.
const JWKS_REFRESH_MIN: Duration = Duration::from_secs(60);
const JWKS_REFRESH_MAX: Duration = Duration::from_secs(3600);
/// After a failed fetch, the next is tried this soon (the keys fetched before stay in use).
const JWKS_RETRY: Duration = Duration::from_secs(10);
/// Longest one fetch may take, connection included.
const JWKS_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS accepted.
const JWKS_MAX_BYTES: usize = 1 << 20;

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// An identity provider's JWKS, fetched and cached.
struct Jwks {
    uri: Uri,
    client: HttpClient,
    /// The keys of the last good fetch. A std lock: read once per token signed with a
    /// public key and replaced whole after a fetch, never held across an await.
    keys: RwLock<Arc<Vec<PublicKey>>>,
    /// Held through each fetch, so at most one is in flight (a tokio Mutex: it is held
    /// across the fetch's awaits); it holds when the last fetch for an unknown key id
    /// started.
    fetching: tokio::sync::Mutex<Option<Instant>>,
    /// The outcome of the first fetch, once there is one.
    loaded: watch::Sender<Option<Result<(), String>>>,
    /// The task that keeps the keys fresh, ended when [`Auth`] is dropped.
    refresher: AbortHandle,
}

impl Jwks {
    /// Make the client and start the task that fetches the keys, now and then periodically.
    fn start(uri: Uri) -> Result<Arc<Jwks>, String> {
        let client = http_client(&uri)?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "a JWKS needs a tokio runtime".to_owned())?;
        Ok(Arc::new_cyclic(|weak: &Weak<Jwks>| Jwks {
            uri,
            client,
            keys: RwLock::new(Arc::new(Vec::new())),
            fetching: tokio::sync::Mutex::new(None),
            loaded: watch::Sender::new(None),
            refresher: runtime.spawn(keep_fresh(weak.clone())).abort_handle(),
        }))
    }

    fn keys(&self) -> Arc<Vec<PublicKey>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn holds(&self, kid: &str) -> bool {
        self.keys()
            .iter()
            .any(|key| key.kid.as_deref() == Some(kid))
    }

    /// Fetch the keys again for a token naming `kid`, unless a fetch for an unknown key id
    /// started less than [`JWKS_REFETCH_INTERVAL`] ago; whether the keys now hold `kid`.
    async fn refetch_for(&self, kid: &str) -> bool {
        let mut last = self.fetching.lock().await;
        // A fetch finished while this one waited may have brought it.
        if self.holds(kid) {
            return true;
        }
        if last.is_some_and(|at| at.elapsed() < JWKS_REFETCH_INTERVAL) {
            return false;
        }
        *last = Some(Instant::now());
        tracing::info!(kid, url = %self.uri, "fetching the JWKS for a key id it did not hold");
        if let Err(e) = self.fetch().await {
            tracing::warn!(url = %self.uri, error = %e, "cannot fetch the JWKS; keeping the keys held");
        }
        self.holds(kid)
    }

    /// Fetch the keys and put them in use; the response's max-age, if any. The caller
    /// holds `fetching`.
    async fn fetch(&self) -> Result<Option<Duration>, String> {
        let request = hyper::Request::get(self.uri.clone())
            .header(hyper::header::ACCEPT, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("chorus-server/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let fetch = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| error_chain(&e))?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("answered HTTP {status}"));
            }
            let max_age = max_age(response.headers());
            let body = Limited::new(response.into_body(), JWKS_MAX_BYTES)
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes();
            Ok((parse_jwks(&body)?, max_age))
        };
        let (keys, max_age) = tokio::time::timeout(JWKS_TIMEOUT, fetch)
            .await
            .map_err(|_| format!("no answer within {JWKS_TIMEOUT:?}"))??;
        tracing::debug!(url = %self.uri, keys = keys.len(), "JWKS fetched");
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(max_age)
    }
}

/// Fetch the JWKS at once, then whenever its max-age runs out (within bounds), until the
/// [`Jwks`] is dropped.
async fn keep_fresh(jwks: Weak<Jwks>) {
    loop {
        let Some(jwks) = jwks.upgrade() else {
            return;
        };
        let fetched = {
            let _fetching = jwks.fetching.lock().await;
            jwks.fetch().await
        };
        let wait = match &fetched {
            Ok(max_age) => max_age.map_or(JWKS_REFRESH, |age| {
                age.clamp(JWKS_REFRESH_MIN, JWKS_REFRESH_MAX)
            }),
            Err(e) => {
                tracing::warn!(url = %jwks.uri, error = %e, "cannot fetch the JWKS; keeping the keys held");
                JWKS_RETRY
            }
        };
        jwks.loaded.send_if_modified(|loaded| {
            let first = loaded.is_none();
            if first {
                *loaded = Some(fetched.map(drop));
            }
            first
        });
        drop(jwks);
        tokio::time::sleep(wait).await;
    }
}

/// The usable keys of a JWKS document. Keys that cannot be read are skipped (and logged),
/// so one odd key does not hide the rest; a set with no usable key at all is an error.
fn parse_jwks(body: &[u8]) -> Result<Vec<PublicKey>, String> {
    #[derive(Deserialize)]
    struct KeySet {
        keys: Vec<Value>,
    }
    let set: KeySet = serde_json::from_slice(body).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut keys = Vec::new();
    for value in set.keys {
        let kid = value.get("kid").and_then(Value::as_str).map(str::to_owned);
        match serde_json::from_value::<Jwk>(value)
            .map_err(|e| e.to_string())
            .and_then(|jwk| PublicKey::from_jwk(&jwk))
        {
            Ok(Some(key)) => keys.push(key),
            Ok(None) => {}
            Err(e) => tracing::warn!(kid, error = %e, "ignoring a key of the JWKS"),
        }
    }
    if keys.is_empty() {
        return Err("the JWKS holds no usable signing key".into());
    }
    Ok(keys)
}

/// The `max-age` of a Cache-Control header.
fn max_age(headers: &hyper::HeaderMap) -> Option<Duration> {
    headers
        .get_all(hyper::header::CACHE_CONTROL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|directive| {
            let (name, value) = directive.trim().split_once('=')?;
            name.eq_ignore_ascii_case("max-age")
                .then(|| value.trim().parse().ok())
                .flatten()
                .map(Duration::from_secs)
        })
}

/// The client for the JWKS: HTTPS checked against the system's CA certificates, or plain
/// HTTP to a loopback address (which [`check_jwks_url`] allows for tests and sidecars).
fn http_client(uri: &Uri) -> Result<HttpClient, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let connector = hyper_rustls::HttpsConnectorBuilder::new();
    let connector = if uri.scheme() == Some(&hyper::http::uri::Scheme::HTTPS) {
        connector
            .with_provider_and_native_roots(provider)
            .map_err(|e| format!("cannot load the system's CA certificates: {e}"))?
            .https_only()
    } else {
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        connector.with_tls_config(tls).https_or_http()
    };
    Ok(Client::builder(TokioExecutor::new()).build(connector.enable_http1().build()))
}

/// Check that `url` may serve a JWKS: HTTPS, or plain HTTP to a loopback address. Keys
/// fetched over plain HTTP from elsewhere could be anyone's.
pub(crate) fn check_jwks_url(url: &str) -> std::result::Result<Uri, String> {
    let uri: Uri = url.parse().map_err(|e| format!("{url:?}: {e}"))?;
    let host = uri.host().ok_or_else(|| format!("{url:?} has no host"))?;
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if is_loopback(host) => Ok(uri),
        Some("http") => Err(format!(
            "{url:?}: plain HTTP is only for loopback addresses; use https"
        )),
        _ => Err(format!("{url:?} is not an https URL")),
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An error and its sources, `a: b: c`: hyper's client errors say little on their own.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Match `text` against `pattern`, where `*` matches any run of characters (even none).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it is currently made to cover up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(glob_match("*", "anything"));
        assert!(glob_match("*", ""));
        assert!(glob_match("chat:*", "chat:lobby"));
        assert!(glob_match("chat:*", "chat:"));
        assert!(!glob_match("chat:*", "news:x"));
        assert!(glob_match("user:alice", "user:alice"));
        assert!(!glob_match("user:alice", "user:alice2"));
        assert!(glob_match("a*b*c", "a-xx-b-yy-c"));
        assert!(!glob_match("a*b*c", "a-xx-c-yy-b"));
        assert!(glob_match("*:inbox", "user:inbox"));
    }

    #[test]
    fn issue_and_verify() {
        let auth = Auth::new("0123456789abcdef");
        let token = auth
            .issue(
                "alice",
                Duration::from_secs(60),
                vec!["chat:*".into()],
                false,
            )
            .unwrap();
        let claims = auth.verify(&token).unwrap();
        assert_eq!(claims.sub, "alice");
        assert!(claims.allows("chat:x"));
        assert!(!claims.allows("news:x"));
        assert_eq!(
            Auth::new("another-secret-0000").verify(&token),
            Err(AuthError::Invalid)
        );
        assert_eq!(auth.verify("not.a.token"), Err(AuthError::Invalid));
    }

    #[test]
    fn expired_tokens_are_refused() {
        let auth = Auth::new("0123456789abcdef");
        let now = unix_now().as_secs();
        let claims = Claims {
            sub: "bob".into(),
            exp: now - 10,
            iat: now - 100,
            rooms: vec!["*".into()],
            admin: false,
        };
        assert_eq!(
            auth.verify(&auth.sign(&claims).unwrap()),
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn invalid_user_names_are_refused() {
        let auth = Auth::new("0123456789abcdef");
        let token = auth
            .issue(" padded ", Duration::from_secs(60), vec!["*".into()], false)
            .unwrap();
        assert_eq!(auth.verify(&token), Err(AuthError::Invalid));
    }

    fn config(adjust: impl FnOnce(&mut Config)) -> Config {
        let mut config = Config {
            token_secret: "current-secret-0123456789".into(),
            ..Config::default()
        };
        adjust(&mut config);
        config
    }

    fn hs256(secret: &str, claims: &Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn claims_expiring_at(exp: u64) -> Value {
        serde_json::json!({ "sub": "alice", "exp": exp, "rooms": ["*"] })
    }

    #[test]
    fn previous_secrets_verify_but_never_sign() {
        let auth = Auth::from_config(&config(|c| {
            c.token_previous_secrets = vec!["previous-secret-0123456789".into()];
        }))
        .unwrap();
        let exp = unix_now().as_secs() + 60;
        let old = hs256("previous-secret-0123456789", &claims_expiring_at(exp));
        assert_eq!(auth.verify(&old).unwrap().sub, "alice");
        let unknown = hs256("unknown-secret-0123456789", &claims_expiring_at(exp));
        assert_eq!(auth.verify(&unknown), Err(AuthError::Invalid));
        // What it signs verifies with the current secret alone.
        let new = auth
            .issue("bob", Duration::from_secs(60), vec!["*".into()], false)
            .unwrap();
        assert!(Auth::new("current-secret-0123456789").verify(&new).is_ok());
        assert!(auth.is_secret(b"previous-secret-0123456789"));
        assert!(auth.is_secret(b"current-secret-0123456789"));
        assert!(!auth.is_secret(b"current-secret-012345678"));
    }

    #[test]
    fn the_leeway_extends_exp_and_the_time_a_connection_keeps_its_token() {
        let now = unix_now().as_secs();
        let expired = hs256("current-secret-0123456789", &claims_expiring_at(now - 2));
        let lenient =
            Auth::from_config(&config(|c| c.token_leeway = Duration::from_secs(5))).unwrap();
        let claims = lenient.verify(&expired).unwrap();
        let left = lenient.remaining(&claims);
        assert!(
            left > Duration::ZERO && left <= Duration::from_secs(3),
            "{left:?}"
        );
        assert_eq!(claims.remaining(), Duration::ZERO);
        let strict = Auth::from_config(&config(|c| c.token_leeway = Duration::ZERO)).unwrap();
        assert_eq!(strict.verify(&expired), Err(AuthError::Expired));
    }

    #[test]
    fn other_hmac_algorithms_and_alg_none_are_refused() {
        let auth = Auth::new("current-secret-0123456789");
        let claims = claims_expiring_at(unix_now().as_secs() + 60);
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(b"current-secret-0123456789"),
        )
        .unwrap();
        assert_eq!(auth.verify(&hs512), Err(AuthError::Invalid));
        let signed = auth
            .issue("alice", Duration::from_secs(60), vec![], false)
            .unwrap();
        let payload = signed.split('.').nth(1).unwrap();
        // {"alg":"none","typ":"JWT"}
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert_eq!(auth.verify(&none), Err(AuthError::Invalid));
    }

    #[test]
    fn rooms_may_be_a_space_separated_string_and_admin_must_be_a_boolean() {
        let auth = Auth::new("current-secret-0123456789");
        let exp = unix_now().as_secs() + 60;
        let scoped =
            serde_json::json!({ "sub": "alice", "exp": exp, "rooms": "chat:* user:alice" });
        let claims = auth
            .verify(&hs256("current-secret-0123456789", &scoped))
            .unwrap();
        assert_eq!(claims.rooms, ["chat:*", "user:alice"]);
        let odd = serde_json::json!({ "sub": "alice", "exp": exp, "rooms": ["*"], "admin": "yes" });
        assert_eq!(
            auth.verify(&hs256("current-secret-0123456789", &odd)),
            Err(AuthError::Invalid)
        );
        let none = serde_json::json!({ "sub": "alice", "exp": exp });
        assert_eq!(
            auth.verify(&hs256("current-secret-0123456789", &none)),
            Err(AuthError::Invalid)
        );
    }

    #[test]
    fn jwks_urls_must_be_https_unless_loopback() {
        assert!(check_jwks_url("https://tenant.auth0.com/.well-known/jwks.json").is_ok());
        assert!(check_jwks_url("http://127.0.0.1:8080/jwks.json").is_ok());
        assert!(check_jwks_url("http://[::1]:8080/jwks.json").is_ok());
        assert!(check_jwks_url("http://localhost/jwks.json").is_ok());
        assert!(check_jwks_url("http://keycloak.internal/jwks.json").is_err());
        assert!(check_jwks_url("ftp://example.com/jwks.json").is_err());
        assert!(check_jwks_url("/jwks.json").is_err());
    }

    #[test]
    fn max_age_is_read_from_cache_control() {
        let mut headers = hyper::HeaderMap::new();
        assert_eq!(max_age(&headers), None);
        headers.insert(
            hyper::header::CACHE_CONTROL,
            "public, max-age=15, stale-while-revalidate=15"
                .parse()
                .unwrap(),
        );
        assert_eq!(max_age(&headers), Some(Duration::from_secs(15)));
    }

    #[test]
    fn encryption_keys_and_secrets_in_a_jwks_are_skipped() {
        let set = serde_json::json!({ "keys": [
            { "kty": "oct", "kid": "s", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ" },
            { "kty": "OKP", "crv": "Ed25519", "kid": "e", "use": "enc",
              "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" },
            { "kty": "OKP", "crv": "Ed25519", "kid": "good",
              "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" },
            { "kty": "EC", "crv": "P-256", "kid": "broken", "x": "AAAA", "y": "AAAA" },
        ]});
        let keys = parse_jwks(set.to_string().as_bytes()).unwrap();
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, [Some("good")]);
        assert_eq!(keys[0].algorithms, [Algorithm::EdDSA]);
        let none = serde_json::json!({ "keys": [{ "kty": "oct", "k": "c2VjcmV0" }] });
        assert!(parse_jwks(none.to_string().as_bytes()).is_err());
    }
}
