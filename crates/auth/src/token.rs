//! Opaque bearer tokens: a readable prefix and random hex, stored only as a SHA-256 digest so a
//! lookup is one index probe and a database leak reveals no usable token.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// `n_bytes` of randomness as lowercase hex (`2 * n_bytes` characters).
pub fn random_hex(n_bytes: usize) -> String {
    let mut bytes = vec![0u8; n_bytes];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A new opaque token: `prefix` + 64 hex characters (256 bits of randomness).
pub fn generate(prefix: &str) -> String {
    format!("{prefix}{}", random_hex(32))
}

/// The SHA-256 digest a token is stored and looked up by.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// SHA-256 of arbitrary bytes as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_prefix_and_64_hex() {
        let t = generate("docora_");
        assert_eq!(t.len(), 7 + 64);
        assert!(t.starts_with("docora_"));
        assert!(t[7..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(digest(&t), digest(&generate("docora_")));
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
