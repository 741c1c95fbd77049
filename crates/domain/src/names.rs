//! Names people give things (tags, permissions, repositories, service accounts): what every
//! service accepts and how it stores them.

use std::ops::RangeInclusive;

/// `raw` as stored: surrounding whitespace trimmed, a length in `chars` (counted in characters,
/// not bytes), no control characters. The error names `field` and says what is wrong.
pub fn clean(field: &str, raw: &str, chars: RangeInclusive<usize>) -> Result<String, String> {
    let name = raw.trim();
    let count = name.chars().count();
    if count == 0 && *chars.start() > 0 {
        return Err(format!("{field} must not be empty"));
    }
    if count > *chars.end() {
        return Err(format!("{field} must be at most {} characters", chars.end()));
    }
    if count < *chars.start() {
        return Err(format!("{field} must be {} to {} characters", chars.start(), chars.end()));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("{field} must not contain control characters"));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(clean("name", "  rust  ", 1..=255), Ok("rust".into()));
        assert_eq!(clean("name", "   ", 1..=255), Err("name must not be empty".into()));
        assert_eq!(clean("name", &"é".repeat(255), 1..=255).map(|n| n.chars().count()), Ok(255));
        assert_eq!(clean("name", &"x".repeat(256), 1..=255), Err("name must be at most 255 characters".into()));
        assert_eq!(clean("name", "ab", 3..=255), Err("name must be 3 to 255 characters".into()));
        assert_eq!(clean("name", "a\u{7}b", 1..=255), Err("name must not contain control characters".into()));
    }
}
