//! Detection by content when the name is wrong, and refusals of what is not a document.

use extract::{ExtractError, Format, detect, extract};

use crate::fixtures;

#[test]
fn magic_bytes_win_over_a_wrong_extension() {
    let pdf = fixtures::report_pdf();
    assert_eq!(detect("scan.txt", &pdf), Some(Format::Pdf));
    assert_eq!(detect("upload.bin", &fixtures::docx()), Some(Format::Docx));
    assert_eq!(detect("data.csv", &fixtures::xlsx()), Some(Format::Xlsx));
    assert_eq!(detect("deck.zip", &fixtures::pptx()), Some(Format::Pptx));
    assert_eq!(detect("report.docx", &fixtures::pptx()), Some(Format::Pptx));
    // And the text follows the content, not the name.
    let extracted = extract("data.csv", &fixtures::xlsx()).expect("reads");
    assert_eq!(extracted.format, Format::Xlsx);
    assert!(extracted.text.contains("Item: Paper; Cost: 12.5"));
}

#[test]
fn unknown_names_are_text_when_the_bytes_are() {
    assert_eq!(detect("Dockerfile", b"FROM debian\nRUN true\n"), Some(Format::Text));
    assert_eq!(detect("page", b"<!DOCTYPE html><title>x</title>"), Some(Format::Html));
    assert_eq!(detect("notes.md", b"# hi"), Some(Format::Markdown));
}

#[test]
fn binary_files_are_unsupported_with_a_reason() {
    let cases: [(&str, &[u8], &str); 4] = [
        ("photo.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0", "PNG image"),
        ("legacy.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\0\0\0\0", "legacy Office document (.doc, .xls or .ppt)"),
        ("blob.dat", b"\x00\x9f\x12\x00\xff\xee\x01\x02", "binary data"),
        ("notes.txt", b"\x00\x01\x02\x03 text with NULs \x00", "binary data"),
    ];
    for (name, bytes, kind) in cases {
        assert_eq!(detect(name, bytes), None, "{name}");
        assert_eq!(extract(name, bytes), Err(ExtractError::Unsupported { kind: kind.to_owned() }), "{name}");
    }
    let archive = fixtures::zip(&[("photos/readme.txt", "holiday pictures")]);
    assert_eq!(detect("photos.zip", &archive), None);
    assert_eq!(
        extract("photos.zip", &archive).map_err(|e| e.to_string()),
        Err("unsupported file type: ZIP archive".to_owned())
    );
}
