//! Prefixed random identifiers such as Docora's `repo_` + 24 hex characters.

use rand::RngCore;

/// A new identifier: `prefix` followed by `hex_len` lowercase hex characters of randomness.
///
/// `hex_len` must be even (two characters a byte).
pub fn prefixed_hex(prefix: &str, hex_len: usize) -> String {
    debug_assert!(hex_len.is_multiple_of(2), "hex_len must be even");
    let mut bytes = vec![0u8; hex_len / 2];
    rand::rng().fill_bytes(&mut bytes);
    let mut id = String::with_capacity(prefix.len() + hex_len);
    id.push_str(prefix);
    id.push_str(&hex::encode(bytes));
    id
}

/// Whether `candidate` is `prefix` followed by exactly `hex_len` lowercase hex characters.
pub fn is_prefixed_hex(candidate: &str, prefix: &str, hex_len: usize) -> bool {
    candidate.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == hex_len && rest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Docora repository ids: `repo_` + 24 hex characters.
pub fn docora_repository_id() -> String {
    prefixed_hex("repo_", 24)
}

/// Whether `candidate` has the shape of a Docora repository id.
pub fn is_docora_repository_id(candidate: &str) -> bool {
    is_prefixed_hex(candidate, "repo_", 24)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_the_documented_shape() {
        let id = docora_repository_id();
        assert_eq!(id.len(), 5 + 24);
        assert!(is_docora_repository_id(&id), "{id}");
        assert_ne!(id, docora_repository_id(), "two ids should differ");
    }

    #[test]
    fn shape_check_rejects_near_misses() {
        assert!(is_docora_repository_id("repo_0123456789abcdef01234567"));
        assert!(!is_docora_repository_id("repo_0123456789abcdef0123456")); // 23
        assert!(!is_docora_repository_id("repo_0123456789abcdef012345678")); // 25
        assert!(!is_docora_repository_id("repo_0123456789ABCDEF01234567")); // upper case
        assert!(!is_docora_repository_id("rep_0123456789abcdef012345678"));
        assert!(!is_docora_repository_id("repo_0123456789abcdef0123456g"));
    }
}
