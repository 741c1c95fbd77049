//! HS256 JSON Web Tokens. Verification pins the algorithm (a token claiming `none` or RS256 is
//! refused), requires `exp` and `aud`, and checks both.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a token was refused. Callers answer all of them with 401; the kind is for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("token expired")]
    Expired,
    #[error("token audience is not accepted")]
    WrongAudience,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token algorithm is not accepted")]
    WrongAlgorithm,
    #[error("token is malformed: {0}")]
    Malformed(String),
    #[error("token could not be signed: {0}")]
    Signing(String),
}

/// Keys and rules for one kind of token.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys").field("audience", &self.validation.aud).finish_non_exhaustive()
    }
}

impl JwtKeys {
    /// HS256 keys from a shared secret; tokens must carry `audience` and an unexpired `exp`.
    pub fn hs256(secret: &[u8], audience: &str) -> Self {
        Self::hs256_audiences(secret, &[audience])
    }

    /// HS256 keys accepting any of `audiences` (a service that issues several kinds of token
    /// from one secret); the caller tells the kinds apart by the verified `aud` claim.
    pub fn hs256_audiences(secret: &[u8], audiences: &[&str]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        validation.validate_exp = true;
        validation.leeway = 5;
        Self { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), validation }
    }

    /// Signs `claims` (which must include `sub`, `aud` and `exp`).
    pub fn issue<C: Serialize>(&self, claims: &C) -> Result<String, JwtError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| JwtError::Signing(e.to_string()))
    }

    /// Verifies `token` and returns its claims.
    pub fn verify<C: DeserializeOwned>(&self, token: &str) -> Result<C, JwtError> {
        use jsonwebtoken::errors::ErrorKind;
        jsonwebtoken::decode::<C>(token, &self.decoding, &self.validation).map(|data| data.claims).map_err(|e| match e
            .kind()
        {
            ErrorKind::ExpiredSignature => JwtError::Expired,
            ErrorKind::InvalidAudience => JwtError::WrongAudience,
            ErrorKind::InvalidSignature => JwtError::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => JwtError::WrongAlgorithm,
            _ => JwtError::Malformed(e.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Claims {
        sub: String,
        aud: String,
        exp: i64,
    }

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    fn b64(bytes: &[u8]) -> String {
        // URL-safe base64 without padding, enough for hand-made tokens.
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn issued_tokens_verify_and_carry_claims() {
        let keys = JwtKeys::hs256(b"secret-secret-secret-secret-0001", "fastapi-m2m:auth");
        let claims = Claims { sub: "abc".into(), aud: "fastapi-m2m:auth".into(), exp: now() + 60 };
        let token = keys.issue(&claims).expect("signs");
        assert_eq!(keys.verify::<Claims>(&token), Ok(claims));
    }

    #[test]
    fn several_audiences_are_accepted_and_others_refused() {
        let keys = JwtKeys::hs256_audiences(b"secret-secret-secret-secret-0001", &["users", "machines"]);
        for aud in ["users", "machines"] {
            let claims = Claims { sub: "a".into(), aud: aud.into(), exp: now() + 60 };
            assert_eq!(keys.verify::<Claims>(&keys.issue(&claims).expect("signs")), Ok(claims));
        }
        let other = keys.issue(&Claims { sub: "a".into(), aud: "others".into(), exp: now() + 60 }).expect("signs");
        assert_eq!(keys.verify::<Claims>(&other), Err(JwtError::WrongAudience));
    }

    #[test]
    fn expired_wrong_audience_tampered_and_none_are_refused() {
        let keys = JwtKeys::hs256(b"secret-secret-secret-secret-0001", "fastapi-m2m:auth");
        let expired =
            keys.issue(&Claims { sub: "a".into(), aud: "fastapi-m2m:auth".into(), exp: now() - 120 }).expect("signs");
        assert_eq!(keys.verify::<Claims>(&expired), Err(JwtError::Expired));

        let other_aud =
            keys.issue(&Claims { sub: "a".into(), aud: "someone-else".into(), exp: now() + 60 }).expect("signs");
        assert_eq!(keys.verify::<Claims>(&other_aud), Err(JwtError::WrongAudience));

        let other_key = JwtKeys::hs256(b"another-secret-another-secret-02", "fastapi-m2m:auth");
        let forged = other_key
            .issue(&Claims { sub: "a".into(), aud: "fastapi-m2m:auth".into(), exp: now() + 60 })
            .expect("signs");
        assert_eq!(keys.verify::<Claims>(&forged), Err(JwtError::BadSignature));

        let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
        let body = b64(format!(r#"{{"sub":"a","aud":"fastapi-m2m:auth","exp":{}}}"#, now() + 60).as_bytes());
        let unsigned = format!("{header}.{body}.");
        assert!(keys.verify::<Claims>(&unsigned).is_err(), "alg none must be refused");
    }
}
