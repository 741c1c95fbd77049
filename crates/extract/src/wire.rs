//! The protocol between [`extract_isolated`](crate::extract_isolated) and
//! [`child_main`](crate::child_main), over the child's stdin and stdout.
//!
//! Parent → child: one JSON [`Request`] line, then the file's bytes until end of input.
//! Child → parent: one JSON [`Response`] line, then, for a success, exactly
//! `text_bytes` bytes of UTF-8 text. The text travels raw so that escaping
//! cannot inflate it and the parent can check its length before reading it.

use serde::{Deserialize, Serialize};

use crate::error::ExtractError;
use crate::{Format, Limits};

/// The longest header line either side accepts.
pub(crate) const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The longest file name passed on (its end, which holds the extension, is kept).
pub(crate) const MAX_NAME_BYTES: usize = 1024;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    pub(crate) name: String,
    pub(crate) limits: Limits,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Response {
    Ok { format: Format, title: Option<String>, text_bytes: u64 },
    Err(ExtractError),
}

/// The last `MAX_NAME_BYTES` of `name`, cut at a character boundary.
pub(crate) fn short_name(name: &str) -> &str {
    let mut start = name.len().saturating_sub(MAX_NAME_BYTES);
    while !name.is_char_boundary(start) {
        start += 1;
    }
    &name[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_keep_their_extension() {
        let name = format!("{}é.pdf", "a".repeat(2000));
        let short = short_name(&name);
        assert!(short.len() <= MAX_NAME_BYTES);
        assert!(short.ends_with("é.pdf"));
        assert_eq!(short_name("x.md"), "x.md");
    }
}
