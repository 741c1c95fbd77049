//! The one rule every text input meets, whatever its field: no NUL character (U+0000).
//!
//! PostgreSQL stores no NUL in `text` or `jsonb`, so a NUL that reached a query would fail it
//! (a 500). Every service refuses it at the door instead: JSON strings and object keys at any
//! depth, form fields, query and path parameters (service-kit's extractors and its input guard
//! apply the rule). Other control characters are a field's own business (names refuse them,
//! [`crate::names::clean`]; metadata values and search queries keep them).

use serde_json::Value;

/// Why `value` of `field` is refused, if it is.
pub fn check(field: &str, value: &str) -> Result<(), String> {
    if value.contains('\0') { Err(refusal(field)) } else { Ok(()) }
}

/// The refusal of a NUL in `field`: `email must not contain a NUL character (U+0000)`.
pub fn refusal(field: &str) -> String {
    format!("{field} must not contain a NUL character (U+0000)")
}

/// Where the first NUL of a JSON document is, in serde_path_to_error's notation
/// (`metadata.team`, `permission_ids[1]`), and whether it is in an object key.
pub fn find_nul(value: &Value) -> Option<NulAt> {
    fn walk(value: &Value, path: &mut String) -> Option<NulAt> {
        match value {
            Value::String(s) if s.contains('\0') => Some(NulAt { path: path.clone(), in_key: false }),
            Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let found = walk(item, path);
                path.truncate(len);
                found
            }),
            Value::Object(map) => map.iter().find_map(|(key, item)| {
                if key.contains('\0') {
                    return Some(NulAt { path: path.clone(), in_key: true });
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                let found = walk(item, path);
                path.truncate(len);
                found
            }),
            _ => None,
        }
    }
    walk(value, &mut String::new())
}

/// A NUL found by [`find_nul`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NulAt {
    /// The value's path; for a key, the path of the object holding it (empty at the top).
    pub path: String,
    pub in_key: bool,
}

impl NulAt {
    /// The refusal, naming the field: `metadata.team must not contain a NUL character (U+0000)`.
    pub fn message(&self) -> String {
        let field = match (self.in_key, self.path.is_empty()) {
            (false, _) => self.path.clone(),
            (true, true) => "a field name".to_owned(),
            (true, false) => format!("a key of {}", self.path),
        };
        refusal(&field)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{check, find_nul};

    #[test]
    fn nul_is_found_wherever_it_is() {
        assert_eq!(check("email", "a@b.c"), Ok(()));
        assert_eq!(check("email", "x\0@y.z"), Err("email must not contain a NUL character (U+0000)".into()));
        assert_eq!(find_nul(&json!({"name": "ok", "n": 1, "tags": ["a\u{7}"]})), None);
        let message = |v| find_nul(&v).map(|at| at.message());
        assert_eq!(
            message(json!({"metadata": {"team": "a\u{0}b"}})).as_deref(),
            Some("metadata.team must not contain a NUL character (U+0000)")
        );
        assert_eq!(
            message(json!({"metadata": {"teams": ["a", "b\u{0}"]}})).as_deref(),
            Some("metadata.teams[1] must not contain a NUL character (U+0000)")
        );
        assert_eq!(
            message(json!({"metadata": {"t\u{0}": "a"}})).as_deref(),
            Some("a key of metadata must not contain a NUL character (U+0000)")
        );
        assert_eq!(
            message(json!({"\u{0}": 1})).as_deref(),
            Some("a field name must not contain a NUL character (U+0000)")
        );
        assert_eq!(
            message(json!({"items": [{"path": "\u{0}"}]})).as_deref(),
            Some("items[0].path must not contain a NUL character (U+0000)")
        );
    }
}
