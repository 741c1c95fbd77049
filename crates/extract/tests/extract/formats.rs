//! Each format read in this process, asserting the text a search index would get.

use extract::{ExtractError, Extracted, Format, Limits, Oversize, extract, extract_with_limits};

use crate::fixtures;

fn read(name: &str, bytes: &[u8]) -> Extracted {
    extract(name, bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn plain_text_is_decoded_and_tidied() {
    let text = b"caf\xe9 menu\r\n\r\n\r\n\r\nline two \x01  \n\n";
    let extracted = read("notes.txt", text);
    assert_eq!(extracted.format, Format::Text);
    assert_eq!(extracted.text, "café menu\n\nline two");

    let utf16 = b"\xff\xfeh\0i\0 \0\xe9\0";
    assert_eq!(read("wide.txt", utf16).text, "hi é");
}

#[test]
fn markdown_stays_markdown() {
    let md = "# Install guide\n\nRun:\n\n```sh\ncargo build\n```\n\n\n\n\n- one\n  - nested\n";
    let extracted = read("README.md", md.as_bytes());
    assert_eq!(extracted.format, Format::Markdown);
    assert_eq!(extracted.title.as_deref(), Some("Install guide"));
    assert_eq!(extracted.text, "# Install guide\n\nRun:\n\n```sh\ncargo build\n```\n\n- one\n  - nested");
}

#[test]
fn html_becomes_readable_text() {
    let html = "<!doctype html><html><head><title>Pricing &amp; plans</title>\
        <style>.x{}</style><script>var a = '<h1>no</h1>';</script></head>\
        <body><h2>Team&nbsp;plan</h2><p>For <b>small</b>\n   teams.</p><ul><li>5 seats</li><li>Support</li></ul></body></html>";
    let extracted = read("pricing.html", html.as_bytes());
    assert_eq!(extracted.format, Format::Html);
    assert_eq!(extracted.title.as_deref(), Some("Pricing & plans"));
    assert_eq!(extracted.text, "# Pricing & plans\n\n## Team plan\n\nFor small teams.\n\n- 5 seats\n- Support");
}

#[test]
fn csv_rows_carry_their_column_names() {
    let csv = "order,customer,status\n1001,\"Smith, Jane\",shipped\n1002,Lee,\n";
    let extracted = read("orders.csv", csv.as_bytes());
    assert_eq!(extracted.format, Format::Csv);
    assert_eq!(
        extracted.text,
        "order; customer; status\norder: 1001; customer: Smith, Jane; status: shipped\norder: 1002; customer: Lee"
    );
    let tsv = "name\tscore\nAda\t10\n";
    assert_eq!(read("scores.tsv", tsv.as_bytes()).text, "name; score\nname: Ada; score: 10");
}

#[test]
fn json_is_flattened_to_paths() {
    let json = r#"{"service": "billing", "owners": ["ana", "bo"], "limits": {"rps": 50, "burst": null},
        "endpoints": [{"path": "/pay", "auth": true}]}"#;
    let extracted = read("config.json", json.as_bytes());
    assert_eq!(extracted.format, Format::Json);
    assert_eq!(
        extracted.text,
        "service: billing\nowners: ana, bo\nlimits.rps: 50\nendpoints[0].path: /pay\nendpoints[0].auth: true"
    );
}

#[test]
fn pdf_text_comes_out_in_page_order_with_lines_and_paragraphs() {
    let extracted = read("report.pdf", &fixtures::report_pdf());
    assert_eq!(extracted.format, Format::Pdf);
    assert_eq!(extracted.title.as_deref(), Some("Q3 Report"));
    assert_eq!(extracted.text, fixtures::REPORT_PDF_TEXT);
}

#[test]
fn docx_paragraphs_headings_lists_and_tables() {
    let extracted = read("report.docx", &fixtures::docx());
    assert_eq!(extracted.format, Format::Docx);
    assert_eq!(extracted.title.as_deref(), Some("FY report"));
    assert_eq!(extracted.text, fixtures::DOCX_TEXT);
}

#[test]
fn xlsx_sheets_and_rows() {
    let extracted = read("budget.xlsx", &fixtures::xlsx());
    assert_eq!(extracted.format, Format::Xlsx);
    assert_eq!(extracted.text, fixtures::XLSX_TEXT);
}

#[test]
fn pptx_slides_in_presentation_order() {
    let extracted = read("kickoff.pptx", &fixtures::pptx());
    assert_eq!(extracted.format, Format::Pptx);
    assert_eq!(extracted.title.as_deref(), Some("Kick-off"));
    assert_eq!(extracted.text, fixtures::PPTX_TEXT);
}

#[test]
fn a_zip_bomb_is_stopped_at_the_decompression_limit() {
    // 12 MiB of spaces in word/document.xml deflate to about 12 KiB.
    let huge = " ".repeat(12 << 20);
    let entries = [
        (
            "[Content_Types].xml",
            r#"<Types><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#,
        ),
        ("word/document.xml", huge.as_str()),
    ];
    let bomb = fixtures::zip(&entries);
    assert!(bomb.len() < 1 << 20, "the bomb itself is small");
    let limits = Limits { max_decompressed_bytes: 2 << 20, ..Limits::default() };
    assert_eq!(
        extract_with_limits("bomb.docx", &bomb, &limits),
        Err(ExtractError::TooLarge { what: Oversize::Decompressed, limit: 2 << 20 })
    );
}

#[test]
fn a_pdf_stream_bomb_is_stopped_at_the_decompression_limit() {
    // Inflates to 25 MiB.
    let pdf = fixtures::pdf_with_compressed_page(&fixtures::zlib_repeat(b" ", 100_000));
    let limits = Limits { max_decompressed_bytes: 16 << 20, ..Limits::default() };
    assert_eq!(
        extract_with_limits("bomb.pdf", &pdf, &limits),
        Err(ExtractError::TooLarge { what: Oversize::Decompressed, limit: 16 << 20 })
    );
}

#[test]
fn input_and_output_limits_refuse_rather_than_cut() {
    let limits = Limits { max_input_bytes: 10, ..Limits::default() };
    assert_eq!(
        extract_with_limits("a.txt", b"eleven byte", &limits),
        Err(ExtractError::TooLarge { what: Oversize::Input, limit: 10 })
    );
    // A short CSV whose long header names repeat on every row.
    let header = "a_really_long_column_name_repeated_on_every_row";
    let csv = format!("{header}\n{}", "x\n".repeat(1000));
    let limits = Limits { max_output_bytes: 4096, ..Limits::default() };
    assert_eq!(
        extract_with_limits("wide.csv", csv.as_bytes(), &limits),
        Err(ExtractError::TooLarge { what: Oversize::Output, limit: 4096 })
    );
}

#[test]
fn corrupt_files_are_reported_as_corrupt() {
    let garbage = b"%PDF-1.7\n\x00\x01 this is not a PDF body, no xref, no trailer \xff\xfe";
    assert!(matches!(extract("broken.pdf", garbage), Err(ExtractError::Corrupt { format: Format::Pdf, .. })));
    let not_a_zip = b"PK\x03\x04 truncated";
    assert!(matches!(extract("broken.docx", not_a_zip), Err(ExtractError::Corrupt { format: Format::Docx, .. })));
    let docx_without_document = fixtures::zip(&[("word/styles.xml", "<w:styles/>")]);
    assert!(matches!(
        extract("empty.docx", &docx_without_document),
        Err(ExtractError::Corrupt { format: Format::Docx, .. })
    ));
    assert!(matches!(extract("bad.json", b"{\"a\": [1, 2"), Err(ExtractError::Corrupt { format: Format::Json, .. })));
}

#[test]
fn truncated_pdfs_never_panic() {
    // Every prefix of a real PDF: each is either read (lopdf rebuilds a lost cross-reference
    // table) or reported corrupt; none may panic this process.
    let pdf = fixtures::report_pdf();
    for len in (0..pdf.len()).step_by(7) {
        match extract("cut.pdf", &pdf[..len]) {
            Ok(extracted) => assert_eq!(extracted.format, Format::Pdf),
            Err(ExtractError::Corrupt { .. } | ExtractError::Unsupported { .. }) => {}
            Err(other) => panic!("prefix of {len} bytes: unexpected {other:?}"),
        }
    }
}

#[test]
fn office_part_names_match_case_insensitively() {
    let document =
        r#"<w:document xmlns:w="w"><w:body><w:p><w:r><w:t>Mixed case parts</w:t></w:r></w:p></w:body></w:document>"#;
    let docx = fixtures::zip(&[
        (
            "[Content_Types].xml",
            r#"<Types><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#,
        ),
        ("Word/Document.XML", document),
    ]);
    assert_eq!(read("odd.docx", &docx).text, "Mixed case parts");
}
