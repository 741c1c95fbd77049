//! Decoding bytes to text, the bounded text sink every format writes into, and the light
//! whitespace normalisation applied to every result.

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};

use crate::error::{ExtractError, Oversize};

/// Decodes text: a byte-order mark wins, then UTF-8 if the bytes are valid UTF-8, then `hint`
/// (an HTML `<meta charset>`), then Windows-1252 (which maps every byte, so nothing is lost).
pub(crate) fn decode<'a>(bytes: &'a [u8], hint: Option<&'static Encoding>) -> Cow<'a, str> {
    if let Some((encoding, bom_len)) = Encoding::for_bom(bytes) {
        let (text, _) = encoding.decode_without_bom_handling(&bytes[bom_len..]);
        return text;
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(text);
    }
    let encoding = hint.filter(|e| *e != UTF_8).unwrap_or(WINDOWS_1252);
    encoding.decode_without_bom_handling(bytes).0
}

/// Whether `bytes` read as text: a byte-order mark, or no NUL and under 10% control characters in the
/// first 8 KiB. With `require_utf8`, the bytes must also be valid UTF-8 (for files whose name
/// says nothing).
pub(crate) fn looks_like_text(bytes: &[u8], require_utf8: bool) -> bool {
    if Encoding::for_bom(bytes).is_some() {
        return true;
    }
    if require_utf8 && std::str::from_utf8(bytes).is_err() {
        return false;
    }
    let head = &bytes[..bytes.len().min(8192)];
    if head.contains(&0) {
        return false;
    }
    let controls = head.iter().filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0c | 0x1b)).count();
    controls * 10 <= head.len()
}

/// A text buffer that refuses to grow past the output limit, so a small file that expands (a CSV
/// with long headers, a shared string repeated a million times) fails early instead of filling
/// memory.
#[derive(Debug)]
pub(crate) struct Sink {
    text: String,
    limit: usize,
}

impl Sink {
    pub(crate) fn new(limit: usize) -> Self {
        Self { text: String::new(), limit }
    }

    pub(crate) fn push_str(&mut self, s: &str) -> Result<(), ExtractError> {
        // The normalised text is never longer than what was written, so this bound on the raw
        // text is a bound on the result; slack of 2x allows for whitespace that goes away.
        if self.text.len() + s.len() > self.limit.saturating_mul(2) {
            return Err(self.too_large());
        }
        self.text.push_str(s);
        Ok(())
    }

    pub(crate) fn push(&mut self, c: char) -> Result<(), ExtractError> {
        self.push_str(c.encode_utf8(&mut [0; 4]))
    }

    /// Removes a hyphen that ends the text after a lowercase letter (a word broken across lines)
    /// and says whether it did.
    pub(crate) fn unhyphenate(&mut self) -> bool {
        let mut tail = self.text.chars().rev();
        let hyphenated = tail.next() == Some('-') && tail.next().is_some_and(char::is_lowercase);
        if hyphenated {
            self.text.pop();
        }
        hyphenated
    }

    /// Whether the text's first line is `line`.
    pub(crate) fn starts_with_line(&self, line: &str) -> bool {
        self.text.strip_prefix(line).is_some_and(|rest| rest.is_empty() || rest.starts_with('\n'))
    }

    /// Puts `s` before the text written so far.
    pub(crate) fn prepend(&mut self, s: &str) -> Result<(), ExtractError> {
        if self.text.len() + s.len() > self.limit.saturating_mul(2) {
            return Err(self.too_large());
        }
        self.text.insert_str(0, s);
        Ok(())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Ends the current line, unless the text is empty or already at a line start.
    pub(crate) fn newline(&mut self) -> Result<(), ExtractError> {
        if self.text.is_empty() || self.text.ends_with('\n') { Ok(()) } else { self.push('\n') }
    }

    /// Leaves a blank line before what comes next (unless at the very start).
    pub(crate) fn paragraph(&mut self) -> Result<(), ExtractError> {
        if self.text.is_empty() || self.text.ends_with("\n\n") {
            return Ok(());
        }
        self.newline()?;
        self.push('\n')
    }

    /// A space, unless at a line start or after whitespace.
    pub(crate) fn space(&mut self) -> Result<(), ExtractError> {
        match self.text.chars().next_back() {
            None => Ok(()),
            Some(c) if c.is_whitespace() => Ok(()),
            Some(_) => self.push(' '),
        }
    }

    /// The normalised text, or [`Oversize::Output`] if it is over the limit.
    pub(crate) fn finish(self) -> Result<String, ExtractError> {
        let text = normalize(&self.text);
        if text.len() > self.limit {
            return Err(self.too_large());
        }
        Ok(text)
    }

    fn too_large(&self) -> ExtractError {
        ExtractError::TooLarge { what: Oversize::Output, limit: u64::try_from(self.limit).unwrap_or(u64::MAX) }
    }
}

/// Light whitespace normalisation: `\r\n` and `\r` become `\n`; control characters other than
/// tab and newline go (form feeds become line breaks); ligatures like `ﬁ` become their letters;
/// soft hyphens go; trailing spaces on each line go; at most
/// one blank line in a row; no blank lines at the start or end. Indentation is kept (Markdown
/// needs it).
pub(crate) fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0usize;
    let mut line = String::new();
    let mut chars = text.chars().peekable();
    let mut flush = |line: &mut String, out: &mut String| {
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            blank_run += 1;
        } else {
            if !out.is_empty() {
                out.push('\n');
                if blank_run > 0 {
                    out.push('\n');
                }
            }
            out.push_str(trimmed);
            blank_run = 0;
        }
        line.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                flush(&mut line, &mut out);
            }
            '\n' | '\u{0c}' | '\u{2028}' | '\u{2029}' => flush(&mut line, &mut out),
            '\t' => line.push('\t'),
            '\u{feff}' | '\u{00ad}' => {}
            // Typographic ligatures (PDF fonts are full of them) as their letters, so that
            // "speciﬁcation" is found as "specification".
            '\u{fb00}' => line.push_str("ff"),
            '\u{fb01}' => line.push_str("fi"),
            '\u{fb02}' => line.push_str("fl"),
            '\u{fb03}' => line.push_str("ffi"),
            '\u{fb04}' => line.push_str("ffl"),
            '\u{fb05}' | '\u{fb06}' => line.push_str("st"),
            c if c.is_control() => {}
            c => line.push(c),
        }
    }
    flush(&mut line, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_collapses_blank_runs_and_keeps_indentation() {
        let text = "\n\n# Title  \r\n\r\n\r\n\r\n  indented\tline\u{1}\n\n\n- speci\u{fb01}c\n\n";
        assert_eq!(normalize(text), "# Title\n\n  indented\tline\n\n- specific");
    }

    #[test]
    fn decode_prefers_bom_then_utf8_then_windows_1252() {
        assert_eq!(decode(b"\xef\xbb\xbfcaf\xc3\xa9", None), "café");
        assert_eq!(decode(b"\xff\xfec\0a\0f\0\xe9\0", None), "café");
        assert_eq!(decode(b"caf\xc3\xa9", None), "café");
        assert_eq!(decode(b"caf\xe9 \x93quoted\x94", None), "café \u{201c}quoted\u{201d}");
    }

    #[test]
    fn text_detection_rejects_nul_bytes() {
        assert!(looks_like_text(b"hello\nworld\n", true));
        assert!(!looks_like_text(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", false));
        assert!(!looks_like_text(b"caf\xe9", true));
        assert!(looks_like_text(b"caf\xe9", false));
    }

    #[test]
    fn sink_refuses_to_grow_past_its_limit() {
        let mut sink = Sink::new(4);
        assert!(sink.push_str("abcd").is_ok());
        assert!(sink.push_str("efgh").is_ok());
        assert!(sink.push_str("i").is_err());
        let sink = {
            let mut sink = Sink::new(4);
            let _ = sink.push_str("abcdef");
            sink
        };
        assert!(matches!(sink.finish(), Err(ExtractError::TooLarge { what: Oversize::Output, limit: 4 })));
    }
}
