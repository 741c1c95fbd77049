//! Tokens our services present to each other (dokko-api and dokko-ingest call each other over
//! HTTP): short-lived HS256 JWTs signed with a secret both services hold, audience
//! [`AUDIENCE`], subject the calling service's name. A caller signs one token and reuses it
//! until it is close to expiry.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::jwt::{JwtError, JwtKeys};

/// The audience of service tokens; no user or app token carries it.
pub const AUDIENCE: &str = "dokko:internal";

/// How long a service token lives.
const TTL: Duration = Duration::from_secs(300);
/// A cached token is replaced when less than this is left.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

#[derive(Debug, Serialize, Deserialize)]
pub struct ServiceClaims {
    /// The calling service (`dokko-api`, `dokko-ingest`).
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// Issues this service's tokens and verifies its peers'.
pub struct ServiceTokens {
    keys: JwtKeys,
    name: &'static str,
    current: Mutex<Option<(String, i64)>>,
}

impl std::fmt::Debug for ServiceTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceTokens").field("name", &self.name).finish_non_exhaustive()
    }
}

impl ServiceTokens {
    /// `name` is this service's name, the subject of the tokens it issues.
    pub fn new(secret: &[u8], name: &'static str) -> Self {
        Self { keys: JwtKeys::hs256(secret, AUDIENCE), name, current: Mutex::new(None) }
    }

    /// A token to send as `Authorization: Bearer …`.
    pub fn bearer(&self) -> Result<String, JwtError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((token, exp)) = current.as_ref()
            && *exp - now > RENEW_BEFORE.as_secs() as i64
        {
            return Ok(token.clone());
        }
        let exp = now + TTL.as_secs() as i64;
        let claims = ServiceClaims { sub: self.name.to_owned(), aud: AUDIENCE.to_owned(), iat: now, exp };
        let token = self.keys.issue(&claims)?;
        *current = Some((token.clone(), exp));
        Ok(token)
    }

    /// Verifies a peer's token; the calling service's name.
    pub fn verify(&self, token: &str) -> Result<String, JwtError> {
        self.keys.verify::<ServiceClaims>(token).map(|claims| claims.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_with_the_secret_is_accepted_and_a_stranger_is_not() {
        let api = ServiceTokens::new(b"0123456789abcdef0123456789abcdef", "dokko-api");
        let ingest = ServiceTokens::new(b"0123456789abcdef0123456789abcdef", "dokko-ingest");
        let stranger = ServiceTokens::new(b"another-secret-another-secret-xx", "dokko-api");
        let token = api.bearer().expect("sign");
        assert_eq!(ingest.verify(&token).expect("verify"), "dokko-api");
        assert_eq!(api.bearer().expect("sign"), token, "reused until close to expiry");
        assert_eq!(ingest.verify(&stranger.bearer().expect("sign")), Err(JwtError::BadSignature));
        let user_keys = JwtKeys::hs256(b"0123456789abcdef0123456789abcdef", "fastapi-users:auth");
        let user_token = user_keys
            .issue(&ServiceClaims { sub: "x".into(), aud: "fastapi-users:auth".into(), iat: 0, exp: i64::MAX / 2 })
            .expect("sign");
        assert_eq!(ingest.verify(&user_token), Err(JwtError::WrongAudience));
    }
}
