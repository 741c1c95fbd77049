//! Excel: each worksheet in workbook order as a `## name` heading followed by its rows, written
//! like CSV (`header: value; header: value`). Cell values are what Excel stored: shared and
//! inline strings, numbers as written (dates stay serial numbers), `TRUE`/`FALSE`, the cached
//! result of a formula.

use super::{Node, Package, attr, walk};
use crate::error::ExtractError;
use crate::formats::table::Table;
use crate::text::Sink;

/// Excel's column limit (`XFD`); a cell reference beyond it is clamped, so a hostile `r` cannot
/// make a row huge.
const MAX_COLUMNS: usize = 16_384;

pub(super) fn extract(package: &mut Package<'_>, main: &str, sink: &mut Sink) -> Result<(), ExtractError> {
    let workbook = package.read(main)?.ok_or_else(|| package.corrupt(format!("the part {main} is missing")))?;
    let relationships = package.relationships(main)?;

    let mut sheets = Vec::new();
    walk(&workbook, package.format, main, |node| {
        if let Node::Open(e) = node
            && e.local_name().as_ref() == b"sheet"
        {
            sheets.push((attr(e, b"name").unwrap_or_default(), attr(e, b"id").unwrap_or_default()));
        }
        Ok(())
    })?;

    let shared = match relationships.iter().find(|r| r.kind.ends_with("/sharedStrings")) {
        Some(rel) => {
            let target = rel.target.clone();
            shared_strings(package, &target)?
        }
        None => Vec::new(),
    };

    for (name, id) in sheets {
        // Chart sheets and dialog sheets have no cells.
        let Some(rel) = relationships.iter().find(|r| r.id == id && r.kind.ends_with("/worksheet")) else {
            continue;
        };
        let Some(xml) = package.read(&rel.target)? else {
            continue;
        };
        sink.paragraph()?;
        sink.push_str("## ")?;
        sink.push_str(if name.is_empty() { "Sheet" } else { &name })?;
        sink.paragraph()?;
        let mut sheet = Sheet::new(&shared);
        walk(&xml, package.format, &rel.target, |node| sheet.visit(node, sink))?;
    }
    Ok(())
}

/// The shared string table: the text of each `si`, rich-text runs joined, phonetic guides
/// (`rPh`) left out.
fn shared_strings(package: &mut Package<'_>, part: &str) -> Result<Vec<String>, ExtractError> {
    let Some(xml) = package.read(part)? else {
        return Ok(Vec::new());
    };
    let mut strings = Vec::new();
    let mut current = String::new();
    let (mut in_text, mut in_phonetic) = (false, false);
    walk(&xml, package.format, part, |node| {
        match node {
            Node::Open(e) => match e.local_name().as_ref() {
                b"si" => current.clear(),
                b"t" => in_text = true,
                b"rPh" => in_phonetic = true,
                _ => {}
            },
            Node::Close(b"si") => strings.push(std::mem::take(&mut current)),
            Node::Close(b"t") => in_text = false,
            Node::Close(b"rPh") => in_phonetic = false,
            Node::Text(text) if in_text && !in_phonetic => current.push_str(text),
            _ => {}
        }
        Ok(())
    })?;
    Ok(strings)
}

/// The cell being read.
#[derive(Default)]
struct Cell {
    column: usize,
    kind: String,
    value: String,
}

struct Sheet<'s> {
    shared: &'s [String],
    table: Table,
    row: Vec<String>,
    cell: Option<Cell>,
    /// Inside `v` (the value) or the `t` of an inline string.
    in_value: bool,
    in_phonetic: bool,
}

impl<'s> Sheet<'s> {
    fn new(shared: &'s [String]) -> Self {
        Self { shared, table: Table::default(), row: Vec::new(), cell: None, in_value: false, in_phonetic: false }
    }

    fn visit(&mut self, node: Node<'_, '_>, sink: &mut Sink) -> Result<(), ExtractError> {
        match node {
            Node::Open(e) => match e.local_name().as_ref() {
                b"row" => self.row.clear(),
                b"c" => {
                    let column =
                        attr(e, b"r").and_then(|r| column_index(&r)).unwrap_or(self.row.len()).min(MAX_COLUMNS - 1);
                    self.cell = Some(Cell { column, kind: attr(e, b"t").unwrap_or_default(), value: String::new() });
                }
                b"v" | b"t" => self.in_value = true,
                b"rPh" => self.in_phonetic = true,
                _ => {}
            },
            Node::Close(name) => match name {
                b"v" | b"t" => self.in_value = false,
                b"rPh" => self.in_phonetic = false,
                b"c" => {
                    if let Some(cell) = self.cell.take() {
                        let value = self.value(&cell);
                        if !value.is_empty() {
                            if self.row.len() <= cell.column {
                                self.row.resize(cell.column + 1, String::new());
                            }
                            self.row[cell.column] = value;
                        }
                    }
                }
                b"row" => {
                    self.table.row(&self.row, sink)?;
                    self.row.clear();
                }
                _ => {}
            },
            Node::Text(text) => {
                if self.in_value
                    && !self.in_phonetic
                    && let Some(cell) = &mut self.cell
                {
                    cell.value.push_str(text);
                }
            }
        }
        Ok(())
    }

    fn value(&self, cell: &Cell) -> String {
        match cell.kind.as_str() {
            "s" => {
                cell.value.trim().parse::<usize>().ok().and_then(|i| self.shared.get(i)).cloned().unwrap_or_default()
            }
            "b" => match cell.value.trim() {
                "1" => "TRUE".to_owned(),
                "0" => "FALSE".to_owned(),
                other => other.to_owned(),
            },
            _ => cell.value.clone(),
        }
    }
}

/// `"C7"` → 2, `"AA1"` → 26; `None` without letters or past Excel's last column.
fn column_index(reference: &str) -> Option<usize> {
    let letters: Vec<u8> = reference.bytes().take_while(u8::is_ascii_alphabetic).collect();
    if letters.is_empty() || letters.len() > 3 {
        return None;
    }
    let number = letters.iter().fold(0usize, |n, b| n * 26 + usize::from(b.to_ascii_uppercase() - b'A') + 1);
    (number <= MAX_COLUMNS).then(|| number - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_letters() {
        assert_eq!(column_index("A1"), Some(0));
        assert_eq!(column_index("C7"), Some(2));
        assert_eq!(column_index("AA10"), Some(26));
        assert_eq!(column_index("XFD1"), Some(16_383));
        assert_eq!(column_index("XFE1"), None);
        assert_eq!(column_index("ZZZZ1"), None);
        assert_eq!(column_index("12"), None);
    }
}
