//! Identity building blocks shared by the services.
//!
//! - [`password`]: argon2id hashing and verification for passwords and client secrets.
//! - [`token`]: long random opaque tokens (`docora_…`) and the SHA-256 digest they are stored as.
//! - [`jwt`]: HS256 JSON Web Tokens with audience and expiry checked and the algorithm pinned.
//! - [`constant_time_eq`]: comparison of secrets that does not leak where they differ.
//! - [`cache`]: a small TTL cache for resolved identities.
//! - [`throttle`]: failed sign-ins per account, and the lockout after too many.
//! - [`service_token`]: the short-lived tokens our services present to each other.
//! - [`extract`]: the actix extractor a handler takes to require a caller.

pub mod cache;
pub mod extract;
pub mod jwt;
pub mod password;
pub mod service_token;
pub mod throttle;
pub mod token;

pub use extract::{Authenticated, Authenticator, Credential, CredentialSource};

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(super::constant_time_eq(b"secret", b"secret"));
        assert!(!super::constant_time_eq(b"secret", b"secreT"));
        assert!(!super::constant_time_eq(b"secret", b"secret2"));
        assert!(super::constant_time_eq(b"", b""));
    }
}
