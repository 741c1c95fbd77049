//! Every supported file type through the whole pipeline (upload, job, extraction in the child,
//! retrieval), with sample files the test builds itself; and a hostile file that crashes its
//! parser while the job completes.

use std::io::Write;

use extract::craft;

use crate::{Stack, counters};

/// A zip archive of `entries` (an Office Open XML package).
fn zip(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in entries {
        out.start_file(*name, options).expect("zip entry");
        out.write_all(content.as_bytes()).expect("zip write");
    }
    out.finish().expect("zip finish").into_inner()
}

const RELS: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="TARGET"/></Relationships>"#;

fn docx(text: &str) -> Vec<u8> {
    let types = r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#;
    let document = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>Heading line</w:t></w:r></w:p><w:p><w:r><w:t xml:space="preserve">{text} </w:t></w:r><w:r><w:t>continues here.</w:t></w:r></w:p></w:body></w:document>"#
    );
    zip(&[
        ("[Content_Types].xml", types),
        ("_rels/.rels", &RELS.replace("TARGET", "word/document.xml")),
        ("word/document.xml", &document),
    ])
}

fn pptx(text: &str) -> Vec<u8> {
    let types = r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/ppt/presentation.xml" ContentType="application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml"/><Override PartName="/ppt/slides/slide1.xml" ContentType="application/vnd.openxmlformats-officedocument.presentationml.slide+xml"/></Types>"#;
    let presentation = r#"<?xml version="1.0" encoding="UTF-8"?><p:presentation xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><p:sldIdLst><p:sldId id="256" r:id="rId2"/></p:sldIdLst></p:presentation>"#;
    let presentation_rels = r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/slide" Target="slides/slide1.xml"/></Relationships>"#;
    let slide = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><p:sld xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"><p:cSld><p:spTree><p:sp><p:txBody><a:p><a:r><a:t>{text}</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:sld>"#
    );
    zip(&[
        ("[Content_Types].xml", types),
        ("_rels/.rels", &RELS.replace("TARGET", "ppt/presentation.xml")),
        ("ppt/presentation.xml", presentation),
        ("ppt/_rels/presentation.xml.rels", presentation_rels),
        ("ppt/slides/slide1.xml", &slide),
    ])
}

fn xlsx(word: &str) -> Vec<u8> {
    let types = r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>"#;
    let workbook = r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Inventory" sheetId="1" r:id="rId1"/></sheets></workbook>"#;
    let workbook_rels = r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>"#;
    let shared = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="3" uniqueCount="3"><si><t>item</t></si><si><t>count</t></si><si><t>{word}</t></si></sst>"#
    );
    let sheet = r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row><row r="2"><c r="A2" t="s"><v>2</v></c><c r="B2"><v>42</v></c></row></sheetData></worksheet>"#;
    zip(&[
        ("[Content_Types].xml", types),
        ("_rels/.rels", &RELS.replace("TARGET", "xl/workbook.xml")),
        ("xl/workbook.xml", workbook),
        ("xl/_rels/workbook.xml.rels", workbook_rels),
        ("xl/sharedStrings.xml", &shared),
        ("xl/worksheets/sheet1.xml", sheet),
    ])
}

/// A one-page PDF showing `text` (Helvetica).
fn pdf(text: &str) -> Vec<u8> {
    let content = format!("BT /F1 12 Tf 72 712 Td ({text}) Tj ET");
    craft::pdf(
        &[
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_vec(),
            craft::stream("", content.as_bytes()),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
        ],
        1,
        None,
    )
}

#[tokio::test]
async fn every_supported_type_is_extracted_and_searchable() {
    let stack = Stack::spawn().await;
    let org = stack.org("acme").await;
    let repo = org.repository("formats", &[]).await;
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("plain.txt", b"alphaword in plain text".to_vec()),
        ("notes.md", b"# Title\n\nbetaword in **Markdown**".to_vec()),
        ("page.html", b"<html><body><h1>Page</h1><p>gammaword &amp; friends</p></body></html>".to_vec()),
        ("table.csv", b"name,colour\ndeltaword,blue\n".to_vec()),
        ("data.json", br#"{"thing": {"label": "epsilonword", "size": 3}}"#.to_vec()),
        ("paper.pdf", pdf("zetaword inside a PDF")),
        ("letter.docx", docx("etaword in Word")),
        ("sheet.xlsx", xlsx("thetaword")),
        ("deck.pptx", pptx("iotaword on a slide")),
    ];
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    org.upload(&repo, &refs).await;
    let status = org.process().await;
    let failed = org.job_files(Some("failed")).await;
    assert_eq!(counters(&status), [9, 9, 0, 0, 0], "{status} {failed:?}");
    for (word, key) in [
        ("alphaword", "plain.txt"),
        ("betaword", "notes.md"),
        ("gammaword", "page.html"),
        ("deltaword", "table.csv"),
        ("epsilonword", "data.json"),
        ("zetaword", "paper.pdf"),
        ("etaword", "letter.docx"),
        ("thetaword", "sheet.xlsx"),
        ("iotaword", "deck.pptx"),
    ] {
        assert_eq!(org.search(word).await, [key], "{word}");
    }
}

#[tokio::test]
async fn hostile_files_fail_alone_and_the_job_completes() {
    // A tight memory limit and timeout for the extractor child (its address space includes the
    // service binary it runs as, embedding model code included).
    let stack = Stack::spawn_with(|env| env.with("EXTRACT_MEMORY_MB", "128").with("EXTRACT_TIMEOUT_SECS", "2")).await;
    let org = stack.org("acme").await;
    let repo = org.repository("hostile", &[]).await;
    // 1.8 MiB that inflates to 258 MiB of PDF operators: the child runs out of memory (its
    // decompression cap is half its memory, so the cap or the allocator stops it).
    let bomb = craft::pdf_with_compressed_page(&craft::zlib_repeat(b"0 0 Td\n", 1_000_000));
    // 31 MiB of text operators: more than the child's memory or time allows.
    let slow = craft::pdf_with_compressed_page(&craft::zlib_repeat(b"0 0 Td\n", 120_000));
    org.upload(&repo, &[("bomb.pdf", &bomb), ("slow.pdf", &slow), ("fine.txt", b"Survivors of the storm.")]).await;
    let status = org.process().await;
    let failed = org.job_files(Some("failed")).await;
    assert_eq!(counters(&status), [3, 1, 0, 0, 2], "{status} {failed:?}");
    for file in &failed {
        // The child was killed by its limits: its parser died, the service did not.
        let reason = file["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("memory") || reason.contains("longer than"), "{file}");
    }
    assert_eq!(org.search("survivors").await, ["fine.txt"]);
    // The service is still there for the next job.
    assert_eq!(counters(&org.process().await), [3, 0, 0, 0, 2]);
}
