//! Tokens: HMAC-SHA256 JWTs that name the user and the rooms they may use.
//!
//! A token is checked before the WebSocket upgrade; a missing, bad or expired one gets
//! HTTP 401 and no socket. Browsers carry it in the `chorus.auth.<token>` subprotocol, other
//! clients may use `?token=`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chorus_protocol::validate;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::Result;

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

    /// Time left before expiry (zero if already expired).
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

/// Signs and verifies tokens with one secret.
#[derive(Clone)]
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth { .. }")
    }
}

impl Auth {
    /// Keys from a shared secret.
    pub fn new(secret: &str) -> Auth {
        let mut validation = Validation::new(Algorithm::HS256);
        // Tokens are minted by backends that share the secret and a synchronized clock;
        // jsonwebtoken's 60 s default leeway would keep expired tokens alive.
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Auth {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
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
        let now = unix_now().as_secs();
        let claims = Claims {
            sub: user.to_owned(),
            exp: now + ttl.as_secs().max(1),
            iat: now,
            rooms,
            admin,
        };
        self.sign(&claims)
    }

    /// Sign arbitrary claims (tests use this for expired tokens).
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &self.encoding,
        )?)
    }

    /// Check a token's signature, expiry and user name.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })?;
        let claims = data.claims;
        if validate::user(&claims.sub).is_err() {
            return Err(AuthError::Invalid);
        }
        // jsonwebtoken compares whole seconds; a token expiring this very second is expired.
        if claims.remaining().is_zero() {
            return Err(AuthError::Expired);
        }
        Ok(claims)
    }
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
}
