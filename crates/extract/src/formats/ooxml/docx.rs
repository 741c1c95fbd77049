//! Word: the paragraphs of the main document part in order. Headings (by style or outline
//! level) become `#` lines, numbered and bulleted paragraphs `- ` lines, table rows one line
//! with cells separated by ` | `. Deleted revisions, field codes and the fallback copies of
//! text boxes are left out.

use std::collections::HashMap;

use super::{Node, Package, attr, walk};
use crate::error::ExtractError;
use crate::text::Sink;

pub(super) fn extract(package: &mut Package<'_>, main: &str, sink: &mut Sink) -> Result<(), ExtractError> {
    let styles = heading_styles(package, main)?;
    let xml = package.read(main)?.ok_or_else(|| package.corrupt(format!("the part {main} is missing")))?;
    let format = package.format;
    let mut state = Document::default();
    walk(&xml, format, main, |node| state.visit(node, &styles, sink))
}

/// Paragraph style ids that are headings, with their level: styles named `heading N` or
/// `Title` (the English names Word keeps whatever the UI language), or with an outline level.
fn heading_styles(package: &mut Package<'_>, main: &str) -> Result<HashMap<String, usize>, ExtractError> {
    let styles_part = package.relationships(main)?.into_iter().find(|r| r.kind.ends_with("/styles")).map(|r| r.target);
    let Some(part) = styles_part else {
        return Ok(HashMap::new());
    };
    // Styles only improve the output; an unreadable styles part is not a failure.
    let xml = match package.read(&part) {
        Ok(Some(xml)) => xml,
        Ok(None) | Err(ExtractError::Corrupt { .. }) => return Ok(HashMap::new()),
        Err(e) => return Err(e),
    };
    let mut levels = HashMap::new();
    let mut current: Option<String> = None;
    let walked = walk(&xml, package.format, &part, |node| {
        match node {
            Node::Open(e) => match e.local_name().as_ref() {
                b"style" => current = attr(e, b"styleId"),
                b"name" => {
                    if let (Some(id), Some(name)) = (&current, attr(e, b"val")) {
                        let name = name.to_ascii_lowercase();
                        let level = match name.strip_prefix("heading ") {
                            Some(n) => n.trim().parse::<usize>().ok(),
                            None => (name == "title").then_some(1),
                        };
                        if let Some(level) = level.filter(|l| (1..=6).contains(l)) {
                            levels.insert(id.clone(), level);
                        }
                    }
                }
                b"outlineLvl" => {
                    if let (Some(id), Some(level)) = (&current, outline_level(e)) {
                        levels.entry(id.clone()).or_insert(level);
                    }
                }
                _ => {}
            },
            Node::Close(b"style") => current = None,
            _ => {}
        }
        Ok(())
    });
    Ok(if walked.is_ok() { levels } else { HashMap::new() })
}

/// `w:outlineLvl w:val="0"` is a level-one heading; 9 means body text.
fn outline_level(e: &quick_xml::events::BytesStart<'_>) -> Option<usize> {
    attr(e, b"val").and_then(|v| v.parse::<usize>().ok()).filter(|l| *l < 6).map(|l| l + 1)
}

#[derive(Default)]
struct Paragraph {
    text: String,
    heading: Option<usize>,
    list: bool,
}

#[derive(Default)]
struct Document {
    /// Open paragraphs: text boxes put paragraphs inside paragraphs.
    paragraphs: Vec<Paragraph>,
    /// Inside `w:t`.
    in_text: bool,
    /// Inside `w:r` (a `w:tab` elsewhere is a tab stop, not a character).
    runs: usize,
    /// Depth inside elements whose text is skipped (`mc:Fallback`, `w:del`).
    skipped: usize,
    /// Per open table: cells already written in the current row.
    tables: Vec<usize>,
}

impl Document {
    fn visit(
        &mut self,
        node: Node<'_, '_>,
        styles: &HashMap<String, usize>,
        sink: &mut Sink,
    ) -> Result<(), ExtractError> {
        match node {
            Node::Open(e) => {
                let name = e.local_name();
                let name = name.as_ref();
                if self.skipped > 0 || matches!(name, b"Fallback" | b"del" | b"moveFrom") {
                    self.skipped += 1;
                    return Ok(());
                }
                match name {
                    b"p" => self.paragraphs.push(Paragraph::default()),
                    b"pStyle" => {
                        if let Some(p) = self.paragraphs.last_mut() {
                            p.heading = attr(e, b"val").and_then(|id| styles.get(&id).copied());
                        }
                    }
                    b"outlineLvl" => {
                        if let Some(p) = self.paragraphs.last_mut() {
                            p.heading = p.heading.or(outline_level(e));
                        }
                    }
                    b"numPr" => {
                        if let Some(p) = self.paragraphs.last_mut() {
                            p.list = true;
                        }
                    }
                    b"r" => self.runs += 1,
                    b"t" => self.in_text = true,
                    b"tab" if self.runs > 0 => self.push("\t"),
                    b"br" | b"cr" if self.runs > 0 => self.push("\n"),
                    b"noBreakHyphen" => self.push("-"),
                    b"tbl" => {
                        if self.tables.is_empty() {
                            sink.paragraph()?;
                        }
                        self.tables.push(0);
                    }
                    b"tr" => {
                        if let Some(cells) = self.tables.last_mut() {
                            *cells = 0;
                        }
                        sink.newline()?;
                    }
                    b"tc" => {
                        if let Some(cells) = self.tables.last_mut() {
                            if *cells > 0 {
                                sink.push_str(" | ")?;
                            }
                            *cells += 1;
                        }
                    }
                    _ => {}
                }
            }
            Node::Close(name) => {
                if self.skipped > 0 {
                    self.skipped -= 1;
                    return Ok(());
                }
                match name {
                    b"p" => {
                        if let Some(paragraph) = self.paragraphs.pop() {
                            self.write(paragraph, sink)?;
                        }
                    }
                    b"r" => self.runs = self.runs.saturating_sub(1),
                    b"t" => self.in_text = false,
                    b"tr" => sink.newline()?,
                    b"tbl" => {
                        self.tables.pop();
                        if self.tables.is_empty() {
                            sink.paragraph()?;
                        }
                    }
                    _ => {}
                }
            }
            Node::Text(text) if self.in_text && self.skipped == 0 => self.push(text),
            Node::Text(_) => {}
        }
        Ok(())
    }

    fn push(&mut self, text: &str) {
        if let Some(p) = self.paragraphs.last_mut() {
            p.text.push_str(text);
        }
    }

    /// A paragraph on its own block; inside a table cell, paragraphs run on with spaces.
    fn write(&self, paragraph: Paragraph, sink: &mut Sink) -> Result<(), ExtractError> {
        let text = paragraph.text.trim();
        if text.is_empty() {
            return Ok(());
        }
        if !self.tables.is_empty() {
            sink.space()?;
            return sink.push_str(&text.replace('\n', " "));
        }
        if let Some(level) = paragraph.heading {
            sink.paragraph()?;
            sink.push_str(&"#".repeat(level))?;
            sink.push(' ')?;
            sink.push_str(&text.replace('\n', " "))?;
            return sink.paragraph();
        }
        if paragraph.list {
            sink.newline()?;
            sink.push_str("- ")?;
            sink.push_str(text)?;
            return sink.newline();
        }
        sink.paragraph()?;
        sink.push_str(text)?;
        sink.paragraph()
    }
}
