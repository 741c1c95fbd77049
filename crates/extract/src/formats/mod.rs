//! One module per format; each writes into a bounded [`Sink`] and returns the title it found.

mod delimited;
mod entities;
mod html;
mod json;
pub(crate) mod ooxml;
mod pdf;
mod table;

use crate::error::ExtractError;
use crate::text::{Sink, decode};
use crate::{Extracted, Format, Limits};

/// Titles longer than this are cut (a title is a label, and it travels in the child's header).
const MAX_TITLE_CHARS: usize = 500;

/// Reads `bytes` as `format`.
pub(crate) fn extract(format: Format, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    let mut sink = Sink::new(limits.max_output_bytes);
    let title = match format {
        Format::Text => {
            sink.push_str(&decode(bytes, None))?;
            None
        }
        Format::Markdown => {
            let text = decode(bytes, None);
            sink.push_str(&text)?;
            markdown_title(&text)
        }
        Format::Html => html::extract(bytes, &mut sink)?,
        Format::Csv => {
            delimited::extract(bytes, &mut sink)?;
            None
        }
        Format::Json => {
            json::extract(bytes, &mut sink)?;
            None
        }
        Format::Pdf => pdf::extract(bytes, limits, &mut sink)?,
        Format::Docx | Format::Xlsx | Format::Pptx => ooxml::extract(format, bytes, limits, &mut sink)?,
    };
    Ok(Extracted {
        format,
        title: title.filter(|t| !t.is_empty()).map(|t| t.chars().take(MAX_TITLE_CHARS).collect()),
        text: sink.finish()?,
    })
}

/// The first level-one ATX heading (`# Title`), outside fenced code blocks.
fn markdown_title(text: &str) -> Option<String> {
    let mut in_fence = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
        } else if !in_fence && let Some(title) = trimmed.strip_prefix("# ") {
            return Some(title.trim().trim_end_matches('#').trim_end().to_owned());
        }
    }
    None
}

/// Collapses runs of whitespace to one space and trims; for titles and table cells.
pub(crate) fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_title_skips_code_fences() {
        let md = "```\n# not a title\n```\n\nintro\n\n# Real title #\n";
        assert_eq!(markdown_title(md).as_deref(), Some("Real title"));
        assert_eq!(markdown_title("## only h2"), None);
    }
}
