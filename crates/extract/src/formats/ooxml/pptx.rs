//! PowerPoint: slides in presentation order, each as a `## Slide N: title` heading, then the text
//! of its other shapes (one line per paragraph), then its speaker notes. Slide numbers, dates
//! and footers are left out: they repeat on every slide.

use super::{Node, Package, attr, value, walk};
use crate::error::ExtractError;
use crate::text::Sink;

pub(super) fn extract(package: &mut Package<'_>, main: &str, sink: &mut Sink) -> Result<(), ExtractError> {
    let presentation = package.read(main)?.ok_or_else(|| package.corrupt(format!("the part {main} is missing")))?;
    let relationships = package.relationships(main)?;

    // `sldId` carries a numeric `id` and the relationship `r:id` that names the slide part.
    let mut slide_ids = Vec::new();
    walk(&presentation, package.format, main, |node| {
        if let Node::Open(e) = node
            && e.local_name().as_ref() == b"sldId"
            && let Some(id) = relationship_id(e)
        {
            slide_ids.push(id);
        }
        Ok(())
    })?;

    for (number, id) in slide_ids.iter().enumerate() {
        let Some(rel) = relationships.iter().find(|r| &r.id == id && r.kind.ends_with("/slide")) else {
            continue;
        };
        let part = rel.target.clone();
        let Some(xml) = package.read(&part)? else {
            continue;
        };
        let mut slide = Shapes::default();
        walk(&xml, package.format, &part, |node| {
            slide.visit(node);
            Ok(())
        })?;

        sink.paragraph()?;
        sink.push_str(&format!("## Slide {}", number + 1))?;
        if let Some(title) = slide.title.as_deref().filter(|t| !t.is_empty()) {
            sink.push_str(": ")?;
            sink.push_str(&title.replace('\n', " "))?;
        }
        sink.paragraph()?;
        sink.push_str(&slide.body)?;

        let notes = package.relationships(&part)?.into_iter().find(|r| r.kind.ends_with("/notesSlide"));
        if let Some(notes) = notes
            && let Some(xml) = package.read(&notes.target)?
        {
            let mut shapes = Shapes::default();
            walk(&xml, package.format, &notes.target, |node| {
                shapes.visit(node);
                Ok(())
            })?;
            let text = shapes.body.trim();
            if !text.is_empty() {
                sink.paragraph()?;
                sink.push_str("Notes: ")?;
                sink.push_str(text)?;
            }
        }
    }
    Ok(())
}

/// The `r:id` of an element: the `id` attribute with a namespace prefix.
fn relationship_id(e: &quick_xml::events::BytesStart<'_>) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.prefix().is_some() && a.key.local_name().as_ref() == b"id")
        .and_then(|a| value(&a))
}

/// The text of a slide's (or notes page's) shapes.
#[derive(Default)]
struct Shapes {
    /// The first title placeholder's text.
    title: Option<String>,
    /// Every other shape's text, a line per paragraph, a blank line between shapes.
    body: String,
    /// The text of the shape being read (`p:sp`), or `None` outside shapes (tables live in
    /// graphic frames and go straight to `body`).
    shape: Option<String>,
    /// The shape being read is a title placeholder.
    is_title: bool,
    /// The shape being read is a slide number, date, footer or slide image placeholder.
    is_skipped: bool,
    in_text: bool,
}

impl Shapes {
    fn visit(&mut self, node: Node<'_, '_>) {
        match node {
            Node::Open(e) => match e.local_name().as_ref() {
                b"sp" => {
                    self.shape = Some(String::new());
                    self.is_title = false;
                    self.is_skipped = false;
                }
                b"ph" => match attr(e, b"type").as_deref() {
                    Some("title" | "ctrTitle") => self.is_title = true,
                    Some("sldNum" | "dt" | "ftr" | "hdr" | "sldImg") => self.is_skipped = true,
                    _ => {}
                },
                b"t" => self.in_text = true,
                b"br" => self.target().push('\n'),
                _ => {}
            },
            Node::Close(name) => match name {
                b"t" => self.in_text = false,
                b"p" | b"tc" => {
                    let target = self.target();
                    if !target.is_empty() && !target.ends_with('\n') {
                        target.push('\n');
                    }
                }
                b"sp" => {
                    let text = self.shape.take().unwrap_or_default();
                    let text = text.trim();
                    if self.is_skipped || text.is_empty() {
                        return;
                    }
                    if self.is_title && self.title.is_none() {
                        self.title = Some(text.to_owned());
                    } else {
                        if !self.body.is_empty() {
                            self.body.push_str("\n\n");
                        }
                        self.body.push_str(text);
                    }
                }
                b"tbl" => self.body.push('\n'),
                _ => {}
            },
            Node::Text(text) => {
                if self.in_text {
                    self.target().push_str(text);
                }
            }
        }
    }

    fn target(&mut self) -> &mut String {
        self.shape.as_mut().unwrap_or(&mut self.body)
    }
}
