//! Rows of cells (CSV, spreadsheet sheets) as lines that keep each value next to its column
//! name, so a keyword search for `price 12` or `status: shipped` finds the row.

use super::collapse_whitespace;
use crate::error::ExtractError;
use crate::text::Sink;

/// Writes one table: the first row as it is, then, when that row looks like column names, every
/// other row as `name: value; name: value`; otherwise as `value; value`. Empty cells are left
/// out; a cell's line breaks become spaces.
#[derive(Debug, Default)]
pub(crate) struct Table {
    header: Option<Vec<String>>,
    rows: usize,
}

impl Table {
    pub(crate) fn row<S: AsRef<str>>(&mut self, cells: &[S], sink: &mut Sink) -> Result<(), ExtractError> {
        let cells: Vec<String> = cells.iter().map(|c| collapse_whitespace(c.as_ref())).collect();
        if cells.iter().all(String::is_empty) {
            return Ok(());
        }
        self.rows += 1;
        let mut line = String::new();
        match &self.header {
            Some(header) => {
                for (index, value) in cells.iter().enumerate() {
                    if value.is_empty() {
                        continue;
                    }
                    if !line.is_empty() {
                        line.push_str("; ");
                    }
                    if let Some(name) = header.get(index).filter(|n| !n.is_empty()) {
                        line.push_str(name);
                        line.push_str(": ");
                    }
                    line.push_str(value);
                }
            }
            None => {
                line = cells.iter().filter(|c| !c.is_empty()).map(String::as_str).collect::<Vec<_>>().join("; ");
                if self.rows == 1 && looks_like_header(&cells) {
                    self.header = Some(cells);
                }
            }
        }
        sink.newline()?;
        sink.push_str(&line)?;
        sink.push('\n')
    }
}

/// Column names: short, and none of them a number or a date.
fn looks_like_header(cells: &[String]) -> bool {
    cells.iter().filter(|c| !c.is_empty()).count() >= 1
        && cells.iter().filter(|c| !c.is_empty()).all(|c| c.chars().count() <= 64 && !is_numeric_like(c))
}

fn is_numeric_like(cell: &str) -> bool {
    cell.chars().any(|c| c.is_ascii_digit())
        && cell.chars().all(|c| c.is_ascii_digit() || " .,-+/:%$€£¥()eE".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(rows: &[&[&str]]) -> String {
        let mut sink = Sink::new(1 << 20);
        let mut table = Table::default();
        for row in rows {
            table.row(row, &mut sink).expect("fits");
        }
        sink.finish().expect("fits")
    }

    #[test]
    fn named_values_when_the_first_row_is_a_header() {
        let text =
            render(&[&["name", "city", "age"], &["Ada", "", "36"], &["Alan", "Wilmslow\nCheshire", "41", "extra"]]);
        assert_eq!(text, "name; city; age\nname: Ada; age: 36\nname: Alan; city: Wilmslow Cheshire; age: 41; extra");
    }

    #[test]
    fn plain_values_when_the_first_row_is_data() {
        let text = render(&[&["2024-01-02", "12.5"], &["2024-01-03", "13"]]);
        assert_eq!(text, "2024-01-02; 12.5\n2024-01-03; 13");
    }
}
