//! dokko-api's web console where it needs dokko-ingest: an admin uploads a folder, processes it
//! (the counters move until the job ends, the failed file with its reason) and finds a sentence
//! through the retrieval playground, in headless Chromium.

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::Locator;
use testkit::browser::Browser;

use crate::{PASSWORD, Stack};

/// Waits until `css` is on the page (pages a script reloads included).
async fn wait_for(browser: &Browser, css: &str, within: Duration) {
    let waited = browser.client.wait().at_most(within).for_element(Locator::Css(css)).await;
    if let Err(e) = waited {
        panic!("{css} on {}: {e}\n{}", browser.location().await, browser.source().await);
    }
}

/// `docs/` with two readable files and a PDF that is not one.
fn folder_to_upload() -> PathBuf {
    let root = std::env::temp_dir().join(format!("dokko-console-{}", uuid::Uuid::new_v4()));
    let folder = root.join("docs");
    std::fs::create_dir_all(folder.join("office")).expect("folders");
    std::fs::write(folder.join("office/kitchen.txt"), "The kettle lives in the kitchen, next to the blue mugs.")
        .expect("file");
    std::fs::write(folder.join("welcome.md"), "# Welcome\n\nAsk the front desk for a badge on your first day.")
        .expect("file");
    std::fs::write(folder.join("broken.pdf"), b"%PDF-1.7 this is not really a PDF").expect("file");
    folder
}

#[tokio::test]
async fn an_admin_uploads_processes_and_finds_a_sentence_in_the_console() {
    let stack = Stack::spawn().await;
    let org = stack.org("acme").await;
    let browser = Browser::start(&stack.api.url(), 1280, 900).await;
    browser.goto("/console/sign-in").await;
    browser.fill("#sign-in input[name=organisation]", &org.name).await;
    browser.fill("#sign-in input[name=email]", "admin@acme.example").await;
    browser.fill("#sign-in input[name=password]", PASSWORD).await;
    browser.click("#sign-in button[type=submit]", "#who").await;

    browser.goto("/console/processing").await;
    assert!(browser.exists("#no-job").await, "the empty state says what to do");

    browser.goto("/console/repositories").await;
    browser.fill("#create-repository input[name=name]", "handbook").await;
    browser.click("#create-repository button[type=submit]", "#repository-name").await;
    let folder = folder_to_upload();
    browser.find("#folder-input").await.send_keys(&folder.to_string_lossy()).await.expect("chooses the folder");
    wait_for(&browser, ".outcome-summary", Duration::from_secs(60)).await;
    let outcome = browser.text("#upload-outcome").await;
    assert!(outcome.starts_with("3 succeeded, 0 failed (HTTP 200, success)"), "{outcome}");

    // A job: the page follows it until it ends, then shows the counters and the failed file.
    browser.goto("/console/processing").await;
    browser.click("#start-job button[type=submit]", "#job-status").await;
    assert_eq!(browser.text("#notice").await, "The job has started. The counters below move until it ends.");
    browser.screenshot("console-processing-started-1280").await;
    wait_for(&browser, r#"#job-status[data-status="COMPLETED"]"#, Duration::from_secs(120)).await;
    assert_eq!(browser.text("#counter-numberOfDocumentsScanned").await, "3");
    assert_eq!(browser.text("#counter-numberOfNewDocumentsIndexed").await, "2");
    assert_eq!(browser.text("#counter-numberOfDocumentsFailed").await, "1");
    let failed = browser.text("#failed-files").await;
    assert!(failed.contains("docs/broken.pdf"), "{failed}");
    assert!(browser.text("#source-details").await.contains("Chunking"), "the document source's details");
    browser.screenshot("console-processing-1280").await;

    // The playground: the sentence found, its words highlighted.
    browser.goto("/console/playground").await;
    browser.fill("#query", "where is the kettle").await;
    browser.click("#playground button[type=submit]", "#results").await;
    let first = browser.find("#results article.result").await;
    let key = first.find(Locator::Css("a.key")).await.expect("key").text().await.expect("text");
    assert_eq!(key, "docs/office/kitchen.txt");
    let mut marked = Vec::new();
    for mark in first.find_all(Locator::Css("mark")).await.expect("marks") {
        marked.push(mark.text().await.expect("text").to_lowercase());
    }
    assert_eq!(marked, ["kettle"], "the query's words, not the common ones");
    browser.screenshot("console-playground-1280").await;

    // A filter the API refuses: its message.
    browser.fill("#filter", r#"{"equals": {"key": "team"}}"#).await;
    browser.click("#playground button[type=submit]", "#error").await;
    assert!(browser.text("#error").await.starts_with("invalid filter at "), "{}", browser.text("#error").await);
    browser.fill("#filter", r#"{"equals": {"key": "team", "value": "docs"}}"#).await;
    browser.click("#playground button[type=submit]", "#no-results").await;

    browser.client.set_window_size(390, 844).await.expect("resizes");
    browser.fill("#filter", "").await;
    browser.click("#playground button[type=submit]", "#results article.result").await;
    assert!(browser.page_width().await <= 390, "no sideways scrolling: {}", browser.page_width().await);
    browser.screenshot("console-playground-390").await;
    browser.goto("/console/processing").await;
    assert!(browser.page_width().await <= 390, "no sideways scrolling: {}", browser.page_width().await);
    browser.screenshot("console-processing-390").await;
    browser.close().await;
    std::fs::remove_dir_all(folder.parent().expect("root")).ok();
}
