//! CSV and its cousins (semicolon-, tab- and pipe-separated), one line per row.

use super::table::Table;
use crate::Format;
use crate::error::ExtractError;
use crate::text::{Sink, decode};

pub(crate) fn extract(bytes: &[u8], sink: &mut Sink) -> Result<(), ExtractError> {
    let text = decode(bytes, None);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(sniff_delimiter(&text))
        .from_reader(text.as_bytes());
    let mut table = Table::default();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => table.row(&record.iter().collect::<Vec<_>>(), sink)?,
            Ok(false) => return Ok(()),
            Err(error) => return Err(ExtractError::corrupt(Format::Csv, error)),
        }
    }
}

/// The separator that occurs most often (outside quotes) on the first line; comma on a tie.
fn sniff_delimiter(text: &str) -> u8 {
    const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];
    let mut counts = [0usize; CANDIDATES.len()];
    let mut quoted = false;
    for byte in text.bytes().take(64 * 1024) {
        match byte {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => break,
            _ if !quoted => {
                if let Some(i) = CANDIDATES.iter().position(|&c| c == byte) {
                    counts[i] += 1;
                }
            }
            _ => {}
        }
    }
    // `max_by_key` keeps the last maximum; the reversed index makes the first one win.
    let best = (0..CANDIDATES.len()).max_by_key(|&i| (counts[i], std::cmp::Reverse(i))).unwrap_or(0);
    CANDIDATES[best]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(input: &str) -> String {
        let mut sink = Sink::new(1 << 20);
        extract(input.as_bytes(), &mut sink).expect("reads");
        sink.finish().expect("fits")
    }

    #[test]
    fn quoted_fields_and_named_values() {
        let csv = "product,description,price\nwidget,\"small, blue\",12.50\r\ngadget,\"says \"\"hi\"\"\",3\n";
        assert_eq!(
            render(csv),
            "product; description; price\nproduct: widget; description: small, blue; price: 12.50\nproduct: gadget; description: says \"hi\"; price: 3"
        );
    }

    #[test]
    fn semicolons_and_tabs_are_sniffed() {
        assert_eq!(sniff_delimiter("a;b;\"c,d\"\n1;2;3"), b';');
        assert_eq!(sniff_delimiter("a\tb\tc,d\n"), b'\t');
        assert_eq!(sniff_delimiter("just one column\n"), b',');
        assert_eq!(render("k;v\nx;1\n"), "k; v\nk: x; v: 1");
    }
}
