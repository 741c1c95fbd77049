//! Documents built by the tests themselves: Office packages zipped here, PDFs written object by
//! object with a correct cross-reference table, and zlib streams that inflate hugely.

use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

pub use extract::craft::{pdf, pdf_with_compressed_page, stream, zlib_repeat};

/// A ZIP of `(name, content)` entries, deflated.
pub fn zip(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for (name, content) in entries {
        writer.start_file(*name, options).expect("starts entry");
        writer.write_all(content.as_bytes()).expect("writes entry");
    }
    writer.finish().expect("finishes zip").into_inner()
}

const RELS_CT: &str = r#"<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>"#;

fn content_types(overrides: &[(&str, &str)]) -> String {
    let overrides: String =
        overrides.iter().map(|(part, ct)| format!(r#"<Override PartName="{part}" ContentType="{ct}"/>"#)).collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">{RELS_CT}{overrides}</Types>"#
    )
}

fn rels(relationships: &[(&str, &str, &str)]) -> String {
    let body: String = relationships
        .iter()
        .map(|(id, kind, target)| {
            format!(
                r#"<Relationship Id="{id}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/{kind}" Target="{target}"/>"#
            )
        })
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{body}</Relationships>"#
    )
}

fn core_properties(title: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>{title}</dc:title></cp:coreProperties>"#
    )
}

/// A Word document: a heading by a localised style id, runs split mid-word, a tab and a line
/// break, a list, a table, a deleted revision, a field code, and a text box whose VML fallback
/// repeats its text.
pub fn docx() -> Vec<u8> {
    let document = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape" xmlns:v="urn:schemas-microsoft-com:vml">
<w:body>
<w:p><w:pPr><w:pStyle w:val="Title"/></w:pPr><w:r><w:t>Annual Report</w:t></w:r></w:p>
<w:p><w:r><w:t xml:space="preserve">Revenue grew in every </w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>reg</w:t></w:r><w:r><w:t>ion.</w:t></w:r><w:r><w:tab/><w:t>Costs fell &amp; margins rose.</w:t><w:br/><w:t>Second line</w:t></w:r><w:del><w:r><w:delText>deleted words</w:delText></w:r></w:del></w:p>
<w:p><w:pPr><w:pStyle w:val="berschrift2"/></w:pPr><w:r><w:t>Outlook</w:t></w:r></w:p>
<w:p><w:pPr><w:numPr><w:ilvl w:val="0"/><w:numId w:val="1"/></w:numPr></w:pPr><w:r><w:t>First goal</w:t></w:r></w:p>
<w:p><w:pPr><w:numPr><w:ilvl w:val="0"/><w:numId w:val="1"/></w:numPr></w:pPr><w:r><w:t>Second goal</w:t></w:r></w:p>
<w:tbl><w:tr><w:tc><w:p><w:r><w:t>Region</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>Sales</w:t></w:r></w:p></w:tc></w:tr>
<w:tr><w:tc><w:p><w:r><w:t>North</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>120</w:t></w:r></w:p></w:tc></w:tr></w:tbl>
<w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText xml:space="preserve"> PAGE </w:instrText></w:r><w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>7</w:t></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>
<w:p><w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing><wps:txbx><w:txbxContent><w:p><w:r><w:t>Text box content</w:t></w:r></w:p></w:txbxContent></wps:txbx></w:drawing></mc:Choice><mc:Fallback><w:pict><v:textbox><w:txbxContent><w:p><w:r><w:t>Text box content</w:t></w:r></w:p></w:txbxContent></v:textbox></w:pict></mc:Fallback></mc:AlternateContent></w:r></w:p>
<w:sectPr/></w:body></w:document>"#;
    let styles = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:styles xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">
<w:style w:type="paragraph" w:styleId="Title"><w:name w:val="Title"/></w:style>
<w:style w:type="paragraph" w:styleId="berschrift2"><w:name w:val="heading 2"/><w:pPr><w:outlineLvl w:val="1"/></w:pPr></w:style>
</w:styles>"#;
    zip(&[
        (
            "[Content_Types].xml",
            &content_types(&[
                (
                    "/word/document.xml",
                    "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
                ),
                ("/word/styles.xml", "application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml"),
            ]),
        ),
        ("_rels/.rels", &rels(&[("rId1", "officeDocument", "word/document.xml")])),
        ("word/_rels/document.xml.rels", &rels(&[("rId1", "styles", "styles.xml")])),
        ("word/document.xml", document),
        ("word/styles.xml", styles),
        ("docProps/core.xml", &core_properties("FY report")),
    ])
}

/// What [`docx`] reads as.
pub const DOCX_TEXT: &str = "# Annual Report

Revenue grew in every region.\tCosts fell & margins rose.
Second line

## Outlook

- First goal
- Second goal

Region | Sales
North | 120

7

Text box content";

/// An Excel workbook: two sheets (one reached by an absolute target), shared strings with rich
/// runs and a phonetic guide, an inline string, a formula's cached value, a boolean, a gap.
pub fn xlsx() -> Vec<u8> {
    let workbook = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">
<sheets><sheet name="Budget" sheetId="1" r:id="rId1"/><sheet name="Notes" sheetId="2" r:id="rId2"/></sheets></workbook>"#;
    let shared = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="5" uniqueCount="5">
<si><t>Item</t></si><si><t>Cost</t></si><si><t>Paper</t></si>
<si><r><t xml:space="preserve">Toner </t></r><r><rPr><b/></rPr><t>&amp; ink</t></r><rPh sb="0" eb="1"><t>ignored</t></rPh></si>
<si><t>Remember the deadline</t></si></sst>"#;
    let sheet1 = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>
<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>
<row r="2"><c r="A2" t="s"><v>2</v></c><c r="B2"><v>12.5</v></c></row>
<row r="3"><c r="A3" t="s"><v>3</v></c><c r="B3"><f>B2*2</f><v>25</v></c></row>
<row r="5"><c r="B5" t="inlineStr"><is><t>inline</t></is></c><c r="D5" t="b"><v>1</v></c></row>
</sheetData></worksheet>"#;
    let sheet2 = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>
<row r="1"><c r="A1" t="s"><v>4</v></c></row></sheetData></worksheet>"#;
    zip(&[
        (
            "[Content_Types].xml",
            &content_types(&[(
                "/xl/workbook.xml",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
            )]),
        ),
        ("_rels/.rels", &rels(&[("rId1", "officeDocument", "xl/workbook.xml")])),
        (
            "xl/_rels/workbook.xml.rels",
            &rels(&[
                ("rId1", "worksheet", "worksheets/sheet1.xml"),
                ("rId2", "worksheet", "/xl/worksheets/sheet2.xml"),
                ("rId3", "sharedStrings", "sharedStrings.xml"),
            ]),
        ),
        ("xl/workbook.xml", workbook),
        ("xl/sharedStrings.xml", shared),
        ("xl/worksheets/sheet1.xml", sheet1),
        ("xl/worksheets/sheet2.xml", sheet2),
    ])
}

/// What [`xlsx`] reads as.
pub const XLSX_TEXT: &str = "## Budget

Item; Cost
Item: Paper; Cost: 12.5
Item: Toner & ink; Cost: 25
Cost: inline; TRUE

## Notes

Remember the deadline";

fn slide(title: &str, body: &[&str]) -> String {
    let paragraphs: String = body.iter().map(|p| format!("<a:p><a:r><a:t>{p}</a:t></a:r></a:p>")).collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<p:sld xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"><p:cSld><p:spTree>
<p:sp><p:nvSpPr><p:cNvPr id="2" name="Title"/><p:cNvSpPr/><p:nvPr><p:ph type="title"/></p:nvPr></p:nvSpPr><p:txBody><a:p><a:r><a:t>{title}</a:t></a:r></a:p></p:txBody></p:sp>
<p:sp><p:nvSpPr><p:cNvPr id="3" name="Body"/><p:cNvSpPr/><p:nvPr><p:ph idx="1"/></p:nvPr></p:nvSpPr><p:txBody>{paragraphs}</p:txBody></p:sp>
<p:sp><p:nvSpPr><p:cNvPr id="4" name="Slide number"/><p:cNvSpPr/><p:nvPr><p:ph type="sldNum"/></p:nvPr></p:nvSpPr><p:txBody><a:p><a:fld type="slidenum"><a:t>99</a:t></a:fld></a:p></p:txBody></p:sp>
</p:spTree></p:cSld></p:sld>"#
    )
}

/// A PowerPoint deck whose slide parts are named against their order (the presentation's
/// slide list decides), with a slide number placeholder and speaker notes.
pub fn pptx() -> Vec<u8> {
    let presentation = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<p:presentation xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">
<p:sldIdLst><p:sldId id="256" r:id="rId3"/><p:sldId id="257" r:id="rId2"/></p:sldIdLst></p:presentation>"#;
    let notes = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<p:notes xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"><p:cSld><p:spTree>
<p:sp><p:nvSpPr><p:cNvPr id="2" name="Image"/><p:cNvSpPr/><p:nvPr><p:ph type="sldImg"/></p:nvPr></p:nvSpPr></p:sp>
<p:sp><p:nvSpPr><p:cNvPr id="3" name="Notes"/><p:cNvSpPr/><p:nvPr><p:ph type="body" idx="1"/></p:nvPr></p:nvSpPr><p:txBody><a:p><a:r><a:t>Speak slowly</a:t></a:r></a:p></p:txBody></p:sp>
</p:spTree></p:cSld></p:notes>"#;
    zip(&[
        (
            "[Content_Types].xml",
            &content_types(&[(
                "/ppt/presentation.xml",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml",
            )]),
        ),
        ("_rels/.rels", &rels(&[("rId1", "officeDocument", "ppt/presentation.xml")])),
        (
            "ppt/_rels/presentation.xml.rels",
            &rels(&[("rId2", "slide", "slides/slide1.xml"), ("rId3", "slide", "slides/slide2.xml")]),
        ),
        ("ppt/presentation.xml", presentation),
        ("ppt/slides/slide2.xml", &slide("Welcome", &["Agenda for today", "Budget review"])),
        ("ppt/slides/_rels/slide2.xml.rels", &rels(&[("rId1", "notesSlide", "../notesSlides/notesSlide1.xml")])),
        ("ppt/notesSlides/notesSlide1.xml", notes),
        ("ppt/slides/slide1.xml", &slide("Results", &["Sales up 10%"])),
        ("docProps/core.xml", &core_properties("Kick-off")),
    ])
}

/// What [`pptx`] reads as.
pub const PPTX_TEXT: &str = "## Slide 1: Welcome

Agenda for today
Budget review

Notes: Speak slowly

## Slide 2: Results

Sales up 10%";

/// `data` zlib-compressed.
pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("compresses");
    encoder.finish().expect("compresses")
}

/// A two-page PDF: positioned lines, a word hyphenated across lines, a paragraph gap, `TJ` word
/// spacing, a compressed page, a form XObject with its own font, and a title in the
/// information dictionary.
pub fn report_pdf() -> Vec<u8> {
    let page1 = b"BT /F1 24 Tf 72 720 Td (Quarterly Report) Tj ET
BT /F1 12 Tf 72 680 Td (Revenue grew by 12 per-) Tj 0 -14 Td (cent in the third quarter.) Tj T* (Costs fell.) Tj ET
BT /F1 12 Tf 72 600 Td [(W) 80 (ord)-250(spacing)] TJ ( and caf\\351) Tj ET";
    let page2 = b"BT /F1 12 Tf 1 0 0 1 72 720 Tm (Second page) Tj ET q /Fm1 Do Q";
    let form = b"BT /F2 10 Tf 1 0 0 1 72 40 Tm (Footer from a form) Tj ET";
    let font = |name: &str| {
        format!("<< /Type /Font /Subtype /Type1 /BaseFont /{name} /Encoding /WinAnsiEncoding >>").into_bytes()
    };
    pdf(
        &[
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 >>".to_vec(),
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> /Contents 6 0 R >>".to_vec(),
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> /XObject << /Fm1 8 0 R >> >> /Contents 7 0 R >>".to_vec(),
            font("Helvetica"),
            stream("", page1),
            stream("/Filter /FlateDecode", &deflate(page2)),
            stream(
                "/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /Font << /F2 9 0 R >> >>",
                form,
            ),
            font("Times-Roman"),
            b"<< /Title (Q3 Report) /Producer (hand) >>".to_vec(),
        ],
        1,
        Some(10),
    )
}

/// What [`report_pdf`] reads as.
pub const REPORT_PDF_TEXT: &str = "Quarterly Report

Revenue grew by 12 percent in the third quarter.
Costs fell.

Word spacing and café

Second page

Footer from a form";

#[test]
fn zlib_repeat_inflates_to_the_pattern() {
    use std::io::Read;
    let zlib = zlib_repeat(b"0 0 Td\n", 1000);
    let mut inflated = Vec::new();
    flate2::read::ZlibDecoder::new(&zlib[..]).read_to_end(&mut inflated).expect("valid zlib, checksum included");
    let expected: Vec<u8> = b"0 0 Td\n".iter().copied().cycle().take(7 + 258 * 1000).collect();
    assert_eq!(inflated, expected);
}
