//! The isolated runner against the real child binary: results cross the process boundary
//! intact, and hostile input kills only the child.

use std::path::Path;
use std::time::Duration;

use extract::{ExtractError, Format, Limits, Oversize, extract, extract_isolated};

use crate::fixtures;

fn child() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_extract-child"))
}

async fn isolated(name: &str, bytes: &[u8], limits: &Limits) -> Result<extract::Extracted, ExtractError> {
    extract_isolated(child(), &[], name, bytes, limits).await
}

#[tokio::test]
async fn every_format_reads_the_same_through_the_child() {
    let files: [(&str, Vec<u8>); 6] = [
        ("report.pdf", fixtures::report_pdf()),
        ("report.docx", fixtures::docx()),
        ("budget.xlsx", fixtures::xlsx()),
        ("kickoff.pptx", fixtures::pptx()),
        ("notes.md", "# Café\n\nnaïve — ünïcödé ✓\n".as_bytes().to_vec()),
        ("empty.txt", Vec::new()),
    ];
    for (name, bytes) in files {
        let direct = extract(name, &bytes);
        let through_child = isolated(name, &bytes, &Limits::default()).await;
        assert_eq!(through_child, direct, "{name}");
    }
}

#[tokio::test]
async fn the_childs_own_errors_come_back_as_they_are() {
    let limits = Limits::default();
    assert!(matches!(
        isolated("broken.pdf", b"%PDF-1.4\nno body at all", &limits).await,
        Err(ExtractError::Corrupt { format: Format::Pdf, .. })
    ));
    assert_eq!(
        isolated("photo.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", &limits).await,
        Err(ExtractError::Unsupported { kind: "PNG image".to_owned() })
    );
}

/// A PDF whose one page inflates from under 2 MiB to 258 MiB. Under a decompression limit lower
/// than the memory limit lopdf refuses it (see the formats tests); here the decompression limit
/// is set above the memory limit, so the inflation itself exhausts the child's address space,
/// as any allocation the size checks miss would.
#[tokio::test]
async fn a_decompression_bomb_exhausts_only_the_childs_memory() {
    let bomb = fixtures::pdf_with_compressed_page(&fixtures::zlib_repeat(b"0 0 Td\n", 1_000_000));
    let limits = Limits { max_memory_bytes: 64 << 20, max_decompressed_bytes: 2 << 30, ..Limits::default() };
    assert_eq!(isolated("bomb.pdf", &bomb, &limits).await, Err(ExtractError::OutOfMemory { limit: 64 << 20 }));
    // This process is unharmed and the next file goes through.
    let next = isolated("report.pdf", &fixtures::report_pdf(), &limits).await;
    assert_eq!(next.map(|e| e.text), Ok(fixtures::REPORT_PDF_TEXT.to_owned()));
}

/// A page whose content stream inflates to 64 MiB of text-positioning operators (a 1.7 MiB
/// file): the child parses them one by one for far longer than half a second, so it is killed
/// at the deadline.
#[tokio::test]
async fn a_child_past_its_deadline_is_killed_and_reaped() {
    let marker = format!("deadline-test-{}", std::process::id());
    let slow = fixtures::pdf_with_compressed_page(&fixtures::zlib_repeat(b"0 0 Td\n", 260_000));
    let limits = Limits { timeout: Duration::from_millis(500), ..Limits::default() };
    let run = {
        let marker = marker.clone();
        tokio::spawn(async move { extract_isolated(child(), &[&marker], "slow.pdf", &slow, &limits).await })
    };

    let mut pid = None;
    for _ in 0..500 {
        pid = process_with_argument(&marker);
        if pid.is_some() || run.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = pid.expect("the child was seen running");

    let result = run.await.expect("the task completes");
    assert_eq!(result, Err(ExtractError::Timeout(Duration::from_millis(500))));
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the child {pid} was killed and reaped, not left running or as a zombie"
    );
}

/// The pid of a process of ours whose command line has `argument`.
fn process_with_argument(argument: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        cmdline.split(|&b| b == 0).any(|arg| arg == argument.as_bytes()).then_some(pid)
    })
}

#[tokio::test]
async fn a_text_over_the_output_limit_is_refused() {
    let limits = Limits { max_output_bytes: 1000, ..Limits::default() };
    let long = "word ".repeat(1000);
    assert_eq!(
        isolated("long.txt", long.as_bytes(), &limits).await,
        Err(ExtractError::TooLarge { what: Oversize::Output, limit: 1000 })
    );
}

/// The parent does not trust the child either: a response announcing more text than the
/// limit is refused without reading the text, and output that is not a response at all ends
/// the child rather than the parent's patience or memory.
#[tokio::test]
async fn a_misbehaving_child_cannot_flood_the_parent() {
    let limits = Limits { max_output_bytes: 1 << 20, ..Limits::default() };
    let oversized =
        r#"cat > /dev/null; echo '{"ok":{"format":"text","title":null,"text_bytes":1099511627776}}'; exec yes"#;
    let result = extract_isolated(Path::new("/bin/sh"), &["-c", oversized], "a.txt", b"hi", &limits).await;
    assert_eq!(result, Err(ExtractError::TooLarge { what: Oversize::Output, limit: 1 << 20 }));

    let result = extract_isolated(Path::new("/bin/sh"), &["-c", "exec cat /dev/zero"], "a.txt", b"hi", &limits).await;
    assert!(matches!(&result, Err(ExtractError::Crashed(reason)) if reason.contains("response header")), "{result:?}");
}

#[tokio::test]
async fn a_child_killed_by_a_signal_is_a_crash() {
    let limits = Limits::default();
    let result = extract_isolated(Path::new("/bin/sh"), &["-c", "kill -SEGV $$"], "a.txt", b"hi", &limits).await;
    assert_eq!(result, Err(ExtractError::Crashed("killed by SIGSEGV".to_owned())));
}

#[tokio::test]
async fn oversized_input_is_refused_before_any_child_starts() {
    let limits = Limits { max_input_bytes: 4, ..Limits::default() };
    let missing = Path::new("/nonexistent/extract-child");
    assert_eq!(
        extract_isolated(missing, &[], "a.txt", b"12345", &limits).await,
        Err(ExtractError::TooLarge { what: Oversize::Input, limit: 4 })
    );
    assert!(matches!(extract_isolated(missing, &[], "a.txt", b"1234", &limits).await, Err(ExtractError::Io(_))));
}
