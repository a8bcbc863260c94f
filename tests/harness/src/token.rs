//! Tokens as `chorus-server` signs and checks them with its secret: HS256 over the server's
//! `auth::Claims`, signed here with `jsonwebtoken` rather than by the server's `Auth`, which
//! would need a whole server configuration to mint one.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

/// The server's default `--token-leeway`: how far past `exp` it still accepts a token.
use chorus_server::auth::DEFAULT_LEEWAY as LEEWAY;

/// What a token grants: the server's own claims type, so the two cannot drift apart.
pub use chorus_server::auth::Claims;

/// A server's token secret: signs tokens and checks them as that server would.
#[derive(Debug, Clone)]
pub struct TokenSecret {
    signing: EncodingKey,
    checking: DecodingKey,
}

impl TokenSecret {
    /// The secret a server was started with (`--token-secret`).
    pub fn new(secret: &str) -> TokenSecret {
        TokenSecret {
            signing: EncodingKey::from_secret(secret.as_bytes()),
            checking: DecodingKey::from_secret(secret.as_bytes()),
        }
    }

    /// A token for `user`, valid for `ttl` (at least a second: `exp` is in whole seconds).
    pub fn issue(
        &self,
        user: &str,
        ttl: Duration,
        rooms: Vec<String>,
        admin: bool,
    ) -> jsonwebtoken::errors::Result<String> {
        self.sign(&Claims::new(user, ttl, rooms, admin))
    }

    /// Sign any claims, expired ones included.
    pub fn sign(&self, claims: &Claims) -> jsonwebtoken::errors::Result<String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.signing)
    }

    /// The claims of `token` if the server would take it: signed HS256 with this secret,
    /// with a `sub`, and not expired (within the server's default leeway).
    pub fn verify(&self, token: &str) -> jsonwebtoken::errors::Result<Claims> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(jsonwebtoken::decode(token, &self.checking, &validation)?.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_with_its_secret_only_and_until_it_expires() {
        let secret = TokenSecret::new("test-secret");
        let token = secret
            .issue("alice", Duration::from_secs(60), vec!["*".into()], false)
            .unwrap();
        let claims = secret.verify(&token).unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.exp - claims.iat),
            ("alice", 60)
        );
        assert!(TokenSecret::new("another secret").verify(&token).is_err());

        // Issued now, so expired past the leeway.
        let expired = Claims {
            exp: claims.iat - LEEWAY.as_secs() - 2,
            ..claims
        };
        assert!(secret.verify(&secret.sign(&expired).unwrap()).is_err());
    }
}
