//! PDF through lopdf: the text each page shows, in page order and content-stream order, a blank
//! line between pages.
//!
//! lopdf parses the file and decodes strings through each font's encoding or `ToUnicode` map;
//! this module walks the content streams itself (lopdf's own `extract_text` starts a new line
//! only at `ET` and `T*`, so lines positioned with `Td`/`Tm` ran together). Line breaks come from
//! vertical moves, spaces from horizontal moves and wide `TJ` gaps, blank lines from gaps
//! taller than a line and a half. Text in form XObjects is included. A page without a text
//! layer (a scan) contributes nothing.
//!
//! lopdf bounds every stream it inflates by [`Limits::max_decompressed_bytes`]; the child
//! process's memory limit is the backstop for anything else.

use std::collections::{BTreeMap, HashSet};

use lopdf::content::{Content, Operation};
use lopdf::{Dictionary, Document, Encoding, LoadOptions, Object, ObjectId};

use crate::error::{ExtractError, Oversize};
use crate::text::Sink;
use crate::{Format, Limits};

/// How deep form XObjects may nest.
const MAX_FORM_DEPTH: usize = 8;

/// A `TJ` adjustment wider than this (thousandths of an em, leftwards) is a word space: word
/// spacing starts near 200 in justified text, kerning stays under 100.
const TJ_SPACE: f32 = -150.0;

pub(crate) fn extract(bytes: &[u8], limits: &Limits, sink: &mut Sink) -> Result<Option<String>, ExtractError> {
    let max = usize::try_from(limits.max_decompressed_bytes).unwrap_or(usize::MAX);
    let options = LoadOptions { max_decompressed_size: Some(max), ..LoadOptions::default() };
    let doc = Document::load_mem_with_options(bytes, options).map_err(|e| error(e, limits))?;
    let pages = doc.get_pages();
    if pages.is_empty() {
        let reason = if doc.trailer.has(b"Encrypt") { "it is protected by a password" } else { "it has no pages" };
        return Err(ExtractError::corrupt(Format::Pdf, reason));
    }

    let mut failed = None;
    for page_id in pages.into_values() {
        sink.paragraph()?;
        let mut page = Page { doc: &doc, sink: &mut *sink, budget: max, state: TextState::default() };
        if let Err(e) = page.run_page(page_id) {
            // One damaged page costs that page; a size limit or the output cap costs the file.
            match e {
                PageError::Fatal(e) => return Err(e),
                PageError::Pdf(e) if is_limit(&e) => return Err(error(e, limits)),
                PageError::Pdf(e) => failed = failed.or(Some(e)),
            }
        }
    }
    if sink.is_empty()
        && let Some(e) = failed
    {
        return Err(error(e, limits));
    }
    Ok(title(&doc))
}

/// `/Title` from the document information dictionary.
fn title(doc: &Document) -> Option<String> {
    let info = doc.trailer.get(b"Info").ok()?;
    let (_, info) = doc.dereference(info).ok()?;
    let title = info.as_dict().ok()?.get(b"Title").ok()?;
    let (_, title) = doc.dereference(title).ok()?;
    let title = lopdf::decode_text_string(title).ok()?;
    let title = super::collapse_whitespace(&title);
    (!title.is_empty()).then_some(title)
}

fn is_limit(e: &lopdf::Error) -> bool {
    matches!(e, lopdf::Error::Decompress(lopdf::DecompressError::MemoryLimitExceeded { .. }))
}

fn error(e: lopdf::Error, limits: &Limits) -> ExtractError {
    if is_limit(&e) {
        ExtractError::TooLarge { what: Oversize::Decompressed, limit: limits.max_decompressed_bytes }
    } else {
        ExtractError::corrupt(Format::Pdf, e)
    }
}

enum PageError {
    /// lopdf could not read something on the page.
    Pdf(lopdf::Error),
    /// The output cap: ends the whole extraction.
    Fatal(ExtractError),
}

impl From<lopdf::Error> for PageError {
    fn from(e: lopdf::Error) -> Self {
        PageError::Pdf(e)
    }
}

impl From<ExtractError> for PageError {
    fn from(e: ExtractError) -> Self {
        PageError::Fatal(e)
    }
}

/// Where text is on the page, as far as line and word breaks need: the line's start in
/// unscaled text space, ignoring rotation and the CTM.
#[derive(Debug, Default)]
struct TextState {
    /// The current line start.
    x: f32,
    y: f32,
    /// The text matrix's scale (`a`, `d` of `Tm`), 1 unless set.
    scale_x: f32,
    scale_y: f32,
    font_size: f32,
    leading: f32,
    /// The `y` of the last text shown, `None` before any.
    last_y: Option<f32>,
    /// A horizontal move happened since the last text shown.
    moved: bool,
    /// `T*`, `'` or `"` asked for a new line.
    new_line: bool,
}

impl TextState {
    fn scale(&self) -> (f32, f32) {
        let nonzero = |s: f32| if s == 0.0 { 1.0 } else { s };
        (nonzero(self.scale_x), nonzero(self.scale_y))
    }

    fn translate(&mut self, tx: f32, ty: f32) {
        let (sx, sy) = self.scale();
        self.x += tx * sx;
        self.y += ty * sy;
        if tx != 0.0 {
            self.moved = true;
        }
    }
}

struct Page<'d, 's> {
    doc: &'d Document,
    sink: &'s mut Sink,
    /// Bytes the page content and its form XObjects may still inflate to.
    budget: usize,
    state: TextState,
}

/// A font name → its encoding.
type Fonts<'d> = BTreeMap<Vec<u8>, Encoding<'d>>;

/// The fonts in scope, innermost first: a form's own, then those of what draws it.
type FontScope<'f, 'd> = [&'f Fonts<'d>];

impl<'d> Page<'d, '_> {
    fn run_page(&mut self, page_id: ObjectId) -> Result<(), PageError> {
        let doc = self.doc;
        let (direct, ids) = doc.get_page_resources(page_id)?;
        let mut resources: Vec<&Dictionary> = direct.into_iter().collect();
        resources.extend(ids.into_iter().filter_map(|id| doc.get_dictionary(id).ok()));
        let fonts = self.fonts(&resources)?;
        let content = doc.get_page_content_with_limit(page_id, self.budget)?;
        self.budget = self.budget.saturating_sub(content.len());
        let mut forms = HashSet::new();
        self.run(&content, &resources, &[&fonts], &mut forms)
    }

    /// The encodings of the fonts named in `resources`.
    fn fonts(&self, resources: &[&'d Dictionary]) -> Result<Fonts<'d>, PageError> {
        let mut fonts = Fonts::new();
        for dict in resources.iter().filter_map(|r| self.dict(r, b"Font")) {
            for (name, font) in dict.iter() {
                let Some(font) = self.deref_dict(font) else {
                    continue;
                };
                if fonts.contains_key(name) {
                    continue;
                }
                match font.get_font_encoding_with_limit(self.doc, self.budget) {
                    Ok(encoding) => {
                        fonts.insert(name.clone(), encoding);
                    }
                    Err(e) if is_limit(&e) => return Err(e.into()),
                    // A font whose encoding is unreadable: its text is skipped.
                    Err(_) => {}
                }
            }
        }
        Ok(fonts)
    }

    fn deref_dict(&self, object: &'d Object) -> Option<&'d Dictionary> {
        self.doc.dereference(object).ok()?.1.as_dict().ok()
    }

    /// The dictionary under `key` in `dict`, following a reference.
    fn dict(&self, dict: &'d Dictionary, key: &[u8]) -> Option<&'d Dictionary> {
        self.deref_dict(dict.get(key).ok()?)
    }

    fn run(
        &mut self,
        content: &[u8],
        resources: &[&'d Dictionary],
        fonts: &FontScope<'_, 'd>,
        forms: &mut HashSet<ObjectId>,
    ) -> Result<(), PageError> {
        let mut font: Option<&Encoding<'d>> = None;
        for operation in Content::decode_iter(content) {
            // A content stream that stops parsing keeps what came before it.
            let Ok(operation) = operation else { break };
            let Operation { operator, operands } = &operation;
            let number = |i: usize| operands.get(i).and_then(|o| o.as_float().ok()).unwrap_or(0.0);
            match operator.as_str() {
                "BT" => {
                    let state = &mut self.state;
                    (state.x, state.y, state.scale_x, state.scale_y) = (0.0, 0.0, 1.0, 1.0);
                }
                "Tf" => {
                    font = operands
                        .first()
                        .and_then(|o| o.as_name().ok())
                        .and_then(|name| fonts.iter().find_map(|f| f.get(name)));
                    self.state.font_size = number(1).abs();
                }
                "TL" => self.state.leading = number(0),
                "Td" => self.state.translate(number(0), number(1)),
                "TD" => {
                    self.state.leading = -number(1);
                    self.state.translate(number(0), number(1));
                }
                "Tm" => {
                    let state = &mut self.state;
                    if (number(4) - state.x).abs() > 0.01 {
                        state.moved = true;
                    }
                    (state.scale_x, state.scale_y) = (number(0), number(3));
                    (state.x, state.y) = (number(4), number(5));
                }
                "T*" => self.next_line(),
                "Tj" => self.show(font, operands)?,
                "TJ" => self.show(font, operands)?,
                "'" => {
                    self.next_line();
                    self.show(font, operands)?;
                }
                "\"" => {
                    self.next_line();
                    self.show(font, operands.get(2..).unwrap_or_default())?;
                }
                "Do" => {
                    if let Some(name) = operands.first().and_then(|o| o.as_name().ok()) {
                        self.form(name, resources, fonts, forms)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn next_line(&mut self) {
        let (_, sy) = self.state.scale();
        let leading = if self.state.leading == 0.0 { self.state.font_size } else { self.state.leading };
        self.state.y -= leading * sy;
        self.state.new_line = true;
    }

    /// Writes the strings among `operands` (`Tj`'s one, `TJ`'s array) with the break the text
    /// position calls for in front.
    fn show(&mut self, font: Option<&Encoding<'d>>, operands: &[Object]) -> Result<(), ExtractError> {
        let Some(font) = font else { return Ok(()) };
        let mut text = String::new();
        for operand in operands {
            match operand {
                Object::String(bytes, _) => decode_into(font, bytes, &mut text),
                Object::Array(items) => {
                    for item in items {
                        match item {
                            Object::String(bytes, _) => decode_into(font, bytes, &mut text),
                            Object::Integer(_) | Object::Real(_)
                                if item.as_float().is_ok_and(|n| n < TJ_SPACE) && !text.ends_with(' ') =>
                            {
                                text.push(' ');
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if text.trim().is_empty() {
            // Spaces drawn as glyphs still separate words.
            if !text.is_empty() {
                self.state.moved = true;
            }
            return Ok(());
        }
        self.break_before(&text)?;
        self.sink.push_str(&text)
    }

    /// Writes the break the text position calls for before `next`: a blank line for a gap of
    /// more than a line and a half (or a jump up: a new column), a line break for a smaller
    /// vertical move, a space for a horizontal one. A word hyphenated across a line break is
    /// joined again (`man-` + `agement`), so that it can be found.
    fn break_before(&mut self, next: &str) -> Result<(), ExtractError> {
        let state = &mut self.state;
        let (_, sy) = state.scale();
        let line_height = (state.font_size * sy.abs()).max(1.0);
        let dy = state.last_y.map(|last| (state.y - last).abs());
        match dy {
            Some(dy) if dy > 1.6 * line_height => self.sink.paragraph()?,
            Some(dy) if dy > 0.3 * line_height || state.new_line => {
                let rejoined = next.starts_with(char::is_lowercase) && self.sink.unhyphenate();
                if !rejoined {
                    self.sink.newline()?;
                }
            }
            Some(_) if state.moved => self.sink.space()?,
            None if state.new_line => self.sink.newline()?,
            _ => {}
        }
        let state = &mut self.state;
        state.last_y = Some(state.y);
        state.moved = false;
        state.new_line = false;
        Ok(())
    }

    /// Runs the content of the form XObject `name` (images and unknown names are ignored).
    fn form(
        &mut self,
        name: &[u8],
        resources: &[&'d Dictionary],
        fonts: &FontScope<'_, 'd>,
        forms: &mut HashSet<ObjectId>,
    ) -> Result<(), PageError> {
        if forms.len() >= MAX_FORM_DEPTH {
            return Ok(());
        }
        let reference =
            resources.iter().filter_map(|r| self.dict(r, b"XObject")).find_map(|xobjects| xobjects.get(name).ok());
        let Some(Object::Reference(id)) = reference else {
            return Ok(());
        };
        let Ok(stream) = self.doc.get_object(*id).and_then(Object::as_stream) else {
            return Ok(());
        };
        let is_form = stream.dict.get(b"Subtype").and_then(Object::as_name).ok() == Some(b"Form");
        // A form drawing itself, directly or not, is drawn once.
        if !is_form || !forms.insert(*id) {
            return Ok(());
        }
        let content = match stream.get_plain_content_with_limit(self.budget) {
            Ok(content) => content,
            Err(e) if is_limit(&e) => return Err(e.into()),
            Err(_) => {
                forms.remove(id);
                return Ok(());
            }
        };
        self.budget = self.budget.saturating_sub(content.len());
        let own: Vec<&Dictionary> = self.dict(&stream.dict, b"Resources").into_iter().collect();
        let result = if own.is_empty() {
            self.run(&content, resources, fonts, forms)
        } else {
            let own_fonts = self.fonts(&own)?;
            let scope: Vec<&Fonts<'d>> = std::iter::once(&own_fonts).chain(fonts.iter().copied()).collect();
            self.run(&content, &own, &scope, forms)
        };
        forms.remove(id);
        result
    }
}

/// Decodes a shown string; bytes the font's encoding cannot map are dropped.
fn decode_into(font: &Encoding<'_>, bytes: &[u8], out: &mut String) {
    if let Ok(text) = font.bytes_to_string(bytes) {
        out.push_str(&text);
    }
}
