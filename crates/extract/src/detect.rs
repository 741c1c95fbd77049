//! Which format a file is: its name's extension, confirmed or overridden by its first bytes.

use crate::Format;
use crate::error::ExtractError;
use crate::formats::ooxml;
use crate::text::looks_like_text;

/// The format to read `bytes` as, or `None` for a file this crate does not read.
///
/// The content decides where it can: a PDF header (`%PDF-` in the first KiB) makes a PDF and a
/// ZIP package with a Word, Excel or PowerPoint main part makes that format, whatever the name
/// says; another ZIP, an image, an executable or other binary data is `None`. Otherwise the
/// extension decides (`.md`, `.html`, `.csv`, `.tsv`, `.json`, `.jsonl` …); a `.pdf` or Office
/// name on bytes that are not one still gets that format, so extraction reports it as corrupt.
/// A file with any other name that is valid UTF-8 text is [`Format::Text`] (or HTML when it
/// starts like a page).
///
/// For a ZIP this reads the archive's directory and its `[Content_Types].xml` (bounded).
pub fn detect(name: &str, bytes: &[u8]) -> Option<Format> {
    sniff(name, bytes).ok()
}

/// [`detect`], with what the file looks like when it is not readable.
pub(crate) fn sniff(name: &str, bytes: &[u8]) -> Result<Format, ExtractError> {
    let by_name = by_extension(name);
    let unsupported = |kind: &str| ExtractError::Unsupported { kind: kind.to_owned() };

    if is_pdf(bytes) {
        return Ok(Format::Pdf);
    }
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return match ooxml::package_format(bytes) {
            Some(format) => Ok(format),
            None if matches!(by_name, Some(Format::Docx | Format::Xlsx | Format::Pptx)) => {
                by_name.ok_or_else(|| unsupported("ZIP archive"))
            }
            None => Err(unsupported("ZIP archive")),
        };
    }
    if bytes.starts_with(b"{\\rtf") {
        return Err(unsupported("RTF document"));
    }
    // Short magic numbers ("MZ", "BZh") also start ordinary text, so they count only for bytes
    // that are not valid UTF-8 text.
    if let Some(kind) = binary_kind(bytes).filter(|_| !looks_like_text(bytes, true)) {
        return Err(unsupported(kind));
    }
    match by_name {
        Some(format @ (Format::Pdf | Format::Docx | Format::Xlsx | Format::Pptx)) => Ok(format),
        Some(format) if looks_like_text(bytes, false) => Ok(format),
        Some(_) => Err(unsupported("binary data")),
        None if looks_like_text(bytes, true) => Ok(if starts_like_html(bytes) { Format::Html } else { Format::Text }),
        None => Err(unsupported("binary data")),
    }
}

/// The format a file name's extension suggests, if any.
fn by_extension(name: &str) -> Option<Format> {
    let file_name = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let (_, extension) = file_name.rsplit_once('.')?;
    let format = match extension.to_ascii_lowercase().as_str() {
        "txt" | "text" => Format::Text,
        "md" | "markdown" | "mdown" | "mkd" | "mkdn" => Format::Markdown,
        "html" | "htm" | "xhtml" | "shtml" => Format::Html,
        "csv" | "tsv" | "tab" => Format::Csv,
        "json" | "jsonl" | "ndjson" => Format::Json,
        "pdf" => Format::Pdf,
        "docx" | "docm" | "dotx" => Format::Docx,
        "xlsx" | "xlsm" | "xltx" => Format::Xlsx,
        "pptx" | "pptm" | "potx" | "ppsx" => Format::Pptx,
        _ => return None,
    };
    Some(format)
}

/// `%PDF-` at the start, or within the first KiB (readers accept leading junk).
fn is_pdf(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(1024)];
    head.windows(5).any(|w| w == b"%PDF-")
}

/// Well-known binary formats, named for the failure reason.
fn binary_kind(bytes: &[u8]) -> Option<&'static str> {
    const MAGIC: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "PNG image"),
        (b"\xff\xd8\xff", "JPEG image"),
        (b"GIF87a", "GIF image"),
        (b"GIF89a", "GIF image"),
        (b"II*\0", "TIFF image"),
        (b"MM\0*", "TIFF image"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "legacy Office document (.doc, .xls or .ppt)"),
        (b"\x1f\x8b", "gzip archive"),
        (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
        (b"Rar!\x1a\x07", "RAR archive"),
        (b"BZh", "bzip2 archive"),
        (b"\xfd7zXZ\0", "xz archive"),
        (b"\x7fELF", "executable"),
        (b"MZ", "Windows executable"),
        (b"OggS", "Ogg media"),
        (b"ID3", "MP3 audio"),
        (b"fLaC", "FLAC audio"),
        (b"\x1a\x45\xdf\xa3", "Matroska/WebM video"),
        (b"SQLite format 3\0", "SQLite database"),
        (b"\0asm", "WebAssembly module"),
    ];
    if let Some((_, kind)) = MAGIC.iter().find(|(magic, _)| bytes.starts_with(magic)) {
        return Some(kind);
    }
    if bytes.len() >= 12 && bytes.starts_with(b"RIFF") {
        return Some(match &bytes[8..12] {
            b"WEBP" => "WebP image",
            b"WAVE" => "WAV audio",
            b"AVI " => "AVI video",
            _ => "RIFF media",
        });
    }
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return Some("MP4/QuickTime media");
    }
    None
}

/// `<!doctype html` or `<html` first (after whitespace and a BOM), in any case.
fn starts_like_html(bytes: &[u8]) -> bool {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    let head = &bytes[start..bytes.len().min(start + 16)];
    let lower = head.to_ascii_lowercase();
    lower.starts_with(b"<!doctype html") || lower.starts_with(b"<html")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_decides_for_text() {
        assert_eq!(detect("notes.MD", b"# hi"), Some(Format::Markdown));
        assert_eq!(detect("dir.v2/data.tsv", b"a\tb"), Some(Format::Csv));
        assert_eq!(detect("x.jsonl", b"{}\n{}"), Some(Format::Json));
        assert_eq!(detect("old.txt", b"caf\xe9"), Some(Format::Text));
        assert_eq!(detect("main.rs", b"fn main() {}"), Some(Format::Text));
        assert_eq!(detect("Makefile", b"all:\n\ttrue\n"), Some(Format::Text));
        assert_eq!(detect("empty", b""), Some(Format::Text));
    }

    #[test]
    fn content_overrides_extension() {
        assert_eq!(detect("report.txt", b"%PDF-1.7\n"), Some(Format::Pdf));
        assert_eq!(detect("page", b"  <!DOCTYPE html><p>x"), Some(Format::Html));
        assert_eq!(detect("photo.txt", b"\x89PNG\r\n\x1a\n\0\0"), None);
        assert_eq!(detect("blob.bin", b"\x00\x01\x02\x03"), None);
        assert_eq!(detect("latin1.dat", b"caf\xe9"), None);
    }

    #[test]
    fn binary_names_keep_their_format_so_extraction_reports_corruption() {
        assert_eq!(detect("broken.pdf", b"not a pdf"), Some(Format::Pdf));
        assert_eq!(detect("broken.docx", b"PK\x03\x04junk"), Some(Format::Docx));
        assert!(matches!(
            sniff("a.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1rest"),
            Err(ExtractError::Unsupported { kind }) if kind.starts_with("legacy Office")
        ));
    }
}
