//! HTML to readable text, with a small forgiving tokenizer (no DOM): the text of the page in
//! order, script, style and other non-content elements dropped, headings as Markdown `#` lines,
//! paragraphs separated by blank lines, list items as `- ` lines, table cells separated by
//! ` | `, `<pre>` kept as written, character references decoded.
//!
//! The tokenizer is a single forward pass with no recursion, so hostile nesting costs nothing.

use std::borrow::Cow;

use encoding_rs::Encoding;

use super::{collapse_whitespace, entities};
use crate::error::ExtractError;
use crate::text::{Sink, decode};

/// Writes the page's text into `sink` (headed by its `<title>` as a `# ` line, unless the page
/// starts with that heading anyway) and returns the title.
pub(crate) fn extract(bytes: &[u8], sink: &mut Sink) -> Result<Option<String>, ExtractError> {
    let html = decode(bytes, meta_charset(bytes));
    let mut writer = Writer::new(sink);
    tokenize(&html, &mut writer)?;
    let title = writer.title.take();
    if let Some(title) = title.as_deref().filter(|t| !t.is_empty()) {
        let heading = format!("# {title}");
        if !sink.starts_with_line(&heading) {
            sink.prepend(&format!("{heading}\n\n"))?;
        }
    }
    Ok(title)
}

/// The encoding a `<meta charset=…>` (or `http-equiv` content type) in the first 2 KiB names.
/// UTF-16 labels are ignored, as browsers do: a page that can be read as ASCII is not UTF-16.
fn meta_charset(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = bytes[..bytes.len().min(2048)].to_ascii_lowercase();
    let at = head.windows(8).position(|w| w == b"charset=")? + 8;
    let rest = &head[at..];
    let rest = rest.strip_prefix(b"\"").or_else(|| rest.strip_prefix(b"'")).unwrap_or(rest);
    let len = rest
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.')))
        .unwrap_or(rest.len());
    Encoding::for_label(&rest[..len]).filter(|e| !e.name().starts_with("UTF-16"))
}

/// Elements whose content is raw text up to their end tag (no markup inside).
const RAW_TEXT: &[&str] = &["script", "style", "title", "textarea", "xmp", "iframe", "noembed", "noframes"];

/// Elements whose content is not part of the readable text.
const HIDDEN: &[&str] = &["head", "noscript", "template", "svg", "math", "canvas", "object", "audio", "video"];

/// Elements that may appear in `<head>`; any other start tag closes an unclosed `<head>`, as in
/// a browser.
const HEAD_CONTENT: &[&str] = &["title", "meta", "link", "style", "script", "base", "noscript", "template"];

/// Elements that never have content or an end tag.
const VOID: &[&str] =
    &["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"];

/// Elements that start and end a paragraph.
const BLOCK: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "header",
    "footer",
    "main",
    "aside",
    "nav",
    "blockquote",
    "ul",
    "ol",
    "dl",
    "table",
    "form",
    "fieldset",
    "figure",
    "figcaption",
    "address",
    "details",
    "summary",
    "pre",
    "hr",
    "caption",
    "center",
    "dialog",
    "menu",
    "legend",
    "hgroup",
    "body",
];

/// Elements that start and end a line.
const LINE: &[&str] = &["li", "dt", "dd", "tr", "option", "label"];

fn tokenize(html: &str, writer: &mut Writer<'_>) -> Result<(), ExtractError> {
    let bytes = html.as_bytes();
    let mut pos = 0;
    while pos < bytes.len() {
        let Some(offset) = bytes[pos..].iter().position(|&b| b == b'<') else {
            writer.text(&html[pos..])?;
            break;
        };
        let lt = pos + offset;
        if lt > pos {
            writer.text(&html[pos..lt])?;
        }
        let rest = &bytes[lt..];
        if rest.starts_with(b"<!--") {
            pos = find(bytes, lt + 4, b"-->").map_or(bytes.len(), |end| end + 3);
        } else if rest.starts_with(b"<![CDATA[") {
            let end = find(bytes, lt + 9, b"]]>").unwrap_or(bytes.len());
            writer.text(&html[lt + 9..end])?;
            pos = (end + 3).min(bytes.len());
        } else if rest.starts_with(b"<!") || rest.starts_with(b"<?") {
            pos = tag_end(bytes, lt + 2);
        } else if let Some((name, closing, after_name)) = tag_name(bytes, lt) {
            pos = tag_end(bytes, after_name);
            if closing {
                writer.end(&name)?;
            } else if RAW_TEXT.contains(&name.as_str()) {
                let close = format!("</{name}");
                let end = find_ignore_case(bytes, pos, close.as_bytes()).unwrap_or(bytes.len());
                if name == "title" && writer.title.is_none() && writer.in_head_or_body() {
                    let title = collapse_whitespace(&entities::decode(&html[pos..end]));
                    writer.title = Some(title);
                }
                pos = if end < bytes.len() { tag_end(bytes, end + close.len()) } else { end };
            } else {
                let self_closing = bytes[..pos].ends_with(b"/>");
                writer.start(&name, self_closing)?;
            }
        } else {
            // A `<` that starts no tag is text.
            writer.text("<")?;
            pos = lt + 1;
        }
    }
    Ok(())
}

/// The lowercased element name of a tag at `lt`, whether it is an end tag, and where the name
/// ends; `None` when `<` is not followed by a name.
fn tag_name(bytes: &[u8], lt: usize) -> Option<(String, bool, usize)> {
    let closing = bytes.get(lt + 1) == Some(&b'/');
    let start = lt + 1 + usize::from(closing);
    if !bytes.get(start)?.is_ascii_alphabetic() {
        return None;
    }
    let len = bytes[start..]
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b':' | b'_')))
        .unwrap_or(bytes.len() - start);
    let name = String::from_utf8_lossy(&bytes[start..start + len]).to_ascii_lowercase();
    // `svg:title` and the like: the local name decides.
    let name = match name.rsplit_once(':') {
        Some((_, local)) => local.to_owned(),
        None => name,
    };
    Some((name, closing, start + len))
}

/// The position after the `>` that ends a tag whose attributes start at `from`, skipping quoted
/// attribute values.
fn tag_end(bytes: &[u8], from: usize) -> usize {
    let mut quote = None;
    for (i, &b) in bytes.iter().enumerate().skip(from) {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if b == q => quote = None,
            (None, b'>') => return i + 1,
            _ => {}
        }
    }
    bytes.len()
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| from + p)
}

fn find_ignore_case(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes.get(from..)?.windows(needle.len()).position(|w| w.eq_ignore_ascii_case(needle)).map(|p| from + p)
}

/// Turns the token stream into text.
struct Writer<'a> {
    sink: &'a mut Sink,
    title: Option<String>,
    /// Open hidden elements, innermost last.
    hidden: Vec<String>,
    /// Open `<pre>` elements.
    pre: usize,
    /// Inside a heading, line breaks become spaces.
    heading: bool,
    /// Whitespace was seen since the last word.
    space: bool,
    /// Written before the next word (`- ` for a list item, ` | ` between cells).
    prefix: Option<Cow<'static, str>>,
    /// Open `<ul>`/`<ol>` elements, for the indentation of nested items.
    lists: usize,
    /// Cells seen in the current table row.
    cells: usize,
}

impl<'a> Writer<'a> {
    fn new(sink: &'a mut Sink) -> Self {
        Self {
            sink,
            title: None,
            hidden: Vec::new(),
            pre: 0,
            heading: false,
            space: false,
            prefix: None,
            lists: 0,
            cells: 0,
        }
    }

    /// Not inside an element whose text is hidden (`<svg>` has titles too), other than `<head>`.
    fn in_head_or_body(&self) -> bool {
        self.hidden.iter().all(|h| h == "head")
    }

    fn start(&mut self, name: &str, self_closing: bool) -> Result<(), ExtractError> {
        if self.hidden.len() == 1 && self.hidden[0] == "head" && !HEAD_CONTENT.contains(&name) {
            self.hidden.clear();
        }
        if HIDDEN.contains(&name) {
            if !self_closing {
                self.hidden.push(name.to_owned());
            }
            return Ok(());
        }
        if !self.hidden.is_empty() {
            return Ok(());
        }
        match name {
            "br" if self.heading => self.space = true,
            "br" => self.line()?,
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.paragraph()?;
                self.heading = true;
                self.prefix = Some(Cow::Borrowed(match name {
                    "h1" => "# ",
                    "h2" => "## ",
                    "h3" => "### ",
                    "h4" => "#### ",
                    "h5" => "##### ",
                    _ => "###### ",
                }));
            }
            "ul" | "ol" => {
                // A nested list continues its item's list; an outer one is a block.
                if self.lists > 0 {
                    self.line()?
                } else {
                    self.paragraph()?
                }
                self.lists += 1;
            }
            "li" => {
                self.line()?;
                let indent = "  ".repeat(self.lists.saturating_sub(1));
                self.prefix = Some(Cow::Owned(format!("{indent}- ")));
            }
            "tr" => {
                self.line()?;
                self.cells = 0;
            }
            "td" | "th" => {
                if self.cells > 0 {
                    self.prefix = Some(Cow::Borrowed(" | "));
                }
                self.cells += 1;
            }
            "pre" => {
                self.paragraph()?;
                self.pre += 1;
            }
            _ if BLOCK.contains(&name) => self.paragraph()?,
            _ if LINE.contains(&name) => self.line()?,
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, name: &str) -> Result<(), ExtractError> {
        if let Some(open) = self.hidden.iter().rposition(|h| h == name) {
            self.hidden.truncate(open);
            return Ok(());
        }
        if !self.hidden.is_empty() || VOID.contains(&name) {
            return Ok(());
        }
        match name {
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.heading = false;
                self.prefix = None;
                self.paragraph()?;
            }
            "ul" | "ol" => {
                self.lists = self.lists.saturating_sub(1);
                if self.lists > 0 { self.line()? } else { self.paragraph()? }
            }
            "li" => {
                self.prefix = None;
                self.line()?;
            }
            "pre" => {
                self.pre = self.pre.saturating_sub(1);
                self.paragraph()?;
            }
            _ if BLOCK.contains(&name) => self.paragraph()?,
            _ if LINE.contains(&name) => self.line()?,
            _ => {}
        }
        Ok(())
    }

    fn text(&mut self, raw: &str) -> Result<(), ExtractError> {
        if !self.hidden.is_empty() || raw.is_empty() {
            return Ok(());
        }
        let text = entities::decode(raw);
        if self.pre > 0 {
            if let Some(prefix) = self.prefix.take() {
                self.sink.push_str(&prefix)?;
            }
            return self.sink.push_str(&text);
        }
        let mut words = text.split_whitespace().peekable();
        if text.starts_with(char::is_whitespace) {
            self.space = true;
        }
        while let Some(word) = words.next() {
            if let Some(prefix) = self.prefix.take() {
                self.sink.push_str(&prefix)?;
            } else if self.space {
                self.sink.space()?;
            }
            self.sink.push_str(word)?;
            self.space = words.peek().is_some();
        }
        if text.ends_with(char::is_whitespace) {
            self.space = true;
        }
        Ok(())
    }

    fn line(&mut self) -> Result<(), ExtractError> {
        self.space = false;
        self.sink.newline()
    }

    fn paragraph(&mut self) -> Result<(), ExtractError> {
        self.space = false;
        self.sink.paragraph()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(html: &str) -> (Option<String>, String) {
        let mut sink = Sink::new(1 << 20);
        let title = extract(html.as_bytes(), &mut sink).expect("reads");
        (title, sink.finish().expect("fits"))
    }

    #[test]
    fn readable_text_from_a_page() {
        let html = r#"<!DOCTYPE html>
<html><head><title>Caf&eacute;   menu</title>
<meta charset="utf-8"><style>p { color: red }</style>
<script>if (a < b && c > d) { document.write("<p>nope</p>") }</script></head>
<body><nav><a href="/">Home</a></nav>
<h1>Our   <em>menu</em></h1>
<p>Fresh coffee,<br>every day &mdash; since 1999.</p><!-- a <p>comment</p> -->
<ul><li>Espresso</li><li><p>Latte</p></li></ul>
<table><tr><th>Item</th><th>Price</th></tr><tr><td>Tea</td><td>2&nbsp;&euro;</td></tr></table>
<pre>  code
    indented</pre>
<noscript><p>Enable JavaScript</p></noscript><p>Bye</body></html>"#;
        let (title, text) = render(html);
        assert_eq!(title.as_deref(), Some("Café menu"));
        assert_eq!(
            text,
            "# Café menu\n\nHome\n\n# Our menu\n\nFresh coffee,\nevery day — since 1999.\n\n- Espresso\n\n- Latte\n\nItem | Price\nTea | 2 €\n\n  code\n    indented\n\nBye"
        );
    }

    #[test]
    fn nested_lists_are_indented() {
        let (_, text) =
            render("<p>Steps:</p><ol><li>Build<ul><li>debug</li><li>release</li></ul></li><li>Ship</li></ol><p>Done");
        assert_eq!(text, "Steps:\n\n- Build\n  - debug\n  - release\n- Ship\n\nDone");
    }

    #[test]
    fn title_is_not_repeated_when_the_page_starts_with_it() {
        let (_, text) = render("<title>Guide</title><h1>Guide</h1><p>Step one.");
        assert_eq!(text, "# Guide\n\nStep one.");
    }

    #[test]
    fn meta_charset_is_honoured_for_legacy_pages() {
        let page = b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=ISO-8859-1\"><p>caf\xe9</p>";
        assert_eq!(meta_charset(page), Some(encoding_rs::WINDOWS_1252));
        let mut sink = Sink::new(1 << 10);
        extract(page, &mut sink).expect("reads");
        assert_eq!(sink.finish().expect("fits"), "café");
    }

    #[test]
    fn broken_markup_still_yields_its_text() {
        let (_, text) = render("a < b <p class='x>y'>c<unclosed");
        assert_eq!(text, "a < b\n\nc");
    }
}
