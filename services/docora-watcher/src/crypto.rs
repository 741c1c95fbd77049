//! Secrets we must use again later (GitHub tokens, apps' signing keys) are kept encrypted with
//! AES-256-GCM under `ENCRYPTION_KEY`. Each value is stored as `nonce (12 bytes) || ciphertext`,
//! and is bound to the row it belongs to (associated data), so a value copied into another row
//! does not decrypt.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("ENCRYPTION_KEY must be 64 hex characters (32 bytes)")]
    BadKey,
    #[error("a stored secret does not decrypt (wrong ENCRYPTION_KEY, or the value was moved or altered)")]
    Undecryptable,
}

#[derive(Clone)]
pub struct Cipher {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(..)")
    }
}

impl Cipher {
    /// The cipher for a 32-byte key given as 64 hex characters.
    pub fn from_hex(key: &str) -> Result<Self, CryptoError> {
        let bytes = hex::decode(key.trim()).map_err(|_| CryptoError::BadKey)?;
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        Ok(Self { cipher: Aes256Gcm::new_from_slice(&bytes).map_err(|_| CryptoError::BadKey)? })
    }

    /// Encrypts `plaintext` for the row named by `context`.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = self
            .cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad: context.as_bytes() })
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts what [`Cipher::seal`] made for the same `context`.
    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < NONCE_LEN {
            return Err(CryptoError::Undecryptable);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Undecryptable)?;
        self.cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: ciphertext, aad: context.as_bytes() })
            .map_err(|_| CryptoError::Undecryptable)
    }

    /// [`Cipher::open`] as UTF-8 text.
    pub fn open_text(&self, sealed: &[u8], context: &str) -> Result<String, CryptoError> {
        String::from_utf8(self.open(sealed, context)?).map_err(|_| CryptoError::Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn sealed_values_open_only_in_their_own_row_and_with_the_right_key() {
        let cipher = Cipher::from_hex(KEY).expect("key");
        let sealed = cipher.seal(b"ghp_secret", "link:app_1:repo_1");
        assert!(!sealed.windows(10).any(|w| w == b"ghp_secret"), "not stored in clear");
        assert_ne!(cipher.seal(b"ghp_secret", "link:app_1:repo_1"), sealed, "a fresh nonce each time");
        assert_eq!(cipher.open_text(&sealed, "link:app_1:repo_1").expect("opens"), "ghp_secret");
        assert!(cipher.open(&sealed, "link:app_2:repo_1").is_err(), "bound to its row");
        let other = Cipher::from_hex(&KEY.replace("00", "ff")).expect("key");
        assert!(other.open(&sealed, "link:app_1:repo_1").is_err(), "another key");
        let mut tampered = sealed.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert!(cipher.open(&tampered, "link:app_1:repo_1").is_err(), "tampering is detected");
        assert!(Cipher::from_hex("abcd").is_err());
        assert!(Cipher::from_hex(&"zz".repeat(32)).is_err());
    }
}
