//! Paths inside a repository and the file types we accept.
//!
//! A path is relative to the repository root: segments separated by `/`, no leading `/`, no
//! empty, `.` or `..` segment, no backslash, NUL or control character, each segment at most 255
//! bytes and the whole at most 1,024. A path starting with the repository's own name followed by
//! `/` is refused too: the contract says paths never include it, so such a path is almost always
//! a client bug that would create `name/name/…`.

/// Why a path or a file was refused; `code` is the per-item code of the contract's answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    pub code: &'static str,
    pub message: String,
}

impl ItemError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

pub const MAX_PATH_BYTES: usize = 1024;
pub const MAX_SEGMENT_BYTES: usize = 255;

/// A valid repository path, normalised (surrounding whitespace of the whole is not trimmed:
/// spaces are legal in names, and silently changing a path would surprise).
pub fn parse(raw: &str, repository_name: &str) -> Result<String, ItemError> {
    let invalid = |why: &str| Err(ItemError::new("INVALID_PATH", format!("invalid path {raw:?}: {why}")));
    if raw.is_empty() {
        return invalid("it is empty");
    }
    if raw.len() > MAX_PATH_BYTES {
        return invalid("longer than 1024 bytes");
    }
    if raw.starts_with('/') {
        return invalid("paths are relative to the repository root; remove the leading '/'");
    }
    if raw.contains('\\') {
        return invalid("use '/' to separate folders, not '\\'");
    }
    if raw.chars().any(char::is_control) {
        return invalid("control characters are not allowed");
    }
    let path = raw.strip_suffix('/').unwrap_or(raw);
    for segment in path.split('/') {
        match segment {
            "" => return invalid("empty folder name (a '//' or a trailing '/')"),
            "." | ".." => return invalid("'.' and '..' are not allowed"),
            s if s.len() > MAX_SEGMENT_BYTES => return invalid("a name is longer than 255 bytes"),
            s if s.trim().is_empty() || s != s.trim() => {
                return invalid("a name starts or ends with spaces");
            }
            _ => {}
        }
    }
    if let Some(rest) = path.strip_prefix(repository_name)
        && rest.starts_with('/')
    {
        return invalid("paths must not start with the repository name");
    }
    Ok(path.to_owned())
}

/// The last segment.
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The folder holding `path` (`""` for the root).
pub fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(parent, _)| parent)
}

/// The extension in lower case, without the dot (`""` when there is none).
pub fn extension(path: &str) -> String {
    let name = file_name(path);
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => String::new(),
    }
}

/// The error of a path whose type is not one ingestion can read (`Unsupported file type`, as the
/// seed words it, then why and what is supported).
pub fn unsupported_type(path: &str) -> ItemError {
    let message = match extension(path).as_str() {
        "" => format!("Unsupported file type: {} has no extension; supported: {SUPPORTED}", file_name(path)),
        ext => format!("Unsupported file type .{ext}; supported: {SUPPORTED}"),
    };
    ItemError::new("INVALID_TYPE", message)
}

/// The media type of the file types ingestion can read, by extension; `None` for any other.
pub fn content_type(path: &str) -> Option<&'static str> {
    Some(match extension(path).as_str() {
        "txt" | "text" | "log" => "text/plain; charset=utf-8",
        "md" | "markdown" => "text/markdown; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "tsv" => "text/tab-separated-values; charset=utf-8",
        "json" => "application/json",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => return None,
    })
}

/// The supported extensions, for error messages.
pub const SUPPORTED: &str = "txt, md, html, csv, tsv, json, xml, pdf, docx, xlsx, pptx";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_paths_are_kept() {
        for good in ["report.pdf", "docs/2024/report.pdf", "a b/c d.txt", "docs/", "é/ü.md", "repo-2/x.md"] {
            assert!(parse(good, "repo").is_ok(), "{good}");
        }
        assert_eq!(parse("docs/", "repo"), Ok("docs".into()));
    }

    #[test]
    fn bad_paths_are_refused_with_a_reason() {
        for bad in [
            "",
            "/abs.txt",
            "a//b.txt",
            "a/../b.txt",
            "./a.txt",
            "..",
            "a\\b.txt",
            "a\0b",
            "a\nb",
            "docs//",
            "repo/x.txt",
            " lead.txt",
            "trail /x.txt",
        ] {
            let err = parse(bad, "repo").expect_err(bad);
            assert_eq!(err.code, "INVALID_PATH", "{bad}");
        }
        assert!(parse(&"a".repeat(256), "r").is_err());
        assert!(parse(&format!("{}/x", "a/".repeat(600)), "r").is_err());
    }

    #[test]
    fn names_extensions_and_types() {
        assert_eq!(file_name("a/b/c.PDF"), "c.PDF");
        assert_eq!(parent("a/b/c.pdf"), "a/b");
        assert_eq!(parent("c.pdf"), "");
        assert_eq!(extension("a/b/c.PDF"), "pdf");
        assert_eq!(extension(".env"), "");
        assert_eq!(extension("Makefile"), "");
        assert_eq!(content_type("x.docx").map(|t| t.starts_with("application/vnd.openxml")), Some(true));
        assert_eq!(content_type("x.exe"), None);
    }
}
