//! Plain text from tenants' files, for chunking and search indexing.
//!
//! Two ways in:
//!
//! - [`extract`] / [`extract_with_limits`] parse in the calling process. They never panic on
//!   purpose, but they run third-party parsers (PDF above all) over hostile bytes, so a service
//!   should not call them directly.
//! - [`extract_isolated`] runs the same code in a child process (the service's own binary, started
//!   with an argument that makes it call [`child_main`]) with an address-space limit, a CPU-time
//!   limit, a wall-clock timeout and an output cap. A parser that panics, loops or eats memory
//!   kills only the child; the caller gets an [`ExtractError`] whose `Display` is the reason to
//!   show for the failed file.
//!
//! What comes out, per [`Format`]:
//!
//! | format | text |
//! |---|---|
//! | text | the text, decoded (UTF-8, UTF-16 with a BOM, else Windows-1252) |
//! | Markdown | the Markdown as written (the chunker understands it) |
//! | HTML | readable text: the title as a `#` line, no script or style, headings as `#` lines, paragraphs, list items (nested ones indented), table cells separated by ` | `, entities decoded |
//! | CSV / TSV | one line per row, `header: value; header: value` |
//! | JSON / JSON Lines | one `path.to.key: value` line per scalar, a blank line between records |
//! | PDF | the text of each page in page order: lines, blank lines at paragraph gaps and between pages, words hyphenated across lines rejoined |
//! | DOCX | paragraphs in order, headings as `#` lines, list items as `- `, table cells separated by ` | ` |
//! | XLSX | a `## Sheet` heading per sheet, then its rows like CSV |
//! | PPTX | a `## Slide N` heading per slide, in presentation order, then its text |
//!
//! Whitespace is normalised lightly: line ends trimmed, at most one blank line in a row, no
//! control characters; typographic ligatures (`ﬁ`) become their letters.

mod child;
pub mod craft;
mod detect;
mod error;
mod formats;
mod isolate;
mod text;
mod wire;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use child::child_main;
pub use detect::detect;
pub use error::{ExtractError, Oversize};
pub use isolate::extract_isolated;

/// A file format the extractor understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Plain text, and any text file of an unknown kind (source code, logs, YAML…).
    Text,
    /// Markdown, kept as written.
    Markdown,
    /// HTML or XHTML.
    Html,
    /// Comma-, semicolon-, tab- or pipe-separated values.
    Csv,
    /// JSON, or JSON Lines.
    Json,
    /// PDF.
    Pdf,
    /// Word (Office Open XML).
    Docx,
    /// Excel (Office Open XML).
    Xlsx,
    /// PowerPoint (Office Open XML).
    Pptx,
}

impl Format {
    /// Every format, in a stable order.
    pub const ALL: [Format; 9] = [
        Format::Text,
        Format::Markdown,
        Format::Html,
        Format::Csv,
        Format::Json,
        Format::Pdf,
        Format::Docx,
        Format::Xlsx,
        Format::Pptx,
    ];

    /// The lowercase identifier (`"pdf"`, `"docx"` …), as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "markdown",
            Format::Html => "html",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Pdf => "pdf",
            Format::Docx => "docx",
            Format::Xlsx => "xlsx",
            Format::Pptx => "pptx",
        }
    }
}

/// The name people use for the format (`"PDF"`, `"Word document"` …), for messages.
impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Text => "text file",
            Format::Markdown => "Markdown file",
            Format::Html => "HTML page",
            Format::Csv => "CSV file",
            Format::Json => "JSON file",
            Format::Pdf => "PDF",
            Format::Docx => "Word document",
            Format::Xlsx => "Excel workbook",
            Format::Pptx => "PowerPoint presentation",
        })
    }
}

/// The text of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extracted {
    /// The format the bytes were read as (which may differ from what the name suggests).
    pub format: Format,
    /// The document's own title, when it declares one (HTML `<title>`, PDF and Office metadata,
    /// the first `# ` heading of Markdown). For HTML and Markdown it also heads `text`; for the others it is
    /// only here.
    pub title: Option<String>,
    /// The text, with `\n` line ends; possibly empty (a scanned PDF has no text layer).
    pub text: String,
}

/// Bounds on one extraction.
///
/// [`extract_with_limits`] applies the size bounds; [`extract_isolated`] applies all of them,
/// the memory and time bounds to the child process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Wall-clock time for the whole child run (start, input, parse, output). The child also gets
    /// a CPU-time limit of this rounded up plus one second.
    pub timeout: Duration,
    /// Larger files are refused before any parsing.
    pub max_input_bytes: u64,
    /// Larger texts are refused (rather than cut, so a failure is visible).
    pub max_output_bytes: usize,
    /// The child's address-space limit (`RLIMIT_AS`); allocation beyond it kills the child and is
    /// reported as [`ExtractError::OutOfMemory`].
    pub max_memory_bytes: u64,
    /// How much a compressed container may inflate to: the total read from a ZIP package (Office
    /// files), and each decompressed PDF stream or page content.
    pub max_decompressed_bytes: u64,
}

impl Default for Limits {
    /// 30 s, 64 MiB in, 16 MiB of text out, 1 GiB of address space, 256 MiB decompressed.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_input_bytes: 64 << 20,
            max_output_bytes: 16 << 20,
            max_memory_bytes: 1 << 30,
            max_decompressed_bytes: 256 << 20,
        }
    }
}

/// Extracts text in this process with the default [`Limits`]' size bounds.
///
/// The format comes from [`detect()`]; a file it cannot place is [`ExtractError::Unsupported`].
/// Prefer [`extract_isolated`] for untrusted input: this never panics by design, but the PDF and
/// ZIP parsers underneath are third-party code.
pub fn extract(name: &str, bytes: &[u8]) -> Result<Extracted, ExtractError> {
    extract_with_limits(name, bytes, &Limits::default())
}

/// Extracts text in this process, applying `limits`' size bounds (input, output, decompressed);
/// time and memory are bounded only by [`extract_isolated`].
pub fn extract_with_limits(name: &str, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limits.max_input_bytes {
        return Err(ExtractError::TooLarge { what: Oversize::Input, limit: limits.max_input_bytes });
    }
    let format = detect::sniff(name, bytes)?;
    formats::extract(format, bytes, limits)
}
