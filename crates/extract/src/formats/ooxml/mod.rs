//! Office Open XML packages (DOCX, XLSX, PPTX): a ZIP of XML parts tied together by
//! relationship files. Every part is read through [`Package::read`], which caps what the whole
//! package may inflate to (a ZIP's declared sizes are not trusted).

mod docx;
mod pptx;
mod xlsx;

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Cursor, Read};

use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};
use zip::ZipArchive;

use crate::error::{ExtractError, Oversize};
use crate::text::Sink;
use crate::{Format, Limits};

/// Detection's view: which Office format a ZIP is, from the main part named in
/// `[Content_Types].xml` (or, when that is missing, from the usual part names). Reads at most
/// 1 MiB of the package.
pub(crate) fn package_format(bytes: &[u8]) -> Option<Format> {
    let mut package = Package::open(bytes, Format::Docx, 1 << 20).ok()?;
    package.main_part().ok().flatten().map(|(format, _)| format)
}

/// Writes the text of an Office document into `sink` and returns its title (`dc:title`).
pub(crate) fn extract(
    format: Format,
    bytes: &[u8],
    limits: &Limits,
    sink: &mut Sink,
) -> Result<Option<String>, ExtractError> {
    let mut package = Package::open(bytes, format, limits.max_decompressed_bytes)?;
    let main = match package.main_part()? {
        Some((found, part)) if found == format => part,
        Some((found, _)) => {
            return Err(package.corrupt(format!("the package holds a {found}")));
        }
        None => return Err(package.corrupt("no main document part")),
    };
    match format {
        Format::Docx => docx::extract(&mut package, &main, sink)?,
        Format::Xlsx => xlsx::extract(&mut package, &main, sink)?,
        Format::Pptx => pptx::extract(&mut package, &main, sink)?,
        _ => return Err(package.corrupt("not an Office format")),
    }
    package.title()
}

/// An opened package with a decompression budget.
pub(super) struct Package<'a> {
    archive: ZipArchive<Cursor<&'a [u8]>>,
    format: Format,
    /// Bytes that may still be inflated.
    budget: u64,
    limit: u64,
    /// Entry indexes by lowercased name, built at the first lookup that misses the exact name.
    by_lowercase_name: Option<HashMap<String, usize>>,
}

/// One entry of a `.rels` part.
#[derive(Debug)]
pub(super) struct Relationship {
    pub(super) id: String,
    /// The relationship type URI.
    pub(super) kind: String,
    /// The target part's name, resolved to a path inside the package (no leading `/`).
    pub(super) target: String,
}

impl<'a> Package<'a> {
    fn open(bytes: &'a [u8], format: Format, limit: u64) -> Result<Self, ExtractError> {
        let archive = ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| ExtractError::corrupt(format, format!("not a readable ZIP package: {e}")))?;
        Ok(Self { archive, format, budget: limit, limit, by_lowercase_name: None })
    }

    pub(super) fn corrupt(&self, reason: impl std::fmt::Display) -> ExtractError {
        ExtractError::corrupt(self.format, reason)
    }

    /// The bytes of the part at `path` (no leading `/`; matched case-insensitively, as part
    /// names are), or `None` when there is no such part.
    pub(super) fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>, ExtractError> {
        let index = match self.archive.index_for_name(path) {
            Some(index) => index,
            None => {
                let archive = &self.archive;
                let by_lowercase_name = self.by_lowercase_name.get_or_insert_with(|| {
                    archive
                        .file_names()
                        .enumerate()
                        .filter_map(|(i, name)| name.ok().map(|name| (name.to_ascii_lowercase(), i)))
                        .collect()
                });
                match by_lowercase_name.get(&path.to_ascii_lowercase()) {
                    Some(&index) => index,
                    None => return Ok(None),
                }
            }
        };
        let format = self.format;
        let corrupt =
            |e: &dyn std::fmt::Display| ExtractError::corrupt(format, format!("cannot read part {path}: {e}"));
        let file = self.archive.by_index(index).map_err(|e| corrupt(&e))?;
        let mut bytes = Vec::new();
        file.take(self.budget.saturating_add(1)).read_to_end(&mut bytes).map_err(|e| corrupt(&e))?;
        let read = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if read > self.budget {
            return Err(ExtractError::TooLarge { what: Oversize::Decompressed, limit: self.limit });
        }
        self.budget -= read;
        Ok(Some(bytes))
    }

    /// The relationships of the part at `source` (from `dir/_rels/name.rels`), external ones
    /// left out; empty when the part has none.
    pub(super) fn relationships(&mut self, source: &str) -> Result<Vec<Relationship>, ExtractError> {
        let (dir, name) = source.rsplit_once('/').unwrap_or(("", source));
        let rels_path = if dir.is_empty() { format!("_rels/{name}.rels") } else { format!("{dir}/_rels/{name}.rels") };
        let Some(xml) = self.read(&rels_path)? else {
            return Ok(Vec::new());
        };
        let mut relationships = Vec::new();
        walk(&xml, self.format, &rels_path, |event| {
            if let Node::Open(e) = event
                && e.local_name().as_ref() == b"Relationship"
                && attr(e, b"TargetMode").as_deref() != Some("External")
                && let (Some(id), Some(kind), Some(target)) = (attr(e, b"Id"), attr(e, b"Type"), attr(e, b"Target"))
            {
                relationships.push(Relationship { id, kind, target: resolve(dir, &target) });
            }
            Ok(())
        })?;
        Ok(relationships)
    }

    /// The main document part and the format its content type says, from
    /// `[Content_Types].xml`; without that part, from the usual part names.
    fn main_part(&mut self) -> Result<Option<(Format, String)>, ExtractError> {
        if let Some(xml) = self.read("[Content_Types].xml")? {
            let mut main = None;
            walk(&xml, self.format, "[Content_Types].xml", |event| {
                if let Node::Open(e) = event
                    && main.is_none()
                    && e.local_name().as_ref() == b"Override"
                    && let (Some(part), Some(content_type)) = (attr(e, b"PartName"), attr(e, b"ContentType"))
                    && let Some(format) = main_content_type(&content_type)
                {
                    main = Some((format, part.trim_start_matches('/').to_owned()));
                }
                Ok(())
            })?;
            if main.is_some() {
                return Ok(main);
            }
        }
        const USUAL: [(&str, Format); 3] = [
            ("word/document.xml", Format::Docx),
            ("xl/workbook.xml", Format::Xlsx),
            ("ppt/presentation.xml", Format::Pptx),
        ];
        Ok(USUAL
            .iter()
            .find_map(|(part, format)| self.archive.index_for_name(part).map(|_| (*format, (*part).to_owned()))))
    }

    /// `dc:title` from the core properties, if set.
    fn title(&mut self) -> Result<Option<String>, ExtractError> {
        // A missing or broken core-properties part costs the title, not the document.
        let Ok(Some(xml)) = self.read("docProps/core.xml") else {
            return Ok(None);
        };
        let mut title = String::new();
        let mut inside = false;
        let walked = walk(&xml, self.format, "docProps/core.xml", |event| {
            match event {
                Node::Open(e) if e.local_name().as_ref() == b"title" => inside = true,
                Node::Close(name) if name == b"title" => inside = false,
                Node::Text(text) if inside => title.push_str(text),
                _ => {}
            }
            Ok(())
        });
        let title = super::collapse_whitespace(&title);
        Ok(walked.ok().filter(|()| !title.is_empty()).map(|()| title))
    }
}

/// The format whose main part has this content type (`…wordprocessingml.document.main+xml`,
/// the macro-enabled and template variants too; not the binary `.xlsb`).
fn main_content_type(content_type: &str) -> Option<Format> {
    let content_type = content_type.to_ascii_lowercase();
    if !content_type.ends_with(".main+xml") {
        return None;
    }
    if content_type.contains("wordprocessingml") || content_type.contains("ms-word") {
        Some(Format::Docx)
    } else if content_type.contains("spreadsheetml") || content_type.contains("ms-excel") {
        Some(Format::Xlsx)
    } else if content_type.contains("presentationml") || content_type.contains("ms-powerpoint") {
        Some(Format::Pptx)
    } else {
        None
    }
}

/// A relationship target resolved against the source part's folder: `slides/slide1.xml` from
/// `ppt` is `ppt/slides/slide1.xml`; `/xl/x.xml` is absolute; `..` climbs.
fn resolve(dir: &str, target: &str) -> String {
    let mut parts: Vec<&str> =
        if target.starts_with('/') { Vec::new() } else { dir.split('/').filter(|p| !p.is_empty()).collect() };
    for piece in target.split('/') {
        match piece {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            piece => parts.push(piece),
        }
    }
    parts.join("/")
}

/// What [`walk`] reports: element starts (also for empty elements, which are followed by their
/// `Close`), element ends by local name, and text with references resolved.
pub(super) enum Node<'e, 'x> {
    Open(&'e BytesStart<'x>),
    Close(&'e [u8]),
    Text(&'e str),
}

/// Streams the XML `xml` (part `part`, for messages) to `visit`. Lenient about end-tag names,
/// strict about syntax; no DTD or external entity is ever resolved.
pub(super) fn walk(
    xml: &[u8],
    format: Format,
    part: &str,
    mut visit: impl FnMut(Node<'_, '_>) -> Result<(), ExtractError>,
) -> Result<(), ExtractError> {
    let mut reader = Reader::from_reader(xml);
    let config = reader.config_mut();
    config.expand_empty_elements = true;
    config.check_end_names = false;
    let invalid = |e: &dyn std::fmt::Display| ExtractError::corrupt(format, format!("invalid XML in {part}: {e}"));
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => visit(Node::Open(&e))?,
            Ok(Event::End(e)) => visit(Node::Close(e.local_name().as_ref()))?,
            Ok(Event::Text(e)) => {
                let text = e.xml10_content().map_err(|e| invalid(&e))?;
                visit(Node::Text(&text))?;
            }
            Ok(Event::CData(e)) => {
                let text = e.decode().map_err(|e| invalid(&e))?;
                visit(Node::Text(&text))?;
            }
            Ok(Event::GeneralRef(e)) => {
                let resolved: Option<Cow<'_, str>> = match e.resolve_char_ref() {
                    Ok(Some(c)) => Some(Cow::Owned(c.to_string())),
                    Ok(None) => {
                        e.decode().ok().and_then(|name| quick_xml::escape::resolve_xml_entity(&name)).map(Cow::Borrowed)
                    }
                    Err(_) => None,
                };
                if let Some(text) = resolved {
                    visit(Node::Text(&text))?;
                }
            }
            Ok(Event::Eof) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(invalid(&e)),
        }
    }
}

/// The value of the attribute with local name `name` (`w:val` → `val`), unescaped.
pub(super) fn attr(element: &BytesStart<'_>, name: &[u8]) -> Option<String> {
    element.attributes().flatten().find(|a| a.key.local_name().as_ref() == name).and_then(|a| value(&a))
}

/// An attribute's value with references resolved and whitespace normalised.
pub(super) fn value(attribute: &Attribute<'_>) -> Option<String> {
    attribute.normalized_value(XmlVersion::Implicit1_0).ok().map(Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relationship_targets_resolve_like_paths() {
        assert_eq!(resolve("ppt", "slides/slide1.xml"), "ppt/slides/slide1.xml");
        assert_eq!(resolve("xl", "/xl/worksheets/s.xml"), "xl/worksheets/s.xml");
        assert_eq!(resolve("ppt/slides", "../notesSlides/n1.xml"), "ppt/notesSlides/n1.xml");
        assert_eq!(resolve("", "word/document.xml"), "word/document.xml");
    }

    #[test]
    fn content_types_name_the_format() {
        let docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml";
        assert_eq!(main_content_type(docx), Some(Format::Docx));
        let xlsm = "application/vnd.ms-excel.sheet.macroEnabled.main+xml";
        assert_eq!(main_content_type(xlsm), Some(Format::Xlsx));
        assert_eq!(main_content_type("application/vnd.ms-excel.sheet.binary.macroEnabled.main"), None);
    }
}
