//! Processing jobs through dokko-api's Document Processing API: the answers' shapes, every
//! counter, incremental runs, deletions, metadata-only changes and unreadable files.

use serde_json::json;

use crate::{Stack, counters};

#[tokio::test]
async fn a_job_indexes_every_file_and_reports_the_seeds_shape() {
    let stack = Stack::spawn().await;
    let org = stack.org("acme").await;
    let repo = org.repository("handbook", &[]).await;
    // No job yet: 400, as the seed says.
    let none = org.status().await;
    assert_eq!(none.status, 400, "{}", none.text);
    assert_eq!(none.error(), "No active ingestion job found");
    org.upload(
        &repo,
        &[
            ("onboarding.txt", b"Every new hire receives a laptop and a badge on day one."),
            ("guides/travel.md", b"# Travel\n\nBook flights through the portal. Economy class for trips under six hours."),
            ("about.html", b"<html><head><title>About</title><style>p{}</style></head><body><p>Founded in Lisbon in 1998.</p><script>var x = 'hidden';</script></body></html>"),
        ],
    )
    .await;

    let started = org.start().await;
    assert_eq!(started["status"], "RUNNING");
    for key in ["status", "statistics", "startedAt", "updatedAt"] {
        assert!(started.get(key).is_some(), "{key} missing in {started}");
    }
    assert!(started["startedAt"].as_str().is_some_and(|s| s.ends_with('Z') && !s.contains('.')), "{started}");
    let status = org.wait().await;
    assert_eq!(status["status"], "COMPLETED", "{status}");
    assert_eq!(counters(&status), [3, 3, 0, 0, 0], "{status}");
    assert_eq!(status["failureReasons"], json!([]));

    assert_eq!(org.search("laptop badge").await.first().map(String::as_str), Some("onboarding.txt"));
    assert_eq!(org.search("economy flights").await.first().map(String::as_str), Some("guides/travel.md"));
    assert_eq!(org.search("Lisbon").await, ["about.html"]);
    assert!(org.search("hidden").await.is_empty(), "script text is not indexed");
    let outcomes = org.job_files(None).await;
    assert_eq!(outcomes.len(), 3);
    assert!(outcomes.iter().all(|f| f["status"] == "new" && f["reason"].is_null()), "{outcomes:?}");
}

#[tokio::test]
async fn a_second_start_while_one_runs_is_409_and_the_job_waits_for_a_runner() {
    // No runners: the job stays RUNNING.
    let stack = Stack::spawn_with(|env| env.with("JOB_WORKERS", "0")).await;
    let org = stack.org("acme").await;
    org.start().await;
    let again = org.client.post(&format!("/api/v1/document-sources/{}/process", org.source_id)).await;
    assert_eq!(again.status, 409, "{}", again.text);
    assert_eq!(again.error(), "an ingestion job is already running");
    let status = org.status().await;
    assert_eq!(status.status, 200);
    assert_eq!(status.body["status"], "RUNNING");
    assert_eq!(counters(&status.body), [0, 0, 0, 0, 0]);
}

#[tokio::test]
async fn the_source_repositories_show_when_processing_started_and_ended() {
    // No runners at first: the job waits, RUNNING.
    let mut stack = Stack::spawn_with(|env| env.with("JOB_WORKERS", "0")).await;
    let org = stack.org("acme").await;
    let repo = org.repository("handbook", &[]).await;
    let other = org.repository("policies", &[]).await;
    org.upload(&repo, &[("onboarding.txt", b"Every new hire receives a laptop.")]).await;
    let path = format!("/api/v1/repositories/{repo}");
    let times = async |path: &str| {
        let res = org.client.get(path).await;
        assert_eq!(res.status, 200, "{}", res.text);
        (res.body["processing_started_at"].clone(), res.body["processing_ended_at"].clone())
    };
    assert_eq!(times(&path).await, (json!(null), json!(null)));

    let started = org.start().await;
    assert_eq!(times(&path).await, (started["startedAt"].clone(), json!(null)));
    assert_eq!(times(&format!("/api/v1/repositories/{other}")).await, (started["startedAt"].clone(), json!(null)));
    assert_eq!(org.status().await.body["status"], "RUNNING");
    assert_eq!(times(&path).await, (started["startedAt"].clone(), json!(null)));

    // A runner finishes the job and reports its end: the repository shows it without anyone
    // asking for the job's status.
    stack.stop_ingest_gracefully();
    stack.start_ingest(false, |settings| settings.job_workers = 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let ended = loop {
        let (start, end) = times(&path).await;
        assert_eq!(start, started["startedAt"]);
        if !end.is_null() {
            break end;
        }
        assert!(std::time::Instant::now() < deadline, "the end never showed on the repository");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let status = org.status().await.body;
    assert_eq!(status["status"], "COMPLETED", "{status}");
    assert_eq!(ended, status["updatedAt"]);
    assert_eq!(times(&format!("/api/v1/repositories/{other}")).await, (started["startedAt"].clone(), ended.clone()));
    // Were that report lost, the next status request records the end all the same.
    stack
        .db
        .execute(
            "UPDATE dokko.repositories \
             SET processing_job_id = NULL, processing_started_at = NULL, processing_ended_at = NULL",
        )
        .await;
    assert_eq!(times(&path).await, (json!(null), json!(null)));
    assert_eq!(org.status().await.body["status"], "COMPLETED");
    assert_eq!(times(&path).await, (started["startedAt"].clone(), ended.clone()));
    // A repository created since was not part of that job.
    let late = org.repository("late", &[]).await;
    assert_eq!(org.status().await.body["status"], "COMPLETED");
    assert_eq!(times(&format!("/api/v1/repositories/{late}")).await, (json!(null), json!(null)));

    // The next job replaces both.
    let again = org.start().await;
    let (start, end) = times(&path).await;
    assert_eq!(start, again["startedAt"]);
    assert!(end.is_null() || end.as_str() >= start.as_str(), "{start} {end}");
    let status = org.wait().await;
    assert_eq!(times(&path).await, (again["startedAt"].clone(), status["updatedAt"].clone()));
    assert_eq!(
        times(&format!("/api/v1/repositories/{late}")).await,
        (again["startedAt"].clone(), status["updatedAt"].clone())
    );

    // A late report of the first job's end (both may have started within one second) changes
    // nothing: jobs are told apart by their ids, which are ordered.
    let mut stale = started.clone();
    stale["status"] = json!("COMPLETED");
    stale["updatedAt"] = ended.clone();
    let token = auth::service_token::ServiceTokens::new(crate::INTERNAL_SECRET.as_bytes(), "dokko-ingest")
        .bearer()
        .expect("a service token");
    let res = stack
        .anonymous()
        .send(
            stack
                .anonymous()
                .request(reqwest::Method::PUT, &format!("/internal/v1/document-sources/{}/processing", org.source_id))
                .bearer_auth(token)
                .json(&stale),
        )
        .await;
    assert_eq!(res.status, 204, "{}", res.text);
    assert_eq!(times(&path).await, (again["startedAt"].clone(), status["updatedAt"].clone()));
}

#[tokio::test]
async fn runs_are_incremental_and_count_each_kind_of_change() {
    let stack = Stack::spawn().await;
    let org = stack.org("acme").await;
    let repo = org.repository("docs", &[]).await;
    let ids = org
        .upload(
            &repo,
            &[
                ("keep.txt", b"The aquarium keeps seventeen octopuses."),
                ("edit.txt", b"The old policy allowed umbrellas."),
                ("tag.txt", b"Quarterly revenue grew in the northern region."),
                ("drop.txt", b"Obsolete memo about fax machines."),
            ],
        )
        .await;
    assert_eq!(counters(&org.process().await), [4, 4, 0, 0, 0]);

    // Nothing changed: nothing is indexed again.
    assert_eq!(counters(&org.process().await), [4, 0, 0, 0, 0]);
    assert!(org.job_files(None).await.iter().all(|f| f["status"] == "unchanged"));

    // One of each: new, content modified, metadata alone modified, deleted.
    let seq_before =
        stack.db.count(&format!("SELECT change_seq AS n FROM ingest.files WHERE file_id = '{}'", ids[2])).await;
    org.replace(&repo, "edit.txt", b"The new policy forbids umbrellas and allows raincoats.").await;
    org.set_metadata(&ids[2], json!({"department": "finance", "year": 2024})).await;
    org.delete(&repo, &["drop.txt"]).await;
    org.upload(&repo, &[("fresh.txt", b"Welcome to the new cafeteria menu.")]).await;
    let status = org.process().await;
    assert_eq!(counters(&status), [4, 1, 2, 1, 0], "{status}");
    let outcome_of = |files: &[serde_json::Value], key: &str| {
        files.iter().find(|f| f["key"] == key).map(|f| f["status"].as_str().unwrap_or_default().to_owned())
    };
    let files = org.job_files(None).await;
    assert_eq!(outcome_of(&files, "keep.txt").as_deref(), Some("unchanged"));
    assert_eq!(outcome_of(&files, "edit.txt").as_deref(), Some("modified"));
    assert_eq!(outcome_of(&files, "tag.txt").as_deref(), Some("metadata"));
    assert_eq!(outcome_of(&files, "drop.txt").as_deref(), Some("deleted"));
    assert_eq!(outcome_of(&files, "fresh.txt").as_deref(), Some("new"));
    // The metadata-only file was not re-extracted: its content version did not move.
    let seq_after =
        stack.db.count(&format!("SELECT change_seq AS n FROM ingest.files WHERE file_id = '{}'", ids[2])).await;
    assert_eq!(seq_before, seq_after);

    assert!(org.search("fax machines").await.is_empty(), "deleted files never come back");
    assert!(only_new_text(&org).await, "a replaced file answers with its new text only");
    assert_eq!(org.search("raincoats").await, ["edit.txt"]);
    assert_eq!(org.search("cafeteria").await, ["fresh.txt"]);
    let tagged = org
        .search_with(json!({"query": "revenue", "filter": {"equals": {"key": "department", "value": "finance"}}}))
        .await;
    assert_eq!(tagged, ["tag.txt"], "the new metadata is searchable");
    assert_eq!(counters(&org.process().await), [4, 0, 0, 0, 0]);
}

/// The replaced file answers with its new text only.
async fn only_new_text(org: &crate::Org) -> bool {
    let res = org.retrieve(json!({"query": "umbrellas", "top_k": 10})).await;
    res.body["results"].as_array().is_some_and(|results| {
        results.iter().all(|r| !r["content"].as_str().unwrap_or_default().contains("old policy"))
    })
}

#[tokio::test]
async fn unreadable_files_fail_alone_with_their_reason() {
    let stack = Stack::spawn_with(|env| env.with("MAX_FILE_BYTES", "200000")).await;
    let org = stack.org("acme").await;
    let repo = org.repository("mixed", &[]).await;
    let big = "large ".repeat(50_000);
    org.upload(
        &repo,
        &[
            ("good.txt", b"A perfectly readable note about pelicans."),
            ("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> garbage without end"),
            ("binary.txt", &[0u8, 159, 146, 150, 255, 0, 1, 2, 3, 0, 0, 0]),
            ("fake.docx", b"this is not a zip archive at all"),
            ("big.txt", big.as_bytes()),
        ],
    )
    .await;
    let status = org.process().await;
    assert_eq!(counters(&status), [5, 1, 0, 0, 4], "{status}");
    let failed = org.job_files(Some("failed")).await;
    assert_eq!(failed.len(), 4, "{failed:?}");
    for file in &failed {
        let reason = file["reason"].as_str().unwrap_or_default();
        assert!(!reason.is_empty(), "{file}");
    }
    let reason_of = |key: &str| {
        failed.iter().find(|f| f["key"] == key).and_then(|f| f["reason"].as_str()).unwrap_or_default().to_owned()
    };
    assert!(reason_of("big.txt").contains("larger than"), "{}", reason_of("big.txt"));
    assert_eq!(org.search("pelicans").await, ["good.txt"]);
    // A failed file is tried again on the next run (the cause may have passed), and fails again.
    assert_eq!(counters(&org.process().await), [5, 0, 0, 0, 4]);
}

#[tokio::test]
async fn another_tenants_source_is_404_everywhere() {
    let stack = Stack::spawn().await;
    let acme = stack.org("acme").await;
    let globex = stack.org("globex").await;
    for (method, path) in [
        (reqwest::Method::POST, format!("/api/v1/document-sources/{}/process", acme.source_id)),
        (reqwest::Method::GET, format!("/api/v1/document-sources/{}/process/status", acme.source_id)),
        (reqwest::Method::GET, format!("/api/v1/document-sources/{}/process/files", acme.source_id)),
    ] {
        let res = globex.client.send(globex.client.request(method, &path)).await;
        assert_eq!(res.status, 404, "{path}: {}", res.text);
    }
    let res = globex
        .client
        .post_json(&format!("/api/v1/document-sources/{}/retrieve", acme.source_id), &json!({"query": "x"}))
        .await;
    assert_eq!(res.status, 404, "{}", res.text);
    let anonymous = stack.anonymous().post(&format!("/api/v1/document-sources/{}/process", acme.source_id)).await;
    assert_eq!(anonymous.status, 401);
}

#[tokio::test]
async fn the_internal_routes_refuse_callers_without_a_service_token() {
    let stack = Stack::spawn().await;
    let org = stack.org("acme").await;
    let ingest = testkit::Client::new(stack.ingest.as_ref().expect("running").url());
    let res = ingest.get(&format!("/internal/v1/sources/{}/jobs/latest?tenant_id={}", org.source_id, org.id)).await;
    assert_eq!(res.status, 401);
    let res = stack.anonymous().get(&format!("/internal/v1/document-sources/{}/files", org.source_id)).await;
    assert_eq!(res.status, 401);
    // A user's or service account's token is not a service token.
    let res = org.client.get(&format!("/internal/v1/document-sources/{}/files", org.source_id)).await;
    assert_eq!(res.status, 401);
    let job = json!({"status": "COMPLETED", "statistics": {"numberOfDocumentsScanned": 0, "numberOfNewDocumentsIndexed": 0,
        "numberOfModifiedDocumentsIndexed": 0, "numberOfDocumentsDeleted": 0, "numberOfDocumentsFailed": 0},
        "startedAt": "2030-01-01T00:00:00Z", "updatedAt": "2030-01-01T00:00:01Z",
        "ingestionJobId": org.source_id, "failureReasons": []});
    let repo = org.repository("handbook", &[]).await;
    for client in [stack.anonymous(), org.client.clone()] {
        let res = client.put_json(&format!("/internal/v1/document-sources/{}/processing", org.source_id), &job).await;
        assert_eq!(res.status, 401);
    }
    let res = org.client.get(&format!("/api/v1/repositories/{repo}")).await;
    assert_eq!(res.body["processing_started_at"], json!(null), "{}", res.text);
}

#[tokio::test]
async fn dokko_api_answers_503_while_dokko_ingest_is_down() {
    let mut stack = Stack::spawn().await;
    let org = stack.org("acme").await;
    stack.stop_ingest();
    let start = org.client.post(&format!("/api/v1/document-sources/{}/process", org.source_id)).await;
    assert_eq!(start.status, 503, "{}", start.text);
    assert_eq!(start.error(), "the ingestion service is unavailable; try again");
    assert_eq!(org.status().await.status, 503);
    assert_eq!(org.retrieve(json!({"query": "anything"})).await.status, 503);
    // Back up: the same calls work.
    stack.start_ingest(false, |_| {});
    org.start().await;
    assert_eq!(org.wait().await["status"], "COMPLETED");
}
