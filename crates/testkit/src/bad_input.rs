//! Hostile text for the bad-input tests every service runs over each of its text fields: a NUL
//! (which PostgreSQL cannot store, so every service refuses it at the door) and other control
//! characters (which each field accepts or refuses by its own rule), and what a client must see
//! either way: never a 5xx, and a refusal that names the field.

use crate::http::Response;

/// Strings holding a NUL: each is refused with a 4xx naming the field.
pub const WITH_NUL: &[&str] = &["\0", "a\0b", "x\0@y.z", "sa_\0"];

/// Other control and format characters: accepted or refused, never a 5xx.
pub const CONTROL: &[&str] =
    &["\u{1}", "a\u{7}b", "\u{1b}[31mred", "a\u{7f}", "a\r\nb", "\t", "a\u{85}b", "\u{202e}txt", "\u{feff}x"];

/// Every hostile string: [`WITH_NUL`] then [`CONTROL`].
pub fn all() -> impl Iterator<Item = &'static str> {
    WITH_NUL.iter().chain(CONTROL).copied()
}

/// `value` percent-encoded byte by byte, for a path segment, a query or a form value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// Asserts what a client that sent `bad` in `field` (during `what`) sees: no server error; a
/// refusal (any 4xx) is the JSON error body and names `field`; a NUL is always refused.
pub fn assert_handled(res: &Response, what: &str, field: &str, bad: &str) {
    let status = res.status.as_u16();
    assert!(status < 500, "{what} with {field} = {bad:?}: {status} {}", res.text);
    if bad.contains('\0') {
        assert!((400..500).contains(&status), "{what} with a NUL in {field}: {status} {}", res.text);
    }
    if (400..500).contains(&status) && ![401, 403, 404, 409].contains(&status) {
        assert!(
            res.error().contains(field),
            "{what} with {field} = {bad:?}: {status}, the message does not name {field}: {}",
            res.text
        );
    }
}
